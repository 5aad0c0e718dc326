-- Replicas (issue 15): which process owns each account, and the fence every ingest checks.
--
-- A process that takes an account's lease (a JetStream KV key, storage/leases.py) claims the
-- account here with the lease's revision: ``epoch`` goes up by one on every claim, and a claim
-- only succeeds with a revision newer than the stored one (or a lease bucket that was recreated:
-- its revisions start again). Every ingest of a replica passes the epoch it claimed to
-- fillstream_fence(), evaluated by the ingest's own statement or transaction: a stale owner (a
-- process paused past its lease, or cut off from NATS) has its whole write refused with SQLSTATE
-- FS403. The fence takes the owner row FOR SHARE, so a claim (an UPDATE of that row) waits for
-- an ingest in flight, and an ingest after a claim sees the new epoch: the new owner restores
-- its book from a ledger no stale write can reach any more.
CREATE TABLE account_owners (
    account        text NOT NULL,
    market         text NOT NULL,
    epoch          bigint NOT NULL,
    lease_revision bigint NOT NULL,
    lease_bucket   text NOT NULL,
    owner          text NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market)
);

CREATE FUNCTION fillstream_fence(p_account text, p_market text, p_epoch bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    stored bigint;
BEGIN
    SELECT epoch INTO stored FROM account_owners
    WHERE account = p_account AND market = p_market FOR SHARE;
    IF stored IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'fillstream: %/% is owned under epoch %, not %', p_account, p_market,
            stored, p_epoch USING ERRCODE = 'FS403';
    END IF;
    RETURN NULL;
END $$;
