"""``StreamCore``: what :class:`~.listener.UserStream` and :class:`~.spot_stream.SpotUserStream`
share, so each stream keeps only how it reaches the venue (a listenKey and a socket of its own,
or a subscription on a shared WS-API connection).

Shared: the parts (metrics, activity, the drop detector, health), the task lifecycle (``run``
in one TaskGroup, an idempotent ``aclose`` with a deadline, the processor flushed on the way
out), the counters, the gap window of every (re)connect, the outage states (recovering, then
degraded after ``degraded_after_s``), connect retries (own backoff, then a slot in the
process-wide pace of reconnects: a fleet failing together stays slow) and the ticker's gauges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, Final

from fillstream.binance import VenueError
from fillstream.ledger import GapListener, Market, StatusSink, StreamState
from fillstream.stream.activity import AccountActivity
from fillstream.stream.backoff import Backoff, pacer
from fillstream.stream.config import StreamSettings
from fillstream.stream.evidence import DropEvidence
from fillstream.stream.health import StreamHealth, now_ms
from fillstream.stream.metrics import StreamMetrics
from fillstream.stream.processor import Processor

log = logging.getLogger("fillstream.stream")

DEDUP_TAIL_NS: Final = 5_000_000_000  # a lagging new socket may repeat the old one's last events

_CONNECTS: Final = pacer("stream.connect")


class StreamCore:
    """The shared half of one account's stream; a subclass sets ``processor`` in its
    constructor (after this one's) and supplies the loops, the shutdown and the tick."""

    _what: ClassVar[str]  # "user stream": for messages
    _prefix: ClassVar[str]  # "stream": for task names
    processor: Processor

    def __init__(
        self,
        account: str,
        market: Market,
        gaps: GapListener,
        settings: StreamSettings | None,
        status: StatusSink | None,
    ) -> None:
        self.account = account
        self.market = market
        self.settings = (settings or StreamSettings()).validate()
        self.metrics = StreamMetrics(account, market.value)
        self.activity = AccountActivity()
        self.evidence = DropEvidence(
            account,
            market,
            self.activity,
            wait_s=self.settings.drop_evidence_wait_s,
            on_gap=gaps.on_gap,
            metrics=self.metrics,
            backlog=lambda: len(self.processor.buffer),
        )
        self.health = StreamHealth(account, market, self.metrics, gaps, status)
        self._verifying: asyncio.Task[None] | None = None
        self._live_since_ms = 0
        self._live_since_mono = time.monotonic()
        # Data watermark, for gap windows and staleness.
        self._started_ms = now_ms()
        self._started_mono = time.monotonic()
        self._outage_since_mono: float | None = None
        # Trouble: the first reason wins until the supervisor takes it.
        self._trouble = asyncio.Event()
        self._trouble_reason: str | None = None
        self._closing = asyncio.Event()
        self._done = asyncio.Event()
        # Set once the first connect attempt has ended (live, failed or refused): start-up
        # ordering across accounts waits for it.
        self.attempted = asyncio.Event()
        self._deadline_mono = 0.0
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._processor_task: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None

    # ------------------------------------------------------------------ what a stream supplies

    def _loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The background loops by name (supervisor, ticker, ...), cancelled at shutdown."""
        raise NotImplementedError

    def _helpers(self) -> tuple[asyncio.Task[None] | None, ...]:
        """One-off tasks that may be running at shutdown (watchdog checks, probes)."""
        return (self._verifying,)

    async def _shutdown(self) -> None:
        """Let go of the venue side, then :meth:`_finish_processor`."""
        raise NotImplementedError

    async def _after_shutdown(self) -> None:
        """Once every task has ended (e.g. delete the listenKey)."""

    def _on_tick(self, now: float) -> None:
        """The stream's own duties every ``tick_s``, after the gauges."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the stream in a task of its own (see :meth:`run`)."""
        if self._task is None:
            name = f"{self._what.replace(' ', '-')}-{self.account}"
            self._task = asyncio.create_task(self.run(), name=name)

    async def run(self) -> None:
        """Stream until :meth:`aclose`; raises only on a bug (venue trouble is handled)."""
        if self._running:
            raise RuntimeError(f"{self._what} {self.account} is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._processor_task = tg.create_task(
                    self.processor.run(), name=f"{self._prefix}-processor"
                )
                background = [
                    tg.create_task(loop, name=f"{self._prefix}-{name}")
                    for name, loop in self._loops().items()
                ]
                await self._closing.wait()
                background.extend(t for t in self._helpers() if t is not None)
                for task in background:
                    task.cancel()
                # Let them finish first: a supervisor cancelled just after a handshake has
                # registered a socket that must be closed, not left reading forever.
                await asyncio.wait(background)
                await self._shutdown()
                self.evidence.aclose()
            await self._after_shutdown()
            self._set_state(StreamState.STOPPED, "shutdown")
        finally:
            self._done.set()

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Stop reading, let go of the venue side (delete the listenKey unless configured not
        to, or unsubscribe), flush queued frames into the sink; give up waiting after
        ``deadline_s``. Idempotent."""
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

    async def _finish_processor(self) -> None:
        processor = self._processor_task
        assert processor is not None
        try:
            async with asyncio.timeout(self._remaining_s()):
                await self.processor.finish()
                await asyncio.shield(processor)
        except TimeoutError:
            log.warning(
                "%s: shutdown deadline passed with %d frames unprocessed; the start-up gap of the "
                "next run covers them",
                self.account,
                self.processor.backlog,
            )
            processor.cancel()

    # ------------------------------------------------------------------ public views

    @property
    def state(self) -> StreamState:
        return self.health.state

    @property
    def backlog(self) -> int:
        """Frames received and events decoded that the sink has not been handed yet."""
        return self.processor.backlog

    @property
    def frames(self) -> int:
        """Frames received (every kind)."""
        return self.processor.frames

    @property
    def fills(self) -> int:
        """Fills handed to the sink (after dedup)."""
        return self.processor.fills

    @property
    def duplicates(self) -> int:
        """Events dropped as duplicates."""
        return self.processor.duplicates

    @property
    def last_event_age_s(self) -> float:
        """Seconds since the last data event (since the start before the first)."""
        last = self.processor.last_data_mono
        return time.monotonic() - (last if last is not None else self._started_mono)

    # ------------------------------------------------------------------ state and gaps

    def _set_state(self, state: StreamState, reason: str) -> None:
        self.health.set_state(state, reason)

    def _emit_gap(
        self,
        reason: str,
        until_ms: int,
        since_ms: int | None = None,
        symbols: frozenset[str] | None = None,
    ) -> None:
        """Hand the reconciler the window ``[since - margin, until]``.

        By default ``since`` is the later of the last data event and the moment the previous
        socket (or subscription) went live: everything before that was either received or
        covered by the previous gap; what came after may be lost.
        """
        if since_ms is None:
            last_event_ms = self.processor.last_event_ms or 0
            since_ms = max(last_event_ms, self._live_since_ms or self._started_ms)
        since_ms -= self.settings.gap_margin_ms
        if symbols is None:
            symbols = self.activity.active_symbols(time.monotonic())
        self.health.gap(reason, since_ms, until_ms, symbols)

    def _mark_live(self, gap_reason: str) -> None:
        """A new socket or subscription is live: the gap up to now, and a new watermark."""
        live_ms = now_ms()
        self._emit_gap(gap_reason, live_ms)
        self._live_since_ms = live_ms
        self._live_since_mono = time.monotonic()

    def _update_outage_state(self, reason: str) -> None:
        since = self._outage_since_mono
        if since is None:
            self._outage_since_mono = since = time.monotonic()
        if time.monotonic() - since >= self.settings.degraded_after_s:
            self._set_state(StreamState.DEGRADED, reason)
        elif self.state is not StreamState.DEGRADED:
            self._set_state(StreamState.RECOVERING, reason)

    async def _retry_later(
        self, what: str, reason: str, exc: BaseException, backoff: Backoff
    ) -> None:
        """After a failed connect (``what``: "connect", "subscribe"): our own backoff (floors:
        Retry-After, 1 s after a timeout or 5xx), then a slot in the process-wide pace."""
        delay = _CONNECTS.delay(time.monotonic(), backoff.after(exc))
        self.metrics.connect_failures.inc()
        log.warning(
            "%s/%s %s failed (%s: %s); retry in %.2fs",
            self.account,
            self.market,
            what,
            type(exc).__name__,
            exc,
            delay,
        )
        self._update_outage_state(reason)
        await asyncio.sleep(delay)

    def _stop_on_auth(self, message: str, cause: VenueError) -> None:
        """The venue refused this account's key: only this account stops (``auth_failed``)."""
        log.error(message, self.account, self.market, cause)
        self.metrics.auth_failed.set(1)
        self._set_state(StreamState.AUTH_FAILED, f"auth: code {cause.code}")

    # ------------------------------------------------------------------ ticker

    async def _tick(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(settings.tick_s)
            now = time.monotonic()
            last = self.processor.last_data_mono
            self.metrics.last_event_age.set(
                now - (last if last is not None else self._started_mono)
            )
            self.metrics.queue_depth.set(len(self.processor.buffer))
            outage = self._outage_since_mono
            recovering = self.state is StreamState.RECOVERING
            if recovering and outage is not None and now - outage >= settings.degraded_after_s:
                self._set_state(StreamState.DEGRADED, "outage")
            self._on_tick(now)
