"""Positions and realized PnL, computed the way Binance does (and the way the ledger folds them).

Per (symbol, position side); ``BOTH`` carries a signed quantity in one-way mode, ``LONG``/``SHORT``
in hedge mode. Rules (the ground truth and the events use the same ones):

* an increasing fill moves the entry price to the volume-weighted average (full ``Decimal``
  precision, the same formula as :mod:`fillstream.ledger.book`) and books ``rp = 0``;
* a reducing fill books ``rp = (price - entry) * reduced qty * (+1 long / -1 short)``, rounded to
  8 decimals;
* a fill that crosses zero closes the position (its whole ``rp`` and commission belong to the
  close) and opens the remainder at the fill price.

A close is reported when the quantity reaches zero or flips.

COIN-M (inverse) positions (``contract_size`` > 0, quantities in contracts) follow the inverse
contract's rules (binance-wave2 §B.3; BIN-FAQ), with the same rounding:

* the entry price of an increase is the contract-weighted **harmonic** mean
  ``(|q| + |d|) / (|q| / entry + |d| / price)`` (what keeps the coin value of the position exact);
* a reducing fill books ``rp = contract_size * reduced * (1/entry - 1/price) * (+1 long / -1
  short)`` in the base coin, rounded to 8 decimals (a long gains when the price rises);
* unrealized PnL is ``contract_size * qty * (1/entry - 1/mark)`` (``qty`` signed).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fillstream.simulator.numbers import EIGHT, ZERO


@dataclass(frozen=True)
class Lifecycle:
    """One position lifecycle that just ended (what the ground-truth close is built from)."""

    realized_pnl: Decimal
    max_qty: Decimal
    opened_at: int
    entry_price: Decimal
    fees: Decimal


@dataclass(slots=True)
class PositionState:
    """One position's running state. ``qty`` is signed (short < 0)."""

    symbol: str
    position_side: str
    qty: Decimal = ZERO
    entry: Decimal = ZERO
    cum_realized: Decimal = ZERO  # ``cr``: all-time realized of this position, pre-fee
    life_realized: Decimal = ZERO
    life_max: Decimal = ZERO
    life_fees: Decimal = ZERO
    opened_at: int = 0
    update_time: int = 0
    views: list[tuple[float, dict[str, object]]] | None = None  # rest_lag snapshots
    contract_size: Decimal = ZERO  # COIN-M: USD per contract (inverse rules); 0: linear

    def apply(
        self, delta: Decimal, price: Decimal, commission: Decimal, time_ms: int
    ) -> tuple[Decimal, Lifecycle | None]:
        """Fold one fill (``delta`` signed). Returns its ``rp`` and the lifecycle it closed."""
        self.update_time = time_ms
        if self.qty == ZERO:
            self._open(delta, price, commission, time_ms)
            return ZERO, None
        if (delta > 0) == (self.qty > 0):
            total = abs(self.qty) + abs(delta)
            if self.contract_size:
                self.entry = total / (abs(self.qty) / self.entry + abs(delta) / price)
            else:
                self.entry = (self.entry * abs(self.qty) + price * abs(delta)) / total
            self.qty += delta
            self.life_max = max(self.life_max, abs(self.qty))
            self.life_fees += commission
            return ZERO, None
        reduced = min(abs(delta), abs(self.qty))
        sign = 1 if self.qty > 0 else -1
        rp = self.pnl(price, reduced * sign)
        self.cum_realized += rp
        self.life_realized += rp
        self.life_fees += commission
        remainder = self.qty + delta
        if remainder != ZERO and (remainder > 0) == (self.qty > 0):
            self.qty = remainder
            return rp, None
        closed = Lifecycle(
            realized_pnl=self.life_realized,
            max_qty=self.life_max,
            opened_at=self.opened_at,
            entry_price=self.entry,
            fees=self.life_fees,
        )
        self.qty = ZERO
        self.entry = ZERO
        self.life_realized = ZERO
        self.life_max = ZERO
        self.life_fees = ZERO
        if remainder != ZERO:
            self._open(remainder, price, ZERO, time_ms)
        return rp, closed

    def _open(self, qty: Decimal, price: Decimal, commission: Decimal, time_ms: int) -> None:
        self.qty = qty
        self.entry = price
        self.life_max = abs(qty)
        self.life_realized = ZERO
        self.life_fees = commission
        self.opened_at = time_ms

    def core(self) -> dict[str, object]:
        """What REST needs to rebuild this position later (the ``rest_lag`` snapshots)."""
        return {"qty": self.qty, "entry": self.entry, "update": self.update_time}

    def pnl(self, price: Decimal, qty: Decimal) -> Decimal:
        """PnL of ``qty`` (signed: long > 0) bought at the entry price and valued at ``price``."""
        if self.contract_size:
            return (self.contract_size * qty * (1 / self.entry - 1 / price)).quantize(EIGHT)
        return ((price - self.entry) * qty).quantize(EIGHT)

    def unrealized(self, mark: Decimal) -> Decimal:
        return self.pnl(mark, self.qty) if self.qty else ZERO

    def breakeven(self, taker_rate: Decimal) -> Decimal:
        """Entry price moved by the round-trip taker fee (Binance's ``bep``, approximately)."""
        if self.qty == ZERO:
            return ZERO
        sign = 1 if self.qty > 0 else -1
        return self.entry * (1 + sign * 2 * taker_rate)

    def liquidation_price(self, leverage: int) -> Decimal:
        """Where the mark liquidates this position: 90 % of the initial margin lost."""
        if self.qty == ZERO:
            return ZERO
        sign = 1 if self.qty > 0 else -1
        return self.entry * (1 - sign * Decimal("0.9") / leverage)
