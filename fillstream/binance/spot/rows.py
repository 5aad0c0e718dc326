"""Spot REST rows as Binance sends them (``/api/v3``; binance-wave2.md §A.6, binance-facts.md
§5.4): frozen msgspec Structs, field names as on the wire, amounts kept as strings. Converted to
ledger types only in :mod:`.parse`.

As for USDⓈ-M's rows (:mod:`fillstream.binance.usdm.rows`): unknown fields are ignored, missing
optional ones take their defaults, what a fill or an order state needs keeps a strict type,
fields never read are ``Unused``, ids and times are bounded to ``bigint``.
"""

from __future__ import annotations

import msgspec

from fillstream.binance.usdm import rows as usdm
from fillstream.ledger.amounts import TimeMs, Unused


class MyTrade(usdm.UserTrade, frozen=True):
    """A ``GET /api/v3/myTrades`` row: the same trade as an executionReport with ``x`` TRADE.

    Extends USDⓈ-M's ``userTrades`` row (the venue protocol returns both as one row type; the
    spot parse module reads them): ``id`` (``t``), ``orderId`` (``i``), ``price`` (``L``),
    ``qty`` (``l``), ``commission`` (``n``, positive, in ``commissionAsset``), ``time`` (``T``);
    the side is ``isBuyer`` and maker ``isMaker`` (required on spot: ``None`` is malformed);
    ``quoteQty`` is ``Y``.
    """

    quoteQty: str | None = None  # ``Y``
    orderListId: int = -1  # ``g``
    isBestMatch: Unused = None


class SpotOrder(usdm.Order, frozen=True):
    """A ``GET /api/v3/order`` or ``GET /api/v3/allOrders`` row (USDⓈ-M's fields that spot
    lacks, ``avgPrice``, ``origType``, ``positionSide``, ``reduceOnly``, keep their defaults)."""

    cummulativeQuoteQty: str | None = None  # Binance's spelling; negative on some old orders
    orderListId: int = -1
    expiryReason: str | None = None  # since 2026-05-08
    timeInForce: Unused = None
    icebergQty: Unused = None
    isWorking: Unused = None
    workingTime: Unused = None
    origQuoteOrderQty: Unused = None
    selfTradePreventionMode: Unused = None


class AccountBalance(msgspec.Struct, frozen=True):
    """One asset of ``GET /api/v3/account`` ``balances`` (zero balances are omitted when asked)."""

    asset: str
    free: str
    locked: str


class AccountInfo(msgspec.Struct, frozen=True):
    """The part of ``GET /api/v3/account`` fillstream reads: the balances, and when they were."""

    balances: tuple[AccountBalance, ...] = ()
    updateTime: TimeMs = 0
    accountType: str = ""
    canTrade: Unused = None
    permissions: Unused = None
    uid: Unused = None


class SymbolInfo(msgspec.Struct, frozen=True):
    """One ``GET /api/v3/exchangeInfo`` symbol: which assets it trades."""

    symbol: str
    baseAsset: str
    quoteAsset: str
    status: str = ""


class ExchangeInfo(msgspec.Struct, frozen=True):
    """The part of ``GET /api/v3/exchangeInfo`` the reconciler needs (its symbols' assets)."""

    symbols: tuple[SymbolInfo, ...] = ()
