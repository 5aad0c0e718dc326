"""REST rows as Binance sends them (USDⓈ-M ``/fapi``): frozen msgspec Structs, field names as on
the wire, amounts kept as strings. Converted to ledger types only in :mod:`.parse`.

Unknown fields are ignored (Binance adds fields); missing optional ones take their defaults.
"""

from __future__ import annotations

import msgspec


class UserTrade(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/userTrades`` row (``/api/v3/myTrades`` on spot: no positionSide)."""

    symbol: str
    id: int  # trade id, unique per symbol; the stream's ``t``
    orderId: int  # the stream's ``i``
    price: str  # ``L``
    qty: str  # ``l``
    commission: str  # ``n``
    commissionAsset: str  # ``N``
    time: int  # ``T``
    side: str = ""  # BUY/SELL (spot rows have isBuyer instead)
    positionSide: str = "BOTH"  # ``ps``
    realizedPnl: str = "0"  # ``rp``
    quoteQty: str = "0"
    maker: bool = False  # ``m`` (spot: isMaker)
    buyer: bool | None = None  # (spot: isBuyer)
    isMaker: bool | None = None
    isBuyer: bool | None = None


class Order(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/order`` or ``allOrders`` row."""

    symbol: str
    orderId: int
    clientOrderId: str
    side: str
    type: str
    status: str
    origType: str = ""
    positionSide: str = "BOTH"
    price: str = "0"
    avgPrice: str = "0"
    origQty: str = "0"
    executedQty: str = "0"
    stopPrice: str = "0"
    reduceOnly: bool = False
    closePosition: bool = False
    time: int = 0
    updateTime: int = 0


class AlgoOrder(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/algoOrder``, ``openAlgoOrders`` or ``allAlgoOrders`` row."""

    algoId: int
    symbol: str
    orderType: str  # STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT, TRAILING_STOP_MARKET
    algoStatus: str  # NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED
    clientAlgoId: str = ""
    algoType: str = "CONDITIONAL"
    actualOrderId: str | int | None = None  # the triggered child order; "" until triggered
    createTime: int = 0
    updateTime: int = 0
    triggerTime: int = 0


class PositionRisk(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v3/positionRisk`` row (only symbols with a position or open orders)."""

    symbol: str
    positionAmt: str  # signed: short < 0
    entryPrice: str = "0"
    positionSide: str = "BOTH"
    updateTime: int = 0


class Income(msgspec.Struct, frozen=True):
    """A ``GET /fapi/v1/income`` row."""

    incomeType: str
    income: str
    asset: str
    time: int
    symbol: str = ""
    tranId: int | str = 0
    tradeId: str = ""
    info: str = ""


class OpenOrder(msgspec.Struct, frozen=True):
    """The few fields of an ``openOrders`` row the reconciler needs (which symbols are active)."""

    symbol: str
    orderId: int
