"""Per-symbol progress of the REST path: the cursor (last trade id known stored) and how far
each symbol is known complete.

A cursor only moves forward, and only along a contiguous chain of ``fromId`` pages that started
at or below it and were committed by the pipeline: "every trade of this symbol with an id ≤ the
cursor is stored" then holds (within the horizon the chain started from).
"""

from __future__ import annotations

import time

from fillstream.ledger import Cursor, CursorStore, Market


class CursorTable:
    """The account's cursors in memory, written through to the :class:`CursorStore`."""

    def __init__(self, store: CursorStore, *, account: str, market: Market) -> None:
        self.store = store
        self.account = account
        self.market = market
        self._cursors: dict[str, Cursor] = {}
        self._complete_through: dict[str, int] = {}  # ms: every trade before is stored
        self._searched_through: dict[str, int] = {}  # ms: no trade before (no cursor yet)
        self._started_ms = int(time.time() * 1000)

    async def load(self) -> None:
        self._cursors = dict(await self.store.load(self.account, self.market))

    def get(self, symbol: str) -> Cursor | None:
        return self._cursors.get(symbol)

    def symbols(self, *, updated_since_ms: int = 0) -> set[str]:
        return {s for s, c in self._cursors.items() if c.updated_at_ms >= updated_since_ms}

    async def advance(self, symbol: str, trade_id: int, trade_time_ms: int) -> None:
        """Move ``symbol``'s cursor to ``trade_id`` (never backwards) and persist it."""
        current = self._cursors.get(symbol)
        if current is not None and current.trade_id >= trade_id:
            return
        cursor = Cursor(
            account=self.account,
            market=self.market,
            symbol=symbol,
            trade_id=trade_id,
            trade_time_ms=max(trade_time_ms, current.trade_time_ms if current else 0),
            updated_at_ms=int(time.time() * 1000),
        )
        await self.store.save([cursor])
        self._cursors[symbol] = cursor

    def mark_complete(self, symbol: str, through_ms: int) -> None:
        if through_ms > self._complete_through.get(symbol, 0):
            self._complete_through[symbol] = through_ms

    def complete_through(self, symbol: str) -> int | None:
        return self._complete_through.get(symbol)

    def searched_through(self, symbol: str) -> int | None:
        return self._searched_through.get(symbol)

    def mark_searched(self, symbol: str, through_ms: int) -> None:
        self._searched_through[symbol] = max(through_ms, self._searched_through.get(symbol, 0))

    def lag_s(self, symbols: set[str], now_ms: int) -> float:
        """Seconds since the least complete of ``symbols`` was known complete (0 if none)."""
        if not symbols:
            return 0.0
        oldest = min(self._complete_through.get(s, self._started_ms) for s in symbols)
        return max(0.0, (now_ms - oldest) / 1000)
