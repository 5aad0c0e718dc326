"""Rebuilding an account's :class:`PositionBook` from PostgreSQL.

The book keeps, per position, only what it may still need to refold (entries after
``sealed_through``); the ``positions`` table stores that boundary. So a restore loads, per
position, the fills and corrections after the stored boundary, the closes recorded after it
(latest revision, not retracted), the funding payments after it, and every algo-order link.
A spot account's book is empty and reads nothing: spot fills never fold into positions
(:func:`fillstream.ledger.folds_positions`), so there is nothing to restore, and with no
``positions`` rows the fills read would otherwise start at time 0.
"""

from __future__ import annotations

import logging

import asyncpg

from fillstream.ledger import (
    CloseReason,
    Fill,
    FundingFee,
    Market,
    PositionBook,
    PositionClose,
    PositionCorrection,
    PositionSide,
    folds_positions,
)
from fillstream.ledger.book import DEFAULT_MAX_ENTRIES, SortKey, sort_key
from fillstream.storage import payloads, rows, sql

log = logging.getLogger(__name__)

_ADJUSTMENT_ORDER = 1 << 62  # as in the book: a correction sorts after its millisecond's fills

_SEALED = """
SELECT symbol, position_side, sealed_time_ms, sealed_trade_id, sealed_order_id
FROM positions WHERE account = $1 AND market = $2 AND sealed_time_ms IS NOT NULL
"""

_FILLS = (
    sql.FILL_SELECT
    + """
LEFT JOIN positions p ON p.account = f.account AND p.market = f.market
    AND p.symbol = f.symbol AND p.position_side = f.position_side
WHERE f.account = $1 AND f.market = $2 AND f.trade_time_ms >= $3
  AND (p.sealed_time_ms IS NULL
       OR (f.trade_time_ms, f.trade_id, f.order_id)
          > (p.sealed_time_ms, p.sealed_trade_id, p.sealed_order_id))
ORDER BY f.trade_time_ms, f.trade_id, f.order_id
"""
)

_LOWER_BOUND = """
SELECT CASE WHEN bool_and(sealed_time_ms IS NOT NULL) THEN min(sealed_time_ms) ELSE 0 END
FROM positions WHERE account = $1 AND market = $2
"""

_CORRECTIONS = """
SELECT account, market, symbol, position_side, qty, entry_price, time_ms
FROM position_corrections WHERE account = $1 AND market = $2 ORDER BY time_ms, id
"""

_FUNDING = """
SELECT account, market, symbol, position_side, amount, asset, time_ms, tran_id
FROM funding WHERE account = $1 AND market = $2 AND time_ms >= $3 ORDER BY time_ms, tran_id
"""

_CLOSES = """
SELECT DISTINCT ON (close_id) close FROM position_closes
WHERE account = $1 AND market = $2 AND closed_at_ms >= $3 AND retracted_at IS NULL
ORDER BY close_id, revision DESC
"""

_ALGO_LINKS = """
SELECT order_id, algo_type FROM algo_links
WHERE account = $1 AND market = $2 AND order_id IS NOT NULL
"""


def close_sort_key(close: PositionClose) -> SortKey:
    """The sort key of the entry that closed the position (the book's ordering)."""
    if close.reason is CloseReason.RECONCILED_UNKNOWN:
        return (close.closed_at_ms, _ADJUSTMENT_ORDER, 0)
    return (close.closed_at_ms, close.close_trade_id, close.close_order_id)


async def load_book(
    conn: asyncpg.Connection,
    account: str,
    market: Market,
    *,
    horizon_ms: int,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> PositionBook:
    """The account's book as it was after the last committed ingest."""
    book = PositionBook(account, market, horizon_ms=horizon_ms, max_entries=max_entries)
    if not folds_positions(market):
        return book
    sealed: dict[tuple[str, PositionSide], SortKey] = {
        (r["symbol"], PositionSide(r["position_side"])): (
            r["sealed_time_ms"],
            r["sealed_trade_id"],
            r["sealed_order_id"],
        )
        for r in await conn.fetch(_SEALED, account, market.value)
    }

    def after_seal(symbol: str, side: PositionSide, key: SortKey) -> bool:
        boundary = sealed.get((symbol, side))
        return boundary is None or key > boundary

    book.link_algo_types(
        {
            r["order_id"]: r["algo_type"]
            for r in await conn.fetch(_ALGO_LINKS, account, market.value)
        }
    )
    # Every position with fills has a row; the oldest seal bounds the index range to read.
    lower = await conn.fetchval(_LOWER_BOUND, account, market.value)
    entries: list[Fill | PositionCorrection | FundingFee] = [
        rows.fill_from_record(r)
        for r in await conn.fetch(_FILLS, account, market.value, lower or 0)
    ]
    for r in await conn.fetch(_CORRECTIONS, account, market.value):
        c = rows.correction_from_record(r)
        if after_seal(c.symbol, c.position_side, sort_key(c)):
            entries.append(c)
    for r in await conn.fetch(_FUNDING, account, market.value, lower or 0):
        fee = rows.funding_from_record(r)
        if after_seal(fee.symbol, fee.position_side, sort_key(fee)):
            entries.append(fee)
    closes = [
        close
        for close in (
            payloads.close_from_json(r["close"])
            for r in await conn.fetch(_CLOSES, account, market.value, lower or 0)
        )
        if after_seal(close.symbol, close.position_side, close_sort_key(close))
    ]
    change = book.restore(entries, closes)
    if change.closes or change.retracted:
        # Stored closes and fills are written in one transaction, so this means the fold itself
        # changed (a new version of the book): the stored facts stay, the book carries on.
        log.warning(
            "book %s/%s restored with %d close(s) and %d retraction(s) not in the store",
            account,
            market,
            len(change.closes),
            len(change.retracted),
        )
    return book
