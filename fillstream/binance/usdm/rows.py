"""REST rows as Binance sends them (USDⓈ-M ``/fapi``): frozen msgspec Structs, field names as on
the wire, amounts kept as strings. Converted to ledger types only in :mod:`.parse`.

Unknown fields are ignored (Binance adds fields); missing optional ones take their defaults.
Tolerance is by need, as on the stream (:mod:`.events`): what a fill or an order
state needs keeps a strict type; other amounts accept ``null`` (the same as absent); fields
never read are ``Unused`` (any JSON value). Ids and times are bounded to ``bigint``.
"""

from __future__ import annotations

import msgspec

from fillstream.ledger.amounts import Id, TimeMs, Unused


class UserTrade(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/userTrades`` row (``/api/v3/myTrades`` on spot: no positionSide)."""

    symbol: str
    id: Id  # trade id, unique per symbol; the stream's ``t``
    orderId: Id  # the stream's ``i``
    price: str  # ``L``
    qty: str  # ``l``
    commission: str  # ``n``
    commissionAsset: str  # ``N``
    time: TimeMs  # ``T``
    side: str = ""  # BUY/SELL (spot rows have isBuyer instead)
    positionSide: str = "BOTH"  # ``ps``
    realizedPnl: str = "0"  # ``rp`` (spot rows have none)
    quoteQty: Unused = None  # price * qty (the fill's quote_qty is computed, as on the stream)
    maker: bool = False  # ``m`` (spot: isMaker)
    buyer: bool | None = None  # (spot: isBuyer)
    isMaker: bool | None = None
    isBuyer: bool | None = None


class Order(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/order`` or ``allOrders`` row."""

    symbol: str
    orderId: Id
    clientOrderId: str
    side: str
    type: str
    status: str
    origType: str | None = None
    positionSide: str = "BOTH"
    price: str | None = None
    avgPrice: str | None = None
    origQty: str | None = None
    executedQty: str | None = None
    stopPrice: str | None = None
    reduceOnly: bool = False
    closePosition: bool | None = None
    time: TimeMs = 0
    updateTime: TimeMs = 0


class AlgoOrder(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/algoOrder``, ``openAlgoOrders`` or ``allAlgoOrders`` row."""

    algoId: Id
    symbol: str
    orderType: str  # STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT, TRAILING_STOP_MARKET
    algoStatus: str  # NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED
    clientAlgoId: str | None = None
    algoType: Unused = None  # CONDITIONAL
    actualOrderId: str | int | None = None  # the triggered child order; "" until triggered
    createTime: TimeMs = 0
    updateTime: TimeMs = 0
    triggerTime: TimeMs = 0


class PositionRisk(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v3/positionRisk`` row (only symbols with a position or open orders)."""

    symbol: str
    positionAmt: str  # signed: short < 0
    entryPrice: str | None = None
    positionSide: str = "BOTH"
    updateTime: Unused = None


class Income(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/income`` row."""

    incomeType: str
    income: str
    asset: str
    time: TimeMs
    symbol: str = ""
    tranId: int | str = 0
    tradeId: Unused = None  # a string of the trade id
    info: Unused = None


class OpenOrder(msgspec.Struct, frozen=True):
    """The few fields of an ``openOrders`` row the reconciler needs (which symbols are active)."""

    symbol: str
    orderId: Id


class TradeMark(msgspec.Struct, frozen=True):
    """The two fields of a ``userTrades`` row the stream's staleness watchdog compares."""

    id: Id  # trade id
    time: TimeMs  # trade time ms


class RiskSymbol(msgspec.Struct, frozen=True):
    """The one field of a ``positionRisk`` row the watchdog needs (which symbols are exposed)."""

    symbol: str
