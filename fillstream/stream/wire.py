"""USDⓈ-M user-data events exactly as Binance sends them (binance-facts.md §2).

Frozen msgspec Structs keep Binance's one-letter keys (a trailing comment names each one);
``rename`` is used only where a key is not a Python identifier. Amounts and prices stay the
exchange's strings: they become ``Decimal`` once, in :mod:`fillstream.stream.parse`. Ids and times
are ints. Fields the exchange may omit, or that were added recently, have defaults so schema drift
in fields we do not use never turns a valid event into a decode error.
"""

from __future__ import annotations

import msgspec


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
    i: int  # order id
    T: int  # order trade time
    f: str = ""  # time in force
    q: str = "0"  # original quantity
    p: str = "0"  # original price
    ap: str = "0"  # average price
    sp: str = "0"  # stop price
    l: str = "0"  # noqa: E741  last filled quantity
    z: str = "0"  # cumulative filled quantity
    L: str = "0"  # last filled price
    N: str | None = None  # commission asset (absent when no commission)
    n: str | None = None  # commission of this execution
    t: int = 0  # trade id (0 on non-trade events)
    b: str = "0"  # bids notional
    a: str = "0"  # ask notional
    m: bool = False  # is maker
    R: bool = False  # is reduce-only
    wt: str = ""  # stop price working type
    ot: str = ""  # original order type
    ps: str = "BOTH"  # position side
    cp: bool = False  # close-all (closePosition)
    AP: str | None = None  # activation price (trailing stop)
    cr: str | None = None  # callback rate (trailing stop)
    pP: bool = False  # price protection
    si: int = 0  # ignore
    ss: int = 0  # ignore
    rp: str = "0"  # realized profit of this trade
    V: str = ""  # self-trade prevention mode
    pm: str = ""  # price match mode
    gtd: int = 0  # good-till-date auto-cancel time
    er: str = "0"  # expiry reason
    M: int | None = None  # modifyId (AMENDMENT only)


class OrderTradeUpdate(msgspec.Struct, frozen=True):
    E: int  # event time
    o: OrderTradeUpdateOrder  # order
    T: int = 0  # transaction time
    e: str = "ORDER_TRADE_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# TRADE_LITE (§2.2)


class TradeLite(msgspec.Struct, frozen=True):
    E: int  # event time
    s: str  # symbol
    t: int  # trade id
    i: int  # order id
    T: int = 0  # transaction time
    q: str = "0"  # original quantity
    p: str = "0"  # original price
    m: bool = False  # is maker
    c: str = ""  # client order id
    S: str = ""  # side
    L: str = "0"  # last filled price
    l: str = "0"  # noqa: E741  last filled quantity
    e: str = "TRADE_LITE"  # event type


# ---------------------------------------------------------------------------------------------
# ACCOUNT_UPDATE (§2.3)


class Balance(msgspec.Struct, frozen=True):
    a: str  # asset
    wb: str = "0"  # wallet balance
    cw: str = "0"  # cross wallet balance
    bc: str = "0"  # balance change except PnL and commission


class AccountPosition(msgspec.Struct, frozen=True):
    s: str  # symbol
    pa: str  # position amount (signed)
    ep: str = "0"  # entry price
    bep: str = "0"  # breakeven price
    cr: str = "0"  # (pre-fee) accumulated realized
    up: str = "0"  # unrealized PnL
    mt: str = ""  # margin type
    iw: str = "0"  # isolated wallet
    ps: str = "BOTH"  # position side


class AccountUpdateData(msgspec.Struct, frozen=True):
    m: str = ""  # reason type
    B: tuple[Balance, ...] = ()  # balances
    P: tuple[AccountPosition, ...] = ()  # positions
    S: str | None = None  # symbol of a FUNDING_FEE event


class AccountUpdate(msgspec.Struct, frozen=True):
    E: int  # event time
    a: AccountUpdateData  # update data
    T: int = 0  # transaction time
    e: str = "ACCOUNT_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# ACCOUNT_CONFIG_UPDATE (§2.6)


class LeverageConfig(msgspec.Struct, frozen=True):
    s: str  # symbol
    l: int  # noqa: E741  leverage


class MultiAssetsConfig(msgspec.Struct, frozen=True):
    j: bool  # multi-assets mode


class AccountConfigUpdate(msgspec.Struct, frozen=True):
    E: int  # event time
    T: int = 0  # transaction time
    ac: LeverageConfig | None = None  # leverage change
    ai: MultiAssetsConfig | None = None  # multi-assets mode change
    e: str = "ACCOUNT_CONFIG_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# MARGIN_CALL (§2.5)


