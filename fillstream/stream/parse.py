"""Wire events → ledger types. The one place the stream path turns amount strings into Decimal.

Contracts (binance-facts.md §2 and §3):
- an ORDER_TRADE_UPDATE is a fill when ``x`` is TRADE or CALCULATED, ``t`` ≠ 0 and ``l`` > 0;
- every ORDER_TRADE_UPDATE is an order transition;
- an ALGO_UPDATE is an algo link; ``ai`` (a string, ``""`` until triggered) is the child order id;
- ACCOUNT_UPDATE positions are the exchange's view, kept for cross-checks.
Enum values outside the documented sets raise ``ValueError`` (the caller counts the frame as
malformed); a missing commission is zero in an empty asset.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    Position,
    PositionSide,
    Side,
)
from fillstream.stream.wire import AccountPosition, AccountUpdate, AlgoUpdate, OrderTradeUpdate

FILL_EXECUTION_TYPES = frozenset({"TRADE", "CALCULATED"})
ZERO = Decimal(0)

_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_POSITION_SIDES = {
    "BOTH": PositionSide.BOTH,
    "LONG": PositionSide.LONG,
    "SHORT": PositionSide.SHORT,
}


def dec(value: str | None) -> Decimal:
    """A venue amount string as Decimal (``None``/empty → 0); raises ``ValueError`` if not one."""
    if not value:
        return ZERO
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None


def side(value: str) -> Side:
    try:
        return _SIDES[value]
    except KeyError:
        raise ValueError(f"unknown side {value!r}") from None


def position_side(value: str) -> PositionSide:
    try:
        return _POSITION_SIDES[value]
    except KeyError:
        raise ValueError(f"unknown position side {value!r}") from None


def is_fill(event: OrderTradeUpdate) -> bool:
    """Whether this order event reports an execution (a fill) rather than a state change."""
    o = event.o
    return o.x in FILL_EXECUTION_TYPES and o.t != 0 and o.l not in ("0", "") and dec(o.l) > 0


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
    price = dec(o.L)
    qty = dec(o.l)
    return Fill(
        account=account,
        market=market,
        symbol=o.s,
        trade_id=o.t,
        order_id=o.i,
        side=side(o.S),
        position_side=position_side(o.ps),
        price=price,
        qty=qty,
        quote_qty=price * qty,
        commission=dec(o.n),
        commission_asset=o.N or "",
        realized_pnl=dec(o.rp),
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
    return OrderUpdate(
        account=account,
        market=market,
        symbol=o.s,
        order_id=o.i,
        client_order_id=o.c,
        side=side(o.S),
        position_side=position_side(o.ps),
        order_type=o.o,
        orig_type=o.ot or o.o,
        status=o.X,
        price=dec(o.p),
        avg_price=dec(o.ap),
        orig_qty=dec(o.q),
        filled_qty=dec(o.z),
        stop_price=dec(o.sp),
        reduce_only=o.R,
        close_position=o.cp,
        update_time_ms=o.T or event.T or event.E,
        source=source,
        execution_type=o.x,
        expiry_reason=o.er,
        received_at_ns=received_at_ns,
    )


def algo_link_from(event: AlgoUpdate, account: str, market: Market) -> AlgoLink:
    """The algo order of ``event`` and, once triggered, its matching-engine child order id.

    ``ai`` is a string: ``""`` (or ``"0"``) until triggered, then the child's ``orderId``.
    """
    o = event.o
    child: int | None = None
    if o.ai and o.ai != "0":
        try:
            child = int(o.ai)
        except ValueError:
            raise ValueError(f"ALGO_UPDATE ai is not an order id: {o.ai!r}") from None
    return AlgoLink(
        account=account,
        market=market,
        symbol=o.s,
        algo_id=o.aid,
        client_algo_id=o.caid,
        algo_type=o.o,
        status=o.X,
        order_id=child,
        update_time_ms=event.T or event.E,
    )


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
        qty=dec(p.pa),
        entry_price=dec(p.ep),
        realized_pnl=dec(p.cr),
        opened_at_ms=None,
        updated_at_ms=updated_at_ms,
    )


def positions_from_account_update(
    event: AccountUpdate, account: str, market: Market
) -> list[Position]:
    """The positions an ACCOUNT_UPDATE reports (only changed ones are in ``P``)."""
    updated = event.T or event.E
    return [position_from(p, account, market, updated_at_ms=updated) for p in event.a.P]
