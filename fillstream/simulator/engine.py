"""The matching engine: orders, fills, positions, realized PnL, and every record they leave.

Each execution updates, in one synchronous step (so REST and the stream always agree): the order,
the position, the balance, the ``userTrades`` log, ``income`` rows (REALIZED_PNL, COMMISSION), the
ground truth (fills and closes with their true reason), and the user-data events, emitted in
Binance's order: TRADE_LITE, ORDER_TRADE_UPDATE, ACCOUNT_UPDATE (``m`` = ORDER).

Commission sign: ``commission`` in ``userTrades`` and ``n`` in ORDER_TRADE_UPDATE are **positive
when a fee is charged** (maker 0.02 %, taker 0.05 %, asset USDT); the matching ``income``
COMMISSION row is negative (money leaving the wallet), as on Binance.

COIN-M symbols (``spec.inverse``): quantities are contracts; the fee is the rate times the coin
traded (``contracts * contractSize / price``), and fees, realized PnL and the wallet are in the
margin coin (:mod:`.positions` has the inverse PnL rules). No TRADE_LITE.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from fillstream.simulator.clock import SimClock
from fillstream.simulator.events import (
    FillInfo,
    Payload,
    account_update,
    order_trade_update,
    position_entry,
    trade_lite,
)
from fillstream.simulator.market import SymbolSpec, SymbolState
from fillstream.simulator.numbers import EIGHT, ZERO, fmt_amount, fmt_plain
from fillstream.simulator.orders import Order
from fillstream.simulator.positions import Lifecycle, PositionState
from fillstream.simulator.state import AccountState

MAKER_RATE = Decimal("0.0002")
TAKER_RATE = Decimal("0.0005")
LEVERAGE = 20
SYSTEM_CAUSES = frozenset({"liquidation", "adl", "settlement", "delivery"})


class EventSink(Protocol):
    """Receives every user-data event of an account, in emission order."""

    def emit(
        self, account: str, payload: Payload, *, fill: bool = False, product: str = "usdm"
    ) -> None: ...


class Engine:
    """Orders and executions for every account. Synchronous; the event loop serializes calls."""

    def __init__(
        self,
        clock: SimClock,
        symbols: dict[str, SymbolState],
        accounts: dict[str, AccountState],
        sink: EventSink,
    ) -> None:
        self.clock = clock
        self.symbols = symbols
        self.accounts = accounts
        self.sink = sink
        self._tran_id = 9_000_000_000
        self._system_seq = 1_788_000_000_000
        self._client_seq = 0
        self.on_close: list[_CloseHook] = []

    # -- lookups -------------------------------------------------------------------------------

    def symbol(self, name: str) -> SymbolState:
        state = self.symbols.get(name)
        if state is None:
            raise ValueError(f"unknown symbol {name!r}")
        return state

    def account(self, name: str) -> AccountState:
        state = self.accounts.get(name)
        if state is None:
            raise ValueError(f"unknown account {name!r}")
        return state

    def next_client_id(self, prefix: str = "sim") -> str:
        self._client_seq += 1
        return f"{prefix}-{self._client_seq:08d}"

    def next_system_id(self) -> int:
        self._system_seq += 1
        return self._system_seq

    def next_tran_id(self) -> int:
        self._tran_id += 1
        return self._tran_id

    # -- orders --------------------------------------------------------------------------------

    def default_position_side(self, acct: AccountState, side: str, reduce: bool = False) -> str:
        """``BOTH`` in one-way mode; in hedge mode the side that ``side`` opens (or reduces)."""
        if not acct.hedge:
            return "BOTH"
        opens_long = side == "BUY"
        if reduce:
            return "SHORT" if opens_long else "LONG"
        return "LONG" if opens_long else "SHORT"

    def new_order(
        self,
        acct: AccountState,
        symbol: str,
        side: str,
        qty: Decimal,
        *,
        order_type: str = "MARKET",
        position_side: str | None = None,
        price: Decimal = ZERO,
        client_order_id: str | None = None,
        reduce_only: bool = False,
        orig_type: str | None = None,
        time_in_force: str | None = None,
        close_position: bool = False,
        algo_id: int | None = None,
        cause: str = "manual",
        emit_new: bool = True,
        stop_price: Decimal = ZERO,
        activate_price: Decimal | None = None,
        price_rate: Decimal | None = None,
    ) -> Order:
        """Accept an order (status NEW) and push its NEW ORDER_TRADE_UPDATE.

        Reducing orders (``reduce_only``, ``close_position``, or the closing side of a hedge-mode
        position) are clamped to the position; with nothing to reduce they raise ``ValueError``.
        """
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        sym = self.symbol(symbol)
        spec = sym.spec
        ps = position_side or self.default_position_side(acct, side)
        if acct.hedge and ps == "BOTH":
            raise ValueError(f"account {acct.name} is in hedge mode: positionSide LONG or SHORT")
        if not acct.hedge and ps != "BOTH":
            raise ValueError(f"account {acct.name} is in one-way mode: positionSide BOTH")
        qty = spec.qty(qty)
        pos = acct.position(symbol, ps)
        if _reduces(side, ps, reduce_only=reduce_only, close_position=close_position):
            held = -pos.qty if side == "BUY" else pos.qty
            if held <= ZERO:
                raise ValueError(f"nothing to reduce on {symbol} {ps} for {acct.name}")
            qty = min(qty, held) if not close_position else held
        now = self.clock.wall_ms()
        order = Order(
            spec=spec,
            order_id=sym.next_order_id(),
            client_order_id=client_order_id or self.next_client_id(),
            side=side,
            position_side=ps,
            order_type=order_type,
            orig_type=orig_type or order_type,
            time_in_force=time_in_force or ("GTC" if order_type == "LIMIT" else "IOC"),
            orig_qty=qty,
            price=spec.price(price) if price else ZERO,
            time=now,
            created_mono=self.clock.mono(),
            reduce_only=reduce_only,
            close_position=close_position,
            update_time=now,
            algo_id=algo_id,
            cause=cause,
            stop_price=stop_price,
            activate_price=activate_price,
            price_rate=price_rate,
            working_type="MARK_PRICE" if algo_id is not None else "CONTRACT_PRICE",
            alias=acct.account.alias if spec.inverse else "",
        )
        if order_type in {"MARKET", "LIQUIDATION"}:
            order.time_in_force = "GTC" if order_type == "MARKET" else "IOC"
        acct.add_order(order)
        acct.order_changed(order, order.created_mono)
        if emit_new:
            self.sink.emit(acct.name, order_trade_update(order, "NEW", now), product=spec.product)
        return order

    def end_order(
        self, acct: AccountState, order: Order, status: str, expiry_reason: str = "0"
    ) -> None:
        """Cancel or expire what is left of an open order (no-op if it is already done)."""
        if not order.is_open:
            return
        now = self.clock.wall_ms()
        order.status = status
        order.expiry_reason = expiry_reason
        order.update_time = now
        acct.order_changed(order, self.clock.mono())
        execution = "CANCELED" if status == "CANCELED" else "EXPIRED"
        payload = order_trade_update(order, execution, now)
        self.sink.emit(acct.name, payload, product=order.spec.product)

    def market(
        self,
        acct: AccountState,
        symbol: str,
        side: str,
        qty: Decimal,
        *,
        parts: int = 1,
        position_side: str | None = None,
        client_order_id: str | None = None,
        reduce_only: bool = False,
        cause: str = "manual",
    ) -> Order:
        """A taker order that sweeps ``parts`` price levels around the mark (one fill each)."""
        order = self.new_order(
            acct,
            symbol,
            side,
            qty,
            position_side=position_side,
            client_order_id=client_order_id,
            reduce_only=reduce_only,
            cause=cause,
        )
        self.sweep(acct, order, parts=parts)
        return order

    def sweep(
        self,
        acct: AccountState,
        order: Order,
        *,
        parts: int = 1,
        slippage: Decimal = Decimal("0.0001"),
        execution: str = "TRADE",
        fee: bool = True,
    ) -> None:
        """Fill the rest of ``order`` as taker in up to ``parts`` executions at worsening prices."""
        sym = self.symbols[order.symbol]
        spec = sym.spec
        remaining = order.remaining
        parts = max(1, min(parts, int(remaining / spec.step)))
        chunk = spec.qty(remaining / parts)
        direction = 1 if order.side == "BUY" else -1
        level = 0
        while order.remaining > ZERO:
            qty = chunk if level < parts - 1 else order.remaining
            qty = min(qty, order.remaining)
            price = spec.price(sym.mark * (1 + direction * slippage * level))
            self.execute(acct, order, qty, price, maker=False, execution=execution, fee=fee)
            level += 1

    # -- executions ----------------------------------------------------------------------------

    def execute(
        self,
        acct: AccountState,
        order: Order,
        qty: Decimal,
        price: Decimal,
        *,
        maker: bool,
        execution: str = "TRADE",
        fee: bool = True,
    ) -> FillInfo:
        """One fill of ``order``: updates every record and emits the events (see module doc)."""
        sym = self.symbols[order.symbol]
        spec = sym.spec
        pos = acct.position(order.symbol, order.position_side)
        pos.contract_size = spec.contract_size
        if _reduces(
            order.side,
            order.position_side,
            reduce_only=order.reduce_only,
            close_position=order.close_position,
        ):
            # A resting reduce order may outlive part of its position: never cross zero.
            held = -pos.qty if order.side == "BUY" else pos.qty
            if qty > held:
                raise ValueError(f"order {order.order_id} would reduce past zero")
        clock = self.clock
        now = clock.wall_ms()
        mono = clock.mono()
        trade_id = sym.next_trade_id()
        money = _Money(spec, qty, price, (MAKER_RATE if maker else TAKER_RATE) if fee else ZERO)
        delta = qty if order.side == "BUY" else -qty
        realized, closed = pos.apply(delta, price, money.commission, now)
        order.executed_qty += qty
        order.cum_quote += money.quote
        order.cum_base += money.base
        order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = now
        acct.order_changed(order, mono)
        acct.snapshot(pos, mono, pos.core)
        acct.credit(spec.margin_asset, realized - money.commission)
        info = FillInfo(
            trade_id,
            spec.fmt_qty(qty),
            spec.fmt_price(price),
            fmt_amount(money.commission),
            fmt_amount(realized),
            maker,
            now,
        )
        row = _trade_row(order, info, money)
        acct.add_trade(spec.symbol, trade_id, now, mono, row)
        acct.fills_generated += 1
        self._book_income(
            acct,
            order,
            realized=realized,
            commission=money.commission,
            now=now,
            mono=mono,
            trade_id=trade_id,
        )
        if closed is not None:
            self._record_close(acct, order=order, pos=pos, trade_id=trade_id, life=closed, now=now)
        self._emit_fill(acct, order, info, execution=execution, pos=pos, now=now)
        if closed is not None:
            for hook in self.on_close:
                hook(acct, pos)
        return info

    def _book_income(
        self,
        acct: AccountState,
        order: Order,
        *,
        realized: Decimal,
        commission: Decimal,
        now: int,
        mono: float,
        trade_id: int,
    ) -> None:
        """The fill's ``income`` rows: realized PnL (a delivery's as DELIVERED_SETTELMENT, sic)
        and the commission (negative: it leaves the wallet)."""
        symbol = order.symbol
        asset = order.spec.margin_asset
        if realized != ZERO:
            kind = "DELIVERED_SETTELMENT" if order.cause == "delivery" else "REALIZED_PNL"
            self.record_income(
                acct,
                symbol=symbol,
                income_type=kind,
                amount=realized,
                time_ms=now,
                mono=mono,
                trade_id=str(trade_id),
                asset=asset,
            )
        if commission != ZERO:
            self.record_income(
                acct,
                symbol=symbol,
                income_type="COMMISSION",
                amount=-commission,
                time_ms=now,
                mono=mono,
                trade_id=str(trade_id),
                asset=asset,
            )

    def _emit_fill(
        self,
        acct: AccountState,
        order: Order,
        info: FillInfo,
        *,
        execution: str,
        pos: PositionState,
        now: int,
    ) -> None:
        """TRADE_LITE (USDⓈ-M only), ORDER_TRADE_UPDATE, ACCOUNT_UPDATE ``m`` = ORDER."""
        spec = order.spec
        product = spec.product
        emit = self.sink.emit
        if execution == "TRADE" and not spec.inverse:
            emit(acct.name, trade_lite(order, info, now))
        emit(acct.name, order_trade_update(order, execution, now, info), fill=True, product=product)
        update = account_update(
            "ORDER",
            acct.wallet(spec.margin_asset),
            balance_change=ZERO,
            positions=self._positions_pushed(acct, pos),
            event_time=now,
            transaction_time=now,
            asset=spec.margin_asset,
            alias=acct.account.alias if spec.inverse else None,
        )
        emit(acct.name, update, product=product)

    def _positions_pushed(self, acct: AccountState, pos: PositionState) -> list[Payload]:
        """USDⓈ-M pushes the changed position; COIN-M "all symbols" (of that margin coin)."""
        spec = self.symbols[pos.symbol].spec
        if not spec.inverse:
            return [position_entry(spec, pos, self.symbols[pos.symbol].mark, TAKER_RATE)]
        shown = [pos] + [
            p
            for p in acct.open_positions()
            if p is not pos and self.symbols[p.symbol].spec.margin_asset == spec.margin_asset
        ]
        return [
            position_entry(self.symbols[p.symbol].spec, p, self.symbols[p.symbol].mark, TAKER_RATE)
            for p in shown
        ]

    def record_income(
        self,
        acct: AccountState,
        *,
        symbol: str,
        income_type: str,
        amount: Decimal,
        time_ms: int,
        mono: float,
        trade_id: str,
        asset: str = "USDT",
    ) -> None:
        acct.add_income(
            time_ms,
            mono,
            {
                "symbol": symbol,
                "incomeType": income_type,
                "income": fmt_amount(amount),
                "asset": asset,
                "info": income_type,
                "time": time_ms,
                "tranId": self.next_tran_id(),
                "tradeId": trade_id,
            },
        )

    def _record_close(
        self,
        acct: AccountState,
        *,
        order: Order,
        pos: PositionState,
        trade_id: int,
        life: Lifecycle,
        now: int,
    ) -> None:
        spec = order.spec
        close: dict[str, object] = {
            "symbol": spec.symbol,
            "positionSide": pos.position_side,
            "reason": order.cause,
            "realizedPnl": fmt_amount(life.realized_pnl),
            "closeTradeId": trade_id,
            "closeOrderId": order.order_id,
            "qty": spec.fmt_qty(life.max_qty),
            "entryPrice": fmt_plain(life.entry_price),
            "fees": fmt_amount(life.fees),
            "openedAt": life.opened_at,
            "closedAt": now,
        }
        if spec.inverse:  # COIN-M: qty in contracts, money in the margin coin
            close["marginAsset"] = spec.margin_asset
            close["contractSize"] = int(spec.contract_size)
        acct.closes.append(close)


class _Money:
    """What one fill is worth: ``quote`` (USDⓈ-M: USDT; COIN-M: USD, contracts * size),
    ``base`` (the coin), and the commission, in the margin asset, rounded to 8 decimals."""

    __slots__ = ("base", "commission", "quote")

    def __init__(self, spec: SymbolSpec, qty: Decimal, price: Decimal, rate: Decimal) -> None:
        if spec.inverse:
            self.quote = qty * spec.contract_size
            self.base = spec.base_qty(qty, price)
            self.commission = (self.base * rate).quantize(EIGHT)
        else:
            self.quote = price * qty
            self.base = qty
            self.commission = (self.quote * rate).quantize(EIGHT)


def _trade_row(order: Order, info: FillInfo, money: _Money) -> dict[str, object]:
    """The ``userTrades`` row (COIN-M: ``qty`` in contracts, ``baseQty`` in the coin)."""
    spec = order.spec
    inverse = spec.inverse
    return {
        "buyer": order.side == "BUY",
        "commission": info.commission,
        "commissionAsset": spec.margin_asset,
        "id": info.trade_id,
        "maker": info.maker,
        "orderId": order.order_id,
        "price": info.price,
        "qty": info.qty,
        "quoteQty": fmt_amount(money.quote),
        "realizedPnl": info.realized,
        "side": order.side,
        "positionSide": order.position_side,
        "symbol": spec.symbol,
        "time": info.time,
        "marginAsset": spec.margin_asset,
        "baseQty": fmt_amount(money.base) if inverse else info.qty,
        "pair": spec.pair,
    }


def _reduces(side: str, position_side: str, *, reduce_only: bool, close_position: bool) -> bool:
    """Reduce-only, close-all, or the closing side of a hedge-mode position."""
    if reduce_only or close_position:
        return True
    return (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))


class _CloseHook(Protocol):
    def __call__(self, acct: AccountState, pos: PositionState) -> None: ...
