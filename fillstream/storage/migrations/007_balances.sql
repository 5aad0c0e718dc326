-- Spot balances (issue 14): what the venue reported about an account's assets, as facts, and the
-- latest state per asset. Written in the same ingest as the batch's fills (sql.py).
--
-- One row per fact. The key is the fact's own: its kind (position = outboundAccountPosition or
-- the account snapshot, delta = balanceUpdate, external_lock = externalLockUpdate), the asset and
-- the event's own time (`u` last account update, `T` clear time), which is what a second
-- delivery of it (the stream again, the reconcile path's snapshot of the same update) shares.
-- Its columns are ordered (account, market, time_ms, ...) so that the primary key also serves
-- `republish` (an account's facts from a time on) without a second index on the hot path. Two
-- updates of one asset in one millisecond collapse to the first seen; for `position` facts that
-- heals at the next update (each carries the asset's whole free and locked amounts).
CREATE TABLE balance_changes (
    account          text        NOT NULL,
    market           text        NOT NULL,
    time_ms          bigint      NOT NULL,  -- the event's `u` (position) or `T` (delta, lock)
    asset            text        NOT NULL,
    kind             text        NOT NULL,  -- position, delta, external_lock
    free             numeric,               -- position only
    locked           numeric,               -- position only
    delta            numeric,               -- delta and external_lock only
    event_time_ms    bigint      NOT NULL,  -- the event's `E`
    source           text        NOT NULL,  -- the path that delivered it first
    received_at      timestamptz NOT NULL,  -- when that path received it
    inserted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, time_ms, asset, kind),
    CHECK (kind IN ('position', 'delta', 'external_lock')),
    CHECK ((kind = 'position') = (free IS NOT NULL AND locked IS NOT NULL AND delta IS NULL)),
    CHECK (kind = 'position' OR (delta IS NOT NULL AND free IS NULL AND locked IS NULL)),
    -- Money is finite: a NaN or an infinity is refused (and quarantined), never stored.
    CHECK (free NOT IN ('NaN', 'Infinity', '-Infinity')),
    CHECK (locked NOT IN ('NaN', 'Infinity', '-Infinity')),
    CHECK (delta NOT IN ('NaN', 'Infinity', '-Infinity'))
);

-- The latest free and locked amounts per asset, from `position` facts only (a delta says how much
-- moved, not what is left; Binance follows every balance change with an outboundAccountPosition).
-- Only a newer fact replaces a row, so a late or replayed older one never rolls it back.
CREATE TABLE balances (
    account          text        NOT NULL,
    market           text        NOT NULL,
    asset            text        NOT NULL,
    free             numeric     NOT NULL,
    locked           numeric     NOT NULL,
    time_ms          bigint      NOT NULL,
    event_time_ms    bigint      NOT NULL,
    source           text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, asset)
);
