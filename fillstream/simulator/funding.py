"""Funding fees: every ``funding_interval_s`` of sim time (8 h by default), or on demand.

Each open position pays (or receives) ``position * mark * rate`` (COIN-M: ``contracts * size /
mark * rate``, in the coin; dated contracts pay none); the rate per symbol is drawn from
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

    def __init__(
        self, engine: Engine, rng: random.Random, coinm_rng: random.Random | None = None
    ) -> None:
        self.engine = engine
        self._rng = rng
        self._coinm_rng = coinm_rng or rng  # its own draws: USDⓈ-M rates do not depend on COIN-M

    def rates(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for name, state in self.engine.symbols.items():
            rng = self._coinm_rng if state.spec.inverse else self._rng
            out[name] = Decimal(rng.randint(-30, 60)) / 1_000_000
        return out

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
            sym = engine.symbols[pos.symbol]
            spec = sym.spec
            if not spec.perpetual:
                continue
            value = pos.qty * (spec.contract_size / sym.mark if spec.inverse else sym.mark)
            amount = (-value * rates[pos.symbol]).quantize(EIGHT)
            per_symbol[pos.symbol] = per_symbol.get(pos.symbol, ZERO) + amount
        charged = 0
        for symbol, amount in per_symbol.items():
            if amount == ZERO:
                continue
            spec = engine.symbols[symbol].spec
            asset = spec.margin_asset
            balance = acct.credit(asset, amount)
            engine.record_income(
                acct,
                symbol=symbol,
                income_type="FUNDING_FEE",
                amount=amount,
                time_ms=now,
                mono=mono,
                trade_id="",
                asset=asset,
            )
            payload = account_update(
                "FUNDING_FEE",
                balance,
                balance_change=amount,
                positions=(),
                event_time=now,
                transaction_time=now,
                funding_symbol=symbol,
                asset=asset,
                alias=acct.account.alias if spec.inverse else None,
            )
            engine.sink.emit(acct.name, payload, product=spec.product)
            charged += 1
        return charged
