"""What a product's numbers are in: linear (USDⓈ-M, spot) against inverse (COIN-M) contracts.

USDⓈ-M and spot quantities are the base asset and prices, PnL and fees the quote (margin) asset.
COIN-M quantities are **contracts** of ``contractSize`` USD each; prices are USD; realized PnL,
commission and funding are in the **margin coin** (``BTC`` for ``BTCUSD_PERP`` and the dated
``BTCUSD_250926``). Binance's inverse arithmetic (binance-wave2.md §B.3, the simulator's
``positions`` module):

* the entry price of an increase is the contract-weighted **harmonic** mean
  ``(|q| + |d|) / (|q| / entry + |d| / price)`` (it keeps the coin value of the position exact);
* a reducing fill realizes ``contract_size * reduced * (1/entry - 1/price)`` (long; the negative
  for a short), rounded to 8 decimals by the exchange (fills carry it as ``rp``: the book sums it);
* a fill is worth ``contracts * contract_size / price`` of the coin (``baseQty``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from fillstream.ledger.types import Market

CONTRACTS: Final = "contracts"
BASE: Final = "base"
COIN_STEP: Final = Decimal("0.00000001")  # a coin amount's 8 decimals, as Binance's baseQty


def inverse(market: Market) -> bool:
    """Whether ``market`` trades inverse (coin-margined) contracts."""
    return market is Market.COINM


def qty_unit(market: Market) -> str:
    """``contracts`` (COIN-M) or ``base`` (the base asset: USDⓈ-M, spot)."""
    return CONTRACTS if inverse(market) else BASE


def pair_of(symbol: str) -> str:
    """``BTCUSD_PERP``/``BTCUSD_250926`` → ``BTCUSD`` (a linear symbol is its own pair)."""
    return symbol.partition("_")[0]


def margin_asset(market: Market, symbol: str) -> str | None:
    """The coin a COIN-M symbol is margined, settled and charged in (``BTCUSD_PERP`` → ``BTC``):
    Binance's ``marginAsset`` (``ma``) is the pair's base coin for every ``<COIN>USD`` contract.
    None for linear products (their margin asset is the account's, not the symbol's)."""
    if not inverse(market):
        return None
    pair = pair_of(symbol)
    return pair.removesuffix("USD") or None


def average_entry(
    market: Market, qty: Decimal, entry: Decimal, added: Decimal, price: Decimal
) -> Decimal:
    """The entry price after adding ``added`` (> 0) at ``price`` to ``qty`` (> 0) at ``entry``:
    volume-weighted (linear) or contract-weighted harmonic (inverse), as Binance computes it."""
    total = qty + added
    if inverse(market):
        return total / (qty / entry + added / price)
    return (entry * qty + price * added) / total


def average_price(market: Market, qty: Decimal, weight: Decimal) -> Decimal:
    """The mean price of ``qty`` from its accumulated ``weight``: Σ price*q (linear, ``weight``
    is notional) or Σ q/price (inverse, ``weight`` is the coin value): see :func:`price_weight`."""
    if not qty or not weight:
        return Decimal(0)
    return qty / weight if inverse(market) else weight / qty


def price_weight(market: Market, qty: Decimal, price: Decimal) -> Decimal:
    """What ``qty`` at ``price`` adds to an average's weight (notional, or coin value)."""
    return qty / price if inverse(market) else price * qty


def base_qty(qty: Decimal, price: Decimal, contract_size: Decimal) -> Decimal:
    """The coin amount of ``qty`` contracts at ``price``: ``qty * contract_size / price``."""
    return qty * contract_size / price


def fill_base_qty(
    market: Market, qty: Decimal, price: Decimal, contract_size: Decimal | None
) -> Decimal | None:
    """A fill's base quantity: ``qty`` itself (linear), the coin amount to 8 decimals (inverse,
    with a known contract size and a positive price), else None (a consumer must not guess)."""
    if not inverse(market):
        return qty
    if contract_size is None or contract_size <= 0 or price <= 0:
        return None
    return base_qty(qty, price, contract_size).quantize(COIN_STEP)
