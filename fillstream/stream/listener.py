"""``UserStream``: one account's USDⓈ-M user-data stream that never silently stops.

Tasks (one TaskGroup per stream, so a bug anywhere brings the stream down loudly):

- the **supervisor** gets a listenKey (POST), opens the socket, and waits for trouble: the socket
  closed, a ping went unanswered, the key was lost (keepalive ``-1125``/hard failure/another key,
  ``listenKeyExpired``), the watchdog proved the stream stale, or rotation is due. It then
  reconnects with exponential backoff and full jitter (no attempt limit), or rotates
  make-before-break. Every new socket opens a :class:`~fillstream.ledger.Gap` from the last data
  event (minus ``gap_margin_ms``) until the moment it is live;
- one **reader** per socket (:mod:`.connection`) feeding a bounded frame queue;
- the **processor** drains whatever is queued (never waiting for more), decodes, parses, dedups
  and hands one :class:`~fillstream.ledger.IngestBatch` at a time to the sink (one submit in
  flight keeps the account's order);
- the **keepalive** loop PUTs the key on a jittered schedule;
- the **ticker** updates gauges, runs the staleness watchdog, turns unmatched TRADE_LITE
  signals into gaps, and triggers rotation before the 24 h cut.

States (metric ``fillstream_stream_state`` and ``StatusSink``/``GapListener``): connecting →
streaming → recovering (→ degraded after ``degraded_after_s``) → streaming …; auth_failed stops
only this account; stopped after :meth:`UserStream.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from websockets.exceptions import InvalidHandshake, InvalidURI

from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSink,
    FillSource,
    Gap,
    GapListener,
    IngestBatch,
    Market,
    OrderUpdate,
    Position,
    PositionSide,
    StatusChange,
    StatusSink,
    StreamState,
    Venue,
    VenueError,
)
from fillstream.stream.activity import AccountActivity, RecentSet
from fillstream.stream.backoff import Backoff
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings, mask_url
from fillstream.stream.connection import Connection, Frame, open_socket
from fillstream.stream.decode import FrameDecoder, FrameError, truncate
from fillstream.stream.listen_key import AuthFailedError, KeepaliveOutcome, ListenKeyManager
from fillstream.stream.metrics import StreamMetrics
from fillstream.stream.parse import (
    algo_link_from,
    dec,
    fill_from_order_update,
    order_update_from,
    position_from,
    position_side,
)
from fillstream.stream.watchdog import StalenessWatchdog
from fillstream.stream.wire import (
    AccountUpdate,
    AlgoUpdate,
    Event,
    ListenKeyExpired,
    MarginCall,
    OrderTradeUpdate,
    TradeLite,
)

log = logging.getLogger("fillstream.stream")

_CONNECT_ERRORS: Final = (OSError, TimeoutError, InvalidHandshake, InvalidURI)
_DEDUP_TAIL_NS: Final = 5_000_000_000  # a lagging new socket may repeat the old one's last events
_LOG_EVERY: Final = 1000  # after the first few, log one bad frame in this many

_GAP_REASONS: Final = {
    "disconnect": "reconnect",
    "ping_timeout": "reconnect",
    "listen_key_expired": "listen_key_expired",
    "listen_key_gone": "key_changed",
    "keepalive_failed": "key_changed",
    "key_changed": "key_changed",
    "stale": "stale",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class UserStream:
    """The user-data stream of one account (see module docstring).

    ``run()`` runs until :meth:`aclose` (usable inside a TaskGroup); ``start()`` runs it in a task
    of its own. ``aclose(deadline_s)`` is idempotent: it stops reading, flushes queued frames into
    the sink, and deletes the listenKey unless ``delete_key_on_shutdown`` is off.
    """

    def __init__(
        self,
        account: str,
        venue: Venue,
        sink: FillSink,
        gaps: GapListener,
        settings: StreamSettings | None = None,
        *,
        status: StatusSink | None = None,
        market: Market | None = None,
        decoder: FrameDecoder | None = None,
    ) -> None:
        self.account = account
        self.market = market or venue.market
        self.settings = (settings or StreamSettings()).validate()
        self._venue = venue
        self._sink = sink
        self._gaps = gaps
        self._status = status
        self._decoder = decoder or FrameDecoder()
        self.metrics = StreamMetrics(account, self.market.value)
        self.activity = AccountActivity()
        self._keys = ListenKeyManager(venue, account, self.settings, self.metrics)
        self._watchdog = StalenessWatchdog(venue, self.activity, self.settings)
        self._queue: FrameBuffer[Frame | None] = FrameBuffer(self.settings.queue_max)
        self._counts: dict[str, int] = {}  # events by type in the current processor pass
        self.state = StreamState.CONNECTING
        self.metrics.state(self.state)
        # Connections: the current one, plus the old one during a make-before-break overlap.
        self._conns: dict[int, Connection] = {}
        self._current: Connection | None = None
        self._next_conn_id = 1
        self._live_since_ms = 0
        self._live_since_mono = time.monotonic()
        self._rotating = False
        self._rotation_retry_at = 0.0
        self._verifying: asyncio.Task[None] | None = None
        # Data watermark, for gap windows and staleness.
        self._started_ms = _now_ms()
        self._started_mono = time.monotonic()
        self._last_event_ms: int | None = None  # min(E, receipt) of the last data event
        self._last_data_mono: float | None = None
        self._outage_since_mono: float | None = None
        # Raw-frame dedup, active during a rotation overlap (frames received before the limit).
        self._dedup_until_ns = 0
        self._recent_frames: RecentSet[bytes] = RecentSet(4 * self.settings.max_batch)
        # Trouble: the first reason wins until the supervisor takes it.
        self._trouble = asyncio.Event()
        self._trouble_reason: str | None = None
        self._closing = asyncio.Event()
        self._done = asyncio.Event()
        self._deadline_mono = 0.0
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._processor: asyncio.Task[None] | None = None
        self._pending = _Pending()
        self._pending_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._draining = False
        self._tg: asyncio.TaskGroup | None = None
        self._bad_frames = 0
        # Public counters (tests and the status endpoint read them).
        self.frames = 0
        self.fills = 0
        self.duplicates = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the stream in a task of its own (see :meth:`run`)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"user-stream-{self.account}")

    async def run(self) -> None:
        """Stream until :meth:`aclose`; raises only on a bug (venue trouble is handled)."""
        if self._running:
            raise RuntimeError(f"user stream {self.account} is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._processor = tg.create_task(self._process(), name="stream-processor")
                background = [
                    tg.create_task(self._supervise(), name="stream-supervisor"),
                    tg.create_task(self._keepalive(), name="stream-keepalive"),
                    tg.create_task(self._tick(), name="stream-ticker"),
                ]
                await self._closing.wait()
                if self._verifying is not None:
                    background.append(self._verifying)
                for task in background:
                    task.cancel()
                # Let them finish first: a supervisor cancelled just after a handshake has
                # registered a socket that must be closed below, not left reading forever.
                await asyncio.wait(background)
                await self._shutdown()
            await self._release_key()
            self._set_state(StreamState.STOPPED, "shutdown")
        finally:
            self._done.set()

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Stop reading, flush queued frames into the sink, delete the listenKey (unless
        configured not to); give up waiting after ``deadline_s``. Idempotent."""
        if not self._closing.is_set():
            self._deadline_mono = time.monotonic() + deadline_s
            self._closing.set()
            self._trouble.set()  # wakes the supervisor even if its cancellation were lost
        if self._task is not None:
            await self._task
        elif self._running:
            await self._done.wait()
        else:
            self._set_state(StreamState.STOPPED, "shutdown")

    def _remaining_s(self) -> float:
        return max(0.0, self._deadline_mono - time.monotonic())

    async def _shutdown(self) -> None:
        self._current = None
        for conn in list(self._conns.values()):
            try:
                async with asyncio.timeout(self._remaining_s()):
                    await conn.close("shutdown")
            except TimeoutError:
                conn.abandon()
        processor = self._processor
        assert processor is not None
        try:
            async with asyncio.timeout(self._remaining_s()):
                await self._queue.put(None)
                await asyncio.shield(processor)
        except TimeoutError:
            log.warning(
                "%s: shutdown deadline passed with %d frames unprocessed; the start-up gap of the "
                "next run covers them",
                self.account,
                len(self._queue),
            )
            processor.cancel()

    async def _release_key(self) -> None:
        try:
            async with asyncio.timeout(max(self._remaining_s(), 1.0)):
                await self._keys.release()
        except TimeoutError:
            log.warning("%s: listenKey delete timed out", self.account)

    # ------------------------------------------------------------------ public views

    def positions(self) -> dict[tuple[str, PositionSide], Position]:
        """The latest ACCOUNT_UPDATE position per (symbol, position side), for cross-checks."""
        out: dict[tuple[str, PositionSide], Position] = {}
        for wire, updated_ms in self.activity.positions.values():
            p = position_from(wire, self.account, self.market, updated_at_ms=updated_ms)
            out[(p.symbol, p.position_side)] = p
        return out

    @property
    def listen_key(self) -> str | None:
        return self._keys.key

    @property
    def backlog(self) -> int:
        """Frames received and events decoded that the sink has not been handed yet."""
        return len(self._queue) + len(self._pending)

    @property
    def connected(self) -> bool:
        return self._current is not None and not self._current.done

    # ------------------------------------------------------------------ state and gaps

    def _set_state(self, state: StreamState, reason: str) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        self.metrics.state(state)
        log.info("%s/%s stream: %s → %s (%s)", self.account, self.market, previous, state, reason)
        self._gaps.on_stream_state(self.account, self.market, state)
        if self._status is not None:
            self._status.on_status(
                StatusChange(
                    account=self.account,
                    market=self.market,
                    state=state,
                    previous=previous,
                    reason=reason,
                    time_ms=_now_ms(),
                )
            )

    def _emit_gap(
        self,
        reason: str,
        until_ms: int,
        since_ms: int | None = None,
        symbols: frozenset[str] | None = None,
    ) -> None:
        """Hand the reconciler the window ``[since - margin, until]``.

        By default ``since`` is the later of the last data event and the moment the previous
        socket went live: everything before that was either received or covered by the previous
        gap; what came after may be lost.
        """
        if since_ms is None:
            since_ms = max(self._last_event_ms or 0, self._live_since_ms or self._started_ms)
        since_ms -= self.settings.gap_margin_ms
        gap = Gap(
            account=self.account,
            market=self.market,
            since_ms=since_ms,
            until_ms=until_ms,
            reason=reason,
            symbols=self.activity.active_symbols(time.monotonic()) if symbols is None else symbols,
        )
        self.metrics.gap(reason)
        log.info(
            "%s/%s gap %s: %d → %d (%.1fs)",
            self.account,
            self.market,
            reason,
            since_ms,
            until_ms,
            (until_ms - since_ms) / 1000,
        )
        self._gaps.on_gap(gap)

    def _signal(self, reason: str) -> None:
        """Report trouble to the supervisor (the first reason wins until it is taken)."""
        if self._trouble_reason is None:
            self._trouble_reason = reason
            self._trouble.set()

    async def _next_trouble(self) -> str:
        await self._trouble.wait()
        if self._closing.is_set():
            return "shutdown"
        reason = self._trouble_reason or "unknown"
        self._trouble_reason = None
        self._trouble.clear()
        return reason

    def _auth_failed(self, exc: AuthFailedError) -> None:
        log.error(
            "%s/%s: the venue rejected the API key (%s); this account's stream stops retrying",
            self.account,
            self.market,
            exc.cause,
        )
        self.metrics.auth_failed.set(1)
        self._set_state(StreamState.AUTH_FAILED, f"auth: code {exc.cause.code}")
        self._signal("auth_failed")

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self) -> None:
        reason = "start"
        while True:
            conn = await self._connect(reason)
            if conn is None:
                await self._close_all("auth_failed")
                return
            while True:
                reason = await self._next_trouble()
                if reason == "rotation":
                    await self._rotate()
                    continue
                break
            if reason == "shutdown":
                return
            if reason == "auth_failed":
                await self._close_all("auth_failed")
                return
            self.metrics.reconnect(reason)
            self._outage_since_mono = time.monotonic()
            self._set_state(StreamState.RECOVERING, reason)
            await self._close_all(reason)

    async def _connect(self, reason: str) -> Connection | None:
        """Connect (with backoff, forever); None once the key was rejected."""
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            try:
                conn = await self._open()
            except AuthFailedError as exc:
                self._auth_failed(exc)
                return None
            except (VenueError, *_CONNECT_ERRORS) as exc:
                retry_after = exc.retry_after_s if isinstance(exc, VenueError) else None
                delay = backoff.next_delay(retry_after)
                self.metrics.connect_failures.inc()
                log.warning(
                    "%s/%s connect failed (%s: %s); retry in %.2fs",
                    self.account,
                    self.market,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                self._update_outage_state(reason)
                await asyncio.sleep(delay)
                continue
            live_ms = _now_ms()
            self._emit_gap(_GAP_REASONS.get(reason, reason), live_ms)
            self._live_since_ms = live_ms
            self._live_since_mono = time.monotonic()
            self._outage_since_mono = None
            # Trouble raised about the previous socket (e.g. a keepalive verdict while we were
            # reconnecting) is settled by this new socket and key.
            self._trouble_reason = None
            self._trouble.clear()
            self._set_state(StreamState.STREAMING, f"connected after {reason}")
            return conn

    def _update_outage_state(self, reason: str) -> None:
        since = self._outage_since_mono
        if since is None:
            self._outage_since_mono = since = time.monotonic()
        if time.monotonic() - since >= self.settings.degraded_after_s:
            self._set_state(StreamState.DEGRADED, reason)
        elif self.state is not StreamState.DEGRADED:
            self._set_state(StreamState.RECOVERING, reason)

    async def _open(self) -> Connection:
        """POST the key (idempotent: the active key, extended, or a new one) and connect."""
        key = await self._keys.acquire()
        url = self.settings.url(key)
        ws = await open_socket(url, self.settings)
        conn = Connection(
            self._next_conn_id,
            ws,
            self._queue,
            settings=self.settings,
            metrics=self.metrics,
            on_closed=self._on_closed,
        )
        self._next_conn_id += 1
        self._conns[conn.id] = conn
        self._current = conn
        assert self._tg is not None
        self._tg.create_task(conn.run(), name=f"stream-reader-{conn.id}")
        self.metrics.connected.set(1)
        log.info(
            "%s/%s socket %d live on %s",
            self.account,
            self.market,
            conn.id,
            mask_url(url, key),
        )
        return conn

    def _on_closed(self, conn: Connection, reason: str) -> None:
        self._conns.pop(conn.id, None)
        if conn is self._current:
            self.metrics.connected.set(0)
            if reason not in ("closed_by_us", "shutdown", "rotated"):
                self._signal(reason)

    async def _close_all(self, reason: str) -> None:
        self._current = None
        for conn in list(self._conns.values()):
            await conn.close(reason)

    async def _rotate(self) -> None:
        """Make-before-break: the new socket reads before the old one closes; the overlap is
        deduplicated (raw frames, then fill keys)."""
        old = self._current
        self._rotating = True
        # Dedup raw frames from now until the old socket is closed plus a tail (see below).
        self._dedup_until_ns = 1 << 62
        try:
            try:
                new = await self._open()
            except AuthFailedError as exc:
                self._auth_failed(exc)
                return
            except (VenueError, *_CONNECT_ERRORS) as exc:
                # The old socket still works; try again later (the 24 h cut is an hour away).
                self._rotation_retry_at = time.monotonic() + self.settings.backoff_max_s
                self._dedup_until_ns = 0
                log.warning(
                    "%s/%s rotation failed, keeping the old socket: %s",
                    self.account,
                    self.market,
                    exc,
                )
                return
            self.metrics.reconnect("rotation")
            # Shutdown cancels us (never wait_for on _closing here: 3.11's wait_for swallows a
            # cancellation that races the inner wait's completion).
            await asyncio.sleep(self.settings.rotation_overlap_s)
            if old is not None:
                await old.close("rotated")
            self._dedup_until_ns = time.time_ns() + _DEDUP_TAIL_NS
            live_ms = _now_ms()
            self._emit_gap("rotation", live_ms)
            self._live_since_ms = live_ms
            self._live_since_mono = time.monotonic()
            log.info("%s/%s rotated to socket %d", self.account, self.market, new.id)
        finally:
            self._rotating = False

    # ------------------------------------------------------------------ keepalive and ticker

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self._keys.keepalive_delay_s())
            if self.state is StreamState.AUTH_FAILED:
                return
            if self._keys.key is None:
                continue
            try:
                outcome = await self._keys.keepalive()
            except AuthFailedError as exc:
                self._auth_failed(exc)
                return
            if outcome is not KeepaliveOutcome.OK:
                self._signal(outcome.value)

    async def _tick(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.tick_s)
            now = time.monotonic()
            last = self._last_data_mono
            self.metrics.last_event_age.set(
                now - (last if last is not None else self._started_mono)
            )
            self.metrics.queue_depth.set(len(self._queue))
            outage = self._outage_since_mono
            recovering = self.state is StreamState.RECOVERING
            if recovering and outage is not None and now - outage >= settings.degraded_after_s:
                self._set_state(StreamState.DEGRADED, "outage")
            self._check_trade_lite(now)
            current = self._current
            if self.state is not StreamState.STREAMING or current is None or current.done:
                continue
            if (
                not self._rotating
                and now - current.opened_mono >= settings.rotate_after_s
                and now >= self._rotation_retry_at
            ):
                self._signal("rotation")
                continue
            fresh = max(last or 0.0, self._live_since_mono)
            verifying = self._verifying is not None and not self._verifying.done()
            if not verifying and self._watchdog.due(now, fresh):
                # In a task of its own: REST may wait on the shared weight budget, and the
                # ticker's other duties (gauges, degradation, rotation) must not wait with it.
                assert self._tg is not None
                self._verifying = self._tg.create_task(
                    self._verify(now, current), name="stream-watchdog"
                )

    async def _verify(self, now: float, current: Connection) -> None:
        check = await self._watchdog.verify(now, self._live_since_ms)
        self.metrics.watchdog(check.verdict)
        if check.verdict == "mismatch" and self._current is current and not current.done:
            log.warning("%s/%s stream is stale: %s", self.account, self.market, check.detail)
            self._signal("stale")

    def _check_trade_lite(self, now: float) -> None:
        expired = self.activity.unmatched_lite(now, self.settings.trade_lite_grace_s)
        if not expired:
            return
        since = min(trade_ms for _, trade_ms in expired)
        log.warning(
            "%s/%s: %d TRADE_LITE trades never got their ORDER_TRADE_UPDATE",
            self.account,
            self.market,
            len(expired),
        )
        symbols = frozenset(ref[0] for ref, _ in expired)
        self._emit_gap("trade_lite_unmatched", _now_ms(), since_ms=since, symbols=symbols)

    # ------------------------------------------------------------------ processor

    async def _process(self) -> None:
        """Decode what is queued into the pending batch; the submitter hands it to the sink.

        Decoding the next frames overlaps the sink's commit of the previous batch, while the
        sink still sees one submission at a time, in order. When the pending batch is full the
        processor waits, the frame queue fills, and the reader pauses: backpressure.
        """
        queue = self._queue
        max_batch = self.settings.max_batch
        submitter = asyncio.create_task(self._submitter(), name="stream-submitter")
        try:
            while True:
                items = await queue.take(max_batch)
                stop = items[-1] is None
                now = time.monotonic()
                pending = self._pending
                for item in items:
                    if item is not None:
                        self._handle(item, now, pending)
                self.metrics.queue_depth.set(len(queue))
                if self._counts:
                    self.metrics.events(self._counts)
                    self._counts = {}
                if pending:
                    self._pending_ready.set()
                if stop:
                    break
                while len(self._pending) >= 2 * max_batch:  # a fill frame is a fill + an order
                    self._room.clear()
                    await self._room.wait()
            self._draining = True
            self._pending_ready.set()
            await submitter
        finally:
            submitter.cancel()

    async def _submitter(self) -> None:
        while True:
            if not self._pending and not self._draining:
                await self._pending_ready.wait()
            self._pending_ready.clear()
            pending, self._pending = self._pending, _Pending()
            self._room.set()
            if pending:
                await self._submit(pending)
            elif self._draining:
                return

    def _handle(self, item: Frame, now: float, pending: _Pending) -> None:
        received_ns, conn_id, payload = item
        self.frames += 1
        if self._dedup_until_ns:
            if received_ns <= self._dedup_until_ns:
                if not self._recent_frames.add(payload):
                    self.duplicates += 1
                    self.metrics.duplicates.inc()
                    return
            else:
                self._dedup_until_ns = 0
                self._recent_frames.clear()
        try:
            event = self._decoder.decode(payload)
        except FrameError as exc:
            (self.metrics.malformed if exc.kind == "malformed" else self.metrics.unknown).inc()
            self._log_bad_frame(exc.kind, exc.reason, exc.excerpt)
            return
        try:
            self._dispatch(event, received_ns, conn_id, now, pending)
        except ValueError as exc:  # parse: an enum or amount outside the documented set
            self.metrics.malformed.inc()
            self._log_bad_frame("malformed", str(exc), truncate(payload))

    def _dispatch(
        self, event: Event, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        account, market, activity = self.account, self.market, self.activity
        if isinstance(event, OrderTradeUpdate):
            self._data(event.e, event.E, received_ns, now)
            fill = fill_from_order_update(event, account, market, received_at_ns=received_ns)
            update = order_update_from(event, account, market, received_at_ns=received_ns)
            if fill is not None:
                # Lag of fill events only: they are what is latency-critical, and one
                # histogram observation per frame would cost more than the decode.
                self.metrics.event_lag.observe((received_ns // 1_000_000 - event.E) / 1000)
                if activity.fill((fill.symbol, fill.trade_id, fill.order_id), now):
                    pending.fills.append(fill)
                    self.fills += 1
                else:
                    self.duplicates += 1
                    self.metrics.duplicates.inc()
            activity.order(update, now)
            pending.orders.append(update)
        elif isinstance(event, TradeLite):
            self._data(event.e, event.E, received_ns, now)
            if not activity.trade_lite((event.s, event.t, event.i), event.T or event.E, now):
                self.metrics.duplicates.inc()
        elif isinstance(event, AlgoUpdate):
            self._data(event.e, event.E, received_ns, now)
            link = algo_link_from(event, account, market)
            activity.algo(link, now)
            pending.algos.append(link)
        elif isinstance(event, AccountUpdate):
            self._data(event.e, event.E, received_ns, now)
            for p in event.a.P:  # validated now (ValueError: malformed), converted on demand
                position_side(p.ps)
                dec(p.pa), dec(p.ep), dec(p.cr)
            activity.account_update(event, now)
        elif isinstance(event, ListenKeyExpired):
            self._counts[event.e] = self._counts.get(event.e, 0) + 1
            current = self._current
            stale_key = bool(event.listenKey) and event.listenKey != self._keys.key
            if current is not None and current.id == conn_id and not stale_key:
                log.warning("%s/%s: listenKeyExpired", account, market)
                self._signal("listen_key_expired")
        else:
            self._data(event.e, event.E, received_ns, now)
            if isinstance(event, MarginCall):
                log.warning("%s/%s: MARGIN_CALL %s", account, market, event.p)

    def _data(self, event_type: str, event_ms: int, received_ns: int, now: float) -> None:
        """Book-keeping for every data event (everything but listenKeyExpired)."""
        counts = self._counts
        counts[event_type] = counts.get(event_type, 0) + 1
        received_ms = received_ns // 1_000_000
        self._last_event_ms = min(event_ms, received_ms) if event_ms else received_ms
        self._last_data_mono = now

    def _log_bad_frame(self, kind: str, reason: str, excerpt: str) -> None:
        self._bad_frames += 1
        if self._bad_frames <= 10 or self._bad_frames % _LOG_EVERY == 0:
            log.warning(
                "%s/%s %s frame #%d (%s): %s",
                self.account,
                self.market,
                kind,
                self._bad_frames,
                reason,
                excerpt,
            )

    async def _submit(self, pending: _Pending) -> None:
        batch = IngestBatch(
            account=self.account,
            market=self.market,
            source=FillSource.STREAM,
            fills=tuple(pending.fills),
            orders=tuple(pending.orders),
            algo_links=tuple(pending.algos),
        )
        backoff = Backoff(0.05, self.settings.submit_retry_max_s)
        while True:
            try:
                await self._sink.submit(batch)
                return
            except Exception:
                # The sink is another component (PostgreSQL behind it may be down): keep the
                # batch, back off and retry; the queue behind us turns into backpressure.
                self.metrics.submit_errors.inc()
                log.exception("%s/%s: sink rejected a batch; retrying", self.account, self.market)
                await asyncio.sleep(backoff.next_delay())


@dataclass(slots=True)
class _Pending:
    """What one processor pass hands the sink."""

    fills: list[Fill] = field(default_factory=list)
    orders: list[OrderUpdate] = field(default_factory=list)
    algos: list[AlgoLink] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fills or self.orders or self.algos)

    def __len__(self) -> int:
        return len(self.fills) + len(self.orders) + len(self.algos)
