-- fillstream ledger, version 1 (design.md §5).
-- Amounts are NUMERIC (inserted as text, never through float); exchange times are bigint ms,
-- our own bookkeeping times are timestamptz.

CREATE TABLE fills (
    account          text        NOT NULL,
    market           text        NOT NULL,
    symbol           text        NOT NULL,
    trade_id         bigint      NOT NULL,
    order_id         bigint      NOT NULL,
    side             text        NOT NULL,
    position_side    text        NOT NULL,
    price            numeric     NOT NULL,
    qty              numeric     NOT NULL,
    quote_qty        numeric     NOT NULL,
    commission       numeric     NOT NULL,
    commission_asset text        NOT NULL,
    realized_pnl     numeric     NOT NULL,
    maker            boolean     NOT NULL,
    trade_time_ms    bigint      NOT NULL,
    client_order_id  text,
    order_type       text,
    orig_type        text,
    reduce_only      boolean,
    event_time_ms    bigint,
    source           text        NOT NULL,  -- the path that delivered it first
    received_at      timestamptz NOT NULL,  -- when that path received it
    inserted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, symbol, trade_id, order_id)
);
-- One secondary index only (every index costs on the hot insert path): restore and republish
-- both read an account's fills from a trade time on.
CREATE INDEX fills_by_time ON fills (account, market, trade_time_ms);

-- Latest known state per order; only forward transitions replace a row.
CREATE TABLE orders (
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    order_id         bigint  NOT NULL,
    client_order_id  text    NOT NULL,
    side             text    NOT NULL,
    position_side    text    NOT NULL,
    order_type       text    NOT NULL,
    orig_type        text    NOT NULL,
    status           text    NOT NULL,
    status_rank      smallint NOT NULL,
    price            numeric NOT NULL,
    avg_price        numeric NOT NULL,
    orig_qty         numeric NOT NULL,
    filled_qty       numeric NOT NULL,
    stop_price       numeric NOT NULL,
    reduce_only      boolean NOT NULL,
    close_position   boolean NOT NULL,
    update_time_ms   bigint  NOT NULL,
    execution_type   text,
    expiry_reason    text,
    source           text    NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, symbol, order_id)
);
CREATE INDEX orders_open ON orders (account, market, update_time_ms)
    WHERE status IN ('NEW', 'PARTIALLY_FILLED');

-- The book's positions; sealed_* is PositionBook.sealed_through (entries at or before it are
-- folded for good, so a restart only reloads what comes after).
CREATE TABLE positions (
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    position_side    text    NOT NULL,
    qty              numeric NOT NULL,
    entry_price      numeric NOT NULL,
    realized_pnl     numeric NOT NULL,
    opened_at_ms     bigint,
    updated_at_ms    bigint  NOT NULL,
    sealed_time_ms   bigint,
    sealed_trade_id  bigint,
    sealed_order_id  bigint,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, symbol, position_side)
);

-- Immutable facts: one row per close revision (msg_id includes the revision). A retraction
-- stamps retracted_at on every revision of the close it withdraws.
CREATE TABLE position_closes (
    msg_id           text    PRIMARY KEY,
    close_id         text    NOT NULL,  -- msg id of revision 0: groups the revisions
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    position_side    text    NOT NULL,
    reason           text    NOT NULL,
    revision         integer NOT NULL,
    close_trade_id   bigint  NOT NULL,
    close_order_id   bigint  NOT NULL,
    realized_pnl     numeric NOT NULL,
    opened_at_ms     bigint  NOT NULL,
    closed_at_ms     bigint  NOT NULL,
    source           text    NOT NULL,
    close            jsonb   NOT NULL,  -- the PositionClose as published (amounts as strings)
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    retracted_at     timestamptz
);
CREATE INDEX position_closes_by_account ON position_closes (account, market, closed_at_ms);
CREATE INDEX position_closes_by_close ON position_closes (close_id, revision);

CREATE TABLE position_corrections (
    id               bigserial PRIMARY KEY,
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    position_side    text    NOT NULL,
    qty              numeric NOT NULL,
    entry_price      numeric NOT NULL,
    time_ms          bigint  NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, market, symbol, position_side, time_ms, qty)
);

CREATE TABLE algo_links (
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    algo_id          bigint  NOT NULL,
    client_algo_id   text    NOT NULL,
    algo_type        text    NOT NULL,
    status           text    NOT NULL,
    order_id         bigint,
    update_time_ms   bigint  NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, algo_id)
);
CREATE INDEX algo_links_by_order ON algo_links (account, market, order_id)
    WHERE order_id IS NOT NULL;

-- Messages written in the same transaction as the facts; the relay publishes them in id order.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    subject          text    NOT NULL,
    msg_id           text    NOT NULL,
    payload          bytea   NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Reconcile progress per symbol: every trade <= trade_id is stored.
CREATE TABLE cursors (
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    trade_id         bigint  NOT NULL,
    trade_time_ms    bigint  NOT NULL,
    updated_at_ms    bigint  NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, symbol)
);

-- For operators: user-stream connections and the gaps the reconciler was told to backfill.
CREATE TABLE stream_sessions (
    id               bigserial PRIMARY KEY,
    account          text    NOT NULL,
    market           text    NOT NULL,
    connected_at_ms  bigint  NOT NULL,
    disconnected_at_ms bigint,
    end_reason       text,
    frames           bigint  NOT NULL DEFAULT 0,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stream_sessions_by_account ON stream_sessions (account, market, connected_at_ms);

CREATE TABLE gaps (
    id               bigserial PRIMARY KEY,
    account          text    NOT NULL,
    market           text    NOT NULL,
    since_ms         bigint  NOT NULL,
    until_ms         bigint,
    reason           text    NOT NULL,
    symbols          text[]  NOT NULL DEFAULT '{}',
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, market, since_ms, reason)
);

CREATE TABLE status_changes (
    id               bigserial PRIMARY KEY,
    account          text    NOT NULL,
    market           text    NOT NULL,
    state            text    NOT NULL,
    previous         text,
    reason           text    NOT NULL,
    time_ms          bigint  NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
