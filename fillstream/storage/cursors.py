"""Reconcile cursors in PostgreSQL (:class:`fillstream.ledger.CursorStore`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from fillstream.ledger import Cursor, Market

_UPSERT = """
INSERT INTO cursors AS c (account, market, symbol, trade_id, trade_time_ms, updated_at_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
    $6::bigint[])
ON CONFLICT (account, market, symbol) DO UPDATE SET
    trade_id = EXCLUDED.trade_id, trade_time_ms = EXCLUDED.trade_time_ms,
    updated_at_ms = EXCLUDED.updated_at_ms, updated_at = now()
WHERE c.trade_id <= EXCLUDED.trade_id
"""


class PgCursorStore:
    """Per-(account, market, symbol) cursors; a save never moves a cursor backwards."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def load(self, account: str, market: Market) -> dict[str, Cursor]:
        records = await self.pool.fetch(
            "SELECT symbol, trade_id, trade_time_ms, updated_at_ms FROM cursors"
            " WHERE account = $1 AND market = $2",
            account,
            market.value,
        )
        return {
            r["symbol"]: Cursor(
                account=account,
                market=market,
                symbol=r["symbol"],
                trade_id=r["trade_id"],
                trade_time_ms=r["trade_time_ms"],
                updated_at_ms=r["updated_at_ms"],
            )
            for r in records
        }

    async def save(self, cursors: Sequence[Cursor]) -> None:
        if not cursors:
            return
        latest: dict[tuple[str, str, str], Cursor] = {}
        for c in cursors:  # one row per key in one statement; the furthest wins
            k = (c.account, c.market.value, c.symbol)
            if k not in latest or latest[k].trade_id <= c.trade_id:
                latest[k] = c
        cs = list(latest.values())
        await self.pool.execute(
            _UPSERT,
            [c.account for c in cs],
            [c.market.value for c in cs],
            [c.symbol for c in cs],
            [c.trade_id for c in cs],
            [c.trade_time_ms for c in cs],
            [c.updated_at_ms for c in cs],
        )
