"""Spot wire events and REST rows → ledger types: the one parse module both paths use.

A spot fill arrives as an ``executionReport`` on the WS-API subscription and as a
``GET /api/v3/myTrades`` row over REST; both hand their fields to :func:`spot_fill`, so one trade
is the same :class:`~fillstream.ledger.types.Fill` whichever path saw it (the cross-path test
holds them to it). Names and amounts go through the same checked converters as USDⓈ-M's
(:mod:`fillstream.binance.usdm.parse`, :mod:`fillstream.ledger.amounts`); anything outside them
raises :class:`~fillstream.ledger.errors.MalformedInput` (a ``ValueError``), which the caller
counts as a malformed frame or row and keeps going.

Contracts (binance-wave2.md §A.4, §A.6):
- an executionReport is a fill iff ``x`` is TRADE and ``t`` is not -1; the fill key is
  (symbol, ``t``, order id ``i``), ``t`` being the same id as ``myTrades[].id``;
- every executionReport is an order transition (status ``X``, execution type ``x``, expiry
  reason ``eR``); on a cancel ``c`` is the cancel request's client id and ``C`` the order's, so
  the order's client id is ``C`` when set;
- spot has no positions and no realized PnL: position side BOTH, ``realized_pnl`` 0;
- a zero commission has no asset on either path (the stream's ``N`` is null then, while a
  ``myTrades`` row names an asset even for a zero fee): commission 0 in asset ``""``; a fee
  without an asset is malformed;
- ``quote_qty`` is the venue's own quote quantity (``Y``, ``quoteQty``), not recomputed;
- the balance events are exchange facts (:class:`~fillstream.ledger.types.BalanceChange`), one
  per asset; ``GET /api/v3/account`` gives the same facts as the reconcile path sees them.
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.binance.spot.events import (
    BalanceUpdate,
    ExecutionReport,
    ExternalLockUpdate,
    OutboundAccountPosition,
)
from fillstream.binance.spot.rows import AccountInfo, MyTrade, SpotOrder
from fillstream.binance.usdm.parse import OrderInfo, side
from fillstream.ledger import (
    BalanceChange,
    BalanceKind,
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    PositionSide,
)
from fillstream.ledger.amounts import (
    ZERO,
    amount,
    identifier,
    optional_amount,
    positive_amount,
    product,
    time_ms,
)
from fillstream.ledger.errors import MalformedInput
from fillstream.ledger.units import average_price

__all__ = [
    "OrderInfo",
    "account_balances",
    "balance_changes",
    "is_fill",
    "order_info",
    "order_update",
    "order_update_from_order",
    "spot_fill",
    "stream_fill",
    "trade_fill",
]

NO_TRADE = -1  # executionReport ``t`` when the report is not a trade


def spot_fill(
    *,
    account: str,
    symbol: str,
    trade_id: int,
    order_id: int,
    side_text: str,
    price_text: str | None,
    qty_text: str | None,
    quote_qty_text: str | None,
    commission_text: str | None,
    commission_asset: str | None,
    maker: bool,
    trade_time_ms: int,
    source: FillSource,
    client_order_id: str | None = None,
    order_type: str | None = None,
    event_time_ms: int | None = None,
    received_at_ns: int | None = None,
) -> Fill:
    """One spot fill from the venue's fields (amounts still the venue's strings).

    Price and quantity must be > 0, the quote quantity and commission ≥ 0 (a missing quote
    quantity is ``price * qty``). Raises ``MalformedInput``.
    """
    if not symbol:
        raise MalformedInput("symbol: empty")
    price = positive_amount(price_text, "price")
    qty = positive_amount(qty_text, "qty")
    quote_qty = (
        product(price, qty, "quote qty")
        if quote_qty_text is None
        else _non_negative(quote_qty_text, "quote qty")
    )
    commission = _non_negative(commission_text or "0", "commission")
    if commission and not commission_asset:
        raise MalformedInput(f"commission {commission_text!r:.30} in no asset")
    return Fill(
        account=account,
        market=Market.SPOT,
        symbol=symbol,
        trade_id=identifier(trade_id, "trade id"),
        order_id=identifier(order_id, "order id"),
        side=side(side_text),
        position_side=PositionSide.BOTH,
        price=price,
        qty=qty,
        quote_qty=quote_qty,
        commission=commission,
        commission_asset=(commission_asset or "") if commission else "",
        realized_pnl=ZERO,
        maker=maker,
        trade_time_ms=time_ms(trade_time_ms, "trade time"),
        source=source,
        client_order_id=client_order_id,
        order_type=order_type,
        orig_type=order_type,
        reduce_only=None,
        event_time_ms=None if event_time_ms is None else time_ms(event_time_ms, "event time"),
        received_at_ns=received_at_ns,
    )


def _non_negative(value: str, field: str) -> Decimal:
    result = amount(value, field)
    if result < 0:
        raise MalformedInput(f"{field}: negative: {value!r:.40}")
    return result


# -- stream: executionReport and the balance events ----------------------------------------------


def is_fill(event: ExecutionReport) -> bool:
    """Whether this executionReport reports a trade (``x`` TRADE, ``t`` not -1)."""
    return event.x == "TRADE" and event.t != NO_TRADE


def client_order_id(event: ExecutionReport) -> str:
    """The order's own client id: ``C`` on a cancel (``c`` is the cancel request's), else ``c``."""
    return event.C or event.c


def stream_fill(
    event: ExecutionReport,
    account: str,
    *,
    received_at_ns: int | None = None,
    source: FillSource = FillSource.STREAM,
) -> Fill | None:
    """The fill reported by ``event``, or None when it is not one (see :func:`is_fill`).
    Raises ``MalformedInput``."""
    if not is_fill(event):
        return None
    return spot_fill(
        account=account,
        symbol=event.s,
        trade_id=event.t,
        order_id=event.i,
        side_text=event.S,
        price_text=event.L,
        qty_text=event.l,
        quote_qty_text=event.Y,
        commission_text=event.n,
        commission_asset=event.N,
        maker=event.m,
        trade_time_ms=event.T,
        source=source,
        client_order_id=client_order_id(event),
        order_type=event.o,
        event_time_ms=event.E,
        received_at_ns=received_at_ns,
    )


def order_update(
    event: ExecutionReport, account: str, *, received_at_ns: int | None = None
) -> OrderUpdate:
    """The order transition reported by ``event`` (every executionReport is one). The average
    price is ``Z / z`` (0 before the first fill). Raises ``MalformedInput``."""
    filled = optional_amount(event.z, "z")
    return _order_update(
        account=account,
        symbol=event.s,
        order_id=event.i,
        client_order_id=client_order_id(event),
        side_text=event.S,
        order_type=event.o,
        status=event.X,
        price=optional_amount(event.p, "p"),
        avg_price=_average(filled, event.Z, "Z"),
        orig_qty=optional_amount(event.q, "q"),
        filled_qty=filled,
        stop_price=optional_amount(event.P, "P"),
        update_time_ms=event.T or event.E,
        source=FillSource.STREAM,
        execution_type=event.x,
        expiry_reason=event.eR,
        received_at_ns=received_at_ns,
    )


def balance_changes(
    event: OutboundAccountPosition | BalanceUpdate | ExternalLockUpdate,
    account: str,
    *,
    received_at_ns: int | None = None,
) -> tuple[BalanceChange, ...]:
    """The balance facts of a balance event: one per asset of an outboundAccountPosition (its
    free and locked amounts, at ``u``), one delta for a balanceUpdate or externalLockUpdate (at
    ``T``). Raises ``MalformedInput``."""
    if isinstance(event, OutboundAccountPosition):
        return tuple(
            _position(
                account,
                b.a,
                b.f,
                b.l,
                at_ms=event.u,
                event_time_ms=event.E,
                source=FillSource.STREAM,
                received_at_ns=received_at_ns,
            )
            for b in event.B
        )
    kind = BalanceKind.DELTA if isinstance(event, BalanceUpdate) else BalanceKind.EXTERNAL_LOCK
    return (
        BalanceChange(
            account=account,
            market=Market.SPOT,
            asset=_asset(event.a),
            kind=kind,
            time_ms=time_ms(event.T, "T"),
            event_time_ms=time_ms(event.E, "E"),
            source=FillSource.STREAM,
            delta=amount(event.d, "d"),
            received_at_ns=received_at_ns,
        ),
    )


def _position(
    account: str,
    asset: str,
    free: str,
    locked: str,
    *,
    at_ms: int,
    event_time_ms: int,
    source: FillSource,
    received_at_ns: int | None,
) -> BalanceChange:
    return BalanceChange(
        account=account,
        market=Market.SPOT,
        asset=_asset(asset),
        kind=BalanceKind.POSITION,
        time_ms=time_ms(at_ms, "time"),
        event_time_ms=time_ms(event_time_ms, "event time"),
        source=source,
        free=_non_negative(free, "free"),
        locked=_non_negative(locked, "locked"),
        received_at_ns=received_at_ns,
    )


def _asset(value: str) -> str:
    if not value:
        raise MalformedInput("asset: empty")
    return value


# -- REST: myTrades, order/allOrders, account -----------------------------------------------------


def order_info(order: SpotOrder) -> OrderInfo:
    """What a ``myTrades`` fill takes from its order: the client id and the type, as the stream
    fill has them (spot has no reduce-only flag: None on both paths)."""
    return OrderInfo(
        client_order_id=order.clientOrderId,
        order_type=order.type or None,
        orig_type=order.type or None,
        reduce_only=None,
    )


def trade_fill(
    row: MyTrade,
    *,
    account: str,
    info: OrderInfo | None,
    received_at_ns: int | None = None,
) -> Fill:
    """A ``myTrades`` row (plus its order's details when known) as a reconcile-sourced fill:
    the side from ``isBuyer``, maker from ``isMaker``. Raises ``MalformedInput``."""
    if row.isBuyer is None or row.isMaker is None:
        raise MalformedInput("myTrades row without isBuyer/isMaker")
    return spot_fill(
        account=account,
        symbol=row.symbol,
        trade_id=row.id,
        order_id=row.orderId,
        side_text="BUY" if row.isBuyer else "SELL",
        price_text=row.price,
        qty_text=row.qty,
        quote_qty_text=row.quoteQty,
        commission_text=row.commission,
        commission_asset=row.commissionAsset,
        maker=row.isMaker,
        trade_time_ms=row.time,
        source=FillSource.RECONCILE,
        client_order_id=info.client_order_id if info else None,
        order_type=info.order_type if info else None,
        received_at_ns=received_at_ns,
    )


def order_update_from_order(
    order: SpotOrder,
    *,
    account: str,
    received_at_ns: int | None = None,
    status: str | None = None,
    update_time_ms: int | None = None,
) -> OrderUpdate:
    """An ``order``/``allOrders`` row as an order state (``status``/time may be overridden). The
    average price is ``cummulativeQuoteQty / executedQty``; 0 when either is not positive (some
    historical orders report a negative cumulative quote). Raises ``MalformedInput``."""
    filled = optional_amount(order.executedQty, "executedQty")
    return _order_update(
        account=account,
        symbol=order.symbol,
        order_id=order.orderId,
        client_order_id=order.clientOrderId,
        side_text=order.side,
        order_type=order.type,
        status=status or order.status,
        price=optional_amount(order.price, "price"),
        avg_price=_average(filled, order.cummulativeQuoteQty, "cummulativeQuoteQty"),
        orig_qty=optional_amount(order.origQty, "origQty"),
        filled_qty=filled,
        stop_price=optional_amount(order.stopPrice, "stopPrice"),
        update_time_ms=update_time_ms or order.updateTime or order.time,
        source=FillSource.RECONCILE,
        execution_type=None,
        expiry_reason=order.expiryReason,
        received_at_ns=received_at_ns,
    )


def account_balances(
    info: AccountInfo, *, account: str, received_at_ns: int | None = None
) -> tuple[BalanceChange, ...]:
    """The balances of a ``GET /api/v3/account`` answer as reconcile-sourced facts (free and
    locked per asset, at ``updateTime``). Raises ``MalformedInput``."""
    return tuple(
        _position(
            account,
            b.asset,
            b.free,
            b.locked,
            at_ms=info.updateTime,
            event_time_ms=info.updateTime,
            source=FillSource.RECONCILE,
            received_at_ns=received_at_ns,
        )
        for b in info.balances
    )


# -- shared --------------------------------------------------------------------------------------


def _average(filled: Decimal, cumulative_quote: str | None, field: str) -> Decimal:
    quote = optional_amount(cumulative_quote, field)
    if filled <= 0 or quote <= 0:
        return ZERO
    return average_price(Market.SPOT, filled, quote)


def _order_update(
    *,
    account: str,
    symbol: str,
    order_id: int,
    client_order_id: str,
    side_text: str,
    order_type: str,
    status: str,
    price: Decimal,
    avg_price: Decimal,
    orig_qty: Decimal,
    filled_qty: Decimal,
    stop_price: Decimal,
    update_time_ms: int,
    source: FillSource,
    execution_type: str | None,
    expiry_reason: str | None,
    received_at_ns: int | None,
) -> OrderUpdate:
    if not symbol:
        raise MalformedInput("symbol: empty")
    return OrderUpdate(
        account=account,
        market=Market.SPOT,
        symbol=symbol,
        order_id=identifier(order_id, "order id"),
        client_order_id=client_order_id,
        side=side(side_text),
        position_side=PositionSide.BOTH,
        order_type=order_type,
        orig_type=order_type,
        status=status,
        price=price,
        avg_price=avg_price,
        orig_qty=orig_qty,
        filled_qty=filled_qty,
        stop_price=stop_price,
        reduce_only=False,
        close_position=False,
        update_time_ms=time_ms(update_time_ms, "update time"),
        source=source,
        execution_type=execution_type,
        expiry_reason=expiry_reason,
        received_at_ns=received_at_ns,
    )
