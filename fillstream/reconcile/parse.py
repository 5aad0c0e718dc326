"""REST rows → ledger types. The only place the reconcile path turns amount strings into Decimal.

Rows arrive as decoded JSON; :func:`decode_rows` checks their shape once (msgspec ``convert``)
and sets aside what does not fit, so one malformed row never hides the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec

from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    PositionCorrection,
    PositionSide,
    Side,
)
from fillstream.reconcile.wire import AlgoOrder, Order, PositionRisk, UserTrade

log = logging.getLogger(__name__)

T = TypeVar("T")


def decode_rows(raw: Sequence[Any], row_type: type[T]) -> tuple[list[T], list[Any]]:
    """(rows that fit ``row_type``, rows that did not). Order is kept."""
    try:
        return msgspec.convert(raw, list[row_type]), []  # type: ignore[valid-type]  # runtime type
    except msgspec.ValidationError:
        pass
    good: list[T] = []
    bad: list[Any] = []
    for item in raw:
        try:
            good.append(msgspec.convert(item, row_type))
        except msgspec.ValidationError:
            bad.append(item)
    return good, bad


def decode_row(raw: Any, row_type: type[T]) -> T:
    """One row; raises ``ValueError`` (msgspec's ValidationError) when it does not fit."""
    return msgspec.convert(raw, row_type)


def dec(value: str | int | float, field: str = "amount") -> Decimal:
    """A venue amount string as Decimal; ``ValueError`` when it is not a finite number."""
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{field}: not a decimal: {str(value)[:40]!r}") from None
    if not result.is_finite():
        raise ValueError(f"{field}: not finite: {value!r}")
    return result


class OrderInfo(msgspec.Struct, frozen=True):
    """What a fill needs from its order (userTrades rows lack it): the classification inputs."""

    client_order_id: str | None
    order_type: str | None
    orig_type: str | None
    reduce_only: bool | None


def order_info(order: Order) -> OrderInfo:
    return OrderInfo(
        client_order_id=order.clientOrderId,
        order_type=order.type or None,
        orig_type=order.origType or order.type or None,
        reduce_only=order.reduceOnly,
    )


def fill_from_user_trade(
    trade: UserTrade,
    *,
    account: str,
    market: Market,
    info: OrderInfo | None,
    received_at_ns: int | None = None,
) -> Fill:
    """A ``userTrades`` row (plus its order's details when known) as a reconcile-sourced Fill."""
    if trade.side:
        side = Side(trade.side)
    else:
        side = Side.BUY if (trade.isBuyer or trade.buyer) else Side.SELL
    return Fill(
        account=account,
        market=market,
        symbol=trade.symbol,
        trade_id=trade.id,
        order_id=trade.orderId,
        side=side,
        position_side=PositionSide(trade.positionSide or "BOTH"),
        price=dec(trade.price, "price"),
        qty=dec(trade.qty, "qty"),
        quote_qty=dec(trade.quoteQty, "quoteQty"),
        commission=dec(trade.commission, "commission"),
        commission_asset=trade.commissionAsset,
        realized_pnl=dec(trade.realizedPnl, "realizedPnl"),
        maker=bool(trade.maker or trade.isMaker),
        trade_time_ms=trade.time,
        source=FillSource.RECONCILE,
        client_order_id=info.client_order_id if info else None,
        order_type=info.order_type if info else None,
        orig_type=info.orig_type if info else None,
        reduce_only=info.reduce_only if info else None,
        received_at_ns=received_at_ns,
    )


def order_update_from_order(
    order: Order,
    *,
    account: str,
    market: Market,
    received_at_ns: int | None = None,
    status: str | None = None,
    update_time_ms: int | None = None,
) -> OrderUpdate:
    """An ``order``/``allOrders`` row as an order state (``status``/time may be overridden)."""
    return OrderUpdate(
        account=account,
        market=market,
        symbol=order.symbol,
        order_id=order.orderId,
        client_order_id=order.clientOrderId,
        side=Side(order.side),
        position_side=PositionSide(order.positionSide or "BOTH"),
        order_type=order.type,
        orig_type=order.origType or order.type,
        status=status or order.status,
        price=dec(order.price, "price"),
        avg_price=dec(order.avgPrice, "avgPrice"),
        orig_qty=dec(order.origQty, "origQty"),
        filled_qty=dec(order.executedQty, "executedQty"),
        stop_price=dec(order.stopPrice, "stopPrice"),
        reduce_only=order.reduceOnly,
        close_position=order.closePosition,
        update_time_ms=update_time_ms or order.updateTime or order.time,
        source=FillSource.RECONCILE,
        received_at_ns=received_at_ns,
    )


def actual_order_id(algo: AlgoOrder) -> int | None:
    """The triggered child's order id (``actualOrderId`` is a string, ``""`` until triggered)."""
    value = algo.actualOrderId
    if value is None or value in ("", 0, "0"):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def algo_link_from_algo_order(algo: AlgoOrder, *, account: str, market: Market) -> AlgoLink:
    return AlgoLink(
        account=account,
        market=market,
        symbol=algo.symbol,
        algo_id=algo.algoId,
        client_algo_id=algo.clientAlgoId,
        algo_type=algo.orderType,
        status=algo.algoStatus,
        order_id=actual_order_id(algo),
        update_time_ms=algo.updateTime or algo.triggerTime or algo.createTime,
    )


def position_key(row: PositionRisk) -> tuple[str, PositionSide]:
    return row.symbol, PositionSide(row.positionSide or "BOTH")


def position_qty(row: PositionRisk) -> Decimal:
    return dec(row.positionAmt, "positionAmt")


def correction_from_risk(
    row: PositionRisk | None,
    *,
    account: str,
    market: Market,
    symbol: str,
    position_side: PositionSide,
    time_ms: int,
) -> PositionCorrection:
    """The exchange's view of one position (``row`` None: the position is gone)."""
    qty = position_qty(row) if row is not None else Decimal(0)
    entry = dec(row.entryPrice, "entryPrice") if row is not None and qty else Decimal(0)
    return PositionCorrection(
        account=account,
        market=market,
        symbol=symbol,
        position_side=position_side,
        qty=qty,
        entry_price=entry,
        time_ms=time_ms,
    )
