"""Spot user-data event payloads with Binance's shapes (binance-facts §5.3, binance-wave2 §A.4).

The WS API wraps each one as ``{"subscriptionId": N, "event": {...}}`` (the hub adds the
envelope per subscription); ``serverShutdown`` goes out without ``subscriptionId``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from fillstream.simulator.events import Payload
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.spot_book import Asset
from fillstream.simulator.spot_market import f8
from fillstream.simulator.spot_orders import SpotOrder, SpotOrderList


@dataclass(slots=True, frozen=True)
class Execution:
    """The trade an executionReport ``TRADE`` reports (absent for the other execution types)."""

    trade_id: int
    qty: Decimal
    price: Decimal
    quote: Decimal
    commission: Decimal
    commission_asset: str | None
    maker: bool


def execution_report(
    order: SpotOrder,
    x: str,
    *,
    now: int,
    execution_id: int,
    trade: Execution | None = None,
    client_order_id: str | None = None,
    orig_client_order_id: str = "",
    reject_reason: str = "NONE",
    prevented: Payload | None = None,
) -> Payload:
    """One ``executionReport``; ``client_order_id`` is the cancel request's own id on cancels
    (``C`` then names the order cancelled). ``eR`` is added on expiries; ``prevented`` is the
    self-trade-prevention block of a ``TRADE_PREVENTION`` report (``v``, ``A``, ``B``, ``u``,
    ``U``, ``Cs``, ``pl``, ``pL``, ``pY``)."""
    payload: Payload = {
        "e": "executionReport",
        "E": now,
        "s": order.symbol,
        "c": client_order_id if client_order_id is not None else order.client_order_id,
        "S": order.side,
        "o": order.order_type,
        "f": order.time_in_force,
        "q": f8(order.orig_qty),
        "p": f8(order.price),
        "P": f8(order.stop_price),
        "F": f8(ZERO),
        "g": order.order_list_id,
        "C": orig_client_order_id,
        "x": x,
        "X": order.status,
        "r": reject_reason,
        "i": order.order_id,
        "l": f8(trade.qty if trade else ZERO),
        "z": f8(order.executed_qty),
        "L": f8(trade.price if trade else ZERO),
        "n": f8(trade.commission) if trade and trade.commission_asset else "0",
        "N": trade.commission_asset if trade else None,
        "T": now,
        "t": trade.trade_id if trade else -1,
        "I": execution_id,
        "w": order.on_book,
        "m": trade.maker if trade else False,
        "M": False,
        "O": order.time,
        "Z": f8(order.cum_quote),
        "Y": f8(trade.quote if trade else ZERO),
        "Q": f8(ZERO),
        "W": order.working_time,
        "V": "EXPIRE_MAKER",
    }
    if x == "EXPIRED" and order.expiry_reason is not None:
        payload["eR"] = order.expiry_reason
    if prevented is not None:
        payload |= prevented
    return payload


def account_position(assets: Iterable[tuple[str, Asset]], *, now: int, update: int) -> Payload:
    """``outboundAccountPosition`` with the assets an execution may have changed."""
    return {
        "e": "outboundAccountPosition",
        "E": now,
        "u": update,
        "B": [{"a": name, "f": f8(a.free), "l": f8(a.locked)} for name, a in assets],
    }


def balance_update(asset: str, delta: Decimal, *, now: int) -> Payload:
    """``balanceUpdate``: a deposit, withdrawal or transfer (``d`` signed)."""
    return {"e": "balanceUpdate", "E": now, "a": asset, "d": f8(delta), "T": now}


def external_lock_update(asset: str, delta: Decimal, *, now: int) -> Payload:
    """``externalLockUpdate``: balance locked (positive ``d``) or released by another system."""
    return {"e": "externalLockUpdate", "E": now, "a": asset, "d": f8(delta), "T": now}


def list_status(order_list: SpotOrderList, *, now: int) -> Payload:
    """``listStatus``, sent beside the executionReports of an order list's legs."""
    return {
        "e": "listStatus",
        "E": now,
        "s": order_list.symbol,
        "g": order_list.list_id,
        "c": order_list.contingency,
        "l": order_list.status_type,
        "L": order_list.order_status,
        "r": "NONE",
        "C": order_list.client_list_id,
        "T": now,
        "O": [{"s": o.symbol, "i": o.order_id, "c": o.client_order_id} for o in order_list.orders],
    }


def event_stream_terminated(now: int) -> Payload:
    return {"e": "eventStreamTerminated", "E": now}


def server_shutdown(now: int) -> Payload:
    return {"e": "serverShutdown", "E": now}
