"""Everything the venue remembers about one account: positions, orders, history, listenKey.

REST visibility: every history row and every order/algo/position snapshot carries the monotonic
time it was made. While the ``rest_lag`` fault is active (``rest_lag_s`` > 0), REST shows only
what existed ``rest_lag_s`` seconds ago; the stream is not delayed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Protocol

from fillstream.simulator.accounts import SimAccount
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.orders import Algo, Order
from fillstream.simulator.positions import PositionState

Row = dict[str, object]
START_BALANCE = Decimal(100_000)  # USDⓈ-M wallet, USDT
START_COIN_BALANCE = Decimal(10)  # each COIN-M wallet (BTC, ETH, ...), in its coin


class _Viewed(Protocol):
    views: list[tuple[float, dict[str, object]]] | None


class TradeLog:
    """One symbol's ``userTrades`` rows of one account, in trade-id (and time) order."""

    __slots__ = ("ids", "monos", "rows", "times")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.times: list[int] = []
        self.monos: list[float] = []
        self.rows: list[Row] = []

    def append(self, trade_id: int, time_ms: int, mono: float, row: Row) -> None:
        self.ids.append(trade_id)
        self.times.append(time_ms)
        self.monos.append(mono)
        self.rows.append(row)

    def visible_end(self, cutoff: float | None) -> int:
        """Index past the last row visible at monotonic ``cutoff`` (None: everything)."""
        if cutoff is None:
            return len(self.rows)
        return bisect.bisect_right(self.monos, cutoff)

    def from_id(self, from_id: int, limit: int, cutoff: float | None) -> list[Row]:
        start = bisect.bisect_left(self.ids, from_id)
        end = min(self.visible_end(cutoff), start + limit)
        return self.rows[start:end]

    def window(self, start_ms: int, end_ms: int, limit: int, cutoff: float | None) -> list[Row]:
        start = bisect.bisect_left(self.times, start_ms)
        stop = min(bisect.bisect_right(self.times, end_ms), self.visible_end(cutoff))
        return self.rows[start : min(stop, start + limit)]


class AccountState:
    """Mutable state of one simulated account. Not thread-safe; the event loop serializes it."""

    def __init__(self, account: SimAccount) -> None:
        self.account = account
        self.name = account.name
        self.hedge = account.hedge_mode  # one setting for both products (the 2026 CM-UM rule)
        self.market = account.market
        self.balance = START_BALANCE
        self.coin_balances: dict[str, Decimal] = {}  # COIN-M wallets by margin coin
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.orders: dict[tuple[str, int], Order] = {}
        self.orders_by_symbol: dict[str, list[Order]] = {}
        self.open_orders: dict[tuple[str, int], Order] = {}
        self.algos: dict[int, Algo] = {}
        self.open_algos: dict[int, Algo] = {}
        self.trades: dict[str, TradeLog] = {}
        self.income: list[Row] = []
        self.income_times: list[int] = []
        self.income_monos: list[float] = []
        self.fills: list[Row] = []  # ground truth, in generation order
        self.closes: list[Row] = []
        self.rest_lag_s = 0.0
        self.listen_key: str | None = None
        self.key_expires_sim = 0.0
        self.fills_generated = 0
        self.dropped_fill_events = 0
        self.undelivered_fill_events = 0

    # -- wallets -------------------------------------------------------------------------------

    def wallet(self, asset: str) -> Decimal:
        """The wallet balance of ``asset`` (USDT: the USDⓈ-M wallet; a coin: its COIN-M one)."""
        if asset == "USDT":
            return self.balance
        return self.coin_balances.get(asset, START_COIN_BALANCE)

    def credit(self, asset: str, amount: Decimal) -> Decimal:
        """Add ``amount`` (negative: a debit) to the ``asset`` wallet; returns the new balance."""
        if asset == "USDT":
            self.balance += amount
            return self.balance
        balance = self.coin_balances[asset] = self.wallet(asset) + amount
        return balance

    # -- positions -----------------------------------------------------------------------------

    def position(self, symbol: str, position_side: str) -> PositionState:
        key = (symbol, position_side)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = PositionState(symbol, position_side)
        return pos

    def open_positions(self) -> Iterator[PositionState]:
        return (p for p in self.positions.values() if p.qty != ZERO)

    # -- orders --------------------------------------------------------------------------------

    def add_order(self, order: Order) -> None:
        key = (order.symbol, order.order_id)
        self.orders[key] = order
        self.orders_by_symbol.setdefault(order.symbol, []).append(order)
        if order.is_open:
            self.open_orders[key] = order

    def order_changed(self, order: Order, mono: float) -> None:
        if not order.is_open:
            self.open_orders.pop((order.symbol, order.order_id), None)
        self.snapshot(order, mono, order.rest_row)

    # -- history -------------------------------------------------------------------------------

    def add_trade(self, symbol: str, trade_id: int, time_ms: int, mono: float, row: Row) -> None:
        log = self.trades.get(symbol)
        if log is None:
            log = self.trades[symbol] = TradeLog()
        log.append(trade_id, time_ms, mono, row)
        self.fills.append(row)

    def add_income(self, time_ms: int, mono: float, row: Row) -> None:
        self.income.append(row)
        self.income_times.append(time_ms)
        self.income_monos.append(mono)

    # -- REST visibility (the rest_lag fault) ------------------------------------------------

    def set_rest_lag(self, seconds: float) -> None:
        """Start (or end, with 0) the ``rest_lag`` fault.

        Starting it records every object's current state as the baseline REST falls back to, so
        a change made after this point stays invisible for ``seconds``.
        """
        if seconds > 0 and self.rest_lag_s <= 0:
            for order in self.orders.values():
                order.views = [(0.0, order.rest_row())]
            for algo in self.algos.values():
                algo.views = [(0.0, algo.rest_row())]
            for pos in self.positions.values():
                pos.views = [(0.0, pos.core())]
        self.rest_lag_s = max(seconds, 0.0)

    def cutoff(self, mono: float) -> float | None:
        """Monotonic time REST currently shows, or None when REST is not lagging."""
        return mono - self.rest_lag_s if self.rest_lag_s > 0 else None

    def snapshot(self, obj: _Viewed, mono: float, build: Callable[[], dict[str, object]]) -> None:
        """Remember ``obj``'s state at ``mono`` while REST lags (else forget old snapshots)."""
        if self.rest_lag_s <= 0:
            obj.views = None
            return
        views = obj.views
        if views is None:
            views = obj.views = []
        views.append((mono, build()))
        cutoff = mono - self.rest_lag_s
        # Keep the newest snapshot at or before the cutoff and everything after it.
        keep_from = 0
        for i, (t, _) in enumerate(views):
            if t <= cutoff:
                keep_from = i
            else:
                break
        if keep_from:
            del views[:keep_from]

    @staticmethod
    def view(
        obj: _Viewed, created_mono: float, cutoff: float | None, build: Callable[[], Row]
    ) -> Row | None:
        """``obj`` as REST shows it at ``cutoff``; None if it did not exist yet."""
        if cutoff is None:
            return build()
        if created_mono > cutoff:
            return None
        views = obj.views
        if not views:
            return build()
        chosen = views[0][1]
        for t, row in views:
            if t > cutoff:
                break
            chosen = row
        return chosen
