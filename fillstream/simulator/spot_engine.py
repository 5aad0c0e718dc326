"""The spot matching engine: orders, fills, balances, and every record and event they leave.

One execution updates, in one synchronous step (so REST and the stream agree): the order, the
balances (free/locked), the ``myTrades`` log, the ground truth, and the events, in Binance's
order: ``executionReport`` then ``outboundAccountPosition`` with the assets it may have changed.
Order lists (OCO, OTO) add ``listStatus`` after the executionReports of their legs.

Balances: a resting limit buy locks ``price * qty`` of the quote asset, a resting sell locks the
base quantity (an OCO's legs share one lock, held by its first leg; an OTO's pending order locks
when it becomes working). Market orders spend free balance. Commission: the symbol's rate
(0.1 %, zero-fee pairs 0) of the asset received, or 75 % of that value in BNB when the account
pays fees in BNB and holds enough; ``commission`` is positive, as in ``myTrades``.
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.simulator.clock import SimClock
from fillstream.simulator.engine import EventSink
from fillstream.simulator.events import Payload
from fillstream.simulator.market import SPOT, SymbolState
from fillstream.simulator.numbers import EIGHT, ZERO
from fillstream.simulator.spot_book import SpotBook
from fillstream.simulator.spot_events import (
    Execution,
    account_position,
    balance_update,
    execution_report,
    external_lock_update,
    list_status,
)
from fillstream.simulator.spot_market import BNB_DISCOUNT, f8, fee_rate
from fillstream.simulator.spot_orders import SpotOrder, SpotOrderList

_STABLE = frozenset({"USDT", "FDUSD", "USDC"})
_FALLBACK_USDT = {"BTC": Decimal(76950), "ETH": Decimal(2400), "BNB": Decimal(600)}


class InsufficientBalance(ValueError):
    """The account lacks the free balance an order or withdrawal needs (REST: ``-2010``)."""


class SpotEngine:
    """Spot orders and executions for every spot account; the event loop serializes calls."""

    def __init__(
        self,
        clock: SimClock,
        symbols: dict[str, SymbolState],
        books: dict[str, SpotBook],
        sink: EventSink,
    ) -> None:
        self.clock = clock
        self.symbols = symbols
        self.books = books
        self.sink = sink
        self._execution_id = 70_000_000
        self._list_id = 3_000_000
        self._prevented_id = 0
        self._client_seq = 0

    # -- lookups -------------------------------------------------------------------------------

    def symbol(self, name: str) -> SymbolState:
        state = self.symbols.get(name)
        if state is None:
            raise ValueError(f"unknown spot symbol {name!r}")
        return state

    def book(self, name: str) -> SpotBook:
        book = self.books.get(name)
        if book is None:
            raise ValueError(f"unknown spot account {name!r}")
        return book

    def next_client_id(self, prefix: str) -> str:
        self._client_seq += 1
        return f"{prefix}-{self._client_seq:08d}"

    def usdt_value(self, asset: str, amount: Decimal) -> Decimal:
        """``amount`` of ``asset`` in USDT at the current prices (for BNB fees)."""
        if asset in _STABLE:
            return amount
        sym = self.symbols.get(f"{asset}USDT")
        price = sym.mark if sym is not None else _FALLBACK_USDT.get(asset, Decimal(1))
        return amount * price

    # -- orders --------------------------------------------------------------------------------

    def new_order(
        self,
        book: SpotBook,
        symbol: str,
        side: str,
        order_type: str,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        stop_price: Decimal = ZERO,
        tif: str = "GTC",
        client_order_id: str | None = None,
        order_list: SpotOrderList | None = None,
        pending: bool = False,
        lock: bool = True,
        lock_price: Decimal | None = None,
        generated: bool = False,
        emit: bool = True,
    ) -> SpotOrder:
        """Accept an order: lock what it needs, push its ``NEW`` executionReport.

        ``pending`` makes an OTO's pending order (``PENDING_NEW``, nothing locked yet);
        ``lock=False`` an OCO leg whose quantity the list's first leg already holds;
        ``lock_price`` locks a buy at that price instead (a BUY OCO holds its dearer leg's).
        Raises :class:`InsufficientBalance` (nothing changed) when the balance is short.
        """
        sym = self.symbol(symbol)
        spec = sym.spec
        qty = spec.qty(qty)
        limit = spec.price(price) if price is not None else ZERO
        now = self.clock.wall_ms()
        order = SpotOrder(
            symbol=symbol,
            order_id=sym.next_order_id(),
            client_order_id=client_order_id or self.next_client_id("gen" if generated else "sim"),
            side=side,
            order_type=order_type,
            time_in_force=tif if order_type not in ("MARKET", "LIMIT_MAKER") else "GTC",
            orig_qty=qty,
            price=limit,
            time=now,
            created_mono=self.clock.mono(),
            stop_price=spec.price(stop_price) if stop_price else ZERO,
            order_list_id=order_list.list_id if order_list is not None else -1,
            status="PENDING_NEW" if pending else "NEW",
            update_time=now,
            working_time=-1 if pending else now,
            generated=generated,
        )
        changed: list[str] = []
        if order_type == "MARKET":
            self._check_market(book, order, sym)
        elif lock and not pending:
            changed = self._lock(book, order, lock_price)
        book.add_order(order)
        if emit:
            self._report(book, order, "NEW")
            if changed:
                self._positions(book, changed, now)
        return order

    def _check_market(self, book: SpotBook, order: SpotOrder, sym: SymbolState) -> None:
        spec = sym.spec
        if order.side == "BUY":
            need, asset = order.orig_qty * sym.mark * Decimal("1.01"), spec.quote_asset
        else:
            need, asset = order.orig_qty, spec.base_asset
        if book.free(asset) < need:
            raise InsufficientBalance("Account has insufficient balance for requested action.")

    def _lock(
        self, book: SpotBook, order: SpotOrder, lock_price: Decimal | None = None
    ) -> list[str]:
        """Move what a resting order needs from free to locked; returns the asset touched."""
        spec = self.symbol(order.symbol).spec
        if order.side == "BUY":
            price = max(order.price, lock_price or order.price)
            asset, amount = spec.quote_asset, (order.remaining * price).quantize(EIGHT)
        else:
            asset, amount = spec.base_asset, order.remaining
        held = book.asset(asset)
        if held.free < amount:
            raise InsufficientBalance("Account has insufficient balance for requested action.")
        held.free -= amount
        held.locked += amount
        order.locked = amount
        return [asset]

    def activate(self, book: SpotBook, order: SpotOrder) -> None:
        """An OTO's pending order becomes working (its working order has filled); it expires
        (``eR`` REJECTED) if the balance it must lock is no longer there."""
        now = self.clock.wall_ms()
        try:
            changed = self._lock(book, order)
        except InsufficientBalance:
            self.end_order(book, order, "EXPIRED", expiry_reason="REJECTED")
            return
        order.status = "NEW"
        order.working_time = order.update_time = now
        book.order_changed(order, self.clock.mono())
        self._report(book, order, "NEW")
        self._positions(book, changed, now)

    def execute(
        self, book: SpotBook, order: SpotOrder, qty: Decimal, price: Decimal, *, maker: bool
    ) -> int:
        """Fill ``qty`` of ``order`` at ``price``; returns the trade id."""  # fmt: skip
        sym = self.symbol(order.symbol)
        spec = sym.spec
        qty = min(spec.qty(qty), order.remaining)
        quote = (qty * price).quantize(EIGHT)
        now = self.clock.wall_ms()
        mono = self.clock.mono()
        buyer = order.side == "BUY"
        base, quote_asset = book.asset(spec.base_asset), book.asset(spec.quote_asset)
        if buyer:
            self._spend(book, order, spec.quote_asset, quote)
            base.free += qty
        else:
            self._spend(book, order, spec.base_asset, qty)
            quote_asset.free += quote
        commission, fee_asset = self._commission(book, spec.symbol, qty, quote, buyer)
        if fee_asset is not None:
            book.asset(fee_asset).free -= commission
        trade_id = sym.next_trade_id()
        order.executed_qty += qty
        order.cum_quote += quote
        order.status = "FILLED" if order.remaining <= ZERO else "PARTIALLY_FILLED"
        order.update_time = now
        if order.status == "FILLED":
            self._release(book, order)
        received = spec.base_asset if buyer else spec.quote_asset
        row: dict[str, object] = {
            "symbol": spec.symbol,
            "id": trade_id,
            "orderId": order.order_id,
            "orderListId": order.order_list_id,
            "price": f8(price),
            "qty": f8(qty),
            "quoteQty": f8(quote),
            "commission": f8(commission),
            "commissionAsset": fee_asset or received,
            "time": now,
            "isBuyer": buyer,
            "isMaker": maker,
            "isBestMatch": True,
        }
        acct = book.acct
        acct.add_trade(spec.symbol, trade_id, now, mono, row)
        acct.fills[-1] = row | {"side": order.side}
        acct.fills_generated += 1
        book.order_changed(order, mono)
        trade = Execution(trade_id, qty, price, quote, commission, fee_asset, maker)
        self._report(book, order, "TRADE", trade=trade)
        changed = [spec.base_asset, spec.quote_asset]
        if fee_asset is not None and fee_asset not in changed:
            changed.append(fee_asset)
        self._positions(book, changed, now)
        return trade_id

    def _spend(self, book: SpotBook, order: SpotOrder, asset: str, amount: Decimal) -> None:
        """Take ``amount`` for a fill: from the order's lock (or its list's), else free."""
        holder = self._lock_holder(book, order)
        held = book.asset(asset)
        from_lock = min(amount, holder.locked) if holder is not None else ZERO
        if holder is not None:
            holder.locked -= from_lock
            held.locked -= from_lock
        held.free -= amount - from_lock

    def _lock_holder(self, book: SpotBook, order: SpotOrder) -> SpotOrder | None:
        if order.locked > ZERO:
            return order
        if order.order_list_id != -1:
            group = book.lists.get(order.order_list_id)
            if group is not None and group.contingency == "OCO" and group.orders[0].locked:
                return group.orders[0]
        return None

    def _release(self, book: SpotBook, order: SpotOrder) -> list[str]:
        """Give back what a finished order still locks; returns the asset touched."""
        if order.locked <= ZERO:
            return []
        spec = self.symbol(order.symbol).spec
        asset = spec.quote_asset if order.side == "BUY" else spec.base_asset
        held = book.asset(asset)
        held.locked -= order.locked
        held.free += order.locked
        order.locked = ZERO
        return [asset]

    def _commission(
        self, book: SpotBook, symbol: str, qty: Decimal, quote: Decimal, buyer: bool
    ) -> tuple[Decimal, str | None]:
        rate = fee_rate(symbol)
        if not rate:
            return ZERO, None
        spec = self.symbol(symbol).spec
        if book.bnb_fees:
            value = self.usdt_value(spec.quote_asset, quote) * rate * BNB_DISCOUNT
            bnb = (value / self.usdt_value("BNB", Decimal(1))).quantize(EIGHT)
            if bnb > ZERO and book.free("BNB") >= bnb:
                return bnb, "BNB"
        if buyer:
            return (qty * rate).quantize(EIGHT), spec.base_asset
        return (quote * rate).quantize(EIGHT), spec.quote_asset

    def amend(self, book: SpotBook, order: SpotOrder, new_qty: Decimal) -> None:
        """Reduce a working order's quantity keeping its priority (``order.amend.keepPriority``):
        ``x`` REPLACED, the same order id, the lock shrinks with it."""
        spec = self.symbol(order.symbol).spec
        new_qty = spec.qty(new_qty)
        if not order.is_open or not order.executed_qty < new_qty < order.orig_qty:
            return
        now = self.clock.wall_ms()
        old_lock = order.locked
        order.orig_qty = new_qty
        order.update_time = now
        changed: list[str] = []
        if old_lock > ZERO:
            asset = spec.quote_asset if order.side == "BUY" else spec.base_asset
            keep = order.remaining * order.price if order.side == "BUY" else order.remaining
            freed = old_lock - min(keep.quantize(EIGHT), old_lock)
            held = book.asset(asset)
            held.locked -= freed
            held.free += freed
            order.locked -= freed
            changed = [asset]
        book.order_changed(order, self.clock.mono())
        self._report(book, order, "REPLACED")
        if changed:
            self._positions(book, changed, now)

    def prevent_match(self, book: SpotBook, order: SpotOrder, taker_order_id: int) -> None:
        """Self-trade prevention (EXPIRE_MAKER): the account's own taker met this resting order,
        which expires in the match (``x`` TRADE_PREVENTION, ``X`` EXPIRED_IN_MATCH)."""
        if not order.is_open:
            return
        now = self.clock.wall_ms()
        qty = order.remaining
        order.status = "EXPIRED_IN_MATCH"
        order.update_time = now
        order.ended_sim = self.clock.sim_s()
        changed = self._release(book, order)
        book.order_changed(order, self.clock.mono())
        self._prevented_id += 1
        block: Payload = {
            "v": self._prevented_id,
            "A": f8(qty),
            "B": f8(qty),
            "u": self._prevented_id,
            "U": taker_order_id,
            "Cs": order.symbol,
            "pl": f8(qty),
            "pL": f8(order.price),
            "pY": f8((qty * order.price).quantize(EIGHT)),
        }
        self._report(book, order, "TRADE_PREVENTION", prevented=block)
        if changed:
            self._positions(book, changed, now)

    def end_order(
        self,
        book: SpotBook,
        order: SpotOrder,
        status: str,
        *,
        expiry_reason: str | None = None,
        cancel_client_id: str | None = None,
    ) -> None:
        """Cancel (``CANCELED``) or expire (``EXPIRED`` with ``eR``) an open order."""
        if not order.is_open:
            return
        now = self.clock.wall_ms()
        order.status = status
        order.update_time = now
        order.ended_sim = self.clock.sim_s()
        if status == "EXPIRED":
            order.expiry_reason = expiry_reason or "EXCHANGE_CANCELED"
        changed = self._release(book, order)
        book.order_changed(order, self.clock.mono())
        if status == "CANCELED":
            cid = cancel_client_id or self.next_client_id("cancel")
            self._report(book, order, "CANCELED", client_id=cid, orig=order.client_order_id)
        else:
            self._report(book, order, "EXPIRED")
        if changed:
            self._positions(book, changed, now)

    def cross(self, symbol: str) -> None:
        """Fill the resting orders placed by hand (not the generator's) the price has reached."""
        mark = self.symbol(symbol).mark
        for book in self.books.values():
            for order in list(book.open_orders.values()):
                if order.generated or order.symbol != symbol or order.order_type != "LIMIT":
                    continue
                if order.price >= mark if order.side == "BUY" else order.price <= mark:
                    self.execute(book, order, order.remaining, order.price, maker=True)

    # -- order lists ---------------------------------------------------------------------------

    def new_list(self, contingency: str, symbol: str) -> SpotOrderList:
        """An order list to place legs in; :meth:`list_started` makes it the account's."""
        self._list_id += 1
        return SpotOrderList(
            list_id=self._list_id,
            contingency=contingency,
            client_list_id=self.next_client_id("list"),
            symbol=symbol,
            orders=[],
        )

    def report_new(self, book: SpotBook, order: SpotOrder) -> None:
        """The ``NEW`` executionReport of an order accepted with ``emit=False`` (a list leg)."""
        self._report(book, order, "NEW")

    def list_started(self, book: SpotBook, group: SpotOrderList) -> None:
        """``listStatus`` EXEC_STARTED after the legs' reports, then the balances they lock."""
        book.lists[group.list_id] = group
        now = self.clock.wall_ms()
        self._emit(book, list_status(group, now=now))
        spec = self.symbol(group.symbol).spec
        locked = [
            spec.quote_asset if o.side == "BUY" else spec.base_asset
            for o in group.orders
            if o.locked > ZERO
        ]
        if locked:
            self._positions(book, locked, now)

    def list_progress(self, book: SpotBook, group: SpotOrderList) -> None:
        """After a leg changed: OCO legs cancel each other; a done list reports ``ALL_DONE``."""
        if group.order_status == "ALL_DONE":
            return
        legs = group.orders
        if group.contingency == "OCO":
            touched = [o for o in legs if o.executed_qty > ZERO or not o.is_open]
            if touched:
                for other in legs:
                    if other.is_open and other.executed_qty == ZERO:
                        self.end_order(book, other, "EXPIRED", expiry_reason="OCO_TRIGGER")
        else:  # OTO: the pending order works once the working order has filled
            working, pending = legs
            if working.status == "FILLED" and pending.status == "PENDING_NEW":
                self.activate(book, pending)
            elif not working.is_open and pending.status == "PENDING_NEW":
                self.end_order(book, pending, "EXPIRED", expiry_reason="OTO_PHASE_ONE_EXPIRED")
        if all(not o.is_open for o in legs):
            group.status_type = group.order_status = "ALL_DONE"
            self._emit(book, list_status(group, now=self.clock.wall_ms()))

    # -- balances ------------------------------------------------------------------------------

    def balance_change(self, book: SpotBook, asset: str, delta: Decimal) -> None:
        """A deposit (positive) or withdrawal: ``balanceUpdate`` + ``outboundAccountPosition``."""
        held = book.asset(asset)
        if held.free + delta < ZERO:
            raise InsufficientBalance(f"not enough free {asset} to withdraw {-delta}")
        held.free += delta
        now = self.clock.wall_ms()
        book.balance_events.append(
            {"kind": "DELTA", "asset": asset, "delta": f8(delta), "time": now}
        )
        self._emit(book, balance_update(asset, delta, now=now))
        self._positions(book, [asset], now)

    def external_lock(self, book: SpotBook, asset: str, delta: Decimal) -> None:
        """Another system locks (positive) or releases part of a balance."""
        held = book.asset(asset)
        if held.free - delta < ZERO or held.locked + delta < ZERO:
            raise InsufficientBalance(f"cannot lock {delta} {asset}")
        held.free -= delta
        held.locked += delta
        now = self.clock.wall_ms()
        book.balance_events.append(
            {"kind": "EXTERNAL_LOCK", "asset": asset, "delta": f8(delta), "time": now}
        )
        self._emit(book, external_lock_update(asset, delta, now=now))
        self._positions(book, [asset], now)

    # -- events --------------------------------------------------------------------------------

    def _report(
        self,
        book: SpotBook,
        order: SpotOrder,
        x: str,
        *,
        trade: Execution | None = None,
        client_id: str | None = None,
        orig: str = "",
        prevented: Payload | None = None,
    ) -> None:
        self._execution_id += 1
        payload = execution_report(
            order,
            x,
            now=self.clock.wall_ms(),
            execution_id=self._execution_id,
            trade=trade,
            client_order_id=client_id,
            orig_client_order_id=orig,
            prevented=prevented,
        )
        self.sink.emit(book.name, payload, fill=trade is not None, product=SPOT)

    def _positions(self, book: SpotBook, assets: list[str], now: int) -> None:
        book.update_time = now
        changed = [(a, book.asset(a)) for a in dict.fromkeys(assets)]
        self._emit(book, account_position(changed, now=now, update=now))

    def _emit(self, book: SpotBook, payload: Payload) -> None:
        self.sink.emit(book.name, payload, product=SPOT)
