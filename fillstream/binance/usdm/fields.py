"""Venue fields → domain values, shared by the stream and REST parsers.

A fill arrives as an ORDER_TRADE_UPDATE on the stream and as a ``userTrades`` row over REST. The
two parsers pick the same facts out of differently named fields and hand them to
:func:`venue_fill`, so a trade becomes the same :class:`~fillstream.ledger.types.Fill` whichever
path saw it (the cross-path test holds them to it). Venue enums map to ours through explicit
tables; anything outside them raises :class:`~fillstream.ledger.errors.MalformedInput`.
"""

from __future__ import annotations

from typing import Final

from fillstream.ledger.amounts import (
    amount,
    identifier,
    optional_amount,
    positive_amount,
    product,
    time_ms,
)
from fillstream.ledger.errors import MalformedInput
from fillstream.ledger.types import Fill, FillSource, Market, PositionSide, Side

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
