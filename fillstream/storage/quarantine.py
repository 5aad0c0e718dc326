"""The quarantine: facts the store refused for a data reason, kept with the error and the input.

PostgreSQL refuses a batch in two ways that look alike to asyncpg's caller and call for opposite
answers. *Unavailable* (connection lost, server shutting down, too many clients): retry the same
batch later, nothing is wrong with it. *The data* (a trade id above ``bigint``, a value a check
constraint rejects, text PostgreSQL cannot represent): the same batch will be refused forever, and
an account whose ingest retries it forever stores nothing more. :func:`is_data_error` tells them
apart; the pipeline then splits the batch until the refused fact is alone and puts it here.

One row per fact (``account, market, kind, fact_key``): a fact refused again (the path delivered
it again, or after a restart) bumps ``seen`` and is not counted twice. The fact is stored as the
JSON of its domain object in a ``text`` column, escaped so that whatever PostgreSQL refused in it
cannot make this insert fail too.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from asyncpg.exceptions._base import DataError as ClientDataError

from fillstream.ledger import (
    AlgoLink,
    BalanceChange,
    Fill,
    FundingFee,
    OrderUpdate,
    PositionCorrection,
    subjects,
)
from fillstream.storage.metrics import QUARANTINED

log = logging.getLogger(__name__)

Fact = Fill | OrderUpdate | AlgoLink | PositionCorrection | FundingFee | BalanceChange

DATA_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError,  # SQLSTATE class 22: out of range, invalid text representation, ...
    asyncpg.IntegrityConstraintViolationError,  # class 23: check, not-null, foreign key, ...
    ClientDataError,  # asyncpg could not encode an argument (an int above int64, ...)
)
"""Refusals caused by the batch's content: retrying the same batch cannot succeed."""

_encoder = msgspec.json.Encoder(decimal_format="string")
ERROR_MAX = 2000
RAW_MAX = 16_000

INSERT = """
INSERT INTO quarantine AS q (
    account, market, kind, fact_key, source, sqlstate, error, fact, raw)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (account, market, kind, fact_key) DO UPDATE SET
    seen = q.seen + 1, last_seen_at = now(), error = EXCLUDED.error
RETURNING (xmax = 0) AS inserted
"""


def declare_metrics(account: str, market: str) -> None:
    """Expose ``fillstream_quarantined_total`` at 0 for every kind, so the first quarantined
    fact is an increase an alert sees (a series born at 1 shows none)."""
    for kind in _KINDS.values():
        QUARANTINED.labels(account, market, kind)


def is_data_error(exc: BaseException) -> bool:
    """The store refused because of what was sent, not because it is unavailable."""
    return isinstance(exc, DATA_ERRORS)


def kind_of(fact: Fact) -> str:
    """``fill``, ``order``, ``algo_link``, ``correction``, ``funding`` or ``balance``."""
    return _KINDS[type(fact)]


def fact_key(fact: Fact) -> str:
    """The fact's identity within its account: what a second delivery of it shares."""
    if isinstance(fact, Fill):
        return subjects.fill_msg_id(fact.key)
    if isinstance(fact, OrderUpdate):
        return subjects.order_msg_id(fact)
    if isinstance(fact, AlgoLink):
        return f"algo:{fact.symbol}:{fact.algo_id}:{fact.update_time_ms}"
    if isinstance(fact, PositionCorrection):
        return f"correction:{fact.symbol}:{fact.position_side}:{fact.time_ms}:{fact.qty}"
    if isinstance(fact, BalanceChange):
        return subjects.balance_msg_id(fact)
    return f"funding:{fact.symbol}:{fact.tran_id}"


def _text(value: str, limit: int) -> str:
    """What PostgreSQL's ``text`` accepts: no NUL, valid UTF-8 (lone surrogates escaped)."""
    safe = value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[:limit] + "…"


class Quarantined(msgspec.Struct, frozen=True, kw_only=True):
    """One quarantined fact, as :meth:`Quarantine.rows` reads it back."""

    account: str
    market: str
    kind: str
    fact_key: str
    source: str | None
    sqlstate: str | None
    error: str
    fact: str
    raw: str | None
    seen: int


class Quarantine:
    """Writes (and lists) quarantined facts; counts ``fillstream_quarantined_total``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, fact: Fact, error: BaseException, *, raw: str | None = None) -> bool:
        """Quarantine ``fact`` refused with ``error``; True if it was not quarantined before.

        Raises what asyncpg raises (PostgreSQL unavailable): the caller's batch then fails as a
        whole and is retried, nothing is half-isolated.
        """
        kind, key = kind_of(fact), fact_key(fact)
        market = fact.market.value
        source = getattr(fact, "source", None)
        inserted = await self.pool.fetchval(
            INSERT,
            fact.account,
            market,
            kind,
            _text(key, 500),
            None if source is None else str(source),
            getattr(error, "sqlstate", None),
            _text(f"{type(error).__name__}: {error}", ERROR_MAX),
            _text(_encoder.encode(fact).decode("utf-8", "backslashreplace"), RAW_MAX),
            None if raw is None else _text(raw, RAW_MAX),
        )
        if inserted:
            QUARANTINED.labels(fact.account, market, kind).inc()
        log.error(
            "%s/%s: %s %s refused by PostgreSQL for its data (%s: %s); quarantined, the rest of "
            "its batch is stored",
            fact.account,
            market,
            kind,
            key,
            type(error).__name__,
            _text(str(error), 300),
        )
        return bool(inserted)

    async def rows(self, account: str | None = None) -> list[Quarantined]:
        """Every quarantined fact (of ``account``), oldest first."""
        records: list[Any] = await self.pool.fetch(
            "SELECT account, market, kind, fact_key, source, sqlstate, error, fact, raw, seen"
            " FROM quarantine WHERE $1::text IS NULL OR account = $1 ORDER BY id",
            account,
        )
        return [Quarantined(**dict(r)) for r in records]


_KINDS: dict[type[Any], str] = {
    Fill: "fill",
    OrderUpdate: "order",
    AlgoLink: "algo_link",
    PositionCorrection: "correction",
    FundingFee: "funding",
    BalanceChange: "balance",
}
