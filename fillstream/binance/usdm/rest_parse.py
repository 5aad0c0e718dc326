"""REST rows → ledger types. The only place the reconcile path turns amount strings into Decimal.

Rows arrive as decoded JSON; :func:`decode_rows` checks their shape once (msgspec ``convert``)
and sets aside what does not fit, so one malformed row never hides the others. Amounts, ids and
enums go through the converters the stream path uses too (:mod:`fillstream.ledger.amounts`,
:mod:`.fields`): a trade becomes the same fill on both paths, and a value they
reject raises ``MalformedInput`` (a ``ValueError``), which the callers count as a bad row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from fillstream.binance.usdm.fields import position_side, side, venue_fill
from fillstream.binance.usdm.rows import AlgoOrder, Order, PositionRisk, UserTrade
from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    PositionCorrection,
    PositionSide,
)
from fillstream.ledger.amounts import amount, identifier, optional_amount

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


def dec(value: str | None, field: str = "amount") -> Decimal:
    """A venue amount string as Decimal; ``MalformedInput`` (a ``ValueError``) unless it is a
    finite amount in range (see :mod:`fillstream.ledger.amounts`)."""
    return amount(value, field)


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
    """A ``userTrades`` row (plus its order's details when known) as a reconcile-sourced Fill.

    ``quote_qty`` is ``price * qty`` as on the stream (the row's ``quoteQty`` is not read).
    """
    side_text = trade.side or ("BUY" if trade.isBuyer or trade.buyer else "SELL")
    return venue_fill(
        account=account,
        market=market,
        symbol=trade.symbol,
        trade_id=trade.id,
        order_id=trade.orderId,
        side_text=side_text,
        position_side_text=trade.positionSide or "BOTH",
        price_text=trade.price,
        qty_text=trade.qty,
        commission_text=trade.commission,
        commission_asset=trade.commissionAsset,
        realized_pnl_text=trade.realizedPnl,
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
        order_id=identifier(order.orderId, "orderId"),
        client_order_id=order.clientOrderId,
        side=side(order.side),
        position_side=position_side(order.positionSide or "BOTH"),
        order_type=order.type,
        orig_type=order.origType or order.type,
        status=status or order.status,
        price=optional_amount(order.price, "price"),
        avg_price=optional_amount(order.avgPrice, "avgPrice"),
        orig_qty=optional_amount(order.origQty, "origQty"),
        filled_qty=optional_amount(order.executedQty, "executedQty"),
        stop_price=optional_amount(order.stopPrice, "stopPrice"),
        reduce_only=order.reduceOnly,
        close_position=bool(order.closePosition),
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
        return identifier(int(value), "actualOrderId")
    except ValueError:
        return None


def algo_link_from_algo_order(algo: AlgoOrder, *, account: str, market: Market) -> AlgoLink:
    return AlgoLink(
        account=account,
        market=market,
        symbol=algo.symbol,
        algo_id=algo.algoId,
        client_algo_id=algo.clientAlgoId or "",
        algo_type=algo.orderType,
        status=algo.algoStatus,
        order_id=actual_order_id(algo),
        update_time_ms=algo.updateTime or algo.triggerTime or algo.createTime,
    )


def position_key(row: PositionRisk) -> tuple[str, PositionSide]:
    return row.symbol, position_side(row.positionSide or "BOTH")


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
    entry = optional_amount(row.entryPrice, "entryPrice") if row is not None and qty else Decimal(0)
    return PositionCorrection(
        account=account,
        market=market,
        symbol=symbol,
        position_side=position_side,
        qty=qty,
        entry_price=entry,
        time_ms=time_ms,
    )
