-- The one-statement ingest (sql.INGEST_STREAM) folds the position book before PostgreSQL has said
-- which fills are new, on the bet that a stream batch holds only new facts. This check, evaluated
-- by that statement after its inserts, aborts the whole statement (nothing of it is stored) when
-- the bet lost: some fill or close was already stored. The caller then reloads the book and
-- takes the transactional path, which asks first.
CREATE FUNCTION fillstream_ingest_check(
    fills bigint, expected_fills bigint, closes bigint, expected_closes bigint
) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF fills <> expected_fills OR closes <> expected_closes THEN
        RAISE EXCEPTION 'fillstream: % of % fills and % of % closes new', fills, expected_fills,
            closes, expected_closes USING ERRCODE = 'FS409';
    END IF;
    RETURN fills;
END $$;
