"""Per-symbol ``userTrades`` sweeps (spot: ``myTrades``): from the cursor, or from a point in time.

A sweep reads pages of ≤ ``page_limit`` trades upwards from a trade id (``fromId``: cheap, gap
free), hands each page to the pipeline before reading the next (so recovered fills are published
while later pages are still being read), and between pages yields to urgent work through the
``checkpoint`` callable. Time only serves to find where to start (a cold start, a gap window, a
repair range), in windows of at most the product's span (7 days on futures, 24 hours on spot:
:data:`~fillstream.binance.endpoints.TRADE_WINDOW_MS`); a full page there is ambiguous (the
venue may have cut it at either end), so the window is halved until it is not.

Spot's ``myTrades`` without ``fromId`` or a window answers the account's most recent trades of
the symbol, however old: a symbol without a cursor is first asked for its newest trade (one
call), and searched by time only if that trade is within the horizon. A symbol the balances
merely point at (reconcile/spot_symbols.py) and never traded costs one call, not one per day.

``cutoff_ms``: trades younger than this are left to the stream (the settle delay while it is
healthy); the sweep stops at the first such trade, so the cursor never skips one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fillstream.binance import Venue
from fillstream.binance.endpoints import TRADE_WINDOW_MS
from fillstream.binance.products import order_update, trade_fill
from fillstream.binance.usdm.parse import algo_link_from_algo_order, decode_rows
from fillstream.binance.usdm.rows import UserTrade
from fillstream.ledger import FillIndex, FillSink, FillSource, IngestBatch, Market
from fillstream.reconcile.cursors import CursorTable
from fillstream.reconcile.enrich import Enricher
from fillstream.reconcile.metrics import BAD_ROWS, FILLS_FOUND, FILLS_NEW

log = logging.getLogger(__name__)

Checkpoint = Callable[[], Awaitable[None]]
WEEK_MS = 7 * 86_400_000
REST_LAG_MARGIN_MS = 60_000  # REST may show a trade later than it happened


async def _no_checkpoint() -> None:
    return None


@dataclass
class SweepResult:
    """What one sweep of one symbol did."""

    symbol: str
    found: int = 0  # trades read and handed over (or, in a dry run, compared)
    new: int = 0  # of which the pipeline had not stored before: stream misses
    pages: int = 0
    complete: bool = False  # reached the newest trade with nothing left behind
    missing: list[UserTrade] = field(default_factory=list)  # dry run: trades not stored
    newest_trade_ms: int | None = None

    def add(self, other: SweepResult) -> None:
        self.found += other.found
        self.new += other.new
        self.pages += other.pages
        self.missing.extend(other.missing)


@dataclass
class _Page:
    taken: list[UserTrade]
    next_from_id: int | None  # None: the venue has nothing after this page
    left_behind: bool  # stopped at the cutoff (or past ``stop_after_ms``)


class Backfill:
    """Sweeps for one account; not reentrant per symbol (the reconciler runs one job at a time)."""

    def __init__(
        self,
        *,
        account: str,
        market: Market,
        venue: Venue,
        sink: FillSink,
        enricher: Enricher,
        cursors: CursorTable,
        index: FillIndex | None,
        page_limit: int = 1000,
        horizon_ms: int = WEEK_MS,
    ) -> None:
        self.account = account
        self.market = market
        self.venue = venue
        self.sink = sink
        self.enricher = enricher
        self.cursors = cursors
        self.index = index
        self.page_limit = page_limit
        self.horizon_ms = horizon_ms
        self.window_ms = TRADE_WINDOW_MS[market]

    # -- sweeps --------------------------------------------------------------------------------

    async def from_cursor(
        self, symbol: str, *, cutoff_ms: int | None, checkpoint: Checkpoint = _no_checkpoint
    ) -> SweepResult:
        """Everything after ``symbol``'s cursor (or, without one, since the horizon)."""
        started_ms = _now_ms()
        result = SweepResult(symbol)
        cursor = self.cursors.get(symbol)
        if cursor is not None:
            from_id: int | None = cursor.trade_id + 1
        else:
            searched = self.cursors.searched_through(symbol)
            since = started_ms - self.horizon_ms
            if searched is not None:
                since = max(since, searched - REST_LAG_MARGIN_MS)
            from_id = None
            if self.market is not Market.SPOT or await self._traded_since(symbol, since):
                from_id = await self.first_trade_at_or_after(symbol, since, started_ms)
            if from_id is None:
                self.cursors.mark_searched(symbol, started_ms)
                self.cursors.mark_complete(symbol, _bound(started_ms, cutoff_ms))
                result.complete = True
                return result
        await self._pages(
            symbol, from_id, result, cutoff_ms=cutoff_ms, advance=True, checkpoint=checkpoint
        )
        if result.complete:
            self.cursors.mark_complete(symbol, _bound(started_ms, cutoff_ms))
        return result

    async def window(
        self,
        symbol: str,
        since_ms: int,
        *,
        until_ms: int | None = None,
        cutoff_ms: int | None,
        stop_after_ms: int | None = None,
        dry_run: bool = False,
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> SweepResult:
        """Every trade from ``since_ms`` on (up to ``stop_after_ms`` when given).

        Does not move the cursor: the trades before ``since_ms`` were not looked at. In a dry
        run nothing is submitted; the trades not stored are returned in ``missing``.
        """
        result = SweepResult(symbol)
        now = _now_ms()
        first = await self.first_trade_at_or_after(symbol, since_ms, until_ms or now)
        if first is None:
            result.complete = True
            return result
        await self._pages(
            symbol,
            first,
            result,
            cutoff_ms=cutoff_ms,
            advance=False,
            stop_after_ms=stop_after_ms,
            dry_run=dry_run,
            checkpoint=checkpoint,
        )
        return result

    async def _traded_since(self, symbol: str, since_ms: int) -> bool:
        """Spot: whether the account's newest trade of ``symbol`` is at or after ``since_ms``
        (``myTrades`` with the symbol alone answers the most recent trades)."""
        newest = self._decode(await self.venue.user_trades(symbol, limit=1))
        return bool(newest) and newest[-1].time >= since_ms

    async def first_trade_at_or_after(
        self, symbol: str, since_ms: int, until_ms: int
    ) -> int | None:
        """The id of the account's first trade of ``symbol`` at or after ``since_ms``."""
        lo = max(0, since_ms)
        while lo <= until_ms:
            hi = min(until_ms, lo + self.window_ms - 1)
            first = await self._first_in(symbol, lo, hi)
            if first is not None:
                return first
            lo = hi + 1
        return None

    async def _first_in(self, symbol: str, lo: int, hi: int) -> int | None:
        """The id of the first trade in ``[lo, hi]`` (at most one window), by bisection.

        A full page is ambiguous (the venue may have cut either end): its window is halved. An
        empty one moves ``lo`` past it, towards the smallest end known full: one request per
        halving (a cold start at 100 fills/s: ~17 per symbol, not ~35).
        """
        full_hi: int | None = None  # the least end of a window from ``lo`` seen full
        while True:
            raw = await self.venue.user_trades(
                symbol, start_ms=lo, end_ms=hi, limit=self.page_limit
            )
            if len(raw) >= self.page_limit and hi > lo:
                full_hi = hi
                hi = lo + (hi - lo) // 2
                continue
            ids = [r.id for r in self._decode(raw) if r.time >= lo]
            if ids:
                return min(ids)
            if full_hi is None or hi >= full_hi:
                return None
            lo = hi + 1  # nothing in [lo, hi]: the first trade is in (hi, full_hi]
            hi = lo + (full_hi - lo) // 2

    # -- pages ---------------------------------------------------------------------------------

    async def _pages(
        self,
        symbol: str,
        from_id: int | None,
        result: SweepResult,
        *,
        cutoff_ms: int | None,
        advance: bool,
        checkpoint: Checkpoint,
        stop_after_ms: int | None = None,
        dry_run: bool = False,
    ) -> None:
        while from_id is not None:
            raw = await self.venue.user_trades(symbol, from_id=from_id, limit=self.page_limit)
            page = self._cut(raw, cutoff_ms=cutoff_ms, stop_after_ms=stop_after_ms)
            result.pages += 1
            if page.taken:
                result.newest_trade_ms = page.taken[-1].time
                await self._take(symbol, page.taken, result, advance=advance, dry_run=dry_run)
            if page.left_behind:
                return
            if page.next_from_id is None:
                result.complete = True
                return
            from_id = page.next_from_id
            await checkpoint()

    def _cut(
        self, raw: Sequence[object], *, cutoff_ms: int | None, stop_after_ms: int | None
    ) -> _Page:
        rows = self._decode(raw)
        taken: list[UserTrade] = []
        for row in rows:
            if (cutoff_ms is not None and row.time > cutoff_ms) or (
                stop_after_ms is not None and row.time > stop_after_ms
            ):
                return _Page(taken, None, True)
            taken.append(row)
        full = len(raw) >= self.page_limit
        return _Page(taken, rows[-1].id + 1 if full and rows else None, False)

    async def _take(
        self,
        symbol: str,
        trades: list[UserTrade],
        result: SweepResult,
        *,
        advance: bool,
        dry_run: bool,
    ) -> None:
        fresh = trades
        if self.index is not None:
            stored = await self.index.stored_fills(
                self.account,
                self.market,
                symbol,
                from_trade_id=trades[0].id,
                to_trade_id=trades[-1].id,
            )
            fresh = [t for t in trades if (t.id, t.orderId) not in stored]
        result.found += len(trades)
        if dry_run:
            result.missing.extend(fresh)
            return
        if fresh:
            result.new += await self.submit(symbol, fresh)
        FILLS_FOUND.labels(self.account, self.market).inc(len(trades))
        if advance:
            last = trades[-1]
            await self.cursors.advance(symbol, last.id, last.time)

    async def submit(self, symbol: str, trades: list[UserTrade]) -> int:
        """Enrich ``trades`` of ``symbol`` and submit them; returns how many were new."""
        received_ns = time.time_ns()
        times: dict[int, int] = {}
        for t in trades:
            times[t.orderId] = max(times.get(t.orderId, 0), t.time)
        found = await self.enricher.lookup(symbol, times.keys(), times=times)
        fills = []
        for t in trades:
            try:
                fills.append(
                    trade_fill(
                        t,
                        account=self.account,
                        market=self.market,
                        info=found.info.get(t.orderId),
                        received_at_ns=received_ns,
                        contract_size=await self.venue.contract_size_of(symbol),
                    )
                )
            except ValueError as exc:
                self._bad([t], str(exc))
        orders = []
        for order in found.orders.values():
            try:
                orders.append(
                    order_update(
                        order, account=self.account, market=self.market, received_at_ns=received_ns
                    )
                )
            except ValueError as exc:
                BAD_ROWS.labels(self.account, self.market, "order").inc()
                log.warning(
                    "%s: malformed order row skipped (%s): %.300r", self.account, exc, order
                )
        links = [
            algo_link_from_algo_order(a, account=self.account, market=self.market)
            for a in found.algos.values()
        ]
        outcome = await self.sink.submit(
            IngestBatch(
                account=self.account,
                market=self.market,
                source=FillSource.RECONCILE,
                fills=tuple(fills),
                orders=tuple(orders),
                algo_links=tuple(links),
            )
        )
        FILLS_NEW.labels(self.account, self.market).inc(outcome.new_fills)
        if outcome.new_fills:
            log.info(
                "%s %s: %d new fill(s) recovered over REST",
                self.account,
                symbol,
                outcome.new_fills,
            )
        return outcome.new_fills

    def _decode(self, raw: Sequence[object]) -> list[UserTrade]:
        rows, bad = decode_rows(raw, UserTrade)
        if bad:
            self._bad(bad, "shape")
        rows.sort(key=lambda r: r.id)
        return rows

    def _bad(self, rows: list[object], why: str) -> None:
        BAD_ROWS.labels(self.account, self.market, "userTrades").inc(len(rows))
        log.error(
            "%s: %d userTrades row(s) skipped (%s); first: %.300r",
            self.account,
            len(rows),
            why,
            rows[0],
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bound(started_ms: int, cutoff_ms: int | None) -> int:
    return started_ms if cutoff_ms is None else min(started_ms, cutoff_ms)
