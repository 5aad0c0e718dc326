"""``FillIndex`` over PostgreSQL: which fills the ledger already holds (for the reconcile path)."""

from __future__ import annotations

import asyncpg

from fillstream.ledger import Market


class PgFillIndex:
    """Implements :class:`fillstream.ledger.FillIndex` with one indexed range query."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def stored_fills(
        self, account: str, market: Market, symbol: str, *, from_trade_id: int, to_trade_id: int
    ) -> set[tuple[int, int]]:
        """``(trade_id, order_id)`` of the stored fills with ``from ≤ trade_id ≤ to``."""
        rows = await self.pool.fetch(
            "SELECT trade_id, order_id FROM fills WHERE account = $1 AND market = $2"
            " AND symbol = $3 AND trade_id BETWEEN $4 AND $5",
            account,
            market.value,
            symbol,
            from_trade_id,
            to_trade_id,
        )
        return {(r[0], r[1]) for r in rows}
