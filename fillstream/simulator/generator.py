"""The seeded activity generator.

Activity advances in **rounds**. A round moves every symbol's mark one step of its walk (which may
trigger conditional orders, margin calls and liquidations), works resting limit orders (partial
maker fills, the odd cancel), then lets every account, in configuration order, take one action:
market orders (sometimes sweeping several levels), limit orders, increases, partial and full
closes, flips (one-way mode), TP/SL pairs and trailing stops through the Algo Service, and rarely an
ADL or a settlement. All randomness comes from generators seeded by (seed, account) and
(seed, symbol), so the sequence of rounds, hence every id, price, fill and close, depends only on
the seed and the round count; wall time only decides *when* a round runs.

Each account trades the symbols of its product (``market``): a COIN-M account opens positions of
the same USD sizes, in contracts, and its "settle" action is a delivery on a dated contract
(``delivery_autoclose-``; a settlement on a perpetual).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from fillstream.simulator.algos import AlgoService
from fillstream.simulator.engine import Engine
from fillstream.simulator.market import SymbolState
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.positions import PositionState
from fillstream.simulator.risk import Risk
from fillstream.simulator.state import AccountState

_ACTIONS = (
    ("increase", 14),
    ("reduce", 14),
    ("close", 9),
    ("flip", 5),  # one-way mode; in hedge mode: open the other side as well
    ("limit", 16),
    ("brackets", 10),
    ("trailing", 5),
    ("adl", 1.2),
    ("settle", 0.6),
    ("cancel", 3),
    ("idle", 12),
)
_OPEN_ACTIONS = (("market", 55), ("limit", 30), ("idle", 15))


class Generator:
    """Deterministic activity for every account; one :meth:`round` at a time."""

    def __init__(
        self,
        engine: Engine,
        *,
        algos: AlgoService,
        risk: Risk,
        seed: int,
        symbols: list[SymbolState],
        accounts: list[AccountState],
        on_mark: Callable[[str, Decimal], None],
    ) -> None:
        self.engine = engine
        self._on_mark = on_mark
        self.algos = algos
        self.risk = risk
        self.symbols = symbols
        self.accounts = accounts
        self._rngs = {a.name: random.Random(f"{seed}:account:{a.name}") for a in accounts}
        self._by_market: dict[str, list[SymbolState]] = {}
        for sym in symbols:
            self._by_market.setdefault(sym.spec.product, []).append(sym)
        self.rounds = 0

    def round(self) -> int:
        """Run one round; returns the number of fills it produced across all accounts."""
        before = sum(a.fills_generated for a in self.accounts)
        for sym in self.symbols:
            self._on_mark(sym.spec.symbol, sym.walk())
        for acct in self.accounts:
            rng = self._rngs[acct.name]
            self._work_limits(acct, rng)
            self._act(acct, rng)
        self.rounds += 1
        return sum(a.fills_generated for a in self.accounts) - before

    # -- resting orders ------------------------------------------------------------------------

    def _work_limits(self, acct: AccountState, rng: random.Random) -> None:
        engine = self.engine
        for order in list(acct.open_orders.values()):
            # Only the generator's own orders; manual ones fill when the mark reaches them.
            if not order.client_order_id.startswith("gen-") or not order.is_open:
                continue
            roll = rng.random()
            if roll < 0.04:
                engine.end_order(acct, order, "CANCELED")
            elif roll < 0.55:
                spec = order.spec
                part = spec.qty(order.orig_qty * Decimal(rng.choice((1, 2, 3))) / 3)
                qty = min(part, order.remaining)
                if qty > ZERO:
                    try:
                        engine.execute(acct, order, qty, order.price, maker=True)
                    except ValueError:
                        engine.end_order(acct, order, "EXPIRED", expiry_reason="4")

    # -- one action ----------------------------------------------------------------------------

    def _act(self, acct: AccountState, rng: random.Random) -> None:
        open_positions = list(acct.open_positions())
        if not open_positions:
            self._act_flat(acct, rng)
            return
        action = _pick(rng, _ACTIONS)
        pos = rng.choice(open_positions)
        sym = self.engine.symbols[pos.symbol]
        if action in ("increase", "reduce", "close", "flip"):
            self._resize(acct, rng, action, pos, sym)
        else:
            self._manage(acct, rng, action, pos, sym)

    def _act_flat(self, acct: AccountState, rng: random.Random) -> None:
        """No open position: open one (market or limit)."""
        action = _pick(rng, _OPEN_ACTIONS)
        choices = self._by_market.get(acct.market)
        if not choices:
            return
        sym = rng.choice(choices)
        side = rng.choice(("BUY", "SELL"))
        if action == "market":
            self._open_market(acct, rng, sym, side)
        elif action == "limit":
            self._limit(acct, rng, sym, side)

    def _resize(
        self,
        acct: AccountState,
        rng: random.Random,
        action: str,
        pos: PositionState,
        sym: SymbolState,
    ) -> None:
        """Market orders on ``pos``: increase, reduce, close or flip it."""
        closing = "SELL" if pos.qty > 0 else "BUY"
        ps = pos.position_side
        held = abs(pos.qty)
        if action == "increase":
            opening = "BUY" if pos.qty > 0 else "SELL"
            self._market(acct, rng, sym=sym, side=opening, qty=self._lot(rng, sym), ps=ps)
        elif action == "reduce":
            qty = sym.spec.qty(held * Decimal(rng.randint(2, 7)) / 10)
            if qty < held:
                self._market(acct, rng, sym=sym, side=closing, qty=qty, ps=ps)
        elif action == "close":
            self._market(acct, rng, sym=sym, side=closing, qty=held, ps=ps)
        elif not acct.hedge:  # flip, one-way mode: past zero in one order
            self._market(acct, rng, sym=sym, side=closing, qty=held + self._lot(rng, sym), ps=ps)
        else:  # flip, hedge mode: open the other side
            other = "SHORT" if ps == "LONG" else "LONG"
            if acct.position(pos.symbol, other).qty == ZERO:
                lot = self._lot(rng, sym)
                self._market(acct, rng, sym=sym, side=closing, qty=lot, ps=other)

    def _manage(
        self,
        acct: AccountState,
        rng: random.Random,
        action: str,
        pos: PositionState,
        sym: SymbolState,
    ) -> None:
        """Everything else around ``pos``: orders, brackets, trailing stops, ADL, settlement."""
        closing = "SELL" if pos.qty > 0 else "BUY"
        if action == "limit":
            opening = "BUY" if pos.qty > 0 else "SELL"
            side = rng.choice((opening, closing)) if not acct.hedge else opening
            self._limit(acct, rng, sym, side, pos.position_side)
        elif action == "brackets" and not self._has_algos(acct, pos):
            self._brackets(acct, rng, sym, pos, closing)
        elif action == "trailing" and not self._has_algos(acct, pos):
            self._trailing(acct, rng, sym, pos, closing)
        elif action == "adl" and pos.unrealized(sym.mark) > ZERO:
            self.risk.adl(acct, pos)
        elif action == "settle" and not sym.spec.perpetual:
            self.risk.deliver(acct, pos)
        elif action == "settle":
            self.risk.settle(acct, pos)
        elif action == "cancel" and acct.open_orders:
            order = rng.choice(list(acct.open_orders.values()))
            self.engine.end_order(acct, order, "CANCELED")

    def _trailing(
        self,
        acct: AccountState,
        rng: random.Random,
        sym: SymbolState,
        pos: PositionState,
        side: str,
    ) -> None:
        rate = Decimal(rng.choice(("0.3", "0.5", "0.8", "1.0")))
        activate = None
        if rng.random() < 0.5:
            bump = Decimal(1) + Decimal(rng.randint(1, 4)) / 1000 * (1 if pos.qty > 0 else -1)
            activate = sym.mark * bump
        self.algos.place(
            acct,
            sym.spec.symbol,
            "TRAILING_STOP_MARKET",
            side,
            position_side=pos.position_side,
            close_position=True,
            callback_rate=rate,
            activate_price=activate,
        )

    def _lot(self, rng: random.Random, sym: SymbolState) -> Decimal:
        """A position size worth one of a few USD notionals (COIN-M: in contracts)."""
        notional = Decimal(rng.choice((200, 500, 800, 1200, 2000, 3500)))
        spec = sym.spec
        return spec.qty(notional / (spec.contract_size if spec.inverse else sym.mark))

    def _open_market(
        self, acct: AccountState, rng: random.Random, sym: SymbolState, side: str
    ) -> None:
        ps = self.engine.default_position_side(acct, side)
        self._market(acct, rng, sym=sym, side=side, qty=self._lot(rng, sym), ps=ps)

    def _market(
        self,
        acct: AccountState,
        rng: random.Random,
        *,
        sym: SymbolState,
        side: str,
        qty: Decimal,
        ps: str,
    ) -> None:
        parts = 1 if rng.random() < 0.7 else rng.randint(2, 3)
        self.engine.market(acct, sym.spec.symbol, side, qty, parts=parts, position_side=ps)

    def _limit(
        self,
        acct: AccountState,
        rng: random.Random,
        sym: SymbolState,
        side: str,
        ps: str | None = None,
    ) -> None:
        offset = Decimal(rng.randint(1, 8)) / 10_000
        price = sym.mark * (1 - offset if side == "BUY" else 1 + offset)
        engine = self.engine
        ps = ps or engine.default_position_side(acct, side)
        engine.new_order(
            acct,
            sym.spec.symbol,
            side,
            self._lot(rng, sym),
            order_type="LIMIT",
            position_side=ps,
            price=price,
            client_order_id=engine.next_client_id("gen"),
        )

    def _brackets(
        self,
        acct: AccountState,
        rng: random.Random,
        sym: SymbolState,
        pos: PositionState,
        closing: str,
    ) -> None:
        up = Decimal(1) + Decimal(rng.randint(2, 12)) / 1000
        down = Decimal(1) - Decimal(rng.randint(2, 12)) / 1000
        long = pos.qty > 0
        tp = sym.mark * (up if long else down)
        sl = sym.mark * (down if long else up)
        whole = rng.random() < 0.6
        qty = abs(pos.qty)
        for order_type, trigger in (("TAKE_PROFIT_MARKET", tp), ("STOP_MARKET", sl)):
            self.algos.place(
                acct,
                sym.spec.symbol,
                order_type,
                closing,
                position_side=pos.position_side,
                trigger_price=trigger,
                quantity=ZERO if whole else qty,
                close_position=whole,
                reduce_only=not whole and not acct.hedge,
            )

    @staticmethod
    def _has_algos(acct: AccountState, pos: PositionState) -> bool:
        return any(
            a.symbol == pos.symbol and a.position_side == pos.position_side
            for a in acct.open_algos.values()
        )


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    total = sum(weight for _, weight in table)
    roll = rng.random() * total
    for name, weight in table:
        roll -= weight
        if roll < 0:
            return name
    return table[-1][0]
