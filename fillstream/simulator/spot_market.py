"""Spot symbols: trading rules (exchangeInfo filters), fees, and their own id counters and walk.

Spot is a separate market from the futures of the same name: ``BTCUSDT`` spot has its own trade
and order ids (per symbol, as Binance's; the spot ids start far from the futures ones so that logs
stay readable) and its own seeded price walk. Every spot amount is printed with 8 decimals, as
Binance's spot API prints them. Fees: 0.1 % maker and taker, 25 % off when paid in BNB; symbols
marked zero-fee charge nothing (``n`` ``"0"``, ``N`` null).
"""

from __future__ import annotations

import random
from decimal import Decimal

from fillstream.simulator.market import SPOT, SymbolSpec, SymbolState
from fillstream.simulator.numbers import ZERO, fmt_fixed

SPOT_RATE = Decimal("0.001")
BNB_DISCOUNT = Decimal("0.75")
SPOT_INDEX_BASE = 40  # SymbolState index offset: spot ids far from the futures ones

_KNOWN: dict[str, tuple[str, str, str, str, str, str]] = {
    # symbol: (base, quote, tick, step, start price, min notional)
    "BTCUSDT": ("BTC", "USDT", "0.01", "0.00001", "76950.00", "5"),
    "ETHUSDT": ("ETH", "USDT", "0.01", "0.0001", "2400.00", "5"),
    "BNBUSDT": ("BNB", "USDT", "0.01", "0.001", "600.00", "5"),
    "SOLUSDT": ("SOL", "USDT", "0.01", "0.001", "150.00", "5"),
    "ETHBTC": ("ETH", "BTC", "0.00001", "0.0001", "0.03120", "0.0001"),
    "BNBBTC": ("BNB", "BTC", "0.000001", "0.001", "0.007800", "0.0001"),
    "BTCFDUSD": ("BTC", "FDUSD", "0.01", "0.00001", "76950.00", "5"),
}
ZERO_FEE = frozenset({"BTCFDUSD"})  # Binance's zero-fee promotion pairs


def spot_spec(symbol: str) -> SymbolSpec:
    """The rules of a spot symbol; only the symbols of the table are served."""
    known = _KNOWN.get(symbol)
    if known is None:
        raise ValueError(f"unsupported spot symbol {symbol!r}; known: {', '.join(_KNOWN)}")
    base, quote, tick, step, start, notional = known
    return SymbolSpec(
        symbol=symbol,
        base_asset=base,
        price_precision=8,
        qty_precision=8,
        tick=Decimal(tick),
        step=Decimal(step),
        start_price=Decimal(start),
        min_notional=Decimal(notional),
        product=SPOT,
        pair=symbol,
        quote_asset=quote,
    )


def spot_symbols(names: tuple[str, ...], seed: int) -> dict[str, SymbolState]:
    """Venue state (ids, walk) of the spot symbols, seeded like the futures ones."""
    return {
        name: SymbolState(
            spot_spec(name), SPOT_INDEX_BASE + i, random.Random(f"{seed}:spot:{name}")
        )
        for i, name in enumerate(names)
    }


def fee_rate(symbol: str) -> Decimal:
    return ZERO if symbol in ZERO_FEE else SPOT_RATE


def f8(value: Decimal) -> str:
    """A spot amount as Binance prints it: 8 decimals."""
    return fmt_fixed(value, 8)
