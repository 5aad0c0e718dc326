"""What the stream has seen of one account: watermarks, open orders, positions, recent fills.

Pure bookkeeping (no I/O), used by the listener for dedup and by the watchdog and gap windows to
know which symbols matter. Everything is bounded: recent-fill memory is a fixed-size window,
every map holds at most ``TRACKED_MAX`` entries (the oldest goes first), symbols fade out of
"active" after a horizon, terminal orders and algos are forgotten.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from fillstream.binance.usdm.events import AccountPosition, AccountUpdate
from fillstream.binance.usdm.parse import dec
from fillstream.ledger import AlgoLink, OrderUpdate
from fillstream.ledger.types import TERMINAL_ORDER_STATUSES

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

TERMINAL_ALGO_STATUSES = frozenset({"CANCELED", "FINISHED", "REJECTED", "EXPIRED"})

# A live account has a few hundred open orders at most (Binance caps them per symbol); a stream
# that keeps announcing orders that never end (a broken or hostile feed, a fuzzer) must not grow
# the process or the watchdog's scans, so every map here forgets its oldest entry past this.
TRACKED_MAX = 10_000

TradeRef = tuple[str, int, int]
"""``(symbol, trade id, order id)``: a fill's identity within one account and market."""


class RecentSet(Generic[K]):
    """Membership over the last ``size`` keys added (O(1) add, test and eviction)."""

    def __init__(self, size: int) -> None:
        self._order: deque[K] = deque(maxlen=size)
        self._members: set[K] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __len__(self) -> int:
        return len(self._members)

    def add(self, key: K) -> bool:
        """Add ``key``; False if it was already there."""
        if key in self._members:
            return False
        order = self._order
        if len(order) == order.maxlen:
            self._members.discard(order[0])
        order.append(key)
        self._members.add(key)
        return True

    def clear(self) -> None:
        self._order.clear()
        self._members.clear()


def _put(table: dict[K, V], key: K, value: V) -> None:
    """``table[key] = value``, forgetting the oldest entry once ``TRACKED_MAX`` are held."""
    table[key] = value
    if len(table) > TRACKED_MAX:
        del table[next(iter(table))]


class AccountActivity:
    """The stream's view of one account (see module docstring). Times are monotonic seconds."""

    def __init__(self, *, recent_fills: int = 2048, symbol_horizon_s: float = 3600.0) -> None:
        self.newest_trade_id: dict[str, int] = {}
        self.symbol_seen: dict[str, float] = {}
        self.open_orders: dict[tuple[str, int], None] = {}
        self.open_algos: dict[int, str] = {}
        # The latest ACCOUNT_UPDATE position per (symbol, position side), kept as the wire gave
        # it (and its update time): most are never looked at, so they are converted on demand.
        self.positions: dict[tuple[str, str], tuple[AccountPosition, int]] = {}
        self.recent_fills: RecentSet[TradeRef] = RecentSet(recent_fills)
        self.pending_lite: dict[TradeRef, tuple[float, int]] = {}
        self._horizon_s = symbol_horizon_s

    def _trade(self, symbol: str, trade_id: int, now: float) -> None:
        if trade_id > self.newest_trade_id.get(symbol, -1):
            _put(self.newest_trade_id, symbol, trade_id)
        _put(self.symbol_seen, symbol, now)

    def fill(self, ref: TradeRef, now: float) -> bool:
        """Record an ORDER_TRADE_UPDATE fill; False if this fill was already seen."""
        if not self.recent_fills.add(ref):
            return False
        self.pending_lite.pop(ref, None)
        self._trade(ref[0], ref[1], now)
        return True

    def trade_lite(self, ref: TradeRef, trade_time_ms: int, now: float) -> bool:
        """Record a TRADE_LITE early signal; False if its ORDER_TRADE_UPDATE came first (or it
        is a repeat). Otherwise the trade waits in ``pending_lite`` for its full event."""
        if ref in self.recent_fills or ref in self.pending_lite:
            return False
        _put(self.pending_lite, ref, (now, trade_time_ms))
        self._trade(ref[0], ref[1], now)
        return True

    def unmatched_lite(self, now: float, grace_s: float) -> list[tuple[TradeRef, int]]:
        """Remove and return TRADE_LITE trades whose ORDER_TRADE_UPDATE did not follow in time
        (``(ref, trade time ms)``): the stream missed their fill event."""
        expired = [
            (ref, trade_ms)
            for ref, (seen, trade_ms) in self.pending_lite.items()
            if now - seen > grace_s
        ]
        for ref, _ in expired:
            del self.pending_lite[ref]
        return expired

    def order(self, update: OrderUpdate, now: float) -> None:
        key = (update.symbol, update.order_id)
        if update.status in TERMINAL_ORDER_STATUSES:
            self.open_orders.pop(key, None)
        else:
            _put(self.open_orders, key, None)
        _put(self.symbol_seen, update.symbol, now)

    def algo(self, link: AlgoLink, now: float) -> None:
        if link.status in TERMINAL_ALGO_STATUSES:
            self.open_algos.pop(link.algo_id, None)
        else:
            _put(self.open_algos, link.algo_id, link.symbol)
        _put(self.symbol_seen, link.symbol, now)

    def account_update(self, event: AccountUpdate, now: float) -> None:
        updated = event.T or event.E
        for p in event.a.P:
            _put(self.positions, (p.s, p.ps), (p, updated))
            _put(self.symbol_seen, p.s, now)

    def exposed_symbols(self) -> set[str]:
        """Symbols with open orders, working algo orders or a non-zero position."""
        symbols = {symbol for symbol, _ in self.open_orders}
        symbols.update(self.open_algos.values())
        symbols.update(s for (s, _), (p, _) in self.positions.items() if dec(p.pa) != 0)
        return symbols

    def active_symbols(self, now: float) -> frozenset[str]:
        """Exposed symbols plus symbols seen within the horizon (forgetting older ones)."""
        horizon = now - self._horizon_s
        for symbol in [s for s, seen in self.symbol_seen.items() if seen < horizon]:
            del self.symbol_seen[symbol]
        return frozenset(self.exposed_symbols() | self.symbol_seen.keys())
