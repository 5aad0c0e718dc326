"""The store's fill index for the reconcile path (:class:`fillstream.ledger.FillIndex`).

A read of the ``fills`` primary key (``account, market, symbol, trade_id, order_id``): which of a
page of ``userTrades`` rows are stored already, so only the stream's misses are enriched and the
repair dry run can list exactly what it would add. Lives in ``sidecar`` (it knows the table;
``reconcile`` may not import ``storage``).
"""

from __future__ import annotations

import asyncpg

from fillstream.ledger import FillSource, Market

_STORED = """
SELECT trade_id, order_id FROM fills
WHERE account = $1 AND market = $2 AND symbol = $3 AND trade_id BETWEEN $4 AND $5
"""


_NEWEST = """
SELECT max(trade_time_ms) FROM (
    SELECT trade_time_ms FROM fills WHERE account = $1 AND market = $2 AND source = $3
    ORDER BY trade_time_ms DESC LIMIT 1
) newest
"""


class PgFillIndex:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def stored_fills(
        self, account: str, market: Market, symbol: str, *, from_trade_id: int, to_trade_id: int
    ) -> set[tuple[int, int]]:
        records = await self.pool.fetch(
            _STORED, account, market.value, symbol, from_trade_id, to_trade_id
        )
        return {(r["trade_id"], r["order_id"]) for r in records}

    async def newest_fill_ms(
        self, account: str, market: Market, *, source: FillSource
    ) -> int | None:
        value = await self.pool.fetchval(_NEWEST, account, market.value, source.value)
        return None if value is None else int(value)
