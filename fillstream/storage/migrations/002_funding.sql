-- Funding payments (income FUNDING_FEE), folded by the book into the lifecycle they were paid
-- in, so a close carries them; kept for restore. One row per venue tranId.
CREATE TABLE funding (
    account          text    NOT NULL,
    market           text    NOT NULL,
    symbol           text    NOT NULL,
    position_side    text    NOT NULL,
    amount           numeric NOT NULL,
    asset            text    NOT NULL,
    time_ms          bigint  NOT NULL,
    tran_id          bigint  NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, market, tran_id)
);
CREATE INDEX funding_by_time ON funding (account, market, time_ms);
