"""Spot user-data events exactly as the WebSocket API delivers them (binance-wave2.md §A.4,
binance-facts.md §5.3).

Spot user data arrives inside a WS-API envelope ``{"subscriptionId": N, "event": {...}}``; the
stream decoder (stream/decode.py) takes the inner object and decodes it with the struct this
module maps its ``e`` to (:data:`SPOT_EVENT_TYPES`). The structs follow USDⓈ-M's conventions
(:mod:`fillstream.binance.usdm.events`): frozen, Binance's one-letter keys with a trailing
comment naming each one, amounts kept as the exchange's strings (they become ``Decimal`` once,
in :mod:`.parse`), ids and times bounded to ``bigint``.

Tolerance is by need: what a fill, an order transition or a balance needs keeps a strict type
and fails loudly; fields fillstream never reads are ``Unused`` (any JSON value); fields the
exchange may omit, or added recently (``eR`` since 2026-03-26), have defaults. Spot differs from
futures where it matters for parsing: ``t`` is ``-1`` (not 0) on a non-trade report, so it is a
plain ``int``; ``N`` is ``null`` when there is no commission; ``C`` carries the original client
order id on a cancel (``c`` is then the cancel request's id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from fillstream.binance.usdm.events import Event
from fillstream.ledger.amounts import Id, TimeMs, Unused

# ---------------------------------------------------------------------------------------------
# executionReport


class ExecutionReport(Event, frozen=True):
    E: TimeMs  # event time
    s: str  # symbol
    c: str  # client order id (on a cancel: the cancel request's id)
    S: str  # side
    o: str  # order type
    x: str  # execution type: NEW, CANCELED, REPLACED, REJECTED, TRADE, EXPIRED, TRADE_PREVENTION
    X: str  # order status
    i: Id  # order id
    T: TimeMs  # transaction time
    t: int = -1  # trade id (-1 when not a trade)
    l: str | None = None  # noqa: E741  last executed quantity (required on a fill)
    L: str | None = None  # last executed price (required on a fill)
    n: str | None = None  # commission ("0" when none)
    N: str | None = None  # commission asset (null when none)
    m: bool = False  # is maker
    Y: str | None = None  # last quote quantity (L * l)
    f: Unused = None  # time in force
    q: str | None = None  # order quantity
    p: str | None = None  # order price
    P: str | None = None  # stop price
    F: Unused = None  # iceberg quantity
    g: int = -1  # order list id (-1: not in a list)
    C: str | None = None  # original client order id (of the order being cancelled)
    r: Unused = None  # reject reason
    z: str | None = None  # cumulative filled quantity
    I: Unused = None  # noqa: E741  execution id
    w: Unused = None  # is the order on the book
    M: Unused = None  # ignore
    O: Unused = None  # noqa: E741  order creation time
    Z: str | None = None  # cumulative quote quantity
    Q: Unused = None  # quote order quantity
    W: Unused = None  # working time
    V: Unused = None  # self-trade prevention mode
    v: Unused = None  # prevented match id
    d: Unused = None  # trailing delta
    D: Unused = None  # trailing time
    j: Unused = None  # strategy id
    J: Unused = None  # strategy type
    A: Unused = None  # prevented quantity
    B: Unused = None  # last prevented quantity
    u: Unused = None  # trade group id
    U: Unused = None  # counter order id
    Cs: Unused = None  # counter symbol
    pl: Unused = None  # prevented execution quantity
    pL: Unused = None  # prevented execution price
    pY: Unused = None  # prevented execution quote quantity
    b: Unused = None  # match type
    a: Unused = None  # allocation id
    k: Unused = None  # working floor
    uS: Unused = None  # used SOR
    gP: Unused = None  # pegged price type
    gOT: Unused = None  # pegged offset type
    gOV: Unused = None  # pegged offset value
    gp: Unused = None  # pegged price
    eR: str | None = None  # expiry reason (REJECTED, EXCHANGE_CANCELED, OCO_TRIGGER, ...)
    e: str = "executionReport"  # event type


# ---------------------------------------------------------------------------------------------
# outboundAccountPosition, balanceUpdate, externalLockUpdate


class AssetBalance(msgspec.Struct, frozen=True):
    a: str  # asset
    f: str  # free
    l: str  # noqa: E741  locked


class OutboundAccountPosition(Event, frozen=True):
    E: TimeMs  # event time
    u: TimeMs  # time of the last account update
    B: tuple[AssetBalance, ...] = ()  # balances of the assets that may have changed
    e: str = "outboundAccountPosition"  # event type


class BalanceUpdate(Event, frozen=True):
    E: TimeMs  # event time
    a: str  # asset
    d: str  # balance delta (deposit, withdrawal, transfer)
    T: TimeMs  # clear time
    e: str = "balanceUpdate"  # event type


class ExternalLockUpdate(Event, frozen=True):
    E: TimeMs  # event time
    a: str  # asset
    d: str  # delta: locked (+) or unlocked (-) by an external system
    T: TimeMs  # transaction time
    e: str = "externalLockUpdate"  # event type


# ---------------------------------------------------------------------------------------------
# listStatus (order lists: OCO, OTO, OTOCO; sent in addition to each order's executionReport)


class ListOrder(msgspec.Struct, frozen=True):
    s: str  # symbol
    i: Id  # order id
    c: str  # client order id


class ListStatus(Event, frozen=True):
    E: TimeMs  # event time
    s: str  # symbol
    g: Id  # order list id
    c: Unused = None  # contingency type (OCO, OTO)
    l: Unused = None  # noqa: E741  list status type (RESPONSE, EXEC_STARTED, ALL_DONE, ...)
    L: Unused = None  # list order status (EXECUTING, ALL_DONE, REJECT)
    r: Unused = None  # list reject reason
    C: Unused = None  # list client order id
    T: TimeMs = 0  # transaction time
    O: tuple[ListOrder, ...] = ()  # noqa: E741  the list's orders
    e: str = "listStatus"  # event type


# ---------------------------------------------------------------------------------------------
# eventStreamTerminated, serverShutdown (subscription and connection lifecycle)


class EventStreamTerminated(Event, frozen=True):
    """The subscription is over (unsubscribe, logout): resubscribe, and reconcile the gap."""

    E: TimeMs  # event time
    e: str = "eventStreamTerminated"  # event type


class ServerShutdown(Event, frozen=True):
    """The server is going away (no ``subscriptionId``): reconnect every subscription now."""

    E: TimeMs  # event time
    e: str = "serverShutdown"  # event type


SPOT_EVENT_TYPES: Final[Mapping[str, type[Event]]] = {
    "executionReport": ExecutionReport,
    "outboundAccountPosition": OutboundAccountPosition,
    "balanceUpdate": BalanceUpdate,
    "externalLockUpdate": ExternalLockUpdate,
    "listStatus": ListStatus,
    "eventStreamTerminated": EventStreamTerminated,
    "serverShutdown": ServerShutdown,
}
"""Every spot user-data event (binance-wave2.md §A.4) and its wire struct; any other ``e`` is
an unknown event, counted and skipped by the decoder."""
