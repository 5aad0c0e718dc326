"""COIN-M wire events and REST rows → ledger types: the one parse module both paths use.

COIN-M's events and rows have USDⓈ-M's fields and names (plus ``i``, ``ma``, ``pair``,
``baseQty``, ``marginAsset``), so the field mapping is USDⓈ-M's (:mod:`fillstream.binance.usdm
.parse`: :func:`venue_fill`, :func:`venue_order_update`, one table per venue enum), imported, not
copied. What is COIN-M's own is here: the units (quantities in contracts, money in the margin
coin, the contract size from exchangeInfo) and their checks.

A fill's ``qty`` stays in contracts (as ``l``/``qty`` say), its ``price`` in USD, its commission
and realized PnL in the coin; :mod:`fillstream.ledger.units` names the unit on every payload and
does the inverse arithmetic (harmonic entry price). A fill whose margin asset (``ma``,
``marginAsset``) is not the symbol's coin is malformed: its PnL would be booked in the wrong coin.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import msgspec

from fillstream.binance.coinm.events import OrderTradeUpdate
from fillstream.binance.coinm.rows import ContractSymbol, ExchangeInfo, UserTrade
from fillstream.binance.usdm.parse import (
    OrderInfo,
    algo_link_from,
    algo_link_from_algo_order,
    correction_from_risk,
    decode_row,
    decode_rows,
    fill_from_order_update,
    fill_from_user_trade,
    order_update_from,
    order_update_from_order,
    positions_from_account_update,
)
from fillstream.ledger import Fill, FillSource, Market
from fillstream.ledger.amounts import positive_amount
from fillstream.ledger.errors import MalformedInput
from fillstream.ledger.units import base_qty, margin_asset

__all__ = [
    "algo_link_from",
    "algo_link_from_algo_order",
    "base_qty_of",
    "check_margin_asset",
    "contract_sizes",
    "correction_from_risk",
    "decode_row",
    "decode_rows",
    "fill_from_order_update",
    "fill_from_user_trade",
    "order_update_from",
    "order_update_from_order",
    "positions_from_account_update",
    "stream_fill",
    "trade_fill",
    "with_contract_size",
]


def check_margin_asset(symbol: str, asset: str | None) -> None:
    """Raise ``MalformedInput`` unless ``asset`` (``ma``/``marginAsset``, absent: fine) is the
    coin of ``symbol`` (``BTCUSD_PERP`` → ``BTC``)."""
    expected = margin_asset(Market.COINM, symbol)
    if expected is None:
        raise MalformedInput(f"not a COIN-M symbol: {symbol!r:.40}")
    if asset is not None and asset != expected:
        raise MalformedInput(f"{symbol}: margin asset {asset!r:.20}, expected {expected}")


def stream_fill(
    event: OrderTradeUpdate,
    account: str,
    *,
    received_at_ns: int | None = None,
    source: FillSource = FillSource.STREAM,
    contract_size: Decimal | None = None,
) -> Fill | None:
    """The fill of a COIN-M ORDER_TRADE_UPDATE (None: not a fill), margin asset checked,
    carrying ``contract_size`` (the symbol's, from exchangeInfo; None: not known)."""
    fill = fill_from_order_update(
        event, account, Market.COINM, received_at_ns=received_at_ns, source=source
    )
    if fill is None:
        return None
    check_margin_asset(fill.symbol, event.o.ma)
    return with_contract_size(fill, contract_size)


def trade_fill(
    trade: UserTrade,
    *,
    account: str,
    info: OrderInfo | None,
    received_at_ns: int | None = None,
    contract_size: Decimal | None = None,
) -> Fill:
    """A COIN-M ``userTrades`` row as a reconcile-sourced fill, margin asset checked, carrying
    ``contract_size`` as :func:`stream_fill` does."""
    check_margin_asset(trade.symbol, trade.marginAsset)
    fill = fill_from_user_trade(
        trade, account=account, market=Market.COINM, info=info, received_at_ns=received_at_ns
    )
    return with_contract_size(fill, contract_size)


def with_contract_size(fill: Fill, contract_size: Decimal | None) -> Fill:
    """``fill`` carrying ``contract_size`` (a size ≤ 0 is not one: None)."""
    if contract_size is None or contract_size <= 0:
        return fill
    return msgspec.structs.replace(fill, contract_size=contract_size)


def contract_sizes(info: ExchangeInfo | Iterable[ContractSymbol]) -> dict[str, Decimal]:
    """``symbol → contractSize`` (USD per contract) from ``/dapi/v1/exchangeInfo``; a symbol
    with a size ≤ 0 is left out (it would divide the coin amount by nothing)."""
    symbols = info.symbols if isinstance(info, ExchangeInfo) else info
    return {s.symbol: Decimal(s.contractSize) for s in symbols if s.contractSize > 0}


def base_qty_of(fill: Fill, contract_size: Decimal) -> Decimal:
    """The coin amount of a COIN-M fill: ``contracts * contractSize / price`` (``baseQty``)."""
    size = positive_amount(str(contract_size), "contractSize")
    return base_qty(fill.qty, fill.price, size)