class MarginCallPosition(msgspec.Struct, frozen=True):
    s: str  # symbol
    ps: str = "BOTH"  # position side
    pa: str = "0"  # position amount
    mt: str = ""  # margin type
    iw: str = "0"  # isolated wallet
    mp: str = "0"  # mark price
    up: str = "0"  # unrealized PnL
    mm: str = "0"  # maintenance margin required


class MarginCall(msgspec.Struct, frozen=True):
    E: int  # event time
    cw: str | None = None  # cross wallet balance
    p: tuple[MarginCallPosition, ...] = ()  # positions
    e: str = "MARGIN_CALL"  # event type


# ---------------------------------------------------------------------------------------------
# listenKeyExpired (§2.4)


class ListenKeyExpired(msgspec.Struct, frozen=True):
    E: int | str  # event time (a string in some doc copies)
    listenKey: str = ""  # the expired key
    e: str = "listenKeyExpired"  # event type


# ---------------------------------------------------------------------------------------------
# ALGO_UPDATE (§2.9)


class AlgoUpdateOrder(msgspec.Struct, frozen=True):
    aid: int  # algo id
    s: str  # symbol
    X: str  # algo status
    caid: str = ""  # client algo id
    at: str = ""  # algo type (CONDITIONAL)
    o: str = ""  # order type
    S: str = ""  # side
    ps: str = "BOTH"  # position side
    f: str = ""  # time in force
    q: str = "0"  # quantity
    ai: str = ""  # matching-engine order id once triggered ("" before)
    ap: str = "0"  # average fill price in the matching engine
    aq: str = "0"  # executed quantity in the matching engine
    act: str = "0"  # actual order type in the matching engine
    tp: str = "0"  # trigger price
    p: str = "0"  # order price
    V: str = ""  # self-trade prevention mode
    wt: str = ""  # working type
    pm: str = ""  # price match mode
    cp: bool = False  # close-all (closePosition)
    pP: bool = False  # price protection
    R: bool = False  # reduce only
    tt: int = 0  # trigger time
    gtd: int = 0  # good-till-date cancel time
    rm: str = ""  # failure reason
    ia: bool | None = None  # is activated (trailing stops)


class AlgoUpdate(msgspec.Struct, frozen=True):
    E: int  # event time
    o: AlgoUpdateOrder  # algo order
    T: int = 0  # transaction time
    e: str = "ALGO_UPDATE"  # event type


# ---------------------------------------------------------------------------------------------
# STRATEGY_UPDATE / GRID_UPDATE (§2.7), CONDITIONAL_ORDER_TRIGGER_REJECT (§2.8, deprecated)


class StrategyStatus(msgspec.Struct, frozen=True):
    si: int = 0  # strategy id
    st: str = ""  # strategy type
    ss: str = ""  # strategy status
    s: str = ""  # symbol
    ut: int = 0  # update time
    c: int = 0  # opCode


class StrategyUpdate(msgspec.Struct, frozen=True):
    E: int  # event time
    T: int = 0  # transaction time
    su: StrategyStatus | None = None  # strategy update
    e: str = "STRATEGY_UPDATE"  # event type


class GridStatus(msgspec.Struct, frozen=True):
    si: int = 0  # strategy id
    st: str = ""  # strategy type
    ss: str = ""  # strategy status
    s: str = ""  # symbol
    r: str = "0"  # realized PnL
    up: str = "0"  # unmatched average price
    uq: str = "0"  # unmatched quantity
    uf: str = "0"  # unmatched fee
    mp: str = "0"  # matched PnL
    ut: int = 0  # update time


class GridUpdate(msgspec.Struct, frozen=True):
    E: int  # event time
    T: int = 0  # transaction time
    gu: GridStatus | None = None  # grid update
    e: str = "GRID_UPDATE"  # event type


class TriggerReject(msgspec.Struct, frozen=True):
    s: str = ""  # symbol
    i: int = 0  # order id
    r: str = ""  # reject reason


class ConditionalOrderTriggerReject(msgspec.Struct, frozen=True, rename={"or_": "or"}):
    E: int  # event time
    T: int = 0  # transaction time
    or_: TriggerReject | None = None  # "or": the rejected order
    e: str = "CONDITIONAL_ORDER_TRIGGER_REJECT"  # event type


Event = (
    OrderTradeUpdate
    | TradeLite
    | AccountUpdate
    | AccountConfigUpdate
    | MarginCall
    | ListenKeyExpired
    | AlgoUpdate
    | StrategyUpdate
    | GridUpdate
    | ConditionalOrderTriggerReject
)

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
