"""Placing and cancelling orders: the REST trade endpoints and the programmatic ``trade()``.

MARKET orders fill at once as taker around the mark. A LIMIT order that crosses the mark fills at
once (taker, at the mark); otherwise it rests and fills as maker, at its price, when the mark walk
reaches it. Conditional types sent to ``/fapi/v1/order`` fail with ``-4120`` (they live in the Algo
Service since 2025-12-09); ``/fapi/v1/algoOrder`` takes STOP_MARKET, TAKE_PROFIT_MARKET and
TRAILING_STOP_MARKET.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation

from fillstream.simulator.algos import ALGO_CAUSES, AlgoService
from fillstream.simulator.apierror import ApiError, mandatory
from fillstream.simulator.engine import Engine
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.orders import Order
from fillstream.simulator.params import Params
from fillstream.simulator.state import AccountState, Row

CONDITIONAL = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
UNKNOWN_ORDER = ApiError(400, -2011, "Unknown order sent.")


class Trading:
    """Order entry for every account, and the book of resting manual LIMIT orders."""

    def __init__(self, engine: Engine, algos: AlgoService) -> None:
        self.engine = engine
        self.algos = algos
        self._resting: dict[tuple[str, str, int], tuple[AccountState, Order]] = {}

    # -- programmatic --------------------------------------------------------------------------

    def submit(
        self,
        acct: AccountState,
        symbol: str,
        side: str,
        qty: Decimal,
        *,
        order_type: str = "MARKET",
        price: Decimal | None = None,
        position_side: str | None = None,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        parts: int = 1,
    ) -> Order:
        """Place a MARKET or LIMIT order. Raises ``ValueError`` on anything Binance would reject."""
        engine = self.engine
        if order_type in CONDITIONAL:
            raise ValueError(f"{order_type} orders go through the Algo Service")
        if qty <= ZERO:
            raise ValueError("quantity must be > 0")
        if order_type == "MARKET":
            return engine.market(
                acct,
                symbol,
                side,
                qty,
                parts=parts,
                position_side=position_side,
                client_order_id=client_order_id,
                reduce_only=reduce_only,
            )
        if order_type != "LIMIT":
            raise ValueError(f"unsupported order type {order_type!r}")
        if price is None or price <= ZERO:
            raise ValueError("LIMIT orders need a price > 0")
        order = engine.new_order(
            acct,
            symbol,
            side,
            qty,
            order_type="LIMIT",
            position_side=position_side,
            price=price,
            client_order_id=client_order_id,
            reduce_only=reduce_only,
        )
        mark = engine.symbol(symbol).mark
        if _reached(order, mark):
            engine.sweep(acct, order, parts=parts)
        else:
            self._resting[(acct.name, symbol, order.order_id)] = (acct, order)
        return order

    def on_mark(self, symbol: str, mark: Decimal) -> None:
        """Fill resting manual LIMIT orders the mark has reached (maker, at their price)."""
        if not self._resting:
            return
        for key, (acct, order) in list(self._resting.items()):
            if key[1] != symbol:
                continue
            if not order.is_open:
                del self._resting[key]
            elif _reached(order, mark):
                del self._resting[key]
                try:
                    self.engine.execute(acct, order, order.remaining, order.price, maker=True)
                except ValueError:
                    self.engine.end_order(acct, order, "EXPIRED", expiry_reason="4")

    async def burst(self, acct: AccountState, symbol: str, count: int, rate: float) -> int:
        """``count`` one-fill MARKET orders alternating open/close, at most ``rate`` per second.

        ``rate`` 0 means as fast as possible (yielding to the loop every 50 fills so sockets
        drain). Returns the number of fills made.
        """
        engine = self.engine
        sym = engine.symbol(symbol)
        qty = sym.spec.qty(Decimal(100) / sym.mark)
        position_side = "LONG" if acct.hedge else "BOTH"
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = 50 if rate <= 0 else max(1, min(200, int(rate / 200)))
        made = 0
        while made < count:
            for _ in range(min(batch, count - made)):
                side = "BUY" if made % 2 == 0 else "SELL"
                engine.market(acct, symbol, side, qty, position_side=position_side)
                made += 1
            if rate > 0:
                await asyncio.sleep(max(made / rate - (loop.time() - started), 0))
            else:
                await asyncio.sleep(0)
        return made

    # -- REST handlers -------------------------------------------------------------------------

    def place_order(self, acct: AccountState, params: Params, engine: Engine) -> Row:
        """``POST /fapi/v1/order`` and ``/dapi/v1/order`` (MARKET and LIMIT; COIN-M quantities
        in contracts)."""
        symbol = _product_symbol(params, engine)
        order_type = params.required("type")
        if order_type in CONDITIONAL:
            raise ApiError(
                400,
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        side = params.required("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if order_type not in ("MARKET", "LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        qty = _decimal(params, "quantity", required=True) or ZERO
        price = _decimal(params, "price", required=order_type == "LIMIT")
        position_side = _position_side(acct, params)
        try:
            order = self.submit(
                acct,
                symbol,
                side,
                qty,
                order_type=order_type,
                price=price,
                position_side=position_side,
                reduce_only=params.flag("reduceOnly"),
                client_order_id=params.get("newClientOrderId"),
            )
        except ValueError as exc:
            raise ApiError(400, -2022, f"ReduceOnly Order is rejected. ({exc})") from exc
        return order.ack_row()

    def cancel_order(self, acct: AccountState, params: Params, engine: Engine) -> Row:
        """``DELETE /fapi/v1/order``; ``-2011`` when it is not open."""
        symbol = _product_symbol(params, engine)
        order_id = params.integer("orderId")
        client_id = params.get("origClientOrderId")
        found: Order | None = None
        if order_id is not None:
            found = acct.orders.get((symbol, order_id))
        elif client_id is not None:
            found = next(
                (
                    o
                    for o in acct.orders_by_symbol.get(symbol, [])
                    if o.client_order_id == client_id
                ),
                None,
            )
        else:
            raise mandatory("orderId")
        if found is None or not found.is_open:
            raise UNKNOWN_ORDER
        engine.end_order(acct, found, "CANCELED")
        return found.ack_row()

    def place_algo(self, acct: AccountState, params: Params, engine: Engine) -> Row:
        """``POST /fapi/v1/algoOrder`` (algoType=CONDITIONAL)."""
        if params.required("algoType") != "CONDITIONAL":
            raise ApiError(400, -1130, "Data sent for parameter 'algoType' is not valid.")
        symbol = _product_symbol(params, engine)
        order_type = params.required("type")
        if order_type not in ALGO_CAUSES:
            raise ApiError(400, -1116, "Invalid orderType.")
        side = params.required("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        close_position = params.flag("closePosition")
        try:
            algo = self.algos.place(
                acct,
                symbol,
                order_type,
                side,
                position_side=_position_side(acct, params),
                trigger_price=_decimal(params, "triggerPrice") or ZERO,
                quantity=_decimal(params, "quantity", required=not close_position) or ZERO,
                close_position=close_position,
                reduce_only=params.flag("reduceOnly"),
                callback_rate=_decimal(params, "callbackRate"),
                activate_price=_decimal(params, "activatePrice"),
                client_algo_id=params.get("clientAlgoId"),
            )
        except ValueError as exc:
            raise ApiError(400, -1102, str(exc)) from exc
        return algo.rest_row()

    def cancel_algo(self, acct: AccountState, params: Params, engine: Engine) -> Row:
        """``DELETE /fapi/v1/algoOrder``; ``-2011`` when it is not open."""
        algo_id = params.integer("algoId")
        client_id = params.get("clientAlgoId")
        if algo_id is None and client_id is None:
            raise mandatory("algoId")
        algo = (
            acct.algos.get(algo_id)
            if algo_id is not None
            else next((a for a in acct.algos.values() if a.client_algo_id == client_id), None)
        )
        if algo is None or not algo.is_open or algo.spec.product != params.product:
            raise UNKNOWN_ORDER
        self.algos.cancel(acct, algo)
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    def position_mode(self, acct: AccountState, params: Params, engine: Engine) -> Row:
        """``GET positionSide/dual`` (fapi and dapi: one setting since the CM-UM integration)."""
        return {"dualSidePosition": acct.hedge}

    def change_position_mode(self, acct: AccountState, params: Params, engine: Engine) -> Row:
        """``POST positionSide/dual``: flips hedge mode for **both** products; refused while
        either has an open order, algo order or position (binance-wave2 §B.2)."""
        wanted = params.flag("dualSidePosition")
        if params.get("dualSidePosition") is None:
            raise mandatory("dualSidePosition")
        if wanted == acct.hedge:
            raise ApiError(400, -4059, "No need to change position side.")
        if acct.open_orders or acct.open_algos:
            raise ApiError(
                400, -4067, "Position side cannot be changed if there exists open orders."
            )
        if any(True for _ in acct.open_positions()):
            raise ApiError(400, -4068, "Position side cannot be changed if there exists position.")
        acct.hedge = wanted
        return {"code": 200, "msg": "success"}


def _product_symbol(params: Params, engine: Engine) -> str:
    """The ``symbol`` parameter; ``-1121`` unless it is one of the path's product."""
    symbol = params.required("symbol")
    state = engine.symbols.get(symbol)
    if state is None or state.spec.product != params.product:
        raise ApiError(400, -1121, "Invalid symbol.")
    return symbol


def _reached(order: Order, mark: Decimal) -> bool:
    return mark <= order.price if order.side == "BUY" else mark >= order.price


def _decimal(params: Params, name: str, *, required: bool = False) -> Decimal | None:
    text = params.required(name) if required else params.get(name)
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite() or value <= 0:
        raise ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")
    return value


def _position_side(acct: AccountState, params: Params) -> str | None:
    ps = params.get("positionSide")
    if ps is None:
        return None if acct.hedge else "BOTH"
    if ps not in ("BOTH", "LONG", "SHORT") or (ps == "BOTH") == acct.hedge:
        raise ApiError(400, -4061, "Order's position side does not match user's setting.")
    return ps
