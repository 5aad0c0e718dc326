"""Orders (matching engine) and conditional orders (Algo Service), with their REST shapes.

``Order.rest_row`` is the ``GET /fapi/v1/order`` / ``allOrders`` / ``openOrders`` row and
``Algo.rest_row`` the ``algoOrder`` / ``openAlgoOrders`` / ``allAlgoOrders`` row, field for field as
Binance returns them. The WebSocket shapes live in :mod:`fillstream.simulator.events`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from fillstream.simulator.market import SymbolSpec
from fillstream.simulator.numbers import ZERO, fmt_fixed

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
ALGO_OPEN_STATUSES = frozenset({"NEW", "TRIGGERING"})


@dataclass(slots=True)
class Order:
    """A matching-engine order of one account."""

    spec: SymbolSpec
    order_id: int
    client_order_id: str
    side: str
    position_side: str
    order_type: str  # o: LIMIT, MARKET, LIQUIDATION
    orig_type: str  # ot: the conditional type for algo children, else the same as order_type
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    time: int
    created_mono: float
    stop_price: Decimal = ZERO
    reduce_only: bool = False
    close_position: bool = False
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO  # USDⓈ-M: quote (USDT); COIN-M: USD value (contracts * size)
    cum_base: Decimal = ZERO  # COIN-M: the base coin traded
    update_time: int = 0
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    activate_price: Decimal | None = None
    price_rate: Decimal | None = None
    expiry_reason: str = "0"
    algo_id: int | None = None
    cause: str = "manual"  # the true close reason if this order closes a position
    alias: str = ""  # COIN-M events: the account alias (top-level ``i``)
    views: list[tuple[float, dict[str, object]]] | None = None  # rest_lag snapshots
    q_text: str = field(init=False)  # orig_qty and price never change: format them once
    p_text: str = field(init=False)
    _avg_for: Decimal = field(init=False, default=Decimal(-1))
    _avg_text: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.q_text = self.spec.fmt_qty(self.orig_qty)
        self.p_text = self.spec.fmt_price(self.price) if self.price else "0"

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def avg_price(self) -> Decimal:
        if not self.executed_qty:
            return ZERO
        if self.spec.inverse:  # contracts are USD: the average is harmonic
            return self.executed_qty * self.spec.contract_size / self.cum_base
        return self.cum_quote / self.executed_qty

    def fmt_avg(self) -> str:
        # Formatted once per change of the executed quantity (several events show it).
        if self._avg_for != self.executed_qty:
            self._avg_for = self.executed_qty
            self._avg_text = fmt_fixed(self.avg_price(), self.spec.price_precision + 3)
        return self._avg_text

    def rest_row(self) -> dict[str, object]:
        spec = self.spec
        row: dict[str, object] = {
            "avgPrice": self.fmt_avg(),
            "clientOrderId": self.client_order_id,
            "cumQuote": fmt_fixed(self.cum_quote, 5),
            "executedQty": spec.fmt_qty(self.executed_qty),
            "orderId": self.order_id,
            "origQty": self.q_text,
            "origType": self.orig_type,
            "price": self.p_text,
            "reduceOnly": self.reduce_only,
            "side": self.side,
            "positionSide": self.position_side,
            "status": self.status,
            "stopPrice": spec.fmt_price(self.stop_price) if self.stop_price else "0",
            "closePosition": self.close_position,
            "symbol": spec.symbol,
            "time": self.time,
            "timeInForce": self.time_in_force,
            "type": self.order_type,
            "updateTime": self.update_time or self.time,
            "workingType": self.working_type,
            "priceProtect": self.price_protect,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
        }
        if self.activate_price is not None:
            row["activatePrice"] = spec.fmt_price(self.activate_price)
        if self.price_rate is not None:
            row["priceRate"] = format(self.price_rate, "f")
        if spec.inverse:  # COIN-M: cumBase (coin), the pair; no selfTradePreventionMode
            row["cumBase"] = fmt_fixed(self.cum_base, 8)
            row["pair"] = spec.pair
            del row["selfTradePreventionMode"]
        return row

    def ack_row(self) -> dict[str, object]:
        """The answer to ``POST``/``DELETE`` ``order``: the order row with ``cumQty``, without
        ``avgPrice``/``cumQuote``/``cumBase`` (gone from acks since 2026-07-15, wave2 §E.3: take
        fills from the stream or ``userTrades``)."""
        row = self.rest_row()
        executed = row["executedQty"]
        for name in ACK_DROPPED:
            row.pop(name, None)
        return {"clientOrderId": row.pop("clientOrderId"), "cumQty": executed, **row}


ACK_DROPPED = ("avgPrice", "cumQuote", "cumBase")


@dataclass(slots=True)
class Algo:
    """A conditional order in the Algo Service (TP/SL/trailing), in a separate id space."""

    spec: SymbolSpec
    algo_id: int
    client_algo_id: str
    order_type: str  # STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP_MARKET
    side: str
    position_side: str
    quantity: Decimal
    trigger_price: Decimal
    create_time: int
    created_mono: float
    close_position: bool = False
    reduce_only: bool = False
    working_type: str = "MARK_PRICE"
    price_protect: bool = False
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    activated: bool = True
    extreme: Decimal = ZERO  # trailing stops: best mark since activation
    reject_reason: str = ""
    child: Order | None = None
    views: list[tuple[float, dict[str, object]]] | None = None  # rest_lag snapshots

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def is_open(self) -> bool:
        return self.status in ALGO_OPEN_STATUSES

    def rest_row(self) -> dict[str, object]:
        spec = self.spec
        child = self.child
        executed = child.executed_qty if child else ZERO
        row: dict[str, object] = {
            "algoId": self.algo_id,
            "clientAlgoId": self.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": self.order_type,
            "symbol": spec.symbol,
            "side": self.side,
            "positionSide": self.position_side,
            "timeInForce": "GTC",
            "quantity": spec.fmt_qty(self.quantity) if self.quantity else "0",
            "algoStatus": self.status,
            "actualOrderId": str(child.order_id) if child else "",
            "actualType": child.order_type if child else "",
            "actualQty": spec.fmt_qty(child.orig_qty) if child else "0",
            "actualPrice": child.fmt_avg() if child else "0.00000",
            "executedQty": spec.fmt_qty(executed) if child else "0",
            "avgPrice": child.fmt_avg() if child else "0.00000",
            "triggerPrice": spec.fmt_price(self.trigger_price) if self.trigger_price else "0",
            "price": "0",
            "icebergQuantity": None,
            "tpTriggerPrice": "0.000",
            "tpPrice": "0.000",
            "slTriggerPrice": "0.000",
            "slPrice": "0.000",
            "tpOrderType": "",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": self.working_type,
            "priceMatch": "NONE",
            "closePosition": self.close_position,
            "priceProtect": self.price_protect,
            "reduceOnly": self.reduce_only,
            "createTime": self.create_time,
            "updateTime": self.update_time or self.create_time,
            "triggerTime": self.trigger_time,
            "goodTillDate": 0,
        }
        if self.activate_price is not None:
            row["activatePrice"] = spec.fmt_price(self.activate_price)
        if self.callback_rate is not None:
            row["callbackRate"] = format(self.callback_rate, "f")
        return row
