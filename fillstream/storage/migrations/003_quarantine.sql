-- Facts the store refused for a data reason (a value out of a column's range, a constraint the
-- value breaks, text PostgreSQL cannot represent): isolated from their batch so the rest of it,
-- and the account's later batches, are stored. One row per fact; seen again, it is counted.
-- The fact is the domain object as JSON (text, not jsonb: what was refused may not be valid
-- jsonb either), the raw input when the path that delivered it kept one.
CREATE TABLE quarantine (
    id               bigserial PRIMARY KEY,
    account          text    NOT NULL,
    market           text    NOT NULL,
    kind             text    NOT NULL,  -- fill, order, algo_link, correction, funding
    fact_key         text    NOT NULL,  -- the fact's identity (e.g. the fill's message id)
    source           text,              -- stream, reconcile
    sqlstate         text,
    error            text    NOT NULL,
    fact             text    NOT NULL,
    raw              text,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    seen             integer NOT NULL DEFAULT 1,
    UNIQUE (account, market, kind, fact_key)
);
CREATE INDEX quarantine_by_time ON quarantine (first_seen_at);
