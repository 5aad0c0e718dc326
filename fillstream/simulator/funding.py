"""Funding fees: every ``funding_interval_s`` of sim time (8 h by default), or on demand.

Each open position pays (or receives) ``position * mark * rate``; the rate per symbol is drawn from
a seeded generator (-0.003 % to +0.006 %, positive: longs pay). Per symbol with a charge, one
``ACCOUNT_UPDATE`` with ``m`` = FUNDING_FEE (cross margin: the balance, ``S`` = the symbol, no
positions) and one ``income`` row FUNDING_FEE with an empty ``tradeId``.
"""

from __future__ import annotations

import random
from decimal import Decimal

from fillstream.simulator.engine import Engine
from fillstream.simulator.events import account_update
from fillstream.simulator.numbers import EIGHT, ZERO
from fillstream.simulator.state import AccountState


class Funding:
    """Charges funding to accounts with open positions."""

    def __init__(self, engine: Engine, rng: random.Random) -> None:
        self.engine = engine
        self._rng = rng

    def rates(self) -> dict[str, Decimal]:
        return {s: Decimal(self._rng.randint(-30, 60)) / 1_000_000 for s in self.engine.symbols}

    def charge(self, accounts: list[AccountState]) -> int:
        """One funding round for ``accounts``; returns the ACCOUNT_UPDATE events it pushed."""
        rates = self.rates()
        return sum(self._charge(acct, rates) for acct in accounts)

    def _charge(self, acct: AccountState, rates: dict[str, Decimal]) -> int:
        engine = self.engine
        now = engine.clock.wall_ms()
        mono = engine.clock.mono()
        per_symbol: dict[str, Decimal] = {}
        for pos in acct.open_positions():
            mark = engine.symbols[pos.symbol].mark
            amount = (-pos.qty * mark * rates[pos.symbol]).quantize(EIGHT)
            per_symbol[pos.symbol] = per_symbol.get(pos.symbol, ZERO) + amount
        charged = 0
        for symbol, amount in per_symbol.items():
            if amount == ZERO:
                continue
            acct.balance += amount
            engine.record_income(
                acct,
                symbol=symbol,
                income_type="FUNDING_FEE",
                amount=amount,
                time_ms=now,
                mono=mono,
                trade_id="",
            )
            payload = account_update(
                "FUNDING_FEE",
                acct.balance,
                balance_change=amount,
                positions=(),
                event_time=now,
                transaction_time=now,
                funding_symbol=symbol,
            )
            engine.sink.emit(acct.name, payload)
            charged += 1
        return charged
