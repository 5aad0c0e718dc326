"""Drop evidence: noticing, from the stream's own events, that the venue silently dropped one.

Binance can drop a user-data event while the socket stays healthy (peers.md). Nothing says so,
but the events that do arrive contradict the missing one. Kinds (``fillstream_drop_evidence_total``
label ``kind``), each checked against binance-facts.md §2:

- ``cumulative_qty``: an ORDER_TRADE_UPDATE (spot: executionReport) fill whose cumulative
  quantity ``z`` exceeds the sum of the ``l`` we saw for that order: an earlier fill of the
  order was dropped;
- ``order_transition``: a status event without a fill (CANCELED, EXPIRED, AMENDMENT, ...) whose
  ``z`` exceeds what we saw: the order went from NEW to its end without the fills its quantities
  imply;
- ``trade_lite_unmatched``: a TRADE_LITE whose ORDER_TRADE_UPDATE never came (the fill event was
  dropped; the TRADE_LITE lacks commission and realized PnL, so REST must supply the fill);
- ``trade_lite_missing``: the reverse, a fill whose TRADE_LITE never came (counted only once this
  connection has delivered TRADE_LITEs, and only for ``x=TRADE``): proof that the venue is
  dropping events, but nothing of ours is lost, so it raises no gap;
- ``position_amount``: an ACCOUNT_UPDATE position amount ``pa`` that no run of the fills we saw
  explains (see below);
- ``algo_child``: an ALGO_UPDATE TRIGGERED/FINISHED naming (``ai``) a child order we never saw,
  or FINISHED with an executed quantity ``aq`` above the fills we saw of that child.

**No false alarms by construction, as far as the facts allow.** An order is judged only when we
saw it from its start: its NEW arrived on the current connection, or its first fill has
``z == l``, or its id is above an order id of the same symbol whose NEW we saw on this
connection (order ids increase per symbol, so it was created after we were listening). The
position check needs no seed from REST (the stream path cannot see the ledger's book): each
``(symbol, position side)`` is anchored at an ACCOUNT_UPDATE, and the next one must equal the
anchor plus the signed quantities of the fills seen since, up to a point: every fill traded
before its ``T`` is in it, fills of its very millisecond may or may not be (one update may
reflect several fills, and may arrive before them, facts §8.2). Every candidate is kept, so ties
never cause an alarm; a key whose update is unexplained re-anchors there.

**Waiting.** Evidence can arrive before the event it proves missing (no ordering across event
types, facts §1.5; the TRADE_LITE comes before its ORDER_TRADE_UPDATE). Each suspicion is judged
``wait_s`` after its frame was processed, and only once the processor has nothing queued: a
backlog of unread frames may hold the answer. Resolved in time, it is not a gap.

**Gaps.** What is still unexplained becomes one narrow :class:`~fillstream.ledger.Gap` per
symbol (``narrow=True``, reason ``drop_evidence``): ``[since_ms, until_ms]`` bounds the trade
time of the missing fill, so the reconciler may take trades up to ``until_ms`` even inside the
settle delay. A new connection resets what we know (its start gap covers the break).

Memory is bounded per account: orders, trade refs and suspicions are fixed-size windows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final

from prometheus_client import Counter

from fillstream.binance.spot.events import ExecutionReport
from fillstream.binance.usdm.events import (
    AccountUpdate,
    AlgoUpdate,
    Event,
    OrderTradeUpdate,
    TradeLite,
)
from fillstream.binance.usdm.parse import FILL_EXECUTION_TYPES
from fillstream.ledger import Gap, Market
from fillstream.stream.activity import AccountActivity, RecentSet, TradeRef
from fillstream.stream.metrics import StreamMetrics

log = logging.getLogger("fillstream.stream.evidence")

DROP_EVIDENCE = Counter(
    "fillstream_drop_evidence",
    "Signals that the venue silently dropped a user-data event, by kind",
    ["account", "market", "kind"],
)

GAP_REASON: Final = "drop_evidence"
KINDS: Final = (
    "cumulative_qty",
    "order_transition",
    "trade_lite_unmatched",
    "trade_lite_missing",
    "position_amount",
    "algo_child",
)
ORDERS_MAX: Final = 4096  # orders remembered (LRU)
REFS_MAX: Final = 8192  # fill and TRADE_LITE identities remembered
KEYS_MAX: Final = 1024  # (symbol, position side) books
BOOK_FILLS_MAX: Final = 512  # fills awaiting an ACCOUNT_UPDATE per key before it gives up
SUSPICIONS_MAX: Final = 8192
INCLUDED_MAX: Final = 32  # candidate anchors of one book (fills sharing a millisecond)
RECHECK_S: Final = 0.02  # backlog still queued: look again this soon
MAX_DEFER_S: Final = 1.0  # an overloaded processor: judge anyway once this late
_TERMINAL_ALGO: Final = frozenset({"TRIGGERED", "FINISHED"})
_ZERO: Final = Decimal(0)

GapHook = Callable[[Gap], None]
Backlog = Callable[[], int]


@dataclass(slots=True)
class _Order:
    seen: Decimal  # Σ l of the fills seen
    complete: bool  # seen since its start: ``seen`` is everything it filled before
    last_ms: int  # time of the last event seen


@dataclass(slots=True)
class _Book:
    """One (symbol, position side): the last ACCOUNT_UPDATE amount and the fills around it.

    ``included``: how many of the leading ``fills`` the anchor may already contain (fills of the
    anchor's own millisecond make it ambiguous; every candidate is kept, at most a few).
    """

    anchor: Decimal | None = None
    anchor_ms: int = 0
    fills: list[tuple[int, int, Decimal]] = field(default_factory=list)  # (trade id, T, ±l)
    included: list[int] = field(default_factory=lambda: [0])


def _settle(book: _Book, pa: Decimal, at_ms: int, ends: Iterable[int]) -> None:
    """Anchor ``book`` at ``pa``, which contains ``fills[:end]`` for one of ``ends``."""
    candidates = sorted(set(ends))
    first = candidates[0]
    if len(candidates) > INCLUDED_MAX:
        # Too many fills share its millisecond to tell (a burst): no verdict until a calmer one.
        book.anchor = None
        book.fills = book.fills[first:]
        book.included = [0]
        return
    book.anchor = pa
    book.anchor_ms = at_ms
    book.fills = book.fills[first:]
    book.included = [end - first for end in candidates]


@dataclass(slots=True, frozen=True)
class _Suspicion:
    due: float  # monotonic seconds
    kind: str
    symbol: str
    since_ms: int
    until_ms: int
    key: tuple[str, int] | tuple[str, str]  # (symbol, order id) or (symbol, position side)
    qty: Decimal | None  # z or aq to be explained; the position amount for position_amount


class DropEvidence:
    """One account's drop detector (see module docstring).

    :meth:`observe` is called by the processor with every event it parsed, in order;
    :meth:`check` judges what is due (the detector arms a loop timer for it by itself).
    Gaps go to ``on_gap``; ``backlog`` tells how many frames are queued unprocessed.
    """

    def __init__(
        self,
        account: str,
        market: Market,
        activity: AccountActivity,
        *,
        wait_s: float,
        on_gap: GapHook,
        metrics: StreamMetrics | None = None,
        backlog: Backlog = lambda: 0,
    ) -> None:
        self.account = account
        self.market = market
        self.wait_s = max(0.0, wait_s)
        self._activity = activity
        self._on_gap = on_gap
        self._metrics = metrics
        self._backlog = backlog
        self._kinds = {k: DROP_EVIDENCE.labels(account, market.value, k) for k in KINDS}
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._conn = 0
        self._orders: OrderedDict[tuple[str, int], _Order] = OrderedDict()
        self._first_new: dict[str, tuple[int, int]] = {}  # symbol → (order id, ms) of a NEW seen
        self._fills: RecentSet[TradeRef] = RecentSet(REFS_MAX)
        self._lites: RecentSet[TradeRef] = RecentSet(REFS_MAX)
        self._lite_live = False  # this connection delivers TRADE_LITE
        self._awaiting_lite: OrderedDict[TradeRef, float] = OrderedDict()
        self._books: OrderedDict[tuple[str, str], _Book] = OrderedDict()
        self._suspicions: deque[_Suspicion] = deque(maxlen=SUSPICIONS_MAX)
        self._lite_due: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- intake ----------------------------------------------------------------------------------

    def observe(self, event: Event, conn_id: int, now: float) -> None:
        """Take one parsed event (``now``: monotonic seconds when its pass began)."""
        if conn_id > self._conn:
            self._reset(conn_id)
        try:
            if isinstance(event, OrderTradeUpdate):
                self._order_update(event, now)
            elif isinstance(event, TradeLite):
                self._trade_lite(event, now)
            elif isinstance(event, AccountUpdate):
                self._account_update(event, now)
            elif isinstance(event, AlgoUpdate):
                self._algo_update(event, now)
            elif isinstance(event, ExecutionReport):
                self._execution_report(event, now)
        except (InvalidOperation, ValueError):
            return  # an amount parse accepted but we cannot compare: no verdict
        self._arm()

    def _reset(self, conn_id: int) -> None:
        # A new socket: what happened between the two is the start gap's job, and an order
        # half seen before the break would look short of fills.
        self._conn = conn_id
        self._orders.clear()
        self._first_new.clear()
        self._awaiting_lite.clear()
        self._books.clear()
        self._suspicions.clear()
        self._lite_live = False

    def _order_update(self, event: OrderTradeUpdate, now: float) -> None:
        o = event.o
        key = (o.s, o.i)
        z = Decimal(o.z or "0")
        fill_qty = Decimal(o.l or "0") if o.x in FILL_EXECUTION_TYPES and o.t else _ZERO
        is_fill = fill_qty > 0
        at = o.T or event.E
        order = self._order_of(key, o.x == "NEW" and o.X == "NEW", z, fill_qty, at)
        since = order.last_ms
        if is_fill and o.t is not None:  # is_fill implies a trade id; mypy cannot see it
            ref = (o.s, o.t, o.i)
            if self._fills.add(ref):
                order.seen += fill_qty
                self._book_fill(o.s, o.ps, o.t, o.T, fill_qty if o.S == "BUY" else -fill_qty)
                if o.x == "TRADE" and self._lite_live and ref not in self._lites:
                    self._awaiting_lite[ref] = now + self.wait_s
                    while len(self._awaiting_lite) > REFS_MAX:
                        self._awaiting_lite.popitem(last=False)
        self._check_order(order, key, z, is_fill=is_fill, since=since, at=at, now=now)

    def _execution_report(self, event: ExecutionReport, now: float) -> None:
        """Spot: ``z`` above the Σ ``l`` seen of an order seen from its start (no positions,
        no TRADE_LITE on spot)."""
        key = (event.s, event.i)
        z = Decimal(event.z or "0")
        trade = event.x == "TRADE" and event.t != -1
        fill_qty = Decimal(event.l or "0") if trade else _ZERO
        is_fill = fill_qty > 0
        at = event.T or event.E
        order = self._order_of(key, event.x == "NEW" and event.X == "NEW", z, fill_qty, at)
        since = order.last_ms
        if is_fill and self._fills.add((event.s, event.t, event.i)):
            order.seen += fill_qty
        self._check_order(order, key, z, is_fill=is_fill, since=since, at=at, now=now)

    def _order_of(
        self, key: tuple[str, int], new: bool, z: Decimal, fill_qty: Decimal, at: int
    ) -> _Order:
        order = self._orders.get(key)
        if order is None:
            order = self._first_sight(key, new, z, fill_qty, at)
            self._orders[key] = order
            while len(self._orders) > ORDERS_MAX:
                self._orders.popitem(last=False)
        else:
            self._orders.move_to_end(key)
        return order

    def _check_order(
        self,
        order: _Order,
        key: tuple[str, int],
        z: Decimal,
        *,
        is_fill: bool,
        since: int,
        at: int,
        now: float,
    ) -> None:
        order.last_ms = max(order.last_ms, at)
        if order.complete and z > order.seen:
            kind = "cumulative_qty" if is_fill else "order_transition"
            self._suspect(kind, key, z, since_ms=since, until_ms=at, now=now)

    def _first_sight(
        self, key: tuple[str, int], new: bool, z: Decimal, fill_qty: Decimal, at: int
    ) -> _Order:
        symbol, order_id = key
        first = self._first_new.get(symbol)
        if new:
            if first is None or order_id < first[0]:
                self._first_new[symbol] = (order_id, at)
            return _Order(_ZERO, True, at)
        if first is not None and order_id > first[0]:
            # Created after an order whose NEW we saw on this socket: we were listening all
            # along, and whatever it lacks traded since that NEW.
            return _Order(_ZERO, True, first[1])
        return _Order(_ZERO, fill_qty > 0 and z == fill_qty, at)

    def _trade_lite(self, event: TradeLite, now: float) -> None:
        ref = (event.s, event.t, event.i)
        self._lite_live = True
        self._lites.add(ref)
        self._awaiting_lite.pop(ref, None)
        if self._lite_due is None:
            self._lite_due = now + self.wait_s

    def _account_update(self, event: AccountUpdate, now: float) -> None:
        at = event.T or event.E
        for p in event.a.P:
            pa = Decimal(p.pa)
            self._suspect("position_amount", (p.s, p.ps), pa, since_ms=0, until_ms=at, now=now)

    def _algo_update(self, event: AlgoUpdate, now: float) -> None:
        o = event.o
        if o.X not in _TERMINAL_ALGO or not o.ai:
            return
        child = int(o.ai)
        qty = Decimal(o.aq or "0") if o.X == "FINISHED" else None
        at = event.T or event.E
        self._suspect("algo_child", (o.s, child), qty, since_ms=o.tt or at, until_ms=at, now=now)

    def _book_fill(self, symbol: str, ps: str, trade_id: int, at: int, delta: Decimal) -> None:
        key = (symbol, ps)
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _Book()
            while len(self._books) > KEYS_MAX:
                self._books.popitem(last=False)
        book.fills.append((trade_id, at, delta))
        if len(book.fills) > BOOK_FILLS_MAX:
            # No ACCOUNT_UPDATE for this long (filtered out?): start over at the next one.
            book.anchor = None
            book.fills.clear()
            book.included = [0]

    def _suspect(
        self,
        kind: str,
        key: tuple[str, int] | tuple[str, str],
        qty: Decimal | None,
        *,
        since_ms: int,
        until_ms: int,
        now: float,
    ) -> None:
        symbol = key[0]
        self._suspicions.append(
            _Suspicion(now + self.wait_s, kind, symbol, since_ms, until_ms, key, qty)
        )

    # -- judging ---------------------------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None or not (
            self._suspicions or self._lite_due is not None or self._awaiting_lite
        ):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # driven by hand (tests): they call check()
        due = self._next_due()
        if due is not None:
            delay = max(RECHECK_S, due - time.monotonic() + RECHECK_S)
            self._timer = loop.call_later(delay, self._fire)

    def _next_due(self) -> float | None:
        dues = [] if self._lite_due is None else [self._lite_due]
        if self._suspicions:
            dues.append(self._suspicions[0].due)
        if self._awaiting_lite:
            dues.append(next(iter(self._awaiting_lite.values())))
        return min(dues) if dues else None

    def _fire(self) -> None:
        self._timer = None
        due = self._next_due()
        late = due is not None and time.monotonic() - due > MAX_DEFER_S
        if self._backlog() > 0 and not late:
            # Unread frames may resolve what is due: judge once the processor caught up.
            self._timer = asyncio.get_running_loop().call_later(RECHECK_S, self._fire)
            return
        self.check(time.monotonic())
        self._arm()

    def check(self, now: float) -> list[Gap]:
        """Judge every suspicion due by ``now``; emit and return the gaps (one per symbol)."""
        windows: dict[str, tuple[int, int]] = {}
        suspicions = self._suspicions
        while suspicions and suspicions[0].due <= now:
            s = suspicions.popleft()
            since = self._unexplained(s)
            if since is not None:
                self._hit(windows, s.kind, s.symbol, since or s.until_ms, s.until_ms)
        if self._lite_due is not None and self._lite_due <= now:
            self._unmatched_lites(windows, now)
        self._lite_stragglers(now)
        return [self._emit(symbol, lo, hi) for symbol, (lo, hi) in windows.items()]

    def _hit(
        self, windows: dict[str, tuple[int, int]], kind: str, symbol: str, lo: int, hi: int
    ) -> None:
        self.counts[kind] += 1
        self._kinds[kind].inc()
        old_lo, old_hi = windows.get(symbol, (lo, hi))
        windows[symbol] = (min(lo, old_lo), max(hi, old_hi))

    def _unmatched_lites(self, windows: dict[str, tuple[int, int]], now: float) -> None:
        activity = self._activity
        for ref, trade_ms in activity.unmatched_lite(now, self.wait_s * 0.999):
            self._hit(windows, "trade_lite_unmatched", ref[0], trade_ms, trade_ms)
        pending = activity.pending_lite
        self._lite_due = next(iter(pending.values()))[0] + self.wait_s if pending else None

    def _lite_stragglers(self, now: float) -> None:
        awaiting = self._awaiting_lite
        while awaiting:
            ref, due = next(iter(awaiting.items()))
            if due > now:
                return
            del awaiting[ref]
            if ref not in self._lites:
                self.counts["trade_lite_missing"] += 1
                self._kinds["trade_lite_missing"].inc()

    def _unexplained(self, s: _Suspicion) -> int | None:
        """None when explained by now; else the earliest trade time (ms) of what is missing."""
        symbol, second = s.key
        if isinstance(second, str):
            assert s.qty is not None
            return self._position_unexplained((symbol, second), s.qty, s.until_ms)
        order = self._orders.get((symbol, second))
        if s.kind == "algo_child":
            if order is None:
                return s.since_ms  # its child never appeared at all
            short = s.qty is not None and order.complete and s.qty > order.seen
        else:
            short = order is not None and s.qty is not None and s.qty > order.seen
        return s.since_ms if short else None

    def _position_unexplained(self, key: tuple[str, str], pa: Decimal, at_ms: int) -> int | None:
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _Book()
        fills = book.fills
        fills.sort()
        # Everything before the update's time is in it; fills of its very millisecond may be.
        before = sum(1 for _, t, _ in fills if t < at_ms)
        upto = sum(1 for _, t, _ in fills if t <= at_ms)
        if book.anchor is None:
            _settle(book, pa, at_ms, range(before, upto + 1))
            return None
        ends: list[int] = []
        for start in book.included:
            total = book.anchor + sum(d for _, _, d in fills[start:before])
            for end in range(max(start, before), upto + 1):
                if total == pa:
                    ends.append(end)
                if end < upto:
                    total += fills[end][2]
        if ends:
            _settle(book, pa, at_ms, ends)
            return None
        since = book.anchor_ms
        _settle(book, pa, at_ms, range(before, upto + 1))
        return since

    def _emit(self, symbol: str, since_ms: int, until_ms: int) -> Gap:
        gap = Gap(
            account=self.account,
            market=self.market,
            since_ms=since_ms or until_ms,
            until_ms=until_ms,
            reason=GAP_REASON,
            symbols=frozenset({symbol}),
            narrow=True,
        )
        if self._metrics is not None:
            self._metrics.gap(GAP_REASON)
        log.info(
            "%s/%s drop evidence on %s: a fill between %d and %d is missing",
            self.account,
            self.market,
            symbol,
            since_ms,
            until_ms,
        )
        self._on_gap(gap)
        return gap

    def aclose(self) -> None:
        """Cancel the timer (the stream is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
