"""``UserStream``: one account's USDⓈ-M user-data stream that never silently stops.

Tasks (one TaskGroup per stream, so a bug anywhere brings the stream down loudly):

- the **supervisor** gets a listenKey (POST), opens the socket, and waits for trouble: the socket
  closed, a ping went unanswered, the key was lost (keepalive ``-1125``/hard failure/another key,
  ``listenKeyExpired``), the watchdog proved the stream stale, or rotation is due. It then
  reconnects with exponential backoff and jitter (no attempt limit; at least 1 s after a timeout
  or 5xx, ``Retry-After`` honoured, every account's retries paced together), or rotates
  make-before-break. Every new socket opens a :class:`~fillstream.ledger.Gap` from the last data
  event (minus ``gap_margin_ms``) until the moment it is live;
- one **reader** per socket (:mod:`.connection`) feeding a bounded frame buffer;
- the **processor** (:mod:`.processor`) decodes, dedups and parses what is queued and hands the
  sink one :class:`~fillstream.ledger.IngestBatch` at a time;
- the **keepalive** loop PUTs the key on a jittered schedule;
- the **ticker** updates gauges, probes the key of a socket gone silent while the account was
  active (:class:`~.watchdog.SilenceProbe`: one PUT; a key deleted behind our back answers
  ``-1125``, and the state leaves ``streaming`` from the moment the silence is suspected until
  the probe clears it or a new socket is live), runs the staleness watchdog, turns TRADE_LITE
  signals still unmatched after ``trade_lite_grace_s`` into gaps (a backstop: the drop detector,
  :mod:`.evidence`, judges them after ``drop_evidence_wait_s`` and raises narrow gaps), and
  triggers rotation before the 24 h cut.

Make-before-break is for rotation only. A replaced key (``-1125``, ``listenKeyExpired``, a
keepalive answering another key) means the old socket is already dead: Binance has one active
key per account, and a key that expired or was deleted stops delivering on every socket bound
to it (it pushes ``listenKeyExpired`` and goes silent), so there is nothing to overlap with.

States (reported by :mod:`.health`): connecting → streaming → recovering (→ degraded after
``degraded_after_s``) → streaming …; auth_failed stops only this account; stopped after
:meth:`UserStream.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Final

from fillstream.binance import Venue, VenueError
from fillstream.binance.products import EVENT_TYPES
from fillstream.binance.usdm.parse import position_from
from fillstream.ledger import (
    FillSink,
    GapListener,
    Market,
    Position,
    PositionSide,
    StatusSink,
    StreamState,
)
from fillstream.stream.backoff import Backoff
from fillstream.stream.config import StreamSettings, mask_url
from fillstream.stream.connection import CONNECT_ERRORS, Connection, open_socket
from fillstream.stream.core import DEDUP_TAIL_NS, StreamCore
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.health import now_ms
from fillstream.stream.listen_key import AuthFailedError, KeepaliveOutcome, ListenKeyManager
from fillstream.stream.processor import Processor
from fillstream.stream.watchdog import SilenceProbe, StalenessWatchdog

log = logging.getLogger("fillstream.stream")

_GAP_REASONS: Final = {
    "disconnect": "reconnect",
    "ping_timeout": "reconnect",
    "listen_key_expired": "listen_key_expired",
    "listen_key_gone": "key_changed",
    "keepalive_failed": "key_changed",
    "key_changed": "key_changed",
    "stale": "stale",
}


class UserStream(StreamCore):
    """The user-data stream of one account (see module docstring).

    ``run()`` runs until :meth:`aclose` (usable inside a TaskGroup); ``start()`` runs it in a task
    of its own. ``aclose(deadline_s)`` is idempotent: it stops reading, flushes queued frames into
    the sink, and deletes the listenKey unless ``delete_key_on_shutdown`` is off.
    """

    _what = "user stream"
    _prefix = "stream"

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
        super().__init__(account, market or venue.market, gaps, settings, status)
        self._keys = ListenKeyManager(venue, account, self.settings, self.metrics)
        self._watchdog = StalenessWatchdog(venue, self.activity, self.settings)
        self._probe = SilenceProbe(self.activity, self.settings)
        self.processor = Processor(
            account,
            self.market,
            sink,
            settings=self.settings,
            metrics=self.metrics,
            activity=self.activity,
            decoder=decoder or FrameDecoder(EVENT_TYPES[self.market]),
            on_key_expired=self._key_expired,
            evidence=self.evidence,
            contract_size=venue.contract_size,
        )
        # Connections: the current one, plus the old one during a make-before-break overlap.
        self._conns: dict[int, Connection] = {}
        self._current: Connection | None = None
        self._next_conn_id = 1
        self._rotating = False
        self._rotation_retry_at = 0.0
        self._probing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def _loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {
            "supervisor": self._supervise(),
            "keepalive": self._keepalive(),
            "ticker": self._tick(),
        }

    def _helpers(self) -> tuple[asyncio.Task[None] | None, ...]:
        return (self._verifying, self._probing)

    async def _shutdown(self) -> None:
        self._current = None
        for conn in list(self._conns.values()):
            try:
                async with asyncio.timeout(self._remaining_s()):
                    await conn.close("shutdown")
            except TimeoutError:
                conn.abandon()
        await self._finish_processor()

    async def _after_shutdown(self) -> None:
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
    def connected(self) -> bool:
        return self._current is not None and not self._current.done

    # ------------------------------------------------------------------ trouble

    def _key_expired(self, conn_id: int, listen_key: str) -> None:
        """``listenKeyExpired`` on a socket: reconnect with a new key if it is about ours."""
        current = self._current
        stale_key = bool(listen_key) and listen_key != self._keys.key
        if current is not None and current.id == conn_id and not stale_key:
            log.warning("%s/%s: listenKeyExpired", self.account, self.market)
            self._signal("listen_key_expired")

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
        self._stop_on_auth(
            "%s/%s: the venue rejected the API key (%s); this account's stream stops retrying",
            exc.cause,
        )
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
                self.attempted.set()
                self._auth_failed(exc)
                return None
            except (VenueError, *CONNECT_ERRORS) as exc:
                self.attempted.set()
                await self._retry_later("connect", reason, exc, backoff)
                continue
            self.attempted.set()
            self._mark_live(_GAP_REASONS.get(reason, reason))
            self._outage_since_mono = None
            # Trouble raised about the previous socket (e.g. a keepalive verdict while we were
            # reconnecting) is settled by this new socket and key.
            self._trouble_reason = None
            self._trouble.clear()
            self._set_state(StreamState.STREAMING, f"connected after {reason}")
            return conn

    async def _open(self) -> Connection:
        """POST the key (idempotent: the active key, extended, or a new one) and connect."""
        key = await self._keys.acquire()
        url = self.settings.url(key)
        socket = await open_socket(url, self.settings)
        conn = Connection(
            self._next_conn_id,
            socket,
            self.processor.buffer,
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
        self.processor.dedup_frames(1 << 62)
        try:
            try:
                new = await self._open()
            except AuthFailedError as exc:
                self.processor.dedup_frames(0)
                self._auth_failed(exc)
                return
            except (VenueError, *CONNECT_ERRORS) as exc:
                # The old socket still works; try again later (the 24 h cut is an hour away).
                self._rotation_retry_at = time.monotonic() + self.settings.backoff_max_s
                self.processor.dedup_frames(0)
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
            self.processor.dedup_frames(time.time_ns() + DEDUP_TAIL_NS)
            self._mark_live("rotation")
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

    def _on_tick(self, now: float) -> None:
        self._check_trade_lite(now)
        current = self._current
        if self.state is not StreamState.STREAMING or current is None or current.done:
            return
        if (
            not self._rotating
            and now - current.opened_mono >= self.settings.rotate_after_s
            and now >= self._rotation_retry_at
        ):
            self._signal("rotation")
            return
        fresh = max(self.processor.last_data_mono or 0.0, self._live_since_mono)
        if self._maybe_probe(now, fresh, current):
            return
        verifying = self._verifying is not None and not self._verifying.done()
        if not verifying and self._watchdog.due(now, fresh):
            # In a task of its own: REST may wait on the shared weight budget, and the
            # ticker's other duties (gauges, degradation, rotation) must not wait with it.
            assert self._tg is not None
            self._verifying = self._tg.create_task(
                self._verify(now, current), name="stream-watchdog"
            )

    def _maybe_probe(self, now: float, fresh: float, current: Connection) -> bool:
        """Start a silence probe if one is due (see :class:`SilenceProbe`); True if started."""
        if self._probing is not None and not self._probing.done():
            return True
        if not self._probe.due(now, fresh):
            return False
        log.warning(
            "%s/%s: socket %d silent for %.1fs; probing the listenKey",
            self.account,
            self.market,
            current.id,
            now - fresh,
        )
        # Not streaming from the moment the silence is suspected: a dead key is a blind stream.
        self._set_state(StreamState.RECOVERING, "silence_probe")
        assert self._tg is not None
        self._probing = self._tg.create_task(self._probe_key(current), name="stream-probe")
        return True

    async def _probe_key(self, current: Connection) -> None:
        """One keepalive PUT (weight 1, RestPriority.STREAM; retryable failures paced by the
        shared keepalive pacer): a dead key reconnects with a new one and a gap for the silence;
        a live one puts the state back, if nothing else happened meanwhile."""
        try:
            outcome = await self._keys.keepalive()
        except AuthFailedError as exc:
            self._auth_failed(exc)
            return
        if outcome is not KeepaliveOutcome.OK:
            log.warning("%s/%s: silence probe: %s", self.account, self.market, outcome.value)
            if self._current is current:  # else a new socket (and key) settled it already
                self._signal(outcome.value)
            return
        self._probe.probed(time.monotonic())
        untouched = self._current is current and not current.done and self._trouble_reason is None
        if untouched and self.state is StreamState.RECOVERING:
            self._set_state(StreamState.STREAMING, "silence probe: key alive")

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
        self._emit_gap("trade_lite_unmatched", now_ms(), since_ms=since, symbols=symbols)
