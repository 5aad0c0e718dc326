"""The outbox relay: every committed outbox row reaches JetStream, in order, at least once.

Two paths, one loop:

* **fast** — the pipeline hands over the rows it has just committed (:meth:`OutboxRelay.offer`),
  so at low rate a fill goes commit → publish → ack with no polling; acknowledged rows are
  marked published (``retention_s`` > 0, pruned after it) or deleted (``retention_s`` = 0, the
  default) by a background task in coalesced batches.
* **drain** — at start-up and after any failed publish, the loop reads
  ``outbox WHERE published_at IS NULL ORDER BY id`` in chunks and publishes it, retrying with
  capped exponential backoff while NATS is down. Offers are ignored meanwhile (the rows are in
  the table); the loop starts accepting offers again *before* its last, empty-confirming read,
  so a row committed around the switch is seen by one path or the other.

Why delete by default (design.md said "mark"): PostgreSQL's facts are the system of record and
JetStream the delivery log, so a published outbox row is dead weight, and marking it costs an
UPDATE (a new row version and index entry) plus a later DELETE: measured 25 ms per 1,000 rows
for the UPDATE against 6 ms for the DELETE, on the hot path's database. Either way,
``published_at IS NULL`` counts what is pending.

The ``outbox_pending`` gauge counts offers up and marks down, and is set to the table's count of
unpublished rows (up or down) whenever the relay has been quiet for ``resync_interval_s`` or has
just marked, unless that count may be stale (see :meth:`OutboxRelay.committing`). With replicas
every process shares the table, so :meth:`OutboxRelay.count_only` restricts that count to the
accounts this process owns (the account is the second field of every ``Nats-Msg-Id``,
:data:`ROW_ACCOUNT`): summed over the replicas the gauges count the table once.

**sweep** — every ``sweep_interval_s`` one index lookup reads the age of the oldest unpublished
row; older than ``stale_after_s`` while the fast path is running means no relay is publishing it
(with replicas: a process committed it and died before its relay published it; its relay was
the only one that knew of the row), so the relay switches to the drain. Nothing waits for a
takeover, or for anyone else's restart; rows another relay publishes meanwhile are deduplicated
by their ``Nats-Msg-Id``.

The fast path's memory queue is bounded (``max_queued`` messages): an offer that would pass it
switches the relay to the drain, so a relay that falls behind under sustained load reads the
table in chunks instead of growing the process. Nothing is ever deleted unpublished.
Publication order per subject follows outbox id order
except around a failure, where a row retried from the table lands after younger rows that had
already been acknowledged (consumers dedup on ``Nats-Msg-Id`` and order by exchange time).
Duplicates on JetStream are impossible within its duplicate window (2 h by default), whatever
is retried. Several relays may share a database (replicas): each publishes what its process
commits, the sweep publishes what nobody does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence

import asyncpg
from prometheus_client import Histogram

from fillstream.storage import metrics
from fillstream.storage.payloads import OutboxMessage
from fillstream.storage.pool import DB_ERRORS
from fillstream.storage.publisher import JetStreamPublisher
from fillstream.storage.repository import Ledger

log = logging.getLogger(__name__)

PublishedListener = Callable[[Sequence[OutboxMessage], int], None]
"""Called with the messages JetStream just stored and the ack time (``time.time_ns``)."""

_UNPUBLISHED = """
SELECT id, subject, msg_id, payload FROM outbox
WHERE published_at IS NULL AND id > $2 ORDER BY id LIMIT $1
"""
# Without waiting for the WAL flush: a mark lost in a crash only means a republish, which
# JetStream deduplicates; the commit that matters (the facts) was synchronous. One simple-query
# round trip (the implicit transaction keeps SET LOCAL to this statement); ids are our integers.
_MARK = (
    "SET LOCAL synchronous_commit TO off; "
    "UPDATE outbox SET published_at = now() WHERE id = ANY('{{{ids}}}'::bigint[])"
)
_DELETE = (
    "SET LOCAL synchronous_commit TO off; DELETE FROM outbox WHERE id = ANY('{{{ids}}}'::bigint[])"
)
_COUNT = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
# The account of an outbox row: every Nats-Msg-Id is "<kind>:<account>:<market>:...", a
# retraction "retracted:close:<account>:...". (No account column: the outbox is the wire.)
ROW_ACCOUNT = (
    "CASE WHEN msg_id LIKE 'retracted:%' THEN split_part(msg_id, ':', 3)"
    " ELSE split_part(msg_id, ':', 2) END"
)
_COUNT_OF = _COUNT + f" AND {ROW_ACCOUNT} = ANY($1::text[])"
# The oldest unpublished row's age: the first entry of the partial index outbox_unpublished.
_OLDEST_AGE_S = """
SELECT extract(epoch from now() - created_at) FROM outbox
WHERE published_at IS NULL ORDER BY id LIMIT 1
"""
# By id range (the primary key), in bounded chunks: no index on published_at to maintain.
_PRUNE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE id <= $1 AND published_at IS NOT NULL LIMIT 10000)
"""


