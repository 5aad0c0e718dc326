"""``SpotUserStream``: one spot account's user data, as a subscription on a shared WS-API socket.

Spot listenKeys are gone (binance-wave2.md §A.1): an account's events come from
``userDataStream.subscribe.signature`` on a WS-API connection that up to
``accounts_per_connection`` accounts share (:mod:`.wsapi_pool`, :mod:`.wsapi_session`). The
surface is :class:`~.listener.UserStream`'s (``run``, ``aclose``, ``state``, ``attempted``,
``connected``, ``listen_key`` — always None —, counters), so the sidecar runs either.

Tasks (one TaskGroup per account):

- the **supervisor** places the account on a connection and subscribes (a fresh timestamp every
  time, optional ``recvWindow``), then waits for trouble. **Only this account** is affected by
  what concerns it: a refused subscribe (``-2015``, ``-1022``, ``-2014``) puts it in
  ``auth_failed``; ``-1021`` re-syncs the clock and retries at once; 429/418 pause every
  subscribe of the pool for ``retryAfter``; other refusals and connection failures retry with
  backoff, paced with every account's reconnects (the futures listener's pacer);
  ``eventStreamTerminated`` resubscribes this account only. When its connection closes (or goes
  silent) every account of it is told and each resubscribes on another. When the connection
  retires (``serverShutdown``, the 24 h cut, the lifetime cap) the account moves
  make-before-break: subscribe on a new connection, then unsubscribe the old one; the overlap is
  deduplicated (raw events, then fill keys);
- the **processor** (:mod:`.spot_processor`) decodes, dedups, parses and submits; the drop
  detector (:mod:`.evidence`) turns an executionReport whose ``z`` exceeds the Σ ``l`` seen
  of its order into a narrow gap;
- the **ticker** updates gauges, degrades a long outage, starts a move off a retiring
  connection, and (given a venue) runs the staleness watchdog (:mod:`.watchdog`): silent for
  ``stale_after_s`` while orders work and ``myTrades`` shows a trade the stream did not, the
  subscription is ended and made again, with a gap. (A connection that answers requests but
  delivers nothing looks, from the socket, exactly like quiet accounts: only REST can tell.)

Every (re)subscribe is a gap (from the last data event minus ``gap_margin_ms`` until live), as
a futures reconnect is. States as :class:`~.listener.UserStream`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, Final

from fillstream.binance import Venue, VenueError
from fillstream.binance.products import EVENT_TYPES
from fillstream.ledger import FillSink, GapListener, Market, StatusSink, StreamState
from fillstream.stream.backoff import Backoff
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import CONNECT_ERRORS
from fillstream.stream.connection import Frame as QueuedFrame
from fillstream.stream.core import DEDUP_TAIL_NS, StreamCore
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.spot_processor import SpotProcessor
from fillstream.stream.spot_subscribe import SpotCredentials, subscribe
from fillstream.stream.watchdog import StalenessWatchdog
from fillstream.stream.wsapi_pool import WsApiPool, shared_pool
from fillstream.stream.wsapi_session import SessionClosedError, WsApiSession

log = logging.getLogger("fillstream.stream")

_RETRYABLE: Final = (SessionClosedError, TimeoutError, *CONNECT_ERRORS)
_GAP_REASONS: Final = {
    "disconnect": "reconnect",
    "ping_timeout": "reconnect",
    "silent": "stale",
    "terminated": "subscription_terminated",
    "overflow": "backpressure",
}


class _Refused(Exception):
    """The venue refused this account's key: it stops (``auth_failed``)."""

    def __init__(self, cause: VenueError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class SpotUserStream(StreamCore):
    """The spot user data of one account (see module docstring).

    ``settings.ws_url`` is the WS-API endpoint itself (``wss://ws-api.binance.com:443/ws-api/v3``,
    :data:`~fillstream.binance.endpoints.WS_URLS`). ``pool`` defaults to the process's pool for
    it (:func:`shared_pool`), so every account on one endpoint shares its connections. ``venue``
    (REST) is not used by the stream itself: the reconciler backfills its gaps; it is taken for
    the same call as :class:`~.listener.UserStream` and gives ``market`` when that is not set.
    """

    _what = "spot stream"
    _prefix = "spot"

    def __init__(
        self,
        account: str,
        venue: Venue | None,
        sink: FillSink,
        gaps: GapListener,
        settings: StreamSettings | None = None,
        *,
        credentials: SpotCredentials,
        status: StatusSink | None = None,
        market: Market | None = None,
        pool: WsApiPool | None = None,
        decoder: FrameDecoder | None = None,
    ) -> None:
        market = market or (venue.market if venue is not None else None)
        if market is None:
            raise ValueError("SpotUserStream needs a market (or a venue to take it from)")
        super().__init__(account, market, gaps, settings, status)
        self.credentials = credentials
        self._pool = pool
        # With a venue: a subscription silent for ``stale_after_s`` while orders work is checked
        # against myTrades (a socket can answer every request and still deliver nothing).
        self._watchdog = (
            None if venue is None else StalenessWatchdog(venue, self.activity, self.settings)
        )
        self.processor = SpotProcessor(
            account,
            self.market,
            sink,
            settings=self.settings,
            metrics=self.metrics,
            activity=self.activity,
            decoder=decoder or FrameDecoder(EVENT_TYPES[self.market]),
            evidence=self.evidence,
        )
        self.buffer: FrameBuffer[QueuedFrame | None] = self.processor.buffer
        self.session: WsApiSession | None = None
        self.subscription_id: int | None = None
        self._moving_from: WsApiSession | None = None
        self._move_retry_at = 0.0
        self._trouble_session: WsApiSession | None = None

    @property
    def pool(self) -> WsApiPool:
        if self._pool is None:
            self._pool = shared_pool(self.settings.ws_url, self.settings, market=self.market.value)
        return self._pool

    # ------------------------------------------------------------------ lifecycle

    def _loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {"supervisor": self._supervise(), "ticker": self._tick()}

    async def _shutdown(self) -> None:
        # Unsubscribe before the processor finishes: nothing may be routed to a buffer no one
        # drains (a full one would pause the reader of every account on the socket).
        if self.session is not None:
            await self._leave(self.session, self.subscription_id, timeout_s=self._remaining_s())
        if self._moving_from is not None and self._moving_from is not self.session:
            await self._leave(self._moving_from, None, timeout_s=0)
        self.session = self.subscription_id = self._moving_from = None
        self.metrics.connected.set(0)
        await self._finish_processor()

    async def _leave(self, session: WsApiSession, sid: int | None, *, timeout_s: float) -> None:
        """Unsubscribe (best effort, bounded) and leave ``session``."""
        try:
            if sid is not None and not session.done:
                async with asyncio.timeout(max(timeout_s, 0.1)):
                    await session.unsubscribe(sid)
        except (VenueError, *_RETRYABLE) as exc:
            log.info("%s: unsubscribe %d failed (%s); dropped", self.account, sid, exc)
        finally:
            session.forget(self)
            self.pool.leave(self, session)

    # ------------------------------------------------------------------ public views

    @property
    def listen_key(self) -> str | None:
        """Spot has no listenKey (the supervisor's replica hand-over has nothing to delete)."""
        return None

    @property
    def connected(self) -> bool:
        session = self.session
        return session is not None and not session.done and self.subscription_id is not None

    # ------------------------------------------------------------------ what sessions tell us

    def on_subscription_ended(self, session: WsApiSession, reason: str) -> None:
        """From the session's reader (see :class:`~.wsapi_session.Member`)."""
        if session is not self.session:
            return  # the connection we are moving off: the move's gap covers it
        if reason != "migrate":
            if reason != "overflow":  # cut off, the venue still holds it: unsubscribed later
                self.subscription_id = None
            self.metrics.connected.set(0)
        self._signal(reason, session)

    def _signal(self, reason: str, session: WsApiSession | None = None) -> None:
        """Report trouble about ``session`` (None: about this account) to the supervisor. The
        first reason wins until it is taken, except over one about a connection we have left
        (stale) and a lost subscription over a pending move (it has nothing left to move)."""
        pending = self._trouble_reason
        if pending is not None:
            about = self._trouble_session
            stale = about is not None and about is not self.session
            if not stale and not (pending == "migrate" and reason != "migrate"):
                return
        self._trouble_reason = reason
        self._trouble_session = session
        self._trouble.set()

    async def _next_trouble(self) -> str:
        while True:
            await self._trouble.wait()
            if self._closing.is_set():
                return "shutdown"
            reason = self._trouble_reason or "unknown"
            about = self._trouble_session
            self._trouble_reason = self._trouble_session = None
            self._trouble.clear()
            if about is None or about is self.session:
                return reason
            # About a connection we have left since (a move raced its close): settled.

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self) -> None:
        reason = "start"
        avoid: WsApiSession | None = None  # a connection that answers but delivers nothing
        while True:
            try:
                await self._subscribe(reason, avoid)
            except _Refused as exc:
                self._auth_failed(exc.cause)
                return
            reason = await self._next_trouble()
            while reason == "migrate":
                await self._move()
                reason = await self._next_trouble()
            if reason == "shutdown":
                return
            avoid = await self._drop_subscription(reason)
            if reason == "auth_failed":
                return
            self.metrics.reconnect(reason)
            self._outage_since_mono = time.monotonic()
            self.health.set_state(StreamState.RECOVERING, reason)
            if reason == "overflow":
                # Resubscribe once the queue has drained (half of it): the gap covers the rest.
                await self.buffer.wait_below(max(1, self.settings.queue_max // 2))

    async def _drop_subscription(self, reason: str) -> WsApiSession | None:
        """Let go of the subscription that ``reason`` ended; the connection to avoid next."""
        old, old_sid = self.session, self.subscription_id
        self.session = self.subscription_id = None
        if old is None:
            return None
        if reason in ("stale", "overflow"):
            # The venue still holds the subscription (silent, or cut off for a stuck sink): end
            # it (a second one for the account there would be refused).
            await self._leave(old, old_sid, timeout_s=self.settings.request_timeout_s)
            return old if reason == "stale" else None  # silent: resubscribe elsewhere
        if reason != "terminated" or old.done:
            # A terminated subscription keeps its place: it resubscribes on the same
            # connection, its neighbours untouched.
            old.forget(self)
            self.pool.leave(self, old)
        return None

    async def _subscribe(self, reason: str, avoid: WsApiSession | None) -> None:
        """Subscribe (with backoff, forever) until live; raises :class:`_Refused`."""
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            pause = self.pool.paused_until_mono - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                session, sid = await self._subscribe_once(avoid=avoid)
            except VenueError as exc:
                self.attempted.set()
                if exc.is_auth:
                    raise _Refused(exc) from exc
                await self._resubscribe_later(reason, exc, backoff)
                continue
            except _RETRYABLE as exc:
                self.attempted.set()
                await self._resubscribe_later(reason, exc, backoff)
                continue
            self.attempted.set()
            self._went_live(session, sid, _GAP_REASONS.get(reason, reason), reason)
            return

    async def _subscribe_once(self, *, avoid: WsApiSession | None) -> tuple[WsApiSession, int]:
        pool = self.pool
        session = await pool.place(self, avoid=avoid)
        try:
            sid = await subscribe(pool, session, self, self.credentials, self.settings)
        except BaseException:
            session.forget(self)
            pool.leave(self, session)
            raise
        return session, sid

    async def _resubscribe_later(self, reason: str, exc: BaseException, backoff: Backoff) -> None:
        if isinstance(exc, VenueError) and (exc.is_rate_limited or exc.is_banned):
            self.pool.pause(exc.retry_after_s or backoff.ceiling())
        await self._retry_later("subscribe", reason, exc, backoff)

    def _went_live(self, session: WsApiSession, sid: int, gap_reason: str, why: str) -> None:
        self.session, self.subscription_id = session, sid
        self._mark_live(gap_reason)
        self._outage_since_mono = None
        self.metrics.connected.set(1)
        if session.done:  # closed between the answer and now: its reader told no one
            self._signal("disconnect", session)
        self.health.set_state(StreamState.STREAMING, f"subscribed after {why}")

    def _auth_failed(self, cause: VenueError) -> None:
        self._stop_on_auth(
            "%s/%s: the venue refused the subscription (%s); this account stops retrying", cause
        )

    async def _move(self) -> None:
        """Make-before-break onto another connection (the old one retires)."""
        old, old_sid = self.session, self.subscription_id
        if old is None or old_sid is None:
            return
        self.processor.dedup_frames(1 << 62)
        self._moving_from = old
        try:
            new, sid = await self._subscribe_once(avoid=old)
        except VenueError as exc:
            self.processor.dedup_frames(0)
            self._moving_from = None
            if exc.is_auth:
                self._auth_failed(exc)
                self._signal("auth_failed", old)
                return
            self._move_failed(exc)
            return
        except _RETRYABLE as exc:
            self.processor.dedup_frames(0)
            self._moving_from = None
            self._move_failed(exc)
            return
        self.metrics.reconnect("migrate")
        self._went_live(new, sid, "rotation", "migrate")
        self._moving_from = None
        await self._leave(old, old_sid, timeout_s=self.settings.request_timeout_s)
        self.processor.dedup_frames(time.time_ns() + DEDUP_TAIL_NS)
        log.info("%s/%s moved to connection %d", self.account, self.market, new.id)

    def _move_failed(self, exc: BaseException) -> None:
        # The old connection still works (a shutdown closes it soon: that is a reconnect).
        self._move_retry_at = time.monotonic() + self.settings.backoff_max_s
        log.warning("%s/%s move failed, staying: %s", self.account, self.market, exc)

    # ------------------------------------------------------------------ ticker

    def _on_tick(self, now: float) -> None:
        session = self.session
        if self.state is not StreamState.STREAMING or session is None:
            return
        if self._moving_from is None and now >= self._move_retry_at and session.retire_due(now):
            self._signal("migrate", session)
            return
        self._maybe_verify(now, session)

    def _maybe_verify(self, now: float, session: WsApiSession) -> None:
        watchdog = self._watchdog
        if watchdog is None or (self._verifying is not None and not self._verifying.done()):
            return
        fresh = max(self.processor.last_data_mono or 0.0, self._live_since_mono)
        if watchdog.due(now, fresh):
            # A task of its own: REST may wait on the shared budget; the ticker must not.
            assert self._tg is not None
            self._verifying = self._tg.create_task(self._verify(now, session), name="spot-watchdog")

    async def _verify(self, now: float, session: WsApiSession) -> None:
        assert self._watchdog is not None
        check = await self._watchdog.verify(now, self._live_since_ms)
        self.metrics.watchdog(check.verdict)
        if check.verdict == "mismatch" and self.session is session and self.connected:
            log.warning("%s/%s subscription is stale: %s", self.account, self.market, check.detail)
            self._signal("stale", session)
