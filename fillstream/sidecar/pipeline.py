"""The ingest pipeline: where the stream and reconcile paths converge (design.md §4).

:class:`Pipeline` implements :class:`fillstream.ledger.FillSink` and
:class:`fillstream.ledger.StatusSink`. Each (account, market) has one worker and one queue, so an
account's facts are applied in submission order, one transaction at a time; accounts run in
parallel. The worker takes whatever is queued (up to ``max_batch`` fills) into one transaction:
under load that is one commit and one pipelined publish round for many fills; at low rate it is
a single fill, never held back waiting for company.

After the commit the worker hands the new outbox rows straight to the relay (the fast path to
JetStream) and resolves the submitters' futures. The PostgreSQL unique key decides what is new;
a new fill whose source is ``reconcile`` is one the stream missed, and is counted as such, unless
it was made before the account's stream first streamed in this process (see
:meth:`Pipeline.expect_stream`): such a fill (history, found by the start-up backfill) counts as
``before_stream``.

A batch PostgreSQL refuses for its *data* is never handed back to be retried forever: it is split
until the refused facts are alone (:mod:`fillstream.sidecar.isolate`), those go to the quarantine
table, everything else is stored and the submitters' futures resolve. A batch refused because the
store is unavailable fails its futures (the submitters retry, idempotently). Either way the worker
keeps its account's ingest health (:meth:`Pipeline.ingest_state`): ``/readyz`` is not ready while
an account's oldest submission waits longer than ``stuck_after_s`` or its last
``failing_after`` transactions failed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from fillstream.ledger import (
    BalanceChange,
    BalanceKind,
    Fill,
    FillKey,
    FillSource,
    IngestBatch,
    IngestResult,
    Market,
    Position,
    StatusChange,
    StreamState,
)
from fillstream.sidecar import metrics
from fillstream.sidecar.isolate import batch_of, facts, ingest_isolating, merge_outcomes
from fillstream.storage import (
    DB_ERRORS,
    IngestOutcome,
    Ledger,
    OutboxRelay,
    Quarantine,
    is_data_error,
)
from fillstream.storage.metrics import BALANCE_CHANGES
from fillstream.storage.quarantine import Fact, declare_metrics, fact_key, kind_of

log = logging.getLogger(__name__)

# The store is unavailable or refused the batch (ValueError: a fill of another account).
_INGEST_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, ValueError)
POISONED_MAX = 10_000  # quarantined fact keys remembered per account (skipped on sight)


class PipelineClosedError(RuntimeError):
    """The pipeline closed before this submission was committed (or it was submitted after
    ``aclose``). Nothing is lost by resubmitting it elsewhere or later: ingest is idempotent."""


class IngestState(msgspec.Struct, frozen=True, kw_only=True):
    """One account's ingest health, for ``/status`` and ``/readyz``.

    ``state``: ``ok``; ``stuck`` (the oldest submission not yet committed has waited more than
    ``stuck_after_s``); ``failing`` (the last ``failing_after`` transactions failed: the store
    keeps refusing). ``quarantined``: facts isolated since start.
    """

    state: str
    queued: int
    oldest_pending_s: float | None
    consecutive_failures: int
    last_error: str | None
    quarantined: int


class _Item(msgspec.Struct):
    batch: IngestBatch | None
    status: StatusChange | None
    future: asyncio.Future[IngestResult] | None
    submitted_ns: int


class _Worker:
    """The serial ingest of one (account, market)."""

    def __init__(self, pipeline: Pipeline, account: str, market: Market) -> None:
        self.pipeline = pipeline
        self.account = account
        self.market = market
        self.queue: collections.deque[_Item] = collections.deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        m = market.value
        self.fills = {s: metrics.FILLS_TOTAL.labels(account, m, s.value) for s in FillSource}
        self.dups = {s: metrics.FILLS_DUPLICATE.labels(account, m, s.value) for s in FillSource}
        self.missed = metrics.FILLS_MISSED_BY_STREAM.labels(account, m)
        self.before_stream = metrics.FILLS_BEFORE_STREAM.labels(account, m)
        # A stream is expected for this account and this is the trade time (ms) from which it
        # could deliver fills: the start of its first session (None: not streamed yet).
        self.stream_expected = False
        self.stream_since_ms: int | None = None
        self.errors = metrics.INGEST_ERRORS.labels(account, m)
        self.orders = metrics.ORDER_TRANSITIONS.labels(account, m)
        # Spot only: futures accounts report no balance facts, so they get no zero series.
        self.balances = (
            {
                (k, s): BALANCE_CHANGES.labels(account, m, k.value, s.value)
                for k in BalanceKind
                for s in FillSource
            }
            if market is Market.SPOT
            else {}
        )
        declare_metrics(account, m)
        self.in_flight_ns: int | None = None  # submission time of the oldest item in a commit
        self.failures = 0  # consecutive failed transactions
        self.last_error: str | None = None
        self.quarantined = 0
        self.poisoned: set[str] = set()  # "kind:key" of quarantined facts
        self.task = asyncio.create_task(self.run(), name=f"ingest-{account}-{m}")

    def put(self, item: _Item) -> None:
        self.queue.append(item)
        self.idle.clear()
        self.wake.set()

    async def run(self) -> None:
        while True:
            if not self.queue:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            head = self.queue.popleft()
            if head.status is not None:
                await self._status(head.status)
                continue
            items = [head]
            size = len(head.batch.fills) if head.batch else 0
            limit = self.pipeline.max_batch
            while self.queue and self.queue[0].batch is not None:
                more = len(self.queue[0].batch.fills)
                if size + more > limit:
                    break
                items.append(self.queue.popleft())
                size += more
            self.in_flight_ns = items[0].submitted_ns
            try:
                await self._ingest(items, size)
            except asyncio.CancelledError:
                # Closed mid-commit: the outcome is unknown to us, so say so (resubmitting is
                # safe: idempotent) rather than leave the submitters waiting forever.
                _fail(items, PipelineClosedError("closed during commit; resubmit"))
                raise
            except Exception as exc:  # a supervisor: a bug here must not stall the account
                log.exception("ingest worker %s/%s", self.account, self.market)
                self._note_failure(exc)
                _fail(items, exc)
            finally:
                self.in_flight_ns = None

    async def _ingest(self, items: list[_Item], size: int) -> None:
        batches = [item.batch for item in items if item.batch is not None]
        merged = batches[0] if len(batches) == 1 else _merge(batches)
        skipped: set[FillKey] = set()
        try:
            with self.pipeline.relay.committing():
                try:
                    outcome = await self.pipeline.ledger.ingest(merged)
                except _INGEST_ERRORS as exc:
                    if not is_data_error(exc):
                        raise
                    # Refused for its data: the same batch would be refused forever. Isolate.
                    outcome = await self._isolate(merged, exc, skipped)
                else:
                    self.pipeline.relay.offer(outcome.messages)
        except _INGEST_ERRORS as exc:
            # The store is gone (or said no for another reason): the submitters own the retry.
            self.errors.inc()
            self._note_failure(exc)
            log.warning("ingest %s/%s failed: %r", self.account, self.market, exc)
            _fail(items, exc)
            return
        self.failures = 0
        committed_ns = time.time_ns()
        metrics.INGEST_BATCH_SIZE.observe(size)
        self._count(outcome)
        for item, result in zip(items, _results(batches, outcome, skipped), strict=True):
            metrics.INGEST_SECONDS.observe((committed_ns - item.submitted_ns) / 1e9)
            if item.future is not None and not item.future.done():
                item.future.set_result(result)

    async def _isolate(
        self, batch: IngestBatch, error: BaseException, skipped: set[FillKey]
    ) -> IngestOutcome:
        self.errors.inc()
        if self.poisoned:
            # Facts quarantined before, delivered again (a resubmission, the other path): leave
            # them out rather than split again. Only here, so the hot path pays nothing.
            known = self._without_poisoned(batch, skipped)
            if len(facts(known)) < len(facts(batch)):
                try:
                    outcome = await self.pipeline.ledger.ingest(known)
                except _INGEST_ERRORS as exc:
                    if not is_data_error(exc):
                        raise
                    batch, error = known, exc
                else:
                    self.pipeline.relay.offer(outcome.messages)
                    return outcome
        log.warning(
            "ingest %s/%s: batch of %d fact(s) refused for its data (%r); isolating",
            self.account,
            self.market,
            len(facts(batch)),
            error,
        )
        isolated = await ingest_isolating(
            self.pipeline.ledger,
            self.pipeline.quarantine,
            batch,
            error,
            on_commit=lambda o: self.pipeline.relay.offer(o.messages),
        )
        for fact in isolated.quarantined:
            self.quarantined += 1
            if len(self.poisoned) < POISONED_MAX:
                self.poisoned.add(_poison_key(fact))
            if isinstance(fact, Fill):
                skipped.add(fact.key)
        return merge_outcomes(isolated.outcomes)

    def _without_poisoned(self, batch: IngestBatch, skipped: set[FillKey]) -> IngestBatch:
        """``batch`` without the facts quarantined before (delivered again: not retried)."""
        kept: list[Fact] = []
        for fact in facts(batch):
            if _poison_key(fact) not in self.poisoned:
                kept.append(fact)
            elif isinstance(fact, Fill):
                skipped.add(fact.key)
        return batch_of(batch, kept)

    def _note_failure(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def state(self, stuck_after_s: float, failing_after: int) -> IngestState:
        now = time.time_ns()
        times = (self.in_flight_ns, self.queue[0].submitted_ns if self.queue else None)
        oldest = min((t for t in times if t is not None), default=None)
        age = None if oldest is None else max(0.0, (now - oldest) / 1e9)
        state = "ok"
        if self.failures >= failing_after:
            state = "failing"
        elif age is not None and age > stuck_after_s:
            state = "stuck"
        return IngestState(
            state=state,
            queued=len(self.queue),
            oldest_pending_s=None if age is None else round(age, 3),
            consecutive_failures=self.failures,
            last_error=self.last_error,
            quarantined=self.quarantined,
        )

    def _count(self, outcome: IngestOutcome) -> None:
        # One increment per source and batch, not per fill: this runs at the full fill rate.
        new = collections.Counter(f.source for f in outcome.new_fills)
        for source, n in new.items():
            self.fills[source].inc(n)
        if new[FillSource.RECONCILE]:
            self._attribute([f for f in outcome.new_fills if f.source is FillSource.RECONCILE])
        for source, n in collections.Counter(f.source for f in outcome.duplicate_fills).items():
            self.dups[source].inc(n)
        m = self.market.value
        for c in outcome.closes:
            if c.revision == 0:
                metrics.CLOSES_TOTAL.labels(self.account, m, c.reason.value).inc()
            else:
                metrics.CLOSE_REVISIONS.labels(self.account, m, "revised").inc()
        if outcome.retracted:
            metrics.CLOSE_REVISIONS.labels(self.account, m, "retracted").inc(len(outcome.retracted))
        if outcome.orders:
            self.orders.inc(len(outcome.orders))
        if outcome.balances:
            self._count_balances(outcome.balances)

    def _count_balances(self, balances: Sequence[BalanceChange]) -> None:
        for (kind, source), n in collections.Counter((b.kind, b.source) for b in balances).items():
            counter = self.balances.get((kind, source))
            if counter is None:  # not a spot account, yet it reported balances: count them too
                counter = BALANCE_CHANGES.labels(
                    self.account, self.market.value, kind.value, source.value
                )
            counter.inc(n)

    def _attribute(self, recovered: Sequence[Fill]) -> None:
        """REST-first fills: missed by the stream, or made before its first session began."""
        before = 0
        if self.stream_expected:
            since = self.stream_since_ms
            before = sum(1 for f in recovered if since is None or f.trade_time_ms < since)
        missed = len(recovered) - before
        if missed:
            self.missed.inc(missed)
        if before:
            self.before_stream.inc(before)
            log.info(
                "%s/%s: %d fill(s) from before the stream's first session stored from REST",
                self.account,
                self.market,
                before,
            )

    async def _status(self, change: StatusChange) -> None:
        if change.state is StreamState.STREAMING and self.stream_since_ms is None:
            self.stream_since_ms = change.time_ms
        with self.pipeline.relay.committing():
            try:
                message = await self.pipeline.ledger.record_status(change)
            except DB_ERRORS as exc:
                # Health information only: the stream's own metrics still show the state.
                self.errors.inc()
                log.warning("status %s of %s not stored: %r", change.state, change.account, exc)
                return
            self.pipeline.relay.offer([message])


def _poison_key(fact: Fact) -> str:
    return f"{kind_of(fact)}:{fact_key(fact)}"


def _fail(items: list[_Item], exc: BaseException) -> None:
    for item in items:
        if item.future is not None and not item.future.done():
            item.future.set_exception(exc)


def _merge(batches: Sequence[IngestBatch]) -> IngestBatch:
    """Consecutive submissions of one account as one batch, in order (each fact keeps its own
    source; the batch's source only labels retractions)."""
    first = batches[0]
    return IngestBatch(
        account=first.account,
        market=first.market,
        source=first.source,
        fills=tuple(f for b in batches for f in b.fills),
        orders=tuple(o for b in batches for o in b.orders),
        algo_links=tuple(a for b in batches for a in b.algo_links),
        corrections=tuple(c for b in batches for c in b.corrections),
        funding=tuple(f for b in batches for f in b.funding),
        balances=tuple(x for b in batches for x in b.balances),
    )


def _results(
    batches: Sequence[IngestBatch], outcome: IngestOutcome, skipped: set[FillKey] | None = None
) -> list[IngestResult]:
    """Split one transaction's outcome per submission: the first submission holding a new
    fill's key gets it as new; every other copy is a duplicate (the ledger's rule). Fills in
    ``skipped`` (quarantined) are neither."""
    if skipped:
        return _results_general(batches, outcome, skipped)
    if len(batches) == 1:
        return [
            IngestResult(
                new_fills=len(outcome.new_fills),
                duplicate_fills=len(outcome.duplicate_fills),
                closes=len(outcome.closes),
                orders=len(outcome.orders),
                balances=len(outcome.balances),
            )
        ]
    if not outcome.duplicate_fills and not outcome.orders and not outcome.balances:
        return _results_all_new(batches, outcome)
    return _results_general(batches, outcome, set())


def _results_general(
    batches: Sequence[IngestBatch], outcome: IngestOutcome, skipped: set[FillKey]
) -> list[IngestResult]:
    new_keys = {f.key for f in outcome.new_fills}
    closing = {
        FillKey(c.account, c.market, c.symbol, c.close_trade_id, c.close_order_id): n
        for n, c in enumerate(outcome.closes)
    }
    closes_of: collections.Counter[int] = collections.Counter()
    stored_orders = {(o.symbol, o.order_id, o.status, o.update_time_ms) for o in outcome.orders}
    stored_balances = {_balance_key(b) for b in outcome.balances}
    results: list[IngestResult] = []
    for index, batch in enumerate(batches):
        new = 0
        gone = 0
        for f in batch.fills:
            k = f.key
            if k in skipped:
                gone += 1
            elif k in new_keys:
                new_keys.discard(k)
                new += 1
                if k in closing:
                    closes_of[index] += 1
                    del closing[k]
        orders = _take(
            stored_orders,
            ((o.symbol, o.order_id, o.status, o.update_time_ms) for o in batch.orders),
        )
        balances = _take(stored_balances, (_balance_key(b) for b in batch.balances))
        results.append(
            IngestResult(
                new_fills=new,
                duplicate_fills=len(batch.fills) - new - gone,
                closes=closes_of[index],
                orders=orders,
                balances=balances,
            )
        )
    if closing:  # closes not caused by a fill of this call (corrections, late refolds)
        last = results[-1]
        results[-1] = msgspec.structs.replace(last, closes=last.closes + len(closing))
    return results


def _take(stored: set[Any], keys: Iterable[Any]) -> int:
    """How many of ``keys`` are in ``stored``, each taken out (the first copy counts)."""
    taken = 0
    for k in keys:
        if k in stored:
            stored.discard(k)
            taken += 1
    return taken


def _balance_key(b: BalanceChange) -> tuple[str, BalanceKind, int]:
    return (b.asset, b.kind, b.time_ms)


def _results_all_new(batches: Sequence[IngestBatch], outcome: IngestOutcome) -> list[IngestResult]:
    """The common case under load (stream fills, no copies): every fill is new."""
    closing = {(c.symbol, c.close_trade_id, c.close_order_id) for c in outcome.closes}
    results = []
    attributed = 0
    for batch in batches:
        closes = (
            sum(1 for f in batch.fills if (f.symbol, f.trade_id, f.order_id) in closing)
            if closing
            else 0
        )
        attributed += closes
        results.append(
            IngestResult(new_fills=len(batch.fills), duplicate_fills=0, closes=closes, orders=0)
        )
    if attributed < len(outcome.closes):
        last = results[-1]
        results[-1] = msgspec.structs.replace(
            last, closes=last.closes + len(outcome.closes) - attributed
        )
    return results


class Pipeline:
    """The :class:`~fillstream.ledger.FillSink` (and :class:`~fillstream.ledger.StatusSink`).

    ``submit`` resolves with the batch's :class:`IngestResult` once it is committed; the
    messages follow through the relay. It raises what the ledger raised (PostgreSQL down): the
    submitter still holds the facts and may submit them again (idempotent). To let batching
    work, a path should not wait for each submission before making the next: use
    :meth:`submit_nowait` and await the futures later (or from another task).
    """

    def __init__(
        self,
        ledger: Ledger,
        relay: OutboxRelay,
        *,
        max_batch: int = 1000,
        stuck_after_s: float = 30.0,
        failing_after: int = 3,
    ) -> None:
        self.ledger = ledger
        self.relay = relay
        self.max_batch = max_batch
        self.quarantine = Quarantine(ledger.pool)
        self.stuck_after_s = stuck_after_s
        self.failing_after = failing_after
        self._workers: dict[tuple[str, Market], _Worker] = {}
        self._closed = False

    async def start(self) -> None:
        """Nothing to prepare: workers start with an account's first submission."""
        self._closed = False

    def _worker(self, account: str, market: Market) -> _Worker:
        worker = self._workers.get((account, market))
        if worker is None:
            worker = self._workers[(account, market)] = _Worker(self, account, market)
        return worker

    def submit_nowait(self, batch: IngestBatch) -> asyncio.Future[IngestResult]:
        """Queue a batch; the future resolves once it is committed (or fails with the error)."""
        if self._closed:
            raise PipelineClosedError("the pipeline is closed")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        if not (
            batch.fills
            or batch.orders
            or batch.algo_links
            or batch.corrections
            or batch.funding
            or batch.balances
        ):
            future.set_result(IngestResult(new_fills=0, duplicate_fills=0, closes=0, orders=0))
            return future
        self._worker(batch.account, batch.market).put(
            _Item(batch=batch, status=None, future=future, submitted_ns=time.time_ns())
        )
        return future

    def expect_stream(self, account: str, market: Market) -> None:
        """A stream runs for ``account`` in this process. Until its first session starts
        streaming, and for trades made before that, fills first stored by the reconcile path are
        counted as ``before_stream`` (history), not as missed by the stream. Idempotent: a
        restarted account keeps the start of its first session."""
        self._worker(account, market).stream_expected = True

    async def submit(self, batch: IngestBatch) -> IngestResult:
        """Store one batch; returns once committed. Idempotent on every fact's key."""
        return await self.submit_nowait(batch)

    def ingest_state(self, account: str, market: Market) -> IngestState:
        """The account's ingest health (an account that never submitted is ``ok``, idle)."""
        worker = self._workers.get((account, market))
        if worker is None:
            return IngestState(
                state="ok",
                queued=0,
                oldest_pending_s=None,
                consecutive_failures=0,
                last_error=None,
                quarantined=0,
            )
        return worker.state(self.stuck_after_s, self.failing_after)

    async def positions(self, account: str, market: Market) -> list[Position]:
        """Positions as committed (flat ones included with ``qty`` 0)."""
        return await self.ledger.positions(account, market)

    def on_status(self, change: StatusChange) -> None:
        """Store and publish a stream health transition, in order with the account's fills."""
        if self._closed:
            return
        self._worker(change.account, change.market).put(
            _Item(batch=None, status=change, future=None, submitted_ns=time.time_ns())
        )

    async def wait_idle(self) -> None:
        """Until every queued submission is committed (not yet necessarily published)."""
        for worker in list(self._workers.values()):
            await worker.idle.wait()

    async def aclose(self, deadline_s: float = 5.0) -> None:
        """Refuse new submissions, commit what is queued within the deadline, stop. Idempotent.

        Submissions still queued at the deadline fail with :class:`PipelineClosedError`.
        """
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s):
                await self.wait_idle()
        for worker in self._workers.values():
            worker.task.cancel()
        for worker in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task
            _fail(list(worker.queue), PipelineClosedError("closed before commit"))
            worker.queue.clear()
        self._workers.clear()
