"""The REST path of one account: when to look, what to look at, and in which order.

Triggers, most urgent first:

1. **gap** — the stream reports a window it may have missed (:meth:`Reconciler.on_gap`). Served
   at once, ahead of everything: a running periodic sweep yields between pages, and its REST
   calls go at ``GAP`` priority in the shared weight budget (only listenKeys go before).
   **evidence** — a narrow gap: the live stream proved a fill of one symbol missing
   (``stream/evidence.py``). Only that symbol is swept, up to the evidence's time even inside
   the settle delay, at ``GAP`` priority (with outage gaps, behind listenKeys and sockets in the
   shared budget); bursts are coalesced per symbol (``evidence_interval_s``) and never cut a
   failed run's backoff short, so a 429 never turns evidence into a retry storm.
2. **startup** — covers the downtime before this process ran; also seeds the book from
   ``positionRisk`` through position sync. At ``HISTORY`` priority; the sidecar may
   :meth:`~Reconciler.hold_startup` it until every account's socket and gap went first.
3. **manual** — :meth:`request` (HTTP) or :meth:`run_once` (tests, CLI).
4. **periodic** — every ``interval_s`` while the stream is healthy, ``degraded_interval_s``
   otherwise; at ``PERIODIC`` priority. While streaming, trades younger than
   ``settle_delay_s`` are left to the stream so the two paths do not race for attribution.

A failed run (rate limit, ban, outage) is counted and retried after ``Retry-After`` or a capped
exponential backoff with jitter (≥ 1 s after a timeout or 5xx), in a slot of the process-wide
pace of reconcile retries — never in a tight loop. Pending gaps survive failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from fillstream.binance import RestPriority, Venue, VenueError, rest_priority
from fillstream.binance.retry import Backoff, pacer
from fillstream.ledger import (
    CursorStore,
    FillIndex,
    FillSink,
    FillSource,
    Gap,
    Market,
    OrderView,
    StreamState,
)
from fillstream.ledger.errors import ConfigError
from fillstream.reconcile.backfill import Backfill, SweepResult
from fillstream.reconcile.cursors import CursorTable
from fillstream.reconcile.enrich import Enricher, StoredOrders
from fillstream.reconcile.funding import FundingPoller
from fillstream.reconcile.jobs import PRIORITY, NarrowGaps, RunReport, Trigger, merge_gaps
from fillstream.reconcile.metrics import CURSOR_LAG, DURATION, GAPS, RUNS
from fillstream.reconcile.orders import OrderSync
from fillstream.reconcile.positions import PositionSync, Snapshot
from fillstream.reconcile.repair import ProgressFn, RepairReport, repair_account
from fillstream.reconcile.setaside import SetAside
from fillstream.reconcile.settings import ReconcileSettings
from fillstream.reconcile.symbols import SymbolUniverse

log = logging.getLogger(__name__)

CURSOR_FRESH_MS = 5_000  # a gap is swept from the cursor when the cursor is this close to it
# Evidence: reading up from a cursor this close (a few pages) beats a time search each time, and
# moves the cursor so the next sweep of the symbol is a single page (no cursor yet: the sweep
# makes one).
EVIDENCE_CURSOR_MS = 600_000
EVIDENCE_MARGIN_MS = 1_000
GAP_PARALLEL_SYMBOLS = 4
_RETRIES = pacer("reconcile.retry")


class Reconciler:
    """One account's REST path; implements :class:`fillstream.ledger.GapListener`.

    Lifecycle: :meth:`start` (loads cursors), :meth:`run` (the loop, until :meth:`aclose`),
    :meth:`run_once` (one run now; tests and the CLI), idempotent :meth:`aclose`.
    One run at a time; :meth:`on_gap`, :meth:`on_stream_state` and :meth:`request` only enqueue.
    """

    def __init__(
        self,
        *,
        account: str,
        market: Market,
        venue: Venue,
        sink: FillSink,
        cursors: CursorStore,
        orders: OrderView | None = None,
        index: FillIndex | None = None,
        settings: ReconcileSettings | None = None,
    ) -> None:
        self.account = account
        self.market = market
        self.venue = venue
        self.sink = sink
        self.index = index
        self.settings = s = settings or ReconcileSettings()
        self.cursors = CursorTable(cursors, account=account, market=market)
        self.enricher = Enricher(
            venue,
            account=account,
            market=market,
            cache_size=s.order_cache_size,
            # The stream's orders and algo links, as stored: REST only for what they lack.
            stored=orders if isinstance(orders, StoredOrders) else None,
        )
        self.backfill = Backfill(
            account=account,
            market=market,
            venue=venue,
            sink=sink,
            enricher=self.enricher,
            cursors=self.cursors,
            index=index,
            page_limit=s.page_limit,
            horizon_ms=int(s.horizon_days * 86_400_000),
        )
        self.universe = SymbolUniverse(
            account=account,
            market=market,
            venue=venue,
            sink=sink,
            cursors=self.cursors,
            view=orders,
            configured=s.symbols,
            recent_cursor_ms=int(s.recent_cursor_days * 86_400_000),
            all_symbol_min_interval_s=s.all_symbol_calls_min_interval_s,
            discovery_lookback_ms=int(min(s.horizon_days, 90.0) * 86_400_000),
            spot_quote_assets=s.spot_quote_assets,
            spot_probe_max=s.spot_probe_max,
        )
        self.set_aside = SetAside(
            account=account,
            market=market,
            retry_s=s.refused_symbol_retry_s,
            retry_max_s=s.refused_symbol_retry_max_s,
        )
        self.positions = PositionSync(
            account=account, market=market, venue=venue, sink=sink, set_aside=self.set_aside
        )
        self.funding = FundingPoller(
            account=account,
            market=market,
            venue=venue,
            sink=sink,
            lookback_ms=int(min(s.horizon_days, 7.0) * 86_400_000),
        )
        self.order_sync = (
            OrderSync(
                account=account,
                market=market,
                venue=venue,
                sink=sink,
                view=orders,
                enricher=self.enricher,
                check_after_s=s.order_check_after_s,
                max_checks=s.max_order_checks_per_run,
            )
            if orders is not None
            else None
        )
        self.state: StreamState | None = None
        self.last_run: RunReport | None = None
        self._gaps: list[tuple[Gap, bool]] = []  # (window, reported while streaming)
        self._narrow = NarrowGaps(s.evidence_interval_s)
        self._flush_evidence = False  # run_once: serve every narrow gap, spacing or not
        self._manual = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._in_gap = False
        self._run_task: asyncio.Task[None] | None = None
        self._last_periodic = float("-inf")
        self._last_position_check = float("-inf")
        self._last_funding = float("-inf")
        self._stream_mark: tuple[int | None, float] = (None, 0.0)  # (newest stream fill, seen)
        self._retry_at = 0.0
        self._failures = Backoff(min(1.0, s.retry_backoff_max_s), s.retry_backoff_max_s)
        self._startup_held = False
        self.cursor_lag_s: float | None = None  # as of the last run (also a gauge)
        # Set once the first gap job / the start-up run has ended (whatever the outcome):
        # start-up ordering across accounts.
        self.first_gap_done = asyncio.Event()
        self.startup_done = asyncio.Event()

    # -- GapListener -----------------------------------------------------------------------------

    def on_gap(self, gap: Gap) -> None:
        """Enqueue a gap window; served at once (returns immediately)."""
        if gap.account != self.account or gap.market is not self.market:
            return
        GAPS.labels(self.account, self.market).inc()
        self.universe.note_streamed(gap.symbols)
        if gap.narrow:
            # Not urgent enough to cut a failed run's backoff short: evidence keeps coming.
            self._narrow.add(gap)
            self._wake.set()
            return
        # A gap reported while the stream is up (a rotation overlap, an unmatched TRADE_LITE)
        # comes from a live socket that may still deliver part of the window: its fresh trades
        # get the settle delay like any poll. After an outage, nothing before ``until`` can
        # still arrive, so the whole window is taken at once.
        self._gaps.append((gap, self.streaming))
        # A gap is urgent: whatever backoff a failed run left, try now (the budget still
        # honours any 429/418 pause, without sending).
        self._retry_at = 0.0
        self._wake.set()

    def on_stream_state(self, account: str, market: Market, state: StreamState) -> None:
        if account != self.account or market is not self.market:
            return
        self.state = state
        self._wake.set()

    def request(self) -> None:
        """Ask for a manual run as soon as possible (the HTTP trigger)."""
        self._manual = True
        self._wake.set()

    def hold_startup(self) -> None:
        """Keep the start-up run (and what follows it) waiting until :meth:`release_startup`;
        gaps are served meanwhile. Call before :meth:`run`."""
        self._startup_held = True

    def release_startup(self) -> None:
        self._startup_held = False
        self._wake.set()

    @property
    def streaming(self) -> bool:
        return self.state is StreamState.STREAMING

    @property
    def interval_s(self) -> float:
        s = self.settings
        return s.interval_s if self.streaming else s.degraded_interval_s

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the cursors. Idempotent."""
        if not self._started:
            await self.cursors.load()
            self._started = True

    async def run(self) -> None:
        """Serve gaps, the start-up run, manual requests and periodic polls until closed."""
        await self.start()
        self._run_task = asyncio.current_task()
        startup_pending = True
        while not self._closed:
            now = time.monotonic()
            if now < self._retry_at:
                await self._sleep(self._retry_at - now)
            elif self._gaps:
                await self._job(Trigger.GAP)
            elif startup_pending and self._startup_held:
                await self._sleep(3600.0)  # woken by a gap or the release
            elif startup_pending:
                startup_pending = False
                await self._job(Trigger.STARTUP)
                self.startup_done.set()
            elif now >= self._narrow.due_at():
                await self._job(Trigger.EVIDENCE)
            elif self._manual:
                self._manual = False
                await self._job(Trigger.MANUAL)
            elif now >= self._last_periodic + self.interval_s:
                await self._job(Trigger.PERIODIC)
            else:
                periodic = self._last_periodic + self.interval_s
                await self._sleep(min(periodic, self._narrow.due_at()) - now)

    async def run_once(self, trigger: Trigger | str = Trigger.MANUAL) -> RunReport:
        """One run now (waits for a run in progress); pending gaps are served first."""
        await self.start()
        if self._gaps:
            await self._job(Trigger.GAP)
        if self._narrow:
            self._flush_evidence = True
            await self._job(Trigger.EVIDENCE)
        return await self._job(Trigger(trigger))

    async def aclose(self, deadline_s: float = 5.0) -> None:
        """Stop the loop (after the current run, or cancel it past the deadline). Idempotent."""
        self._closed = True
        self._wake.set()
        task = self._run_task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wake.wait()
        self._wake.clear()

    # -- runs ----------------------------------------------------------------------------------

    async def _job(self, trigger: Trigger) -> RunReport:
        async with self._lock:
            return await self._execute(trigger)

    async def _execute(self, trigger: Trigger) -> RunReport:
        report = RunReport(trigger=trigger, started_at_ms=int(time.time() * 1000))
        started = time.monotonic()
        if trigger not in (Trigger.GAP, Trigger.EVIDENCE):
            self._last_periodic = started
        try:
            with rest_priority(PRIORITY[trigger]):
                if trigger is Trigger.GAP:
                    await self._serve_gaps(report)
                elif trigger is Trigger.EVIDENCE:
                    await self._serve_evidence(report)
                else:
                    await self._sweep(trigger, report)
            self._failures.reset()
        except VenueError as exc:
            report.outcome = (
                "auth_failed"
                if exc.is_auth
                else "rate_limited"
                if exc.is_rate_limited or exc.is_banned
                else "error"
            )
            report.error = str(exc)
            self._backoff(exc)
            log.warning("reconcile %s %s run failed: %s", self.account, trigger, exc)
        except Exception as exc:  # a supervisor: count, log with traceback, retry later
            report.outcome = "error"
            report.error = f"{type(exc).__name__}: {exc}"
            self._backoff(exc)
            log.exception("reconcile %s %s run crashed", self.account, trigger)
        report.duration_s = time.monotonic() - started
        if trigger is Trigger.GAP:
            self.first_gap_done.set()
        RUNS.labels(self.account, self.market, trigger, report.outcome).inc()
        DURATION.labels(self.account, self.market, trigger).observe(report.duration_s)
        self.last_run = report
        # A set-aside symbol has no cursor progress to show: it has its own gauge and status.
        polled = self.universe.current() - self.set_aside.symbols.keys()
        self.cursor_lag_s = self.cursors.lag_s(polled, int(time.time() * 1000))
        CURSOR_LAG.labels(self.account, self.market).set(self.cursor_lag_s)
        return report

    def _backoff(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._retry_at = now + _RETRIES.delay(now, self._failures.after(exc))

    async def _cutoff(self, *, until_ms: int | None = None) -> int | None:
        """Trades after this are left to the stream (None: take everything).

        While streaming: the settle delay, and, while the stream is still working through a
        backlog (its newest stored fill keeps moving), no further than that fill: a stream that
        is merely behind is not robbed of its fills. Once its watermark has stood still for
        ``stream_lag_grace_s`` the stream is idle, and whatever it has not stored is a miss.
        ``until_ms``: the end of an outage window, taken whole at once.
        """
        if not self.streaming:
            return None
        s = self.settings
        now = int(time.time() * 1000)
        cutoff = now - int(s.settle_delay_s * 1000)
        if self.index is not None:
            newest = await self.index.newest_fill_ms(
                self.account, self.market, source=FillSource.STREAM
            )
            mono = time.monotonic()
            if newest != self._stream_mark[0]:
                self._stream_mark = (newest, mono)
            moving = mono - self._stream_mark[1] < s.stream_lag_grace_s
            if newest is not None and moving and newest < cutoff:
                cutoff = newest
        return cutoff if until_ms is None else max(cutoff, until_ms)

    def _count(self, report: RunReport, result: SweepResult) -> None:
        report.found += result.found
        report.new += result.new

    async def _checkpoint(self) -> None:
        """Between pages, symbols and steps of a longer run: serve pending gaps first."""
        if self._in_gap:
            return
        if self._gaps:
            gap_report = await self._execute(Trigger.GAP)
            if gap_report.outcome != "ok":
                self._retry_at = 0.0  # the outer run carries on; its own failure backs off
        if time.monotonic() >= self._narrow.due_at() and time.monotonic() >= self._retry_at:
            await self._execute(Trigger.EVIDENCE)

    async def _serve_gaps(self, report: RunReport) -> None:
        gaps, self._gaps = self._gaps, []
        self._in_gap = True
        try:
            gap = merge_gaps([g for g, _ in gaps])
            outage = [g.until_ms for g, live in gaps if not live]
            if None in outage:
                cutoff = None  # the stream is still down: take everything
            elif outage:
                cutoff = await self._cutoff(until_ms=max(u for u in outage if u is not None))
            else:
                cutoff = await self._cutoff()
            # The stream's active symbols first: that is where the missed fills most likely are.
            waiting = self.set_aside.waiting()
            ordered = sorted(gap.symbols - waiting) + sorted(
                self.universe.current() - gap.symbols - waiting
            )
            report.symbols = len(ordered)
            windows = {symbol: (gap.since_ms, cutoff) for symbol in ordered}
            await self._sweep_windows(report, windows, fresh_ms=CURSOR_FRESH_MS)
        except BaseException:
            self._gaps[:0] = gaps  # not served: keep them for the next attempt
            raise
        finally:
            self._in_gap = False

    async def _serve_evidence(self, report: RunReport) -> None:
        """Sweep the symbols the stream proved short of a fill, each up to its evidence."""
        windows = self._narrow.take(time.monotonic(), force=self._flush_evidence)
        self._flush_evidence = False
        if not windows:
            return
        self._in_gap = True
        try:
            base = await self._cutoff()
            waiting = self.set_aside.waiting()
            bounded = {
                symbol: (since - EVIDENCE_MARGIN_MS, None if base is None else max(base, until))
                for symbol, (since, until) in windows.items()
                if symbol not in waiting
            }
            report.symbols = len(bounded)
            await self._sweep_windows(report, bounded, fresh_ms=EVIDENCE_CURSOR_MS, narrow=True)
        except BaseException:
            self._narrow.put_back(windows)
            raise
        finally:
            self._in_gap = False

    async def _sweep_windows(
        self,
        report: RunReport,
        windows: dict[str, tuple[int, int | None]],
        *,
        fresh_ms: int,
        narrow: bool = False,
    ) -> None:
        """Sweep each symbol from ``since`` (or its cursor, when within ``fresh_ms`` of it) up to
        its cutoff (None: everything).

        Symbols in parallel (a few at a time): their REST round trips overlap, and the pipeline
        still applies one batch at a time; the budget orders the requests.
        """
        limit = asyncio.Semaphore(GAP_PARALLEL_SYMBOLS)

        async def sweep(symbol: str, since_ms: int, cutoff: int | None) -> SweepResult | None:
            async with limit:
                cursor = self.cursors.get(symbol)
                if cursor is None and narrow:
                    return await self.backfill.from_cursor(symbol, cutoff_ms=cutoff)
                if cursor is not None and cursor.trade_time_ms >= since_ms - fresh_ms:
                    work = functools.partial(self.backfill.from_cursor, symbol, cutoff_ms=cutoff)
                else:
                    work = functools.partial(
                        self.backfill.window, symbol, since_ms, cutoff_ms=cutoff
                    )
                # A refused symbol is set aside; the window's other symbols carry on.
                return await self.set_aside.guard(symbol, work)

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(sweep(s, *w)) for s, w in windows.items()]
        except ExceptionGroup as group:
            # One venue refusal (rate limit, ban) is the run's outcome, as in a serial run.
            first = next((e for e in group.exceptions if isinstance(e, VenueError)), None)
            if first is None:
                raise
            raise first from group
        for task in tasks:
            result = task.result()
            if result is not None:
                self._count(report, result)

    async def _sweep(self, trigger: Trigger, report: RunReport) -> None:
        full = trigger is not Trigger.PERIODIC
        await self.universe.refresh(force=full)
        now = time.monotonic()
        snapshot: Snapshot | None = None
        if full or now - self._last_position_check >= self.settings.position_check_interval_s:
            snapshot = await self.positions.snapshot()
            self.universe.note_exchange(snapshot.symbols)
        # Spot: the symbols the balances point at are swept once (a cursor keeps those traded).
        symbols = sorted(
            (self.universe.current() | self.universe.probes) - self.set_aside.waiting()
        )
        report.symbols = len(symbols)
        for symbol in symbols:
            await self._checkpoint()
            work = functools.partial(
                self.backfill.from_cursor,
                symbol,
                cutoff_ms=await self._cutoff(),
                checkpoint=self._checkpoint,
            )
            # A refused symbol (delisted: -1121) is set aside; the others carry on.
            result = await self.set_aside.guard(symbol, work)
            self.universe.probed(symbol)
            if result is not None:
                self._count(report, result)
        interval = self.settings.funding_interval_s
        if (
            interval > 0
            and self.market is not Market.SPOT
            and (full or now - self._last_funding >= interval)
        ):
            await self._checkpoint()
            report.funding = await self.funding.run()
            self._last_funding = now
        if self.order_sync is not None:
            await self._checkpoint()
            report.orders_updated = await self.order_sync.run()
        if snapshot is not None:
            await self._checkpoint()
            self._last_position_check = now
            corrections = await self.positions.check(self._backfill_symbol, first=snapshot)
            report.corrected = len(corrections)

    async def _backfill_symbol(self, symbol: str) -> int | None:
        """For position sync: sweep ``symbol``; the time of its newest trade (now if trading)."""
        result = await self.backfill.from_cursor(symbol, cutoff_ms=await self._cutoff())
        if not result.complete:
            return int(time.time() * 1000)  # trades left to the stream: it is trading now
        cursor = self.cursors.get(symbol)
        times = [t for t in (result.newest_trade_ms, cursor and cursor.trade_time_ms) if t]
        return max(times) if times else None

    # -- repair --------------------------------------------------------------------------------

    async def repair(
        self, since_ms: int, *, apply: bool = False, progress: ProgressFn | None = None
    ) -> RepairReport:
        """List (and with ``apply``, add) every fill since ``since_ms`` the store lacks, and the
        positions the exchange disagrees with. Idempotent; needs the :class:`FillIndex`."""
        if self.index is None:
            raise ConfigError("repair needs a fill index (the store) to tell what is missing")
        await self.start()
        report = RepairReport(
            account=self.account, market=self.market, since_ms=since_ms, applied=apply
        )
        started = time.monotonic()
        outcome = "error"
        async with self._lock:
            try:
                with rest_priority(RestPriority.NORMAL):
                    await repair_account(
                        report,
                        backfill=self.backfill,
                        universe=self.universe,
                        positions=self.positions,
                        backfill_symbol=self._backfill_symbol,
                        settle_delay_s=self.settings.settle_delay_s,
                        apply=apply,
                        progress=progress,
                    )
                outcome = "ok"
            finally:
                RUNS.labels(self.account, self.market, Trigger.REPAIR, outcome).inc()
                DURATION.labels(self.account, self.market, Trigger.REPAIR).observe(
                    time.monotonic() - started
                )
        return report
