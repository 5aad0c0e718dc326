"""COIN-M REST rows as Binance sends them (``/dapi``, binance-wave2.md §B.4).

The same names as USDⓈ-M (:mod:`fillstream.binance.usdm.rows`), so the rows extend those; what
COIN-M adds is units: ``qty`` and ``positionAmt`` are contracts, ``baseQty`` is the coin amount
of a trade, ``marginAsset`` the coin its PnL and commission are in, and exchangeInfo gives each
contract's ``contractSize`` (USD). Orders, algo orders and income rows have the USDⓈ-M shape
(COIN-M conditional orders live in the Algo Service since the 2026 CM-UM integration).
"""

from __future__ import annotations

import msgspec

from fillstream.binance.usdm import rows as usdm
from fillstream.ledger.amounts import Unused


class UserTrade(usdm.UserTrade, frozen=True):
    """A ``GET /dapi/v1/userTrades`` row (by ``symbol`` or by ``pair``)."""

    pair: str = ""  # BTCUSD
    marginAsset: str | None = None  # the coin (BTC)
    baseQty: str | None = None  # the coin amount: qty * contractSize / price


class PositionRisk(usdm.PositionRisk, frozen=True):
    """A ``GET /dapi/v1/positionRisk`` row: every TRADING symbol, ``positionAmt`` in contracts."""

    marginAsset: Unused = None


class ContractSymbol(msgspec.Struct, frozen=True):
    """One ``/dapi/v1/exchangeInfo`` symbol: what a contract is worth and what it settles in."""

    symbol: str
    contractSize: int  # USD per contract (BTC: 100, most others: 10; never hard-coded)
    marginAsset: str = ""
    pair: str = ""
    contractType: str = ""  # PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER
    deliveryDate: int = 0


class ExchangeInfo(msgspec.Struct, frozen=True):
    """The part of ``/dapi/v1/exchangeInfo`` COIN-M needs (symbols with their contract size)."""

    symbols: tuple[ContractSymbol, ...] = ()
