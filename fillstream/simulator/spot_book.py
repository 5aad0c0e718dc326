"""What the venue remembers of one spot account beyond :class:`.state.AccountState`: balances
(free and locked per asset), orders and order lists.

Trades live in the account's ``trades`` logs (the ``myTrades`` rows, per symbol) and its ground
truth ``fills``, as for futures accounts; REST visibility (``rest_lag``) works the same way.
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.simulator.numbers import ZERO
from fillstream.simulator.spot_orders import SpotOrder, SpotOrderList
from fillstream.simulator.state import AccountState

START_BALANCES = {"USDT": "100000", "BTC": "1", "ETH": "10", "BNB": "50", "FDUSD": "10000"}


class Asset:
    """Free and locked amounts of one asset."""

    __slots__ = ("free", "locked")

    def __init__(self, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        self.free = free
        self.locked = locked


class SpotBook:
    """Balances, orders and order lists of one spot account."""

    def __init__(self, acct: AccountState, *, bnb_fees: bool) -> None:
        self.acct = acct
        self.name = acct.name
        self.bnb_fees = bnb_fees  # "use BNB to pay for fees": commissions in BNB while it lasts
        self.assets: dict[str, Asset] = {a: Asset(Decimal(v)) for a, v in START_BALANCES.items()}
        self.orders: dict[tuple[str, int], SpotOrder] = {}
        self.by_client: dict[tuple[str, str], SpotOrder] = {}
        self.orders_by_symbol: dict[str, list[SpotOrder]] = {}
        self.open_orders: dict[tuple[str, int], SpotOrder] = {}
        self.lists: dict[int, SpotOrderList] = {}
        self.update_time = 0  # outboundAccountPosition ``u``: the last balance change
        self.balance_events: list[dict[str, object]] = []  # ground truth: deposits, locks

    def asset(self, name: str) -> Asset:
        got = self.assets.get(name)
        if got is None:
            got = self.assets[name] = Asset()
        return got

    def free(self, name: str) -> Decimal:
        got = self.assets.get(name)
        return got.free if got is not None else ZERO

    def add_order(self, order: SpotOrder) -> None:
        key = (order.symbol, order.order_id)
        self.orders[key] = order
        self.by_client[(order.symbol, order.client_order_id)] = order
        self.orders_by_symbol.setdefault(order.symbol, []).append(order)
        if order.is_open:
            self.open_orders[key] = order

    def order_changed(self, order: SpotOrder, mono: float) -> None:
        if not order.is_open:
            self.open_orders.pop((order.symbol, order.order_id), None)
        self.acct.snapshot(order, mono, order.rest_row)

    def set_rest_lag(self, seconds: float) -> None:
        """The spot half of ``rest_lag``: remember every order's state as REST's baseline."""
        if seconds > 0 and self.acct.rest_lag_s <= 0:
            for order in self.orders.values():
                order.views = [(0.0, order.rest_row())]
        self.acct.set_rest_lag(seconds)
