"""Symbols of both products: their trading rules, id counters and the seeded mark-price walk.

USDⓈ-M symbols look like ``BTCUSDT`` (linear: quantities in the base coin, money in USDT).
COIN-M symbols are contract names, ``BTCUSD_PERP`` (perpetual) or ``BTCUSD_250926`` (delivered on
that day, 08:00 UTC): quantities in contracts of ``contractSize`` USD each (100 for BTC, 10 for the
others, as exchangeInfo says), money (commission, realized PnL, wallet) in the base coin.

Trade ids and order ids are per symbol, increasing, and shared by every account (the counterparty
is not simulated, so consecutive trade ids of one account may skip). Each symbol starts its ids at
a different base so that ids of different symbols never collide, which makes logs easier to read
(Binance's own id spaces overlap; nothing may rely on them being distinct).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

from fillstream.simulator.numbers import ZERO, fmt_fixed

USDM = "usdm"
COINM = "coinm"
SPOT = "spot"  # spot symbols live in :mod:`.spot_market` (own id counters, own walk)
MARKETS = (USDM, COINM)
PERPETUAL_DELIVERY_MS = 4133404800000  # what exchangeInfo gives perpetuals (2100-12-25)
_COINM = re.compile(r"^([A-Z0-9]+)USD_(PERP|\d{6})$")


@dataclass(frozen=True)
class SymbolSpec:
    """Static trading rules of one USDⓈ-M perpetual (the exchangeInfo ``symbols`` entry)."""

    symbol: str
    base_asset: str
    price_precision: int
    qty_precision: int
    tick: Decimal
    step: Decimal
    start_price: Decimal
    min_notional: Decimal = Decimal(5)
    max_leverage: int = 20
    product: str = USDM
    contract_size: Decimal = ZERO  # COIN-M: USD per contract; 0: a linear (USDⓈ-M) symbol
    pair: str = ""
    delivery_ms: int = PERPETUAL_DELIVERY_MS
    quote_asset: str = "USDT"  # spot: what the price is in (futures: always USDT or USD)

    @property
    def inverse(self) -> bool:
        return self.contract_size > 0

    @property
    def margin_asset(self) -> str:
        """The coin commission, realized PnL and the wallet are in."""
        return self.base_asset if self.inverse else "USDT"

    @property
    def perpetual(self) -> bool:
        return self.delivery_ms == PERPETUAL_DELIVERY_MS

    def base_qty(self, qty: Decimal, price: Decimal) -> Decimal:
        """The base-coin amount of ``qty`` at ``price`` (COIN-M: contracts * size / price)."""
        return qty * self.contract_size / price if self.inverse else qty

    def price(self, value: Decimal) -> Decimal:
        """Round a price to the tick (down), never below one tick."""
        ticks = (value / self.tick).to_integral_value(rounding=ROUND_DOWN)
        return (max(ticks, Decimal(1)) * self.tick).quantize(self.tick)

    def qty(self, value: Decimal) -> Decimal:
        """Round a quantity to the lot step (down), never below one step."""
        steps = (value / self.step).to_integral_value(rounding=ROUND_DOWN)
        return (max(steps, Decimal(1)) * self.step).quantize(self.step)

    def fmt_price(self, value: Decimal) -> str:
        return fmt_fixed(value, self.price_precision)

    def fmt_qty(self, value: Decimal) -> str:
        return fmt_fixed(value, self.qty_precision)

    def fmt_level(self, value: Decimal) -> str:
        """A derived price (entry, break-even, liquidation) as Binance prints it: rounded to the
        symbol's ``pricePrecision``, ``0`` when there is none. The venue keeps the exact value."""
        return fmt_fixed(value, self.price_precision) if value else "0"


_KNOWN: dict[str, tuple[int, int, str, str, str]] = {
    # symbol: (price precision, qty precision, tick, step, start price)
    "BTCUSDT": (2, 3, "0.10", "0.001", "76950.00"),
    "ETHUSDT": (2, 3, "0.01", "0.001", "2400.00"),
    "BNBUSDT": (3, 2, "0.010", "0.01", "600.000"),
    "SOLUSDT": (4, 0, "0.0100", "1", "150.0000"),
    "XRPUSDT": (4, 1, "0.0001", "0.1", "0.5000"),
    "DOGEUSDT": (6, 0, "0.000010", "1", "0.150000"),
}


