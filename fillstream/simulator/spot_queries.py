"""The spot read endpoints (``/api/v3``) of one account, honouring the ``rest_lag`` fault.

Rules (binance-wave2 §A.6, binance-facts §5.4):

* ``myTrades``: ``symbol`` mandatory; the only parameter combinations are symbol alone, +orderId,
  +startTime, +endTime, +fromId, +startTime+endTime, +orderId+fromId (others ``-1128``);
  ``fromId`` gives ids ≥ it; a time range is at most 24 h (``-1127``); no range and no ``fromId``
  gives the most recent trades; ``limit`` 500 by default, at most 1000.
* ``allOrders``: ``symbol`` mandatory; ``orderId`` gives ids ≥ it; ≤ 24 h windows; the most
  recent orders otherwise; ``expiryReason`` on expired orders.
* ``order``: ``orderId`` or ``origClientOrderId``; ``-2013`` unknown, ``-2026`` archived (an
  order cancelled or expired without fills ``archive_after_s`` sim seconds ago, 90 days by
  default; archived orders leave ``allOrders`` too).
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.simulator.apierror import ApiError, combination, invalid_symbol
from fillstream.simulator.clock import SimClock
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.params import DAY_MS, Params
from fillstream.simulator.spot_book import SpotBook
from fillstream.simulator.spot_engine import SpotEngine
from fillstream.simulator.spot_market import SPOT_RATE, f8
from fillstream.simulator.spot_orders import SpotOrder
from fillstream.simulator.state import AccountState, Row

ARCHIVE_AFTER_S = 90 * 24 * 3600.0
_TRADE_COMBOS = frozenset(
    {
        frozenset(),
        frozenset({"orderId"}),
        frozenset({"startTime"}),
        frozenset({"endTime"}),
        frozenset({"fromId"}),
        frozenset({"startTime", "endTime"}),
        frozenset({"orderId", "fromId"}),
    }
)
ARCHIVED = ApiError(
    400,
    -2026,
    "Order was canceled or expired with no executed qty over 90 days ago and has been archived.",
)


class SpotQueries:
    """Handlers of the spot read endpoints: ``(account, params, _) -> body``."""

    def __init__(self, engine: SpotEngine, *, archive_after_s: float = ARCHIVE_AFTER_S) -> None:
        self.engine = engine
        self.clock: SimClock = engine.clock
        self.archive_after_s = archive_after_s

    def _book(self, acct: AccountState) -> SpotBook:
        return self.engine.book(acct.name)

    def _symbol(self, params: Params) -> str:
        symbol = params.required("symbol")
        if symbol not in self.engine.symbols:
            raise invalid_symbol()
        return symbol

    def _window(self, params: Params) -> tuple[int, int] | None:
        start, end = params.integer("startTime"), params.integer("endTime")
        if start is None and end is None:
            return None
        if start is None:
            assert end is not None
            start = end - DAY_MS
        elif end is None:
            end = start + DAY_MS
        if start > end:
            raise combination()
        if end - start > DAY_MS:
            raise ApiError(400, -1127, "More than 24 hours between startTime and endTime.")
        return start, end

    # -- trades --------------------------------------------------------------------------------

    def my_trades(self, acct: AccountState, params: Params, _: object) -> list[Row]:
        symbol = self._symbol(params)
        given = frozenset(
            n for n in ("orderId", "startTime", "endTime", "fromId") if params.get(n) is not None
        )
        if given not in _TRADE_COMBOS:
            raise combination()
        limit = params.limit(500, 1000)
        log = acct.trades.get(symbol)
        if log is None:
            return []
        cutoff = acct.cutoff(self.clock.mono())
        from_id, order_id = params.integer("fromId"), params.integer("orderId")
        if order_id is not None:
            rows = [r for r in log.rows[: log.visible_end(cutoff)] if r["orderId"] == order_id]
            if from_id is not None:
                rows = [r for r in rows if _int(r["id"]) >= from_id]
            return rows[:limit]
        if from_id is not None:
            return log.from_id(from_id, limit, cutoff)
        window = self._window(params)
        if window is None:
            return log.rows[: log.visible_end(cutoff)][-limit:]
        rows = log.window(window[0], window[1], 1 << 62, cutoff)
        return rows[-limit:] if params.get("startTime") is None else rows[:limit]

    # -- orders --------------------------------------------------------------------------------

    def _archived(self, order: SpotOrder) -> bool:
        return (
            order.ended_sim is not None
            and order.executed_qty == ZERO
            and order.status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH")
            and self.clock.sim_s() - order.ended_sim > self.archive_after_s
        )

    def _visible(self, acct: AccountState, orders: list[SpotOrder]) -> list[Row]:
        cutoff = acct.cutoff(self.clock.mono())
        rows = []
        for order in orders:
            if self._archived(order):
                continue
            row = acct.view(order, order.created_mono, cutoff, order.rest_row)
            if row is not None:
                rows.append(row)
        return rows

    def all_orders(self, acct: AccountState, params: Params, _: object) -> list[Row]:
        symbol = self._symbol(params)
        limit = params.limit(500, 1000)
        orders = self._book(acct).orders_by_symbol.get(symbol, [])
        order_id = params.integer("orderId")
        window = self._window(params)
        if order_id is not None:
            orders = [o for o in orders if o.order_id >= order_id]
        if window is not None:
            orders = [o for o in orders if window[0] <= o.time <= window[1]]
        rows = self._visible(acct, orders)
        if order_id is None and (window is None or params.get("startTime") is None):
            return rows[-limit:]
        return rows[:limit]

    def order(self, acct: AccountState, params: Params, _: object) -> Row:
        symbol = self._symbol(params)
        book = self._book(acct)
        order_id = params.integer("orderId")
        client_id = params.get("origClientOrderId")
        found: SpotOrder | None = None
        if order_id is not None:
            found = book.orders.get((symbol, order_id))
        elif client_id is not None:
            found = book.by_client.get((symbol, client_id))
        else:
            raise ApiError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if found is not None and self._archived(found):
            raise ARCHIVED
        rows = self._visible(acct, [found]) if found is not None else []
        if not rows:
            raise ApiError(400, -2013, "Order does not exist.")
        return rows[0]

    def open_orders(self, acct: AccountState, params: Params, _: object) -> list[Row]:
        symbol = params.get("symbol")
        if symbol is not None and symbol not in self.engine.symbols:
            raise invalid_symbol()
        book = self._book(acct)
        orders = [o for o in book.orders.values() if symbol is None or o.symbol == symbol]
        rows = self._visible(acct, orders)
        return [r for r in rows if r["status"] in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")]

    # -- account -------------------------------------------------------------------------------

    def account(self, acct: AccountState, params: Params, _: object) -> Row:
        book = self._book(acct)
        omit = params.flag("omitZeroBalances")
        balances = [
            {"asset": name, "free": f8(a.free), "locked": f8(a.locked)}
            for name, a in book.assets.items()
            if not omit or a.free or a.locked
        ]
        bps = int(SPOT_RATE * 10000)
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": f8(SPOT_RATE),
                "taker": f8(SPOT_RATE),
                "buyer": f8(ZERO),
                "seller": f8(ZERO),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": book.update_time,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 350_000_000 + sum(acct.name.encode()),
        }

    def commission(self, acct: AccountState, params: Params, _: object) -> Row:
        symbol = self._symbol(params)
        rate = f8(SPOT_RATE)
        zero = f8(ZERO)
        return {
            "symbol": symbol,
            "standardCommission": {"maker": rate, "taker": rate, "buyer": zero, "seller": zero},
            "specialCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
            "taxCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
            "discount": {
                "enabledForAccount": self._book(acct).bnb_fees,
                "enabledForSymbol": True,
                "discountAsset": "BNB",
                "discount": f8(Decimal("0.25")),
            },
        }


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value
