"""The Algo Service: TP/SL/trailing-stop conditional orders, triggered by the mark price.

Since 2025-12-09 Binance keeps conditional orders in a separate service with their own ids
(``algoId``). Lifecycle, as ALGO_UPDATE reports it: NEW → TRIGGERING → TRIGGERED (``ai`` = the
child order id, a string) → FINISHED once the child is done; EXPIRED when the position it protects
is closed by something else; REJECTED when there is nothing left to reduce. The child is a MARKET
order with ``ot`` = the algo type and ``c`` = the algo's ``caid``. As on Binance (Nautilus #3664),
a seeded share of triggers pushes the child's fills *before* the ALGO_UPDATE TRIGGERED.
"""

from __future__ import annotations

import random
from decimal import Decimal

from fillstream.simulator.engine import Engine
from fillstream.simulator.events import algo_update, order_trade_update
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.orders import Algo
from fillstream.simulator.positions import PositionState
from fillstream.simulator.state import AccountState

ALGO_CAUSES = {
    "TAKE_PROFIT_MARKET": "take_profit",
    "STOP_MARKET": "stop_loss",
    "TRAILING_STOP_MARKET": "trailing_stop",
}


class AlgoService:
    """Conditional orders of every account; call :meth:`on_mark` after each mark-price move."""

    def __init__(
        self,
        engine: Engine,
        rng: random.Random,
        child_first_p: float = 0.3,
        *,
        coinm_updates: bool = True,
    ) -> None:
        self.engine = engine
        # COIN-M conditional orders live in the Algo Service since the 2026 CM-UM integration;
        # whether dstream pushes ALGO_UPDATE for them is unconfirmed (binance-wave2 §B.2).
        self.coinm_updates = coinm_updates
        self._rng = rng
        self._child_first_p = child_first_p
        self._next_algo_id = 1_000_000_246_000
        engine.on_close.append(self.expire_for)

    def place(
        self,
        acct: AccountState,
        symbol: str,
        order_type: str,
        side: str,
        *,
        position_side: str | None = None,
        trigger_price: Decimal = ZERO,
        quantity: Decimal = ZERO,
        close_position: bool = False,
        reduce_only: bool = False,
        callback_rate: Decimal | None = None,
        activate_price: Decimal | None = None,
        client_algo_id: str | None = None,
    ) -> Algo:
        """Accept a conditional order (ALGO_UPDATE NEW). Raises ``ValueError`` on bad input.

        ``reduce_only`` defaults to false, as on Binance; with ``close_position`` it is false
        whatever was asked (Binance refuses the pair; the close-all already only reduces).
        """
        if order_type not in ALGO_CAUSES:
            raise ValueError(f"unsupported algo order type {order_type!r}")
        engine = self.engine
        spec = engine.symbol(symbol).spec
        ps = position_side or engine.default_position_side(acct, side, reduce=True)
        if order_type == "TRAILING_STOP_MARKET":
            if callback_rate is None or not Decimal("0.1") <= callback_rate <= Decimal(10):
                raise ValueError("callbackRate must be within [0.1, 10]")
        elif trigger_price <= ZERO:
            raise ValueError("triggerPrice is mandatory")
        if not close_position and quantity <= ZERO:
            raise ValueError("quantity is mandatory unless closePosition=true")
        now = engine.clock.wall_ms()
        self._next_algo_id += 1
        mark = engine.symbols[symbol].mark
        algo = Algo(
            spec=spec,
            algo_id=self._next_algo_id,
            client_algo_id=client_algo_id or engine.next_client_id(_prefix(order_type)),
            order_type=order_type,
            side=side,
            position_side=ps,
            quantity=spec.qty(quantity) if quantity > ZERO else ZERO,
            trigger_price=spec.price(trigger_price) if trigger_price > ZERO else ZERO,
            create_time=now,
            created_mono=engine.clock.mono(),
            close_position=close_position,
            reduce_only=reduce_only and not close_position,
            update_time=now,
            callback_rate=callback_rate,
            activate_price=spec.price(activate_price) if activate_price else None,
            activated=activate_price is None,
            extreme=mark,
        )
        acct.algos[algo.algo_id] = algo
        acct.open_algos[algo.algo_id] = algo
        self._changed(acct, algo)
        return algo

    def cancel(self, acct: AccountState, algo: Algo, status: str = "CANCELED") -> None:
        if not algo.is_open:
            return
        algo.status = status
        algo.update_time = self.engine.clock.wall_ms()
        acct.open_algos.pop(algo.algo_id, None)
        self._changed(acct, algo)

    def expire_for(self, acct: AccountState, pos: PositionState) -> None:
        """A position closed: its remaining conditional orders expire (nothing left to protect)."""
        for algo in list(acct.open_algos.values()):
            if (
                algo.symbol == pos.symbol
                and algo.position_side == pos.position_side
                and _reducing(algo)
            ):
                self.cancel(acct, algo, "EXPIRED")

    def on_mark(self, symbol: str, mark: Decimal) -> None:
        """Trigger every open algo on ``symbol`` whose condition the new mark meets."""
        for acct in self.engine.accounts.values():
            if not acct.open_algos:
                continue
            for algo in list(acct.open_algos.values()):
                if algo.symbol == symbol and algo.is_open and self._condition(acct, algo, mark):
                    self.trigger(acct, algo)

    def _condition(self, acct: AccountState, algo: Algo, mark: Decimal) -> bool:
        selling = algo.side == "SELL"
        if algo.order_type == "TAKE_PROFIT_MARKET":
            return mark >= algo.trigger_price if selling else mark <= algo.trigger_price
        if algo.order_type == "STOP_MARKET":
            return mark <= algo.trigger_price if selling else mark >= algo.trigger_price
        # Trailing stop: activate, then follow the best mark and trigger on a callback from it.
        if not algo.activated:
            ap = algo.activate_price or ZERO
            if (selling and mark >= ap) or (not selling and mark <= ap):
                algo.activated = True
                algo.extreme = mark
                algo.update_time = self.engine.clock.wall_ms()
                self._changed(acct, algo)
            return False
        rate = (algo.callback_rate or ZERO) / 100
        if selling:
            algo.extreme = max(algo.extreme, mark)
            return mark <= algo.extreme * (1 - rate)
        algo.extreme = min(algo.extreme, mark)
        return mark >= algo.extreme * (1 + rate)

    def trigger(self, acct: AccountState, algo: Algo) -> None:
        """Forward ``algo`` to the matching engine as a MARKET child order and fill it."""
        engine = self.engine
        emit = engine.sink.emit
        now = engine.clock.wall_ms()
        algo.status = "TRIGGERING"
        algo.trigger_time = now
        algo.update_time = now
        acct.open_algos.pop(algo.algo_id, None)
        self._changed(acct, algo)
        qty = self._child_qty(acct, algo)
        if qty <= ZERO:
            algo.status = "REJECTED"
            algo.reject_reason = "Reduce Only reject"
            self._changed(acct, algo)
            return
        child_first = self._rng.random() < self._child_first_p
        product = algo.spec.product
        child = engine.new_order(
            acct,
            algo.symbol,
            algo.side,
            qty,
            order_type="MARKET",
            position_side=algo.position_side,
            client_order_id=algo.client_algo_id,
            reduce_only=algo.reduce_only,
            close_position=algo.close_position,
            orig_type=algo.order_type,
            algo_id=algo.algo_id,
            cause=ALGO_CAUSES[algo.order_type],
            emit_new=False,
            stop_price=algo.trigger_price,
            activate_price=algo.activate_price,
            price_rate=algo.callback_rate,
        )
        algo.child = child
        algo.status = "TRIGGERED"
        new_event = order_trade_update(child, "NEW", now)
        if child_first:
            emit(acct.name, new_event, product=product)
            engine.sweep(acct, child)
            self._changed(acct, algo)
        else:
            self._changed(acct, algo)
            emit(acct.name, new_event, product=product)
            engine.sweep(acct, child)
        algo.status = "FINISHED"
        algo.update_time = engine.clock.wall_ms()
        self._changed(acct, algo)

    @staticmethod
    def _child_qty(acct: AccountState, algo: Algo) -> Decimal:
        """What the child order may trade: all of ``quantity`` unless the algo only reduces."""
        if not _reducing(algo):
            return algo.quantity
        pos = acct.position(algo.symbol, algo.position_side)
        held = -pos.qty if algo.side == "BUY" else pos.qty
        if held <= ZERO:
            return ZERO
        return held if algo.close_position else min(algo.quantity, held)

    def _changed(self, acct: AccountState, algo: Algo) -> None:
        engine = self.engine
        acct.snapshot(algo, engine.clock.mono(), algo.rest_row)
        product = algo.spec.product
        if product == "usdm" or self.coinm_updates:
            payload = algo_update(algo, engine.clock.wall_ms())
            engine.sink.emit(acct.name, payload, product=product)


def _reducing(algo: Algo) -> bool:
    """Close-all, reduce-only, or the closing side of a hedge-mode position."""
    if algo.close_position or algo.reduce_only:
        return True
    return (algo.position_side, algo.side) in (("LONG", "SELL"), ("SHORT", "BUY"))


def _prefix(order_type: str) -> str:
    return {"TAKE_PROFIT_MARKET": "tp", "STOP_MARKET": "sl"}.get(order_type, "ts")
