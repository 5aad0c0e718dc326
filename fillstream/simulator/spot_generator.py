"""Seeded activity for spot accounts, one :meth:`SpotGenerator.round` at a time.

A round moves every spot symbol one step of its walk, works the generator's resting orders
(partial maker fills, the odd cancel, OCO legs triggering, OTO phases), then lets every spot
account take one action: market orders (sometimes in several executions, sometimes expiring for
``INSUFFICIENT_LIQUIDITY``), limit orders (GTC resting; IOC and FOK expiring with their
``eR``), OCO and OTO lists, cancels, amends (``REPLACED``), self-trade prevention
(``TRADE_PREVENTION``), a deposit or withdrawal (``balanceUpdate``) now and then
and rarely an ``externalLockUpdate``. Orders stay within the account's free balance. All
randomness comes from generators seeded by (seed, account) and (seed, symbol), so the sequence
depends only on the seed and the round count.
"""

from __future__ import annotations

import random
from decimal import Decimal

from fillstream.simulator.market import SymbolState
from fillstream.simulator.numbers import ZERO
from fillstream.simulator.spot_book import SpotBook
from fillstream.simulator.spot_engine import InsufficientBalance, SpotEngine
from fillstream.simulator.spot_orders import SpotOrder

_ACTIONS = (
    ("market", 26),
    ("limit", 24),
    ("ioc", 5),
    ("fok", 3),
    ("oco", 8),
    ("oto", 6),
    ("cancel", 5),
    ("amend", 2),
    ("self_trade", 1),
    ("transfer", 2),
    ("external_lock", 0.6),
    ("idle", 20),
)
_NOTIONAL_USDT = (20.0, 1500.0)


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in table]
    return rng.choices(names, weights=[w for _, w in table])[0]


