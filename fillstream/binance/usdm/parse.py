"""Wire events → ledger types. The one place the stream path turns amount strings into Decimal.

Contracts (binance-facts.md §2 and §3):
- an ORDER_TRADE_UPDATE is a fill when ``x`` is TRADE or CALCULATED, ``t`` ≠ 0 and ``l`` > 0;
- every ORDER_TRADE_UPDATE is an order transition;
- an ALGO_UPDATE is an algo link; ``ai`` (a string, ``""`` until triggered) is the child order id;
- ACCOUNT_UPDATE positions are the exchange's view, kept for cross-checks.
Amounts, ids, times and enums go through the converters both paths share
(:mod:`fillstream.ledger.amounts`, :mod:`.fields`): a value outside the documented
set or range raises ``MalformedInput`` (a ``ValueError``; the caller counts the frame as malformed
and the poll recovers the fill). A missing commission is zero in an empty asset; a fill without
``rp`` is malformed (a silent zero would be wrong PnL).
"""

from __future__ import annotations

from decimal import Decimal

from msgspec import UNSET

from fillstream.binance.usdm.events import (
    AccountPosition,
    AccountUpdate,
    AlgoUpdate,
    OrderTradeUpdate,
)
from fillstream.binance.usdm.fields import position_side, side, venue_fill
from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    Position,
)
from fillstream.ledger.amounts import amount, identifier, optional_amount
from fillstream.ledger.errors import MalformedInput

__all__ = [
    "FILL_EXECUTION_TYPES",
    "algo_link_from",
    "dec",
    "fill_from_order_update",
    "is_fill",
    "order_update_from",
    "position_from",
    "position_side",
    "positions_from_account_update",
    "side",
    "validate_account_update",
]

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
    return OrderUpdate(
        account=account,
        market=market,
        symbol=o.s,
        order_id=identifier(o.i, "order id"),
        client_order_id=o.c,
        side=side(o.S),
        position_side=position_side(o.ps),
        order_type=o.o,
        orig_type=o.ot or o.o,
        status=o.X,
        price=dec(o.p, "p"),
        avg_price=dec(o.ap, "ap"),
        orig_qty=dec(o.q, "q"),
        filled_qty=dec(o.z, "z"),
        stop_price=dec(o.sp, "sp"),
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
        order_id=_child_order_id(o.ai),
        update_time_ms=event.T or event.E,
    )


def _child_order_id(ai: str | int | None) -> int | None:
    if ai is None or ai in ("", "0", 0):
        return None
    if isinstance(ai, str):
        if not (ai.isascii() and ai.isdigit()):
            raise MalformedInput(f"ALGO_UPDATE ai is not an order id: {ai!r:.40}")
        ai = int(ai)
    return identifier(ai, "ALGO_UPDATE ai")


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