class OutboxRelay:
    """Publishes the outbox of one database through one :class:`JetStreamPublisher`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: JetStreamPublisher,
        *,
        chunk: int = 1000,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        retention_s: float = 0.0,
        prune_interval_s: float = 60.0,
        mark_delay_s: float = 0.1,
        max_queued: int = 20_000,
        resync_interval_s: float = 1.0,
        sweep_interval_s: float = 5.0,
        stale_after_s: float = 10.0,
        on_published: PublishedListener | None = None,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.chunk = chunk
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        self.mark_delay_s = mark_delay_s
        self.max_queued = max_queued
        self.resync_interval_s = resync_interval_s
        self.sweep_interval_s = sweep_interval_s
        self.stale_after_s = stale_after_s
        self.on_published = on_published
        self._scope: Callable[[], Collection[str]] | None = None
        self._queue: collections.deque[OutboxMessage] = collections.deque()
        self._accepting = False  # False while draining: the table is the source then
        self._wake = asyncio.Event()
        self._queue_empty = asyncio.Event()  # set while nothing is queued on the fast path
        self._queue_empty.set()
        self._to_mark: list[int] = []
        self._mark_wake = asyncio.Event()
        self._mark_lock = asyncio.Lock()
        self._pending = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._last_prune = 0.0
        # (monotonic time, highest id marked by then): what may be pruned once it is old enough.
        self._checkpoints: collections.deque[tuple[float, int]] = collections.deque()
        self._max_marked = 0
        self._latency_children: dict[tuple[str, str], Histogram] = {}
        self._changes = 0  # offers, marks and commits so far: a count read meanwhile is stale
        self._committing = 0  # writes of outbox rows not yet offered (see committing())
        self._last_resync = 0.0

    # -- public surface ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Rows committed and not yet marked published (also the ``outbox_pending`` gauge)."""
        return self._pending

    @property
    def draining(self) -> bool:
        return not self._accepting

    def count_only(self, accounts: Callable[[], Collection[str]]) -> None:
        """Count in the gauge only the table's rows of ``accounts()`` (the accounts this
        process owns, with replicas), not the whole table."""
        self._scope = accounts

    async def start(self) -> None:
        """Count the leftovers and start publishing them, then live rows. Idempotent."""
        if self._tasks:
            return
        self._set_pending(await self._count())
        self._last_prune = time.monotonic()
        self._closing = False
        self._tasks = [
            asyncio.create_task(self._run(), name="outbox-relay"),
            asyncio.create_task(self._mark_loop(), name="outbox-marker"),
        ]
        if self.sweep_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._sweep_loop(), name="outbox-sweep"))

    def offer(self, messages: Sequence[OutboxMessage]) -> None:
        """Hand over rows just committed (ids set). Never blocks; never loses them: while the
        relay is draining they stay in the table and the drain publishes them."""
        if not messages:
            return
        self._changes += 1
        self._set_pending(self._pending + len(messages))
        if self._accepting and len(self._queue) + len(messages) > self.max_queued:
            # Falling behind: memory stays bounded, the table is the queue (drained in chunks).
            log.warning("outbox relay: %d rows queued, draining from the table", len(self._queue))
            self._drop_queue()
            self._wake.set()
        elif self._accepting and not self._closing:
            self._queue.extend(messages)
            self._queue_empty.clear()
            self._wake.set()

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """Around a transaction that writes outbox rows and the :meth:`offer` of them.

        Between the commit and the offer a row is in the table and not yet in the gauge; the
        gauge is only set to the table's count when no such write was under way at any time
        while counting, so the count is exact and the gauge may rise to it as well as fall."""
        self._committing += 1
        self._changes += 1
        try:
            yield
        finally:
            self._committing -= 1
            self._changes += 1

    async def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Poll until every committed row is published and marked; False on timeout (tests)."""
        deadline = time.monotonic() + timeout_s
        while self._pending > 0 or self._queue or self._to_mark:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.01)
        return True

    async def aclose(self, deadline_s: float = 5.0) -> None:
        """Publish what is queued within the deadline, mark it, stop. Idempotent.

        Whatever is not published by then stays in the table for the next start.
        """
        if not self._tasks:
            return
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(deadline_s):
                await self._queue_empty.wait()
                await self._flush_marks()
        except TimeoutError:
            pass
        except DB_ERRORS as exc:  # the rows stay; the next start publishes them again (deduped)
            log.warning("outbox marking at close: PostgreSQL unavailable: %s", exc)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._drop_queue()

    async def run_once(self) -> bool:
        """One drain of the table without the background loop; True when it ended empty."""
        return await self._drain()

    async def republish(self, ledger: Ledger, since_ms: int) -> int:
        """Publish again every stored fact since ``since_ms`` (``fillstream republish``).

        Same ``Nats-Msg-Id`` as the first time: JetStream drops those still in its duplicate
        window, consumers drop the rest. Retries while NATS is down; returns messages sent.
        """
        sent = 0
        async for messages in ledger.stored_messages(since_ms, chunk=self.chunk):
            todo = list(messages)
            backoff = self.backoff_initial_s
            while todo:
                # One by one: nearly every message is on JetStream already, and an atomic batch
                # holding one is refused whole.
                outcomes = await self.publisher.publish_many(todo, atomic=False)
                todo = [m for m, o in zip(todo, outcomes, strict=True) if not o.stored]
                if todo:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
            sent += len(messages)
        return sent

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.backoff_initial_s
        while True:
            try:
                if not self._accepting:
                    if await self._drain():
                        backoff = self.backoff_initial_s
                        continue
                    metrics.RELAY_RETRIES.inc()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
                    await self._restore_stream()
                    continue
                if not self._queue:
                    await self._idle()
                    continue
                batch = [self._queue.popleft() for _ in range(min(self.chunk, len(self._queue)))]
                if not await self._publish(batch):
                    # The failed rows and everything queued behind them are in the table.
                    self._drop_queue()
            except Exception:  # a supervisor: log, count, back off, carry on
                log.exception("outbox relay round failed")
                metrics.RELAY_RETRIES.inc()
                self._drop_queue()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)

    async def _idle(self) -> None:
        """Wait for an offer; every ``resync_interval_s`` without one, resync the gauge."""
        self._queue_empty.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.resync_interval_s):
                await self._wake.wait()
        if self._wake.is_set():
            self._wake.clear()
        else:
            await self._resync_pending()

    async def _restore_stream(self) -> None:
        # The stream was deleted under us (no responders): recreate it as at start-up, since
        # the rows cannot go anywhere else.
        if not self.publisher.stream_missing or not self.publisher.nc.is_connected:
            return
        try:
            await self.publisher.ensure_stream()
        except Exception as exc:  # nats-py raises several unrelated types; retried next step
            log.warning("could not recreate stream %s: %r", self.publisher.stream, exc)

    async def _publish(self, batch: list[OutboxMessage]) -> bool:
        outcomes = await self.publisher.publish_many(batch)
        acked_ns = time.time_ns()
        stored = [m for m, o in zip(batch, outcomes, strict=True) if o.stored]
        if stored:
            self._to_mark.extend(m.id for m in stored)
            self._mark_wake.set()
            self._observe(stored, acked_ns)
        return len(stored) == len(batch)

    def _observe(self, stored: list[OutboxMessage], acked_ns: int) -> None:
        children = self._latency_children
        for m in stored:
            if m.received_at_ns is not None and m.account is not None and m.market is not None:
                child = children.get((m.account, m.market))
                if child is None:
                    child = metrics.EVENT_TO_PUBLISH_SECONDS.labels(m.account, m.market)
                    children[(m.account, m.market)] = child
                child.observe(max(0, acked_ns - m.received_at_ns) / 1e9)
        if self.on_published is not None:
            self.on_published(stored, acked_ns)

    async def _drain(self) -> bool:
        """Publish the table's unpublished rows in id order; True when none is left."""
        try:
            await self._flush_marks()
            after = 0  # skip rows already queued on the fast path (they go that way)
            while True:
                records = await self.pool.fetch(_UNPUBLISHED, self.chunk, after)
                if not records and not self._accepting:
                    if self._closing:
                        return True
                    # Accept offers first, then confirm the table is empty: a row committed
                    # in between is either offered now or seen by the next read.
                    self._accepting = True
                    continue
                queued = {m.id for m in self._queue}
                batch = [
                    OutboxMessage(
                        id=r["id"], subject=r["subject"], msg_id=r["msg_id"], payload=r["payload"]
                    )
                    for r in records
                    if r["id"] not in queued
                ]
                if not batch:
                    if len(records) < self.chunk:
                        await self._resync_pending()
                        return True
                    after = records[-1]["id"]
                    continue
                ok = await self._publish(batch)
                await self._flush_marks()
                if not ok:
                    self._drop_queue()
                    return False
        except DB_ERRORS as exc:
            log.warning("outbox drain: PostgreSQL unavailable: %s", exc)
            self._drop_queue()
            return False

    async def _sweep_loop(self) -> None:
        """Drain when the oldest unpublished row is older than ``stale_after_s`` while the fast
        path runs: no relay is publishing it (see the module docstring)."""
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            if not self._accepting or self._closing:
                continue  # draining already (or stopping)
            try:
                age = await self.pool.fetchval(_OLDEST_AGE_S)
            except DB_ERRORS as exc:
                log.warning("outbox sweep: PostgreSQL unavailable: %s", exc)
                continue
            if age is not None and age > self.stale_after_s and self._accepting:
                log.warning(
                    "outbox relay: a row has waited %.1f s unpublished (its process died?); "
                    "draining the table",
                    age,
                )
                self._drop_queue()
                self._wake.set()

    # -- marking -------------------------------------------------------------------------------

    async def _mark_loop(self) -> None:
        backoff = self.backoff_initial_s
        while True:
            await self._mark_wake.wait()
            if len(self._to_mark) < self.chunk:
                # Let acks gather: at low rate one statement per ack would cost PostgreSQL more
                # than the ingest itself, and nothing waits for the marks (at 100 fills/s a
                # 20 ms delay still made one DELETE per ~2.4 fills, beside the ingests on a
                # 2-core machine; 100 ms makes ten a second).
                await asyncio.sleep(self.mark_delay_s)
            self._mark_wake.clear()
            try:
                await self._flush_marks()
                await self._prune()
                if (
                    not self._queue
                    and time.monotonic() - self._last_resync >= self.resync_interval_s
                ):
                    await self._resync_pending()
                backoff = self.backoff_initial_s
            except DB_ERRORS as exc:
                log.warning("outbox marking: PostgreSQL unavailable: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                self._mark_wake.set()

    async def _flush_marks(self) -> None:
        async with self._mark_lock:
            while self._to_mark:
                ids, self._to_mark = self._to_mark, []
                try:
                    done = _MARK if self.retention_s > 0 else _DELETE
                    await self.pool.execute(done.format(ids=",".join(map(str, ids))))
                except BaseException:
                    self._to_mark[:0] = ids
                    raise
                self._changes += 1
                self._set_pending(self._pending - len(ids))
                self._max_marked = max(self._max_marked, *ids)

    async def _prune(self) -> None:
        """Forget rows published more than ``retention_s`` ago (republish reads the fact
        tables, not the outbox), and resynchronise the pending count with the table."""
        now = time.monotonic()
        if self.retention_s <= 0 or now - self._last_prune < self.prune_interval_s:
            return
        self._last_prune = now
        self._checkpoints.append((now, self._max_marked))
        prune_to = 0
        while self._checkpoints and self._checkpoints[0][0] <= now - self.retention_s:
            prune_to = self._checkpoints.popleft()[1]
        while prune_to:
            status = await self.pool.execute(_PRUNE, prune_to)
            if status == "DELETE 0":
                break
        await self._resync_pending()

    async def _resync_pending(self) -> None:
        """Set the gauge to the table's count of unpublished rows (up or down).

        Skipped when the count may be stale: an offer, a mark or a commit of outbox rows
        happened while counting, or one was under way when it began or ended (a row committed
        and not yet offered is in the count and not yet in the gauge; a mark being written may
        be in the count or not)."""
        self._last_resync = time.monotonic()
        if self._busy():
            return
        before = self._changes
        count = await self._count()
        if self._changes == before and not self._busy():
            self._set_pending(count)

    async def _count(self) -> int:
        """Unpublished rows: of the whole table, or of the accounts in :meth:`count_only`."""
        if self._scope is None:
            return int(await self.pool.fetchval(_COUNT))
        return int(await self.pool.fetchval(_COUNT_OF, list(self._scope())))

    def _busy(self) -> bool:
        return self._committing > 0 or self._mark_lock.locked()

    def _drop_queue(self) -> None:
        # Only ever done to rows that are committed: the drain will read them again.
        self._accepting = False
        self._queue.clear()
        self._queue_empty.set()

    def _set_pending(self, value: int) -> None:
        self._pending = max(0, value)
        metrics.OUTBOX_PENDING.set(self._pending)
