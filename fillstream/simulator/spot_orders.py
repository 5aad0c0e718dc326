"""Spot orders and order lists (OCO, OTO) with their REST shapes (``/api/v3/order``, ``allOrders``).

``SpotOrder.rest_row`` is Binance's spot order row field for field; ``expiryReason`` is present
only on expired orders (allOrders shows it since 2026-05-08). An OTO's pending order is
``PENDING_NEW`` until its working order has filled completely.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fillstream.simulator.numbers import ZERO
from fillstream.simulator.spot_market import f8

SPOT_OPEN = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})

Row = dict[str, object]


@dataclass(slots=True)
class SpotOrder:
    """One spot order of one account."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    order_type: str  # LIMIT, MARKET, LIMIT_MAKER, STOP_LOSS_LIMIT, ...
    time_in_force: str  # GTC, IOC, FOK
    orig_qty: Decimal
    price: Decimal
    time: int
    created_mono: float
    stop_price: Decimal = ZERO
    order_list_id: int = -1
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_time: int = 0
    working_time: int = -1
    locked: Decimal = ZERO  # the balance this order still holds (quote for a buy, base for a sell)
    expiry_reason: str | None = None
    ended_sim: float | None = None  # sim time it was cancelled or expired (archiving)
    views: list[tuple[float, dict[str, object]]] | None = None  # rest_lag snapshots
    generated: bool = False  # the generator's own order (it works them)

    @property
    def is_open(self) -> bool:
        return self.status in SPOT_OPEN

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def on_book(self) -> bool:
        """``w``: the order rests on the book (a working limit order)."""
        return self.order_type != "MARKET" and self.status in ("NEW", "PARTIALLY_FILLED")

    def rest_row(self) -> Row:
        row: Row = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": f8(self.price),
            "origQty": f8(self.orig_qty),
            "executedQty": f8(self.executed_qty),
            "cummulativeQuoteQty": f8(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.order_type,
            "side": self.side,
            "stopPrice": f8(self.stop_price),
            "icebergQty": f8(ZERO),
            "time": self.time,
            "updateTime": self.update_time or self.time,
            "isWorking": self.status != "PENDING_NEW",
            "workingTime": self.working_time,
            "origQuoteOrderQty": f8(ZERO),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if self.expiry_reason is not None:
            row["expiryReason"] = self.expiry_reason
        return row


@dataclass(slots=True)
class SpotOrderList:
    """An OCO or OTO list: its legs and its ``listStatus`` state."""

    list_id: int
    contingency: str  # OCO, OTO
    client_list_id: str
    symbol: str
    orders: list[SpotOrder]
    status_type: str = "EXEC_STARTED"  # l: RESPONSE, EXEC_STARTED, ALL_DONE
    order_status: str = "EXECUTING"  # L: EXECUTING, ALL_DONE, REJECT