_KNOWN_COINM: dict[str, tuple[int, str, int, str]] = {
    # pair: (price precision, tick, contract size in USD, start price)
    "BTCUSD": (1, "0.1", 100, "76950.0"),
    "ETHUSD": (2, "0.01", 10, "2400.00"),
    "BNBUSD": (3, "0.001", 10, "600.000"),
    "SOLUSD": (3, "0.001", 10, "150.000"),
    "XRPUSD": (4, "0.0001", 10, "0.5000"),
    "DOGEUSD": (6, "0.000001", 10, "0.150000"),
}


def _coinm_spec(symbol: str, base: str, suffix: str) -> SymbolSpec:
    pair = f"{base}USD"
    pp, tick, size, start = _KNOWN_COINM.get(pair, (3, "0.001", 10, "100.000"))
    delivery = PERPETUAL_DELIVERY_MS
    if suffix != "PERP":
        try:
            day = datetime.strptime(suffix, "%y%m%d").replace(hour=8, tzinfo=UTC)
        except ValueError:
            raise ValueError(
                f"unsupported symbol {symbol!r}: not a delivery date (YYMMDD)"
            ) from None
        delivery = int(day.timestamp()) * 1000
    return SymbolSpec(
        symbol=symbol,
        base_asset=base,
        price_precision=pp,
        qty_precision=0,
        tick=Decimal(tick),
        step=Decimal(1),
        start_price=Decimal(start),
        min_notional=ZERO,
        product=COINM,
        contract_size=Decimal(size),
        pair=pair,
        delivery_ms=delivery,
    )


def spec_for(symbol: str) -> SymbolSpec:
    """Rules for ``symbol``: real-looking ones for well-known symbols, a generic set otherwise.

    ``BTCUSDT``-like names are USDⓈ-M; ``BTCUSD_PERP`` / ``BTCUSD_250926`` are COIN-M.
    """
    coinm = _COINM.match(symbol)
    if coinm is not None:
        return _coinm_spec(symbol, coinm.group(1), coinm.group(2))
    if not symbol.isalnum() or not symbol.isupper() or not symbol.endswith("USDT"):
        raise ValueError(
            f"unsupported symbol {symbol!r}: USDⓈ-M symbols look like BTCUSDT, "
            "COIN-M ones like BTCUSD_PERP or BTCUSD_250926"
        )
    pp, qp, tick, step, start = _KNOWN.get(symbol, (3, 2, "0.001", "0.01", "100.000"))
    return SymbolSpec(
        symbol=symbol,
        base_asset=symbol.removesuffix("USDT"),
        price_precision=pp,
        qty_precision=qp,
        tick=Decimal(tick),
        step=Decimal(step),
        start_price=Decimal(start),
        pair=symbol,
    )


class SymbolState:
    """Mutable venue-wide state of one symbol: id counters and the mark price."""

    def __init__(self, spec: SymbolSpec, index: int, rng: random.Random) -> None:
        self.spec = spec
        self._next_trade_id = 6_000_000_000 + index * 1_000_000_000
        self._next_order_id = 800_000_000_000 + index * 10_000_000_000
        self.mark = spec.start_price
        self._log_mark = math.log(float(spec.start_price))
        self._log_anchor = self._log_mark
        self._rng = rng

    def next_trade_id(self) -> int:
        self._next_trade_id += 1
        return self._next_trade_id

    def next_order_id(self) -> int:
        self._next_order_id += 1
        return self._next_order_id

    def walk(self, volatility: float = 0.002, shock_p: float = 0.01) -> Decimal:
        """One step of the seeded mark-price walk (mean-reverting, rare 4 to 8 % shocks).

        The walk runs on floats (it is noise, not money); the result is snapped to the tick and is a
        ``Decimal`` from then on.
        """
        rng = self._rng
        step = rng.gauss(0.0, volatility) - 0.02 * (self._log_mark - self._log_anchor)
        if rng.random() < shock_p:
            step += rng.choice((-1.0, 1.0)) * rng.uniform(0.04, 0.08)
        self._log_mark += step
        self.mark = self.spec.price(Decimal(repr(math.exp(self._log_mark))))
        return self.mark
