"""USDⓈ-M wire events and REST rows → ledger types: the one parse module both paths use.

The only place either path turns Binance's amount strings into Decimal and Binance's names into
ours. A fill arrives as an ORDER_TRADE_UPDATE on the stream and as a ``userTrades`` row over REST;
both pick their fields and hand them to :func:`venue_fill`, so a trade becomes the same
:class:`~fillstream.ledger.types.Fill` whichever path saw it (the cross-path test holds them to
it). Venue enums map to ours through explicit tables; anything outside them, and any amount, id or
time outside its documented range (:mod:`fillstream.ledger.amounts`), raises
:class:`~fillstream.ledger.errors.MalformedInput` (a ``ValueError``): the caller counts the frame
or row as malformed and keeps going (the poll recovers a fill the stream could not read).

Stream contracts (binance-facts.md §2 and §3):
- an ORDER_TRADE_UPDATE is a fill when ``x`` is TRADE or CALCULATED, ``t`` ≠ 0 and ``l`` > 0;
- every ORDER_TRADE_UPDATE is an order transition;
- an ALGO_UPDATE is an algo link; ``ai`` (a string, ``""`` until triggered) is the child order id;
- ACCOUNT_UPDATE positions are the exchange's view, kept for cross-checks.
A missing commission is zero in an empty asset; a fill without ``rp`` is malformed (a silent zero
would be wrong PnL).

REST rows arrive decoded once, typed, from the venue (:data:`~fillstream.binance.venue.Rows`; a
row that did not fit is a ``BadRow`` in its place, so one malformed row never hides the others);
:func:`decode_rows` and :func:`decode_row` split and hand them on, or check plain JSON the same
way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec
from msgspec import UNSET

from fillstream.binance.usdm.events import (
    AccountPosition,
    AccountUpdate,
    AlgoUpdate,
    OrderTradeUpdate,
)
from fillstream.binance.usdm.rows import AlgoOrder, Order, PositionRisk, UserTrade
from fillstream.binance.venue import BadRow
from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    Position,
    PositionCorrection,
    PositionSide,
    Side,
)
from fillstream.ledger.amounts import (
    amount,
    identifier,
    optional_amount,
    positive_amount,
    product,
    time_ms,
)
from fillstream.ledger.errors import MalformedInput

log = logging.getLogger(__name__)

# -- Binance's names → ours (both paths) ---------------------------------------------------------

SIDES: Final = {"BUY": Side.BUY, "SELL": Side.SELL}
POSITION_SIDES: Final = {
    "BOTH": PositionSide.BOTH,
    "LONG": PositionSide.LONG,
    "SHORT": PositionSide.SHORT,
}


def side(value: str) -> Side:
    try:
        return SIDES[value]
    except (KeyError, TypeError):
        raise MalformedInput(f"unknown side {value!r:.40}") from None


def position_side(value: str) -> PositionSide:
    try:
        return POSITION_SIDES[value]
    except (KeyError, TypeError):
        raise MalformedInput(f"unknown position side {value!r:.40}") from None


def venue_fill(
    *,
    account: str,
    market: Market,
    symbol: str,
    trade_id: int,
    order_id: int,
    side_text: str,
    position_side_text: str,
    price_text: str | None,
    qty_text: str | None,
    commission_text: str | None,
    commission_asset: str | None,
    realized_pnl_text: str | None,
    maker: bool,
    trade_time_ms: int,
    source: FillSource,
    client_order_id: str | None = None,
    order_type: str | None = None,
    orig_type: str | None = None,
    reduce_only: bool | None = None,
    event_time_ms: int | None = None,
    received_at_ns: int | None = None,
) -> Fill:
    """One fill from the venue's fields (amounts still the venue's strings).

    Price and quantity must be > 0; ``quote_qty`` is ``price * qty`` (exact) on both paths.
    A missing commission (``None``: the stream omits ``n``/``N`` when there is none) is zero in
    an empty asset, but only when both are missing (a fee needs its asset and the other way
    round); a missing realized PnL is malformed (it would be a silent zero in a close's PnL).
    Raises ``MalformedInput``.
    """
    if not symbol:
        raise MalformedInput("symbol: empty")
    if trade_id == 0:
        raise MalformedInput("trade id: 0 (no trade)")
    price = positive_amount(price_text, "price")
    qty = positive_amount(qty_text, "qty")
    commission = optional_amount(commission_text, "commission")
    if (commission_text is None and commission_asset) or (commission and not commission_asset):
        # One of the pair without the other: an asset with no fee, or a fee in no asset.
        raise MalformedInput(
            f"commission {commission_text!r:.30} in asset {commission_asset!r:.20}"
        )
    return Fill(
        account=account,
        market=market,
        symbol=symbol,
        trade_id=identifier(trade_id, "trade id"),
        order_id=identifier(order_id, "order id"),
        side=side(side_text),
        position_side=position_side(position_side_text),
        price=price,
        qty=qty,
        quote_qty=product(price, qty, "quote qty"),
        commission=commission,
        commission_asset=commission_asset or "",
        realized_pnl=amount(realized_pnl_text, "realized pnl"),
        maker=maker,
        trade_time_ms=time_ms(trade_time_ms, "trade time"),
        source=source,
        client_order_id=client_order_id,
        order_type=order_type,
        orig_type=orig_type,
        reduce_only=reduce_only,
        event_time_ms=None if event_time_ms is None else time_ms(event_time_ms, "event time"),
        received_at_ns=received_at_ns,
    )


OrderAmounts = tuple[str | None, str | None, str | None, str | None, str | None]
"""An order's amount strings: (price, average price, original qty, filled qty, stop price)."""


def venue_order_update(
    *,
    account: str,
    market: Market,
    symbol: str,
    order_id: int,
    client_order_id: str,
    side_text: str,
    position_side_text: str,
    order_type: str,
    orig_type: str | None,
    status: str,
    amounts: OrderAmounts,
    reduce_only: bool,
    close_position: bool,
    update_time_ms: int,
    source: FillSource,
    execution_type: str | None = None,
    expiry_reason: str | None = None,
    received_at_ns: int | None = None,
) -> OrderUpdate:
    """One order state from the venue's fields (amounts still the venue's strings; ``None``:
    absent, zero). ``orig_type`` falls back to ``order_type``. Raises ``MalformedInput``."""
    price, avg_price, orig_qty, filled_qty, stop_price = amounts
    return OrderUpdate(
        account=account,
        market=market,
        symbol=symbol,
        order_id=identifier(order_id, "order id"),
        client_order_id=client_order_id,
        side=side(side_text),
        position_side=position_side(position_side_text),
        order_type=order_type,
        orig_type=orig_type or order_type,
        status=status,
        price=optional_amount(price, "price"),
        avg_price=optional_amount(avg_price, "avg price"),
        orig_qty=optional_amount(orig_qty, "orig qty"),
        filled_qty=optional_amount(filled_qty, "filled qty"),
        stop_price=optional_amount(stop_price, "stop price"),
        reduce_only=reduce_only,
        close_position=close_position,
        update_time_ms=update_time_ms,
        source=source,
        execution_type=execution_type,
        expiry_reason=expiry_reason,
        received_at_ns=received_at_ns,
    )


# -- stream: wire events → ledger types ---------------------------------------------------------

FILL_EXECUTION_TYPES = frozenset({"TRADE", "CALCULATED"})


def dec(value: str | None, field: str = "amount") -> Decimal:
    """A venue amount string as Decimal (``None``: absent, 0); raises ``MalformedInput``
    (a ``ValueError``) unless it is a finite amount in range (:mod:`fillstream.ledger.amounts`)."""
    return optional_amount(value, field)


def is_fill(event: OrderTradeUpdate) -> bool:
    """Whether this order event reports an execution (a fill) rather than a state change.

    Raises ``MalformedInput`` when an execution lacks ``t`` or ``l``, or ``l`` is not an amount
    (``"NaN"`` is not "no fill": a fill must never vanish silently).
    """
    o = event.o
    if o.x not in FILL_EXECUTION_TYPES:
        return False
    if o.t is None:
        raise MalformedInput(f"{o.x} without a trade id t")
    if o.t == 0:
        return False
    qty = amount(o.l, "l")
    if qty < 0:
        raise MalformedInput(f"l: negative: {o.l!r:.40}")
    return qty > 0


def fill_from_order_update(
    event: OrderTradeUpdate,
    account: str,
    market: Market,
    *,
    received_at_ns: int | None = None,
    source: FillSource = FillSource.STREAM,
) -> Fill | None:
    """The fill reported by ``event``, or None when it is not a fill (see :func:`is_fill`)."""
    if not is_fill(event):
        return None
    o = event.o
    return venue_fill(
        account=account,
        market=market,
        symbol=o.s,
        trade_id=o.t or 0,
        order_id=o.i,
        side_text=o.S,
        position_side_text=o.ps,
        price_text=o.L,
        qty_text=o.l,
        commission_text=None if o.n is UNSET else o.n,
        commission_asset=None if o.N is UNSET else o.N,
        realized_pnl_text=o.rp,
        maker=o.m,
        trade_time_ms=o.T,
        source=source,
        client_order_id=o.c,
        order_type=o.o,
        orig_type=o.ot or o.o,
        reduce_only=o.R,
        event_time_ms=event.E,
        received_at_ns=received_at_ns,
    )


def order_update_from(
    event: OrderTradeUpdate,
    account: str,
    market: Market,
    *,
    received_at_ns: int | None = None,
    source: FillSource = FillSource.STREAM,
) -> OrderUpdate:
    """The order transition reported by ``event`` (every ORDER_TRADE_UPDATE is one)."""
    o = event.o
    return venue_order_update(
        account=account,
        market=market,
        symbol=o.s,
        order_id=o.i,
        client_order_id=o.c,
        side_text=o.S,
        position_side_text=o.ps,
        order_type=o.o,
        orig_type=o.ot,
        status=o.X,
        amounts=(o.p, o.ap, o.q, o.z, o.sp),
        reduce_only=o.R,
        close_position=bool(o.cp),
        update_time_ms=o.T or event.T or event.E,
        source=source,
        execution_type=o.x,
        expiry_reason="0" if o.er is None else str(o.er),
        received_at_ns=received_at_ns,
    )


def algo_link_from(event: AlgoUpdate, account: str, market: Market) -> AlgoLink:
    """The algo order of ``event`` and, once triggered, its matching-engine child order id.

    ``ai`` is a string: ``""`` (or ``"0"``) until triggered, then the child's ``orderId`` (a
    number is taken as the id itself).
    """
    o = event.o
    return AlgoLink(
        account=account,
        market=market,
        symbol=o.s,
        algo_id=o.aid,
        client_algo_id=o.caid or "",
        algo_type=o.o,
        status=o.X,
        order_id=child_order_id(o.ai, "ALGO_UPDATE ai"),
        update_time_ms=event.T or event.E,
    )


def child_order_id(value: str | int | None, field: str) -> int | None:
    """A triggered algo order's child order id (ALGO_UPDATE ``ai``, REST ``actualOrderId``): a
    string, ``""`` (or ``"0"``) until triggered; a number is the id itself. Raises
    ``MalformedInput`` when it is not an order id."""
    if value is None or value in ("", "0", 0):
        return None
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise MalformedInput(f"{field} is not an order id: {value!r:.40}")
        value = int(value)
    return identifier(value, field)


def position_from(
    p: AccountPosition, account: str, market: Market, *, updated_at_ms: int
) -> Position:
    """One position an ACCOUNT_UPDATE reports, for cross-checks only.

    ``realized_pnl`` carries Binance's ``cr`` (accumulated pre-fee realized of the position), not
    the book's per-lifecycle sum; ``opened_at_ms`` is unknown (None).
    """
    return Position(
        account=account,
        market=market,
        symbol=p.s,
        position_side=position_side(p.ps),
        qty=amount(p.pa, "pa"),
        entry_price=dec(p.ep, "ep"),
        realized_pnl=dec(p.cr, "cr"),
        opened_at_ms=None,
        updated_at_ms=updated_at_ms,
    )


def positions_from_account_update(
    event: AccountUpdate, account: str, market: Market
) -> list[Position]:
    """The positions an ACCOUNT_UPDATE reports (only changed ones are in ``P``)."""
    updated = event.T or event.E
    return [position_from(p, account, market, updated_at_ms=updated) for p in event.a.P]


def validate_account_update(event: AccountUpdate) -> None:
    """Check what the stream keeps of an ACCOUNT_UPDATE (its positions, converted on demand)
    now, so a bad value is a malformed frame here rather than an error later. Raises
    ``MalformedInput``."""
    for p in event.a.P:
        position_side(p.ps)
        amount(p.pa, "pa")
        dec(p.ep, "ep")
        dec(p.cr, "cr")


# -- REST: rows → ledger types --------------------------------------------------------------------

T = TypeVar("T")


def decode_rows(raw: Sequence[Any], row_type: type[T]) -> tuple[list[T], list[Any]]:
    """(rows that fit ``row_type``, rows that did not, as JSON). Order is kept.

    The venue's rows (:data:`~fillstream.binance.venue.Rows`) are decoded already: they pass
    through (a product's subclass of ``row_type`` too: COIN-M's rows extend USDⓈ-M's), and each
    :class:`~fillstream.binance.venue.BadRow` is a row that did not fit. Plain JSON is checked
    here the same way.
    """
    try:
        return msgspec.convert(raw, list[row_type]), []  # type: ignore[valid-type]  # runtime type
    except msgspec.ValidationError:
        pass
    good: list[T] = []
    bad: list[Any] = []
    for item in raw:
        if isinstance(item, BadRow):
            bad.append(item.raw)
            continue
        if isinstance(item, row_type):  # a product's row extending this one (coinm/rows.py)
            good.append(item)
            continue
        try:
            good.append(msgspec.convert(item, row_type))
        except msgspec.ValidationError:
            bad.append(item)
    return good, bad


def decode_row(raw: Any, row_type: type[T]) -> T:
    """One row; raises ``ValueError`` (msgspec's ValidationError, or ``MalformedInput`` for a
    venue's :class:`~fillstream.binance.venue.BadRow`) when it does not fit."""
    if isinstance(raw, BadRow):
        raise MalformedInput(f"{row_type.__name__}: {raw.reason:.200}")
    if isinstance(raw, row_type):  # decoded by the venue already (a product's subclass too)
        return raw
    return msgspec.convert(raw, row_type)


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
    return venue_order_update(
        account=account,
        market=market,
        symbol=order.symbol,
        order_id=order.orderId,
        client_order_id=order.clientOrderId,
        side_text=order.side,
        position_side_text=order.positionSide or "BOTH",
        order_type=order.type,
        orig_type=order.origType,
        status=status or order.status,
        amounts=(order.price, order.avgPrice, order.origQty, order.executedQty, order.stopPrice),
        reduce_only=order.reduceOnly,
        close_position=bool(order.closePosition),
        update_time_ms=update_time_ms or order.updateTime or order.time,
        source=FillSource.RECONCILE,
        received_at_ns=received_at_ns,
    )


def actual_order_id(algo: AlgoOrder) -> int | None:
    """The triggered child's order id (``actualOrderId`` is a string, ``""`` until triggered)."""
    try:
        return child_order_id(algo.actualOrderId, "actualOrderId")
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
    return amount(row.positionAmt, "positionAmt")


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
