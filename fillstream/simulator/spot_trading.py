"""Spot order entry: ``POST /api/v3/order`` and ``DELETE /api/v3/order`` (MARKET and LIMIT), and
the same for tests (``Simulator.spot_trade``).

A MARKET order fills at once at the current price (``parts`` executions); a LIMIT order that
crosses the price fills at once as taker, otherwise it rests until the walk reaches its price
(then it fills whole, as maker). ``newOrderRespType`` ACK, RESULT or FULL (with ``fills``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fillstream.simulator.apierror import ApiError, bad_param, invalid_symbol
from fillstream.simulator.params import Params
from fillstream.simulator.spot_engine import InsufficientBalance, SpotEngine
from fillstream.simulator.spot_orders import SpotOrder
from fillstream.simulator.state import AccountState, Row


class SpotTrading:
    """Places and cancels spot orders for REST and for tests."""

    def __init__(self, engine: SpotEngine) -> None:
        self.engine = engine

    def submit(
        self,
        account: str,
        symbol: str,
        side: str,
        qty: Decimal,
        *,
        order_type: str = "MARKET",
        price: Decimal | None = None,
        tif: str = "GTC",
        client_order_id: str | None = None,
        parts: int = 1,
    ) -> tuple[SpotOrder, list[int]]:
        """Place an order now; returns it and the trade ids it made."""
        engine = self.engine
        book = engine.book(account)
        sym = engine.symbol(symbol)
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        if order_type not in ("MARKET", "LIMIT"):
            raise ValueError(f"order type must be MARKET or LIMIT, not {order_type!r}")
        if order_type == "LIMIT" and price is None:
            raise ValueError("a LIMIT order needs a price")
        order = engine.new_order(
            book, symbol, side, order_type, qty, price=price, tif=tif,
            client_order_id=client_order_id,
        )  # fmt: skip
        trades: list[int] = []
        mark = sym.mark
        crosses = order_type == "MARKET" or (
            order.price >= mark if side == "BUY" else order.price <= mark
        )
        if crosses:
            parts = max(parts, 1)
            for i in range(parts):
                left = order.remaining if i == parts - 1 else sym.spec.qty(order.orig_qty / parts)
                if left > 0 and order.is_open:
                    trades.append(engine.execute(book, order, left, mark, maker=False))
        elif tif in ("IOC", "FOK"):
            reason = (
                "UNFILLED_IOC_QUANTITY_EXPIRED" if tif == "IOC" else "UNFILLED_FOK_ORDER_EXPIRED"
            )
            engine.end_order(book, order, "EXPIRED", expiry_reason=reason)
        return order, trades

    def place_order(self, acct: AccountState, params: Params, _: object) -> Row:
        """``POST /api/v3/order``."""
        symbol = params.required("symbol")
        if symbol not in self.engine.symbols:
            raise invalid_symbol()
        side = params.required("side")
        order_type = params.required("type")
        qty = _decimal(params, "quantity")
        price = _decimal(params, "price") if order_type == "LIMIT" else None
        try:
            order, trades = self.submit(
                acct.name, symbol, side, qty, order_type=order_type, price=price,
                tif=params.get("timeInForce") or "GTC",
                client_order_id=params.get("newClientOrderId"),
            )  # fmt: skip
        except InsufficientBalance as exc:
            raise ApiError(400, -2010, str(exc)) from None
        except ValueError as exc:
            raise ApiError(400, -1100, str(exc)) from None
        return self._ack(acct, order, trades, params.get("newOrderRespType") or "FULL")

    def _ack(self, acct: AccountState, order: SpotOrder, trades: list[int], kind: str) -> Row:
        row: Row = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": order.order_list_id,
            "clientOrderId": order.client_order_id,
            "transactTime": order.update_time,
        }
        if kind == "ACK":
            return row
        full = order.rest_row()
        for name in ("icebergQty", "time", "updateTime", "isWorking", "stopPrice"):
            full.pop(name, None)
        row |= {k: v for k, v in full.items() if k not in row}
        if kind == "FULL":
            log = acct.trades.get(order.symbol)
            wanted = set(trades)
            rows = [r for r in (log.rows if log else []) if r["id"] in wanted]
            row["fills"] = [
                {
                    "price": r["price"],
                    "qty": r["qty"],
                    "commission": r["commission"],
                    "commissionAsset": r["commissionAsset"],
                    "tradeId": r["id"],
                }
                for r in rows
            ]
        return row

    def cancel_order(self, acct: AccountState, params: Params, _: object) -> Row:
        """``DELETE /api/v3/order`` (``orderId`` or ``origClientOrderId``)."""
        symbol = params.required("symbol")
        book = self.engine.book(acct.name)
        order_id = params.integer("orderId")
        client_id = params.get("origClientOrderId")
        order = (
            book.orders.get((symbol, order_id))
            if order_id is not None
            else book.by_client.get((symbol, client_id or ""))
        )
        if order is None or not order.is_open:
            raise ApiError(400, -2011, "Unknown order sent.")
        self.engine.end_order(
            book, order, "CANCELED", cancel_client_id=params.get("newClientOrderId")
        )
        row = order.rest_row()
        return {"origClientOrderId": order.client_order_id, **row}


def _decimal(params: Params, name: str) -> Decimal:
    text = params.required(name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise bad_param(name) from None
    if not value.is_finite() or value <= 0:
        raise bad_param(name)
    return value
