"""USDⓈ-M user-data events exactly as Binance sends them (binance-facts.md §2).

Frozen msgspec Structs keep Binance's one-letter keys (a trailing comment names each one);
``rename`` is used only where a key is not a Python identifier. Amounts and prices stay the
exchange's strings: they become ``Decimal`` once, in :mod:`.parse`. Ids and times
are ints within ``bigint`` (:data:`~fillstream.ledger.amounts.Id`, ``TimeMs``).

Tolerance is by need (binance-facts.md §2, §3): what a fill or an order transition needs (symbol,
ids, side, types, status, times, ``l``/``L``/``n``/``rp``, position side) keeps a strict type and
fails loudly. Amounts of a transition accept ``null`` (the same as absent: ``None``). Fields
fillstream never reads are :data:`Unused`: any JSON value. Fields the exchange may omit, or that
were added recently, have defaults.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from fillstream.ledger.amounts import Id, TimeMs, Unused


class Event(msgspec.Struct, frozen=True):
    """The base of every user-data event struct, of every product: what a product's event table
    maps ``e`` to, and what the stream decoder returns (handlers dispatch on the exact type)."""

    @property
    def e(self) -> str:
        """The event type: every event struct declares it as a field with its own default."""
        raise NotImplementedError(type(self).__name__)


class Header(msgspec.Struct, frozen=True):
    """Stage one of the decode: the event type, and the envelope of combined/WS-API frames.

    A bare frame carries ``e``; a combined-stream frame is ``{"stream": ..., "data": {...}}``; a
    WS-API user-data frame (spot, later) is ``{"subscriptionId": ..., "event": {...}}``. ``Raw``
    keeps the inner object undecoded (a zero-copy slice) for stage two; an absent one is empty.
    """

    e: str | None = None  # event type
    stream: str | None = None  # combined-stream name
    data: msgspec.Raw = msgspec.Raw()  # combined-stream payload (empty when absent)
    event: msgspec.Raw = msgspec.Raw()  # WS-API payload (empty when absent)


# ---------------------------------------------------------------------------------------------
# ORDER_TRADE_UPDATE (§2.1)


class OrderTradeUpdateOrder(msgspec.Struct, frozen=True):
    s: str  # symbol
    c: str  # client order id
    S: str  # side
    o: str  # order type
    x: str  # execution type
    X: str  # order status
    i: Id  # order id
    T: TimeMs  # order trade time
    f: Unused = None  # time in force
    q: str | None = None  # original quantity
    p: str | None = None  # original price
    ap: str | None = None  # average price
    sp: str | None = None  # stop price
    l: str | None = None  # noqa: E741  last filled quantity (required on a fill)
    z: str | None = None  # cumulative filled quantity
    L: str | None = None  # last filled price (required on a fill)
    N: str | UnsetType = UNSET  # commission asset (absent when no commission; null is malformed)
    n: str | UnsetType = UNSET  # commission of this execution (likewise)
    t: Id | None = None  # trade id (0 on non-trade events; required on a fill)
    b: Unused = None  # bids notional
    a: Unused = None  # ask notional
    m: bool = False  # is maker
    R: bool = False  # is reduce-only
    wt: Unused = None  # stop price working type
    ot: str | None = None  # original order type
    ps: str = "BOTH"  # position side
    cp: bool | None = None  # close-all (closePosition)
    AP: Unused = None  # activation price (trailing stop)
    cr: Unused = None  # callback rate (trailing stop)
    pP: Unused = None  # price protection
    si: Unused = None  # ignore
    ss: Unused = None  # ignore
    rp: str | None = None  # realized profit of this trade (required on a fill)
    V: Unused = None  # self-trade prevention mode
    pm: Unused = None  # price match mode
    gtd: Unused = None  # good-till-date auto-cancel time
    er: str | int | None = None  # expiry reason
    M: Unused = None  # modifyId (AMENDMENT only)


class OrderTradeUpdate(Event, frozen=True):
    E: TimeMs  # event time
    o: OrderTradeUpdateOrder  # order
    T: TimeMs = 0  # transaction time
    e: str = "ORDER_TRADE_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# TRADE_LITE (§2.2)


class TradeLite(Event, frozen=True):
    E: TimeMs  # event time
    s: str  # symbol
    t: Id  # trade id
    i: Id  # order id
    T: TimeMs = 0  # transaction time
    q: Unused = None  # original quantity
    p: Unused = None  # original price
    m: Unused = None  # is maker
    c: Unused = None  # client order id
    S: Unused = None  # side
    L: Unused = None  # last filled price
    l: Unused = None  # noqa: E741  last filled quantity
    e: str = "TRADE_LITE"  # event type


# ---------------------------------------------------------------------------------------------
# ACCOUNT_UPDATE (§2.3)


class Balance(msgspec.Struct, frozen=True):
    a: Unused = None  # asset
    wb: Unused = None  # wallet balance
    cw: Unused = None  # cross wallet balance
    bc: Unused = None  # balance change except PnL and commission


class AccountPosition(msgspec.Struct, frozen=True):
    s: str  # symbol
    pa: str  # position amount (signed)
    ep: str | None = None  # entry price
    bep: Unused = None  # breakeven price (a number in some portfolio-margin frames)
    cr: str | None = None  # (pre-fee) accumulated realized
    up: Unused = None  # unrealized PnL
    mt: Unused = None  # margin type
    iw: Unused = None  # isolated wallet
    ps: str = "BOTH"  # position side


class AccountUpdateData(msgspec.Struct, frozen=True):
    m: Unused = None  # reason type
    B: tuple[Balance, ...] | None = None  # balances (never read)
    P: tuple[AccountPosition, ...] = ()  # positions
    S: Unused = None  # symbol of a FUNDING_FEE event


class AccountUpdate(Event, frozen=True):
    E: TimeMs  # event time
    a: AccountUpdateData  # update data
    T: TimeMs = 0  # transaction time
    e: str = "ACCOUNT_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# ACCOUNT_CONFIG_UPDATE (§2.6)


class AccountConfigUpdate(Event, frozen=True):
    E: TimeMs  # event time
    T: TimeMs = 0  # transaction time
    ac: Unused = None  # leverage change {s: symbol, l: leverage}
    ai: Unused = None  # multi-assets mode change {j: bool}
    e: str = "ACCOUNT_CONFIG_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# MARGIN_CALL (§2.5)


class MarginCall(Event, frozen=True):
    E: TimeMs  # event time
    cw: Unused = None  # cross wallet balance
    p: Unused = ()  # positions [{s, ps, pa, mt, iw, mp, up, mm}] (logged only)
    e: str = "MARGIN_CALL"  # event type


# ---------------------------------------------------------------------------------------------
# listenKeyExpired (§2.4)


class ListenKeyExpired(Event, frozen=True):
    E: int | str  # event time (a string in some doc copies)
    listenKey: str = ""  # the expired key
    e: str = "listenKeyExpired"  # event type


# ---------------------------------------------------------------------------------------------
# ALGO_UPDATE (§2.9)


class AlgoUpdateOrder(msgspec.Struct, frozen=True):
    aid: Id  # algo id
    s: str  # symbol
    X: str  # algo status
    o: str = ""  # order type
    caid: str | None = None  # client algo id
    at: Unused = None  # algo type (CONDITIONAL)
    S: Unused = None  # side
    ps: Unused = None  # position side
    f: Unused = None  # time in force
    q: Unused = None  # quantity
    ai: str | int | None = None  # matching-engine order id once triggered ("" before)
    ap: Unused = None  # average fill price in the matching engine
    aq: Unused = None  # executed quantity in the matching engine
    act: Unused = None  # actual order type in the matching engine
    tp: Unused = None  # trigger price
    p: Unused = None  # order price
    V: Unused = None  # self-trade prevention mode
    wt: Unused = None  # working type
    pm: Unused = None  # price match mode
    cp: Unused = None  # close-all (closePosition)
    pP: Unused = None  # price protection
    R: Unused = None  # reduce only
    tt: Unused = None  # trigger time
    gtd: Unused = None  # good-till-date cancel time
    rm: Unused = None  # failure reason
    ia: Unused = None  # is activated (trailing stops)


class AlgoUpdate(Event, frozen=True):
    E: TimeMs  # event time
    o: AlgoUpdateOrder  # algo order
    T: TimeMs = 0  # transaction time
    e: str = "ALGO_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# STRATEGY_UPDATE / GRID_UPDATE (§2.7), CONDITIONAL_ORDER_TRIGGER_REJECT (§2.8, deprecated)


class StrategyUpdate(Event, frozen=True):
    E: TimeMs  # event time
    T: TimeMs = 0  # transaction time
    su: Unused = None  # strategy update {si, st, ss, s, ut, c}
    e: str = "STRATEGY_UPDATE"  # event type


class GridUpdate(Event, frozen=True):
    E: TimeMs  # event time
    T: TimeMs = 0  # transaction time
    gu: Unused = None  # grid update {si, st, ss, s, r, up, uq, uf, mp, ut}
    e: str = "GRID_UPDATE"  # event type


class ConditionalOrderTriggerReject(Event, frozen=True, rename={"or_": "or"}):
    E: TimeMs  # event time
    T: TimeMs = 0  # transaction time
    or_: Unused = None  # "or": the rejected order {s, i, r}
    e: str = "CONDITIONAL_ORDER_TRIGGER_REJECT"  # event type


USDM_EVENT_TYPES: dict[str, type[Event]] = {
    "ORDER_TRADE_UPDATE": OrderTradeUpdate,
    "TRADE_LITE": TradeLite,
    "ACCOUNT_UPDATE": AccountUpdate,
    "ACCOUNT_CONFIG_UPDATE": AccountConfigUpdate,
    "MARGIN_CALL": MarginCall,
    "listenKeyExpired": ListenKeyExpired,
    "ALGO_UPDATE": AlgoUpdate,
    "STRATEGY_UPDATE": StrategyUpdate,
    "GRID_UPDATE": GridUpdate,
    "CONDITIONAL_ORDER_TRIGGER_REJECT": ConditionalOrderTriggerReject,
}
"""Every USDⓈ-M user-data event type (binance-facts.md §2) and its wire struct."""

USDM_EVENTS: tuple[str, ...] = tuple(USDM_EVENT_TYPES)
"""Every USDⓈ-M user-data event: the default ``events=`` filter (an explicit full list is the safe
choice; peers.md §0 reports production delivering nothing without one)."""
