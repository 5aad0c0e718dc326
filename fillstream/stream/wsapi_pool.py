"""Spot accounts spread over WS-API connections: at most ``accounts_per_connection`` on each.

:meth:`WsApiPool.place` gives an account a connection with room, opening one when none has
(one opening at a time, so 200 accounts starting together fill 4 connections rather than open
200). A connection that is retiring (``serverShutdown``, the 24 h cut, the lifetime-subscription
cap: :meth:`WsApiSession.retire_due`) takes no one new; its accounts move off it
make-before-break (:mod:`.spot_stream`), and it closes once the last has left. A connection left
without accounts closes too.

The pool also holds what its connections share: the venue's clock offset (``-1021`` re-syncs it
with the WS-API ``time`` method), a pause every subscribe honours after a ``429``/``418``
(``retryAfter``), and the shared weight budget: connecting and every request cost WS-API weight
(2 each, binance-wave2.md §A.5) in the spot REQUEST_WEIGHT pool that spot REST draws on too
(:meth:`~fillstream.binance.budget.WeightBudgets.charge`), so a 429 on either side pauses both.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable

import aiohttp

from fillstream.binance.budget import WeightBudgets
from fillstream.binance.spot import wsapi
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import open_socket
from fillstream.stream.metrics import WSAPI_CONNECTIONS, WSAPI_SUBSCRIPTIONS
from fillstream.stream.wsapi_session import Member, WsApiSession

log = logging.getLogger("fillstream.stream.wsapi")


class WsApiPool:
    """The WS-API connections of one endpoint (``url``) in this process (see module docstring).

    ``aclose()`` closes every connection; the accounts' own ``aclose`` should come first.
    """

    def __init__(
        self,
        url: str,
        settings: StreamSettings,
        *,
        market: str = "spot",
        budgets: WeightBudgets | None = None,
    ) -> None:
        self.url = url
        self.settings = settings
        self.market = market
        self.clock_offset_ms = 0  # venue time minus ours
        self.paused_until_mono = 0.0  # 429/418: no subscribe before this
        self.sessions: dict[int, WsApiSession] = {}
        self.connects = 0
        self.budgets = budgets
        self._next_id = 1
        self._opening = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ placement

    async def place(self, member: Member, *, avoid: WsApiSession | None = None) -> WsApiSession:
        """A connection for ``member`` (not ``avoid``: the one it is moving off), counted as
        holding it until :meth:`leave`. Raises what opening a socket raises
        (:data:`~.connection.CONNECT_ERRORS`) or ``VenueError``."""
        found = self._holding(member, avoid) or self._with_room(avoid)
        if found is None:
            async with self._opening:
                found = self._with_room(avoid)  # another account may have opened one meanwhile
                if found is None:
                    found = await self._open()
        found.members.add(member)
        self._gauges()
        return found

    def _holding(self, member: Member, avoid: WsApiSession | None) -> WsApiSession | None:
        """The usable connection ``member`` is already placed on (a resubscribe stays put)."""
        now = time.monotonic()
        for s in self.sessions.values():
            usable = s is not avoid and s.close_reason is None and not s.done
            if usable and member in s.members and not s.retire_due(now):
                return s
        return None

    def _with_room(self, avoid: WsApiSession | None) -> WsApiSession | None:
        now = time.monotonic()
        cap = self.settings.accounts_per_connection
        lifetime = self.settings.lifetime_subscriptions_max
        best: WsApiSession | None = None
        for s in self.sessions.values():
            if s is avoid or s.done or s.close_reason is not None or s.retire_due(now):
                continue
            if len(s.members) >= cap or s.lifetime_subscriptions + len(s.members) >= lifetime:
                continue
            if best is None or len(s.members) > len(best.members):
                best = s  # fill the fullest first: fewer connections, fewer to watch
        return best

    async def _open(self) -> WsApiSession:
        budgets = self.budgets
        if budgets is not None:
            await budgets.spend(
                self.url, wsapi.CONNECT_WEIGHT, max_wait_s=self.settings.backoff_max_s
            )
        try:
            socket = await open_socket(self.url, self.settings)
        except aiohttp.WSServerHandshakeError as exc:
            if budgets is not None and exc.status in (418, 429):
                budgets.refused(self.url, exc.status)
            raise
        session = WsApiSession(
            self._next_id,
            socket,
            settings=self.settings,
            market=self.market,
            on_closed=self._on_closed,
            budgets=budgets,
            url=self.url,
        )
        self._next_id += 1
        self.connects += 1
        self.sessions[session.id] = session
        task = asyncio.create_task(session.run(), name=f"wsapi-reader-{session.id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        log.info("wsapi connection %d open on %s", session.id, self.url)
        self._gauges()
        return session

    def leave(self, member: Member, session: WsApiSession) -> None:
        """``member`` no longer uses ``session``; an empty connection closes."""
        session.members.discard(member)
        self._gauges()
        if not session.members and not session.done and session.close_reason is None:
            reason = "retired" if session.retiring else "idle"
            session.retiring = True  # from now: placed on by no one, while it closes
            self._spawn(session.close(reason))

    def _on_closed(self, session: WsApiSession, reason: str) -> None:
        self.sessions.pop(session.id, None)
        session.members.clear()
        log.info("wsapi connection %d closed (%s)", session.id, reason)
        self._gauges()

    def _gauges(self) -> None:
        live = [s for s in self.sessions.values() if not s.done]
        WSAPI_CONNECTIONS.labels(self.market).set(len(live))
        WSAPI_SUBSCRIPTIONS.labels(self.market).set(sum(len(s.members) for s in live))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # The pool's tasks belong to no account's TaskGroup: a bug in one is logged here (its
        # connection's accounts were told it closed), never left unretrieved.
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("wsapi task %s failed", task.get_name(), exc_info=exc)

    # ------------------------------------------------------------------ shared state

    def now_ms(self) -> int:
        """The venue's clock as we best know it (for ``timestamp``)."""
        return time.time_ns() // 1_000_000 + self.clock_offset_ms

    async def resync_time(self, session: WsApiSession) -> None:
        """Measure the venue's clock with the WS-API ``time`` method (after a ``-1021``)."""
        before = time.time_ns() // 1_000_000
        frame = await session.request(wsapi.TIME)
        after = time.time_ns() // 1_000_000
        server = wsapi.TIME_RESULT.decode(frame.result).serverTime
        self.clock_offset_ms = server - (before + after) // 2
        log.info("wsapi clock offset now %d ms", self.clock_offset_ms)

    def pause(self, seconds: float) -> None:
        """Hold every subscribe for ``seconds`` (a 429's or 418's ``retryAfter``)."""
        self.paused_until_mono = max(self.paused_until_mono, time.monotonic() + seconds)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Close every connection (bounded by ``timeout_s``)."""
        sessions = list(self.sessions.values())
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(s.close("shutdown") for s in sessions))
        except TimeoutError:
            for s in sessions:
                s.abandon()
        for task in list(self._tasks):
            task.cancel()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WsApiPool]] = (
    weakref.WeakKeyDictionary()
)


def shared_pool(
    url: str,
    settings: StreamSettings,
    *,
    market: str = "spot",
    budgets: WeightBudgets | None = None,
) -> WsApiPool:
    """The pool of ``url`` in this event loop, created with ``settings`` (and ``budgets``) on
    first use: the accounts of one endpoint share its connections (their connection settings
    should agree)."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(url)
    if pool is None:
        pool = pools[url] = WsApiPool(url, settings, market=market, budgets=budgets)
    return pool
