"""Closes the exchange makes on its own: liquidation, auto-deleveraging (ADL), settlement.

They look exactly like Binance's system orders (binance-facts §3):

* liquidation: ``c`` = ``autoclose-<n>``, ``o``/``ot`` = LIQUIDATION, fills with ``x`` = CALCULATED,
  triggered when the mark crosses the position's liquidation price (20x leverage); a MARGIN_CALL
  warns first, and the account's open orders on that symbol expire with ``er`` = 5;
* ADL: ``c`` = ``adl_autoclose``, ``o`` = LIQUIDATION, ``x`` = CALCULATED, no commission, only
  ever against a profitable position;
* settlement (delisting): ``c`` = ``settlement_autoclose-<n>``, a MARKET order at the mark, ``x`` =
  TRADE, no commission;
* delivery (COIN-M dated contracts, ``BTCUSD_250926``): ``c`` = ``delivery_autoclose-<n>``, a
  MARKET order at the mark (the delivery price), ``x`` = TRADE, no commission; its realized PnL
  is the ``income`` type DELIVERED_SETTELMENT (sic).
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.simulator.engine import LEVERAGE, Engine
from fillstream.simulator.events import margin_call
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.positions import PositionState
from fillstream.simulator.state import AccountState

MARGIN_CALL_FRACTION = Decimal("0.7")  # warn once 70 % of the initial margin is gone


class Risk:
    """Liquidation watch and the exchange's forced closes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._warned: set[tuple[str, str, str, int]] = set()

    def on_mark(self, symbol: str, mark: Decimal) -> None:
        """Warn and liquidate every position on ``symbol`` that the new mark puts under water."""
        for acct in self.engine.accounts.values():
            for pos in list(acct.open_positions()):
                if pos.symbol != symbol:
                    continue
                if _crossed(pos, mark, pos.liquidation_price(LEVERAGE)):
                    self.liquidate(acct, pos)
                    continue
                warn_at = pos.entry * (1 - _sign(pos) * MARGIN_CALL_FRACTION / LEVERAGE)
                key = (acct.name, pos.symbol, pos.position_side, pos.opened_at)
                if _crossed(pos, mark, warn_at) and key not in self._warned:
                    self._warned.add(key)
                    now = self.engine.clock.wall_ms()
                    spec = self.engine.symbols[pos.symbol].spec
                    wallet = acct.wallet(spec.margin_asset)
                    payload = margin_call(wallet, pos, mark, now, LEVERAGE)
                    self.engine.sink.emit(acct.name, payload, product=spec.product)

    def liquidate(self, acct: AccountState, pos: PositionState) -> None:
        engine = self.engine
        for order in list(acct.open_orders.values()):
            if order.symbol == pos.symbol:
                engine.end_order(acct, order, "EXPIRED", expiry_reason="5")
        self._force_close(
            acct,
            pos,
            client_order_id=f"autoclose-{engine.next_system_id()}",
            order_type="LIQUIDATION",
            execution="CALCULATED",
            cause="liquidation",
            fee=True,
        )

    def adl(self, acct: AccountState, pos: PositionState) -> None:
        self._force_close(
            acct,
            pos,
            client_order_id="adl_autoclose",
            order_type="LIQUIDATION",
            execution="CALCULATED",
            cause="adl",
            fee=False,
        )

    def settle(self, acct: AccountState, pos: PositionState) -> None:
        self._force_close(
            acct,
            pos,
            client_order_id=f"settlement_autoclose-{self.engine.next_system_id()}",
            order_type="MARKET",
            execution="TRADE",
            cause="settlement",
            fee=False,
        )

    def deliver(self, acct: AccountState, pos: PositionState) -> None:
        """A dated COIN-M contract reached its delivery: the position closes at the mark."""
        spec = self.engine.symbols[pos.symbol].spec
        if spec.perpetual:
            raise ValueError(f"{pos.symbol} is a perpetual: nothing is delivered")
        self._force_close(
            acct,
            pos,
            client_order_id=f"delivery_autoclose-{self.engine.next_system_id()}",
            order_type="MARKET",
            execution="TRADE",
            cause="delivery",
            fee=False,
        )

    def _force_close(
        self,
        acct: AccountState,
        pos: PositionState,
        *,
        client_order_id: str,
        order_type: str,
        execution: str,
        cause: str,
        fee: bool,
    ) -> None:
        if pos.qty == ZERO:
            return
        engine = self.engine
        side = "SELL" if pos.qty > 0 else "BUY"
        order = engine.new_order(
            acct,
            pos.symbol,
            side,
            abs(pos.qty),
            order_type=order_type,
            position_side=pos.position_side,
            client_order_id=client_order_id,
            reduce_only=not acct.hedge,
            time_in_force="IOC",
            cause=cause,
        )
        mark = engine.symbols[pos.symbol].mark
        engine.execute(acct, order, order.orig_qty, mark, maker=False, execution=execution, fee=fee)


def _sign(pos: PositionState) -> int:
    return 1 if pos.qty > 0 else -1


def _crossed(pos: PositionState, mark: Decimal, level: Decimal) -> bool:
    return mark <= level if pos.qty > 0 else mark >= level