class SpotGenerator:
    """Deterministic activity for every spot account."""

    def __init__(
        self, engine: SpotEngine, *, seed: int, books: list[SpotBook], symbols: list[SymbolState]
    ) -> None:
        self.engine = engine
        self.books = books
        self.symbols = symbols
        self._rngs = {b.name: random.Random(f"{seed}:spot:account:{b.name}") for b in books}
        self._external: dict[str, list[tuple[str, Decimal]]] = {b.name: [] for b in books}
        self.rounds = 0

    def round(self) -> int:
        """Run one round; returns the fills it produced."""
        before = sum(b.acct.fills_generated for b in self.books)
        for sym in self.symbols:
            sym.walk()
            self.engine.cross(sym.spec.symbol)
        for book in self.books:
            rng = self._rngs[book.name]
            self._work(book, rng)
            self._act(book, rng)
        self.rounds += 1
        return sum(b.acct.fills_generated for b in self.books) - before

    # -- resting orders ------------------------------------------------------------------------

    def _work(self, book: SpotBook, rng: random.Random) -> None:
        engine = self.engine
        done_lists: set[int] = set()
        for order in list(book.open_orders.values()):
            if not order.generated or not order.is_open or order.status == "PENDING_NEW":
                continue
            if order.order_list_id != -1:
                if order.order_list_id not in done_lists:
                    done_lists.add(order.order_list_id)
                    self._work_list(book, order.order_list_id, rng)
                continue
            roll = rng.random()
            if roll < 0.04:
                engine.end_order(book, order, "CANCELED")
            elif roll < 0.45:
                self._maker_fill(book, order, rng)

    def _maker_fill(self, book: SpotBook, order: SpotOrder, rng: random.Random) -> None:
        part = order.orig_qty * Decimal(rng.choice((1, 2, 3))) / 3
        self.engine.execute(book, order, min(part, order.remaining), order.price, maker=True)

    def _work_list(self, book: SpotBook, list_id: int, rng: random.Random) -> None:
        engine = self.engine
        group = book.lists[list_id]
        roll = rng.random()
        live = [o for o in group.orders if o.is_open and o.status != "PENDING_NEW"]
        if not live:
            return
        if roll < 0.03:
            for leg in group.orders:
                engine.end_order(book, leg, "CANCELED")
        elif group.contingency == "OCO" and roll < 0.12:  # the stop leg triggers
            stop = group.orders[-1]
            if stop.is_open and stop.executed_qty == ZERO:
                engine.execute(book, stop, stop.remaining, stop.price, maker=False)
        elif roll < 0.4:
            self._maker_fill(book, live[0], rng)
        else:
            return
        engine.list_progress(book, group)

    # -- one action ----------------------------------------------------------------------------

    def _act(self, book: SpotBook, rng: random.Random) -> None:
        action = _pick(rng, _ACTIONS)
        if action == "idle":
            return
        if action in ("cancel", "amend", "self_trade"):
            self._resting(book, rng, action)
            return
        if action in ("transfer", "external_lock"):
            self._balance(book, rng, action)
            return
        sym = rng.choice(self.symbols)
        side = "BUY" if action == "oto" else self._side(book, sym, rng)  # an OTO buys first
        qty = self._size(book, sym, side, rng)
        if qty is None:
            return
        try:
            if action == "market":
                self._market(book, sym, side, qty, rng)
            elif action in ("limit", "ioc", "fok"):
                self._limit(book, sym, side, qty, rng, kind=action)
            elif action == "oco":
                self._oco(book, sym, side, qty, rng)
            else:
                self._oto(book, sym, qty, rng)
        except InsufficientBalance:
            return  # a lock the balance could not cover: the order was never accepted

    def _side(self, book: SpotBook, sym: SymbolState, rng: random.Random) -> str:
        """BUY or SELL, leaning towards the side that evens out the pair's two balances, so
        that hours of activity never drain one asset."""
        spec = sym.spec
        engine = self.engine
        quote = engine.usdt_value(spec.quote_asset, book.free(spec.quote_asset))
        base = engine.usdt_value(spec.base_asset, book.free(spec.base_asset))
        total = quote + base
        buy_p = float(quote / total) if total > 0 else 0.5
        return "BUY" if rng.random() < min(max(buy_p, 0.1), 0.9) else "SELL"

    def _size(
        self, book: SpotBook, sym: SymbolState, side: str, rng: random.Random
    ) -> Decimal | None:
        """A quantity worth 20..1500 USDT that the free balance covers, or None."""
        spec = sym.spec
        engine = self.engine
        usdt = Decimal(repr(round(rng.uniform(*_NOTIONAL_USDT), 2)))
        quote_per_usdt = engine.usdt_value(spec.quote_asset, Decimal(1))
        qty = spec.qty(usdt / quote_per_usdt / sym.mark)
        if qty * sym.mark < spec.min_notional:
            return None
        if side == "BUY" and book.free(spec.quote_asset) < qty * sym.mark * Decimal("1.05"):
            return None
        if side == "SELL" and book.free(spec.base_asset) < qty:
            return None
        return qty

    def _market(
        self, book: SpotBook, sym: SymbolState, side: str, qty: Decimal, rng: random.Random
    ) -> None:
        engine = self.engine
        order = engine.new_order(book, sym.spec.symbol, side, "MARKET", qty, generated=True)
        parts = rng.choice((1, 1, 1, 2, 3))
        thin = rng.random() < 0.05  # the book runs out: the rest expires
        tick = sym.spec.tick
        for i in range(parts):
            if not order.is_open:
                break
            left = order.remaining if i == parts - 1 else sym.spec.qty(order.orig_qty / parts)
            if thin and i == parts - 1:
                left = sym.spec.qty(left / 2)
                if left >= order.remaining:
                    break
            step = tick * i
            price = sym.mark + step if side == "BUY" else max(sym.mark - step, tick)
            engine.execute(book, order, left, price, maker=False)
        if order.is_open:
            engine.end_order(book, order, "EXPIRED", expiry_reason="INSUFFICIENT_LIQUIDITY")

    def _limit(
        self,
        book: SpotBook,
        sym: SymbolState,
        side: str,
        qty: Decimal,
        rng: random.Random,
        *,
        kind: str,
    ) -> None:
        engine = self.engine
        away = Decimal(repr(round(rng.uniform(0.001, 0.006), 4)))
        if kind == "limit":
            price = sym.mark * (1 - away) if side == "BUY" else sym.mark * (1 + away)
            engine.new_order(book, sym.spec.symbol, side, "LIMIT", qty, price=price, generated=True)
            return
        # IOC/FOK cross the book (marketable); what cannot fill at once expires.
        price = sym.spec.price(sym.mark * (1 + away) if side == "BUY" else sym.mark * (1 - away))
        tif = "IOC" if kind == "ioc" else "FOK"
        order = engine.new_order(
            book, sym.spec.symbol, side, "LIMIT", qty, price=price, tif=tif, generated=True
        )
        if kind == "ioc":
            engine.execute(book, order, sym.spec.qty(order.orig_qty / 2), price, maker=False)
            engine.end_order(book, order, "EXPIRED", expiry_reason="UNFILLED_IOC_QUANTITY_EXPIRED")
        elif rng.random() < 0.5:
            engine.execute(book, order, order.orig_qty, price, maker=False)
        else:
            engine.end_order(book, order, "EXPIRED", expiry_reason="UNFILLED_FOK_ORDER_EXPIRED")

    def _oco(
        self, book: SpotBook, sym: SymbolState, side: str, qty: Decimal, rng: random.Random
    ) -> None:
        """A take-profit LIMIT_MAKER and a STOP_LOSS_LIMIT sharing one quantity."""
        engine = self.engine
        mark = sym.mark
        away = Decimal(repr(round(rng.uniform(0.004, 0.02), 4)))
        profit = mark * (1 + away) if side == "SELL" else mark * (1 - away)
        stop = mark * (1 - away) if side == "SELL" else mark * (1 + away)
        symbol = sym.spec.symbol
        group = engine.new_list("OCO", symbol)
        maker = engine.new_order(
            book, symbol, side, "LIMIT_MAKER", qty, price=profit, order_list=group,
            lock_price=stop, generated=True, emit=False,
        )  # fmt: skip
        group.orders.append(maker)
        stop_leg = engine.new_order(
            book, symbol, side, "STOP_LOSS_LIMIT", qty, price=stop, stop_price=stop,
            order_list=group, lock=False, generated=True, emit=False,
        )  # fmt: skip
        group.orders.append(stop_leg)
        self._announce(book, group.orders)
        engine.list_started(book, group)

    def _oto(self, book: SpotBook, sym: SymbolState, qty: Decimal, rng: random.Random) -> None:
        """A working LIMIT buy and a pending LIMIT_MAKER sell placed once it has filled."""
        engine = self.engine
        mark = sym.mark
        symbol = sym.spec.symbol
        group = engine.new_list("OTO", symbol)
        working = engine.new_order(
            book, symbol, "BUY", "LIMIT", qty, price=mark * Decimal("0.998"), order_list=group,
            generated=True, emit=False,
        )  # fmt: skip
        group.orders.append(working)
        pending = engine.new_order(
            book, symbol, "SELL", "LIMIT_MAKER", qty, price=mark * Decimal("1.01"),
            order_list=group, pending=True, generated=True, emit=False,
        )  # fmt: skip
        group.orders.append(pending)
        self._announce(book, group.orders)
        engine.list_started(book, group)

    def _announce(self, book: SpotBook, legs: list[SpotOrder]) -> None:
        engine = self.engine
        for leg in legs:
            engine.report_new(book, leg)

    def _resting(self, book: SpotBook, rng: random.Random, action: str) -> None:
        """Cancel, amend (keep priority) or self-trade-prevent one of the resting orders."""
        engine = self.engine
        mine = [o for o in book.open_orders.values() if o.generated and o.is_open]
        if not mine:
            return
        order = rng.choice(mine)
        if order.order_list_id == -1:
            if action == "amend":
                engine.amend(book, order, order.executed_qty + order.remaining / 2)
            elif action == "self_trade":
                engine.prevent_match(book, order, engine.symbol(order.symbol).next_order_id())
            else:
                engine.end_order(book, order, "CANCELED")
            return
        if action != "cancel":
            return
        group = book.lists[order.order_list_id]
        for leg in group.orders:
            engine.end_order(book, leg, "CANCELED")
        engine.list_progress(book, group)

    def _balance(self, book: SpotBook, rng: random.Random, action: str) -> None:
        engine = self.engine
        asset = rng.choice(("USDT", "BTC", "ETH", "BNB"))
        unit = {"USDT": Decimal(500), "BTC": Decimal("0.01"), "ETH": Decimal("0.2")}
        amount = unit.get(asset, Decimal(1)) * Decimal(rng.randint(1, 4))
        try:
            if action == "transfer":
                withdraw = rng.random() < 0.4 and book.free(asset) > amount * 2
                engine.balance_change(book, asset, -amount if withdraw else amount)
                return
            held = self._external[book.name]
            if held and rng.random() < 0.5:
                locked_asset, locked = held.pop()
                engine.external_lock(book, locked_asset, -locked)
            elif book.free(asset) > amount * 2:
                engine.external_lock(book, asset, amount)
                held.append((asset, amount))
        except InsufficientBalance:
            return
