"""The REST weight budget, one per REST weight pool, shared by every account and both paths.

A pool is a REST host, except that USDⓈ-M and COIN-M share one (``fapi``/``dapi``: one pool per
IP since the 2026 CM-UM integration; :func:`host_of`), so COIN-M traffic is in the USDⓈ-M budget.
(The integration also made hedge mode, ``dualSidePosition``, one setting for both products:
fillstream never reads or changes it; every fill and position carries its own position side.)

Binance limits request weight per IP per minute (fapi: 2400) and reports the weight used so far in
``X-MBX-USED-WEIGHT-1M``. A budget keeps an estimate of that figure (the last header of this
minute, plus the weight of requests in flight) and lets a request go only if the estimate stays
under a cap: ``limit * (1 - headroom)`` for listenKey operations (``STREAM``), a little less for
gap backfills, less again for history, and ``background_share`` of it for periodic polls, so
the more urgent work always finds room. Waiters are served strictly by priority, then in arrival
order; :meth:`WeightBudgets.hold` keeps priorities from a level on waiting altogether (start-up:
every socket first).

Waiting is not failing: a request waits in the queue as long as the weight requires, and its
HTTP timeout starts only once it is sent. The queue is visible: ``fillstream_rest_queued_weight``
per priority and :meth:`WeightBudget.status` (in ``/status``).

429 pauses every request to the host for ``Retry-After`` (or to the next minute); 418 stops all
REST to the host until the ban ends. After a pause, or at a new minute when the previous one was
busy, requests go one at a time until a fresh header says where the window stands (the venue may
count over a sliding minute rather than a calendar one), so a pause never ends in a burst.

A 429 pause or 418 ban longer than the caller's ``max_wait_s`` raises :class:`VenueError`
(status 429 or 418, ``retry_after_s`` set) without sending anything: callers back off, nobody
storms.

Spot's WebSocket API draws on the same pool as spot REST (6,000 per minute per IP,
binance-wave2.md §A.5: connecting costs 2, each ``userDataStream.subscribe.signature`` 2; the
WS-API hosts map to the REST host, :data:`~fillstream.binance.endpoints.SHARED_POOLS`). The
stream path takes that weight with :meth:`WeightBudgets.charge` at ``STREAM`` priority and
settles the :class:`Charge` with what the server answered (its ``rateLimits`` count, a 429 or
418 and the ``retryAfter`` time), so a 429 on either side pauses both.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fillstream.binance import RestPriority, VenueError
from fillstream.binance.endpoints import DEFAULT_WEIGHT_LIMITS, SHARED_POOLS
from fillstream.binance.errors import TOO_MANY_REQUESTS
from fillstream.binance.metrics import (
    REST_PAUSED_SECONDS,
    REST_QUEUED_WEIGHT,
    REST_WEIGHT_LIMIT,
    REST_WEIGHT_USED,
)
from fillstream.ledger import Market

DEFAULT_LIMIT = 2400
DEFAULT_HEADROOM = 0.2
DEFAULT_BACKGROUND_SHARE = 0.75
MIN_BAN_S = 120.0  # Binance bans start at 2 minutes
_TICK_S = 0.05
# The share of the usable weight each priority may fill (PERIODIC: ``background_share``): what
# is left above a level's cap is kept for the levels before it.
_SHARES = {RestPriority.STREAM: 1.0, RestPriority.GAP: 0.95, RestPriority.HISTORY: 0.85}


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    weight: int = field(compare=False)
    future: asyncio.Future[int] = field(compare=False)
    since: float = field(compare=False, default=0.0)


class Grant:
    """A reservation of ``weight`` in one minute window; :meth:`WeightBudget.settle` ends it."""

    __slots__ = ("settled", "weight", "window")

    def __init__(self, weight: int, window: int) -> None:
        self.weight = weight
        self.window = window
        self.settled = False


class WeightBudget:
    """The weight budget of one REST host. Safe to share across tasks of one event loop."""

    def __init__(
        self,
        host: str,
        *,
        limit: int = DEFAULT_LIMIT,
        headroom: float = DEFAULT_HEADROOM,
        background_share: float = DEFAULT_BACKGROUND_SHARE,
        limit_configured: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), got {headroom}")
        if not 0 < background_share <= 1:
            raise ValueError(f"background_share must be in (0, 1], got {background_share}")
        self.host = host
        self.headroom = headroom
        self.background_share = background_share
        self.limit_configured = limit_configured
        self._clock = clock
        self._limit = limit
        self._window = self._minute()
        self._used = 0  # the venue's count for this window, as last reported (or estimated)
        self._fresh = False  # a header arrived in this window
        self._probe = False  # one request at a time until a fresh header arrives
        self._reserved = 0  # weight of requests in flight
        self._paused_until = 0.0
        self._pause_reason = ""
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._weight_blocked_since: float | None = None
        self._held_from: int | None = None  # priorities from this level on wait (start-up)
        self._queued = dict.fromkeys(RestPriority.__members__.values(), 0)
        self._gauges = {p: REST_QUEUED_WEIGHT.labels(host, p.name.lower()) for p in self._queued}
        self.limits_lock = asyncio.Lock()  # one exchangeInfo read per host, not one per account
        self.limits_loaded = False
        REST_WEIGHT_LIMIT.labels(host).set(limit)
        for gauge in self._gauges.values():
            gauge.set(0)

    # -- introspection -------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return self._limit

    def clock(self) -> float:
        """The budget's clock (epoch seconds; a fake one in tests)."""
        return self._clock()

    @property
    def usable(self) -> int:
        return max(1, math.floor(self._limit * (1 - self.headroom)))

    @property
    def used(self) -> int:
        """The venue's reported weight for this minute (0 before the first header of it)."""
        self._roll()
        return self._used

    @property
    def in_flight(self) -> int:
        return self._reserved

    def paused_for(self) -> tuple[str, float]:
        """(reason, seconds left) of a 429 pause or a 418 ban; ("", 0.0) when none."""
        left = self._paused_until - self._clock()
        return (self._pause_reason, left) if left > 0 else ("", 0.0)

    def set_limit(self, limit: int, *, configured: bool = False) -> None:
        """Change the per-minute limit (from config, or exchangeInfo unless configured)."""
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        if self.limit_configured and not configured:
            return
        self._limit = limit
        self.limit_configured = self.limit_configured or configured
        REST_WEIGHT_LIMIT.labels(self.host).set(limit)
        self._pump()

    def refresh(self) -> None:
        """Re-evaluate the waiters now (after a clock change: tests drive a fake clock)."""
        self._pump()

    def hold(self, from_priority: RestPriority | None) -> None:
        """Let requests of ``from_priority`` and later wait (None: let everything go)."""
        self._held_from = None if from_priority is None else int(from_priority)
        self._pump()

    def queued(self) -> dict[RestPriority, tuple[int, int]]:
        """(requests, weight) waiting per priority."""
        out = {p: (0, 0) for p in self._queued}
        for w in self._waiters:
            if not w.future.done():
                n, weight = out[RestPriority(w.priority)]
                out[RestPriority(w.priority)] = (n + 1, weight + w.weight)
        return out

    def status(self) -> dict[str, object]:
        """This host's budget for ``/status``: limit, use, pause and the queue per priority."""
        now = self._clock()
        reason, left = self.paused_for()
        oldest: dict[int, float] = {}
        for w in self._waiters:
            if not w.future.done():
                oldest[w.priority] = max(oldest.get(w.priority, 0.0), now - w.since)
        return {
            "limit": self._limit,
            "used": self.used,
            "in_flight": self._reserved,
            "paused": {"reason": reason, "seconds_left": round(left, 1)} if reason else None,
            "held_from": None if self._held_from is None else RestPriority(self._held_from).name,
            "queued": {
                p.name.lower(): {
                    "requests": n,
                    "weight": weight,
                    "oldest_wait_s": round(oldest.get(int(p), 0.0), 1),
                }
                for p, (n, weight) in self.queued().items()
            },
        }

    # -- the request cycle ---------------------------------------------------------------------

    async def acquire(
        self, weight: int, priority: RestPriority, *, max_wait_s: float | None = None
    ) -> Grant:
        """Wait until ``weight`` fits, reserve it, and return the grant to :meth:`settle`.

        Waits for weight as long as it takes (the queue is ordered; nothing is sent meanwhile).
        Raises :class:`VenueError` (429 or 418, ``retry_after_s`` set) without sending when a
        429 pause or 418 ban of the host would keep the call waiting past ``max_wait_s``.
        """
        weight = max(0, weight)
        start = self._clock()
        self._roll()
        if not self._ahead_of(priority) and self._fits(weight, priority):
            return self._reserve(weight)
        waiter = _Waiter(
            int(priority),
            next(self._seq),
            weight,
            asyncio.get_running_loop().create_future(),
            since=start,
        )
        heapq.heappush(self._waiters, waiter)
        self._count_queued(waiter, +1)
        try:
            while True:
                self._pump()
                if waiter.future.done():
                    return Grant(weight, waiter.future.result())
                timeout = self._wait_step(start, max_wait_s)
                await asyncio.wait({waiter.future}, timeout=timeout)
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self._reserved -= weight  # granted while we were being cancelled
            else:
                waiter.future.cancel()
                self._count_queued(waiter, -1)
            self._pump()
            raise

    def settle(
        self,
        grant: Grant,
        *,
        used_weight: int | None,
        status: int,
        retry_after_s: float | None = None,
    ) -> None:
        """End a grant with what the venue answered (its used-weight header and status)."""
        if grant.settled:
            return
        grant.settled = True
        self._reserved -= grant.weight
        self._roll()
        if used_weight is not None and (grant.window == self._window or not self._fresh):
            self._used = max(self._used, used_weight) if self._fresh else used_weight
            self._fresh = True
            self._probe = False
            REST_WEIGHT_USED.labels(self.host).set(self._used)
        elif used_weight is None and grant.window == self._window:
            # No header (a timeout, a dropped connection): the venue may well have counted the
            # request. Forgetting its weight would let the estimate fall behind the venue's
            # count with every timeout, and end in 429s, then a ban.
            self._used += grant.weight
        self.refused(status, retry_after_s)

    def refused(self, status: int, retry_after_s: float | None = None) -> None:
        """The venue answered ``status``: 429 pauses the pool for ``retry_after_s`` (or to the
        next minute), 418 for the ban (at least 2 minutes); other statuses change nothing."""
        if status == 429:
            self._pause("rate_limited", retry_after_s or (self._next_minute() - self._clock() + 1))
        elif status == 418:
            self._pause("banned", max(retry_after_s or MIN_BAN_S, 1.0))
        self._pump()

    # -- internals -----------------------------------------------------------------------------

    def _wait_step(self, start: float, max_wait_s: float | None) -> float:
        """How long a blocked waiter sleeps next; raises when a pause outlasts ``max_wait_s``."""
        now = self._clock()
        reason, paused_left = self.paused_for()
        waited = now - start
        if max_wait_s is not None and reason and paused_left > max_wait_s - waited:
            raise self._refusal(reason, paused_left)
        if self._weight_blocked_since is None and not reason:
            self._weight_blocked_since = now
        return self._next_event_in(now)

    def _count_queued(self, waiter: _Waiter, sign: int) -> None:
        priority = RestPriority(waiter.priority)
        self._queued[priority] += sign * waiter.weight
        self._gauges[priority].set(self._queued[priority])

    def _minute(self) -> int:
        return int(self._clock() // 60)

    def _next_minute(self) -> float:
        return (self._minute() + 1) * 60.0

    def _roll(self) -> None:
        window = self._minute()
        if window == self._window:
            return
        busy = self._used + self._reserved > self.usable // 2 or (not self._fresh and self._probe)
        self._window = window
        self._used = 0
        self._fresh = False
        self._probe = busy
        REST_WEIGHT_USED.labels(self.host).set(0)

    def _cap(self, priority: int) -> int:
        share = _SHARES.get(RestPriority(priority))
        if share is None:
            share = min(self.background_share, _SHARES[RestPriority.HISTORY])
        return max(1, math.floor(self.usable * share))

    def _fits(self, weight: int, priority: int) -> bool:
        if self._held_from is not None and priority >= self._held_from:
            return False
        if self._paused_until > self._clock():
            return False
        if self._probe and not self._fresh:
            return self._reserved == 0
        if self._used + self._reserved + weight <= self._cap(priority):
            return True
        # A request heavier than the whole cap still goes alone at the start of a window.
        return self._used == 0 and self._reserved == 0

    def _ahead_of(self, priority: int) -> bool:
        return any(w.priority <= priority and not w.future.done() for w in self._waiters)

    def _reserve(self, weight: int) -> Grant:
        self._reserved += weight
        return Grant(weight, self._window)

    def _pump(self) -> None:
        self._roll()
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():
                heapq.heappop(self._waiters)
                continue
            if not self._fits(head.weight, head.priority):
                break
            heapq.heappop(self._waiters)
            self._reserve(head.weight)
            self._count_queued(head, -1)
            head.future.set_result(self._window)
        if self._weight_blocked_since is not None and not any(
            not w.future.done() for w in self._waiters
        ):
            REST_PAUSED_SECONDS.labels(self.host, "weight").inc(
                max(0.0, self._clock() - self._weight_blocked_since)
            )
            self._weight_blocked_since = None

    def _pause(self, reason: str, seconds: float) -> None:
        now = self._clock()
        until = now + seconds
        if until <= self._paused_until:
            return
        REST_PAUSED_SECONDS.labels(self.host, reason).inc(until - max(now, self._paused_until))
        if self._paused_until <= now or reason == "banned":
            self._pause_reason = reason
        self._paused_until = until
        # Whatever the window says now, the first request after the pause goes alone.
        self._fresh = False
        self._probe = True

    def _next_event_in(self, now: float) -> float:
        paused_left = self._paused_until - now
        if paused_left > 0:
            return max(_TICK_S, paused_left)
        return max(_TICK_S, self._next_minute() - now)

    def _refusal(self, reason: str, retry_after_s: float) -> VenueError:
        status = 418 if reason == "banned" else 429
        return VenueError(
            status,
            TOO_MANY_REQUESTS,
            f"REST to {self.host} held back locally ({reason or 'weight'})",
            endpoint="budget",
            retry_after_s=max(0.0, retry_after_s),
        )


class WeightBudgets:
    """The registry of budgets by REST host; build one per process and hand it to every venue."""

    def __init__(
        self,
        *,
        default_limit: int = DEFAULT_LIMIT,
        headroom: float = DEFAULT_HEADROOM,
        background_share: float = DEFAULT_BACKGROUND_SHARE,
        limits: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.default_limit = default_limit
        self.headroom = headroom
        self.background_share = background_share
        self._limits = dict(limits or {})
        self._clock = clock
        self._budgets: dict[str, WeightBudget] = {}
        self._held_from: RestPriority | None = None

    def hold(self, from_priority: RestPriority | None) -> None:
        """On every host (and hosts met later): requests of ``from_priority`` and after wait;
        None lets everything go."""
        self._held_from = from_priority
        for budget in self._budgets.values():
            budget.hold(from_priority)

    def status(self) -> dict[str, object]:
        """Every host's :meth:`WeightBudget.status`."""
        return {host: budget.status() for host, budget in self._budgets.items()}

    def get(self, host: str, *, market: Market | None = None) -> WeightBudget:
        """The budget of ``host``, made on first use with the configured limit, else the
        product's default (``market``: spot's pool is 6,000 a minute), else ``default_limit``."""
        budget = self._budgets.get(host)
        if budget is None:
            configured = host in self._limits
            default = self.default_limit if market is None else DEFAULT_WEIGHT_LIMITS[market]
            budget = self._budgets[host] = WeightBudget(
                host,
                limit=self._limits.get(host, default),
                headroom=self.headroom,
                background_share=self.background_share,
                limit_configured=configured,
                clock=self._clock,
            )
            if self._held_from is not None:
                budget.hold(self._held_from)
        return budget

    def for_url(self, rest_url: str, *, market: Market | None = None) -> WeightBudget:
        return self.get(host_of(rest_url), market=market)

    async def charge(
        self,
        url: str,
        weight: int,
        *,
        market: Market = Market.SPOT,
        priority: RestPriority = RestPriority.STREAM,
        max_wait_s: float | None = None,
    ) -> Charge:
        """Take ``weight`` for one WebSocket API request (connect 2, subscribe 2) from the pool
        ``url`` (the WS-API URL) counts against, waiting as a REST call would.

        Settle the returned :class:`Charge` once the server answered (or did not). Raises
        :class:`VenueError` (429/418, ``retry_after_s`` set) without waiting when a pause or ban
        of the pool outlasts ``max_wait_s``: the caller backs off instead of sending.
        """
        budget = self.for_url(url, market=market)
        return Charge(budget, await budget.acquire(weight, priority, max_wait_s=max_wait_s))

    async def spend(
        self,
        url: str,
        weight: int,
        *,
        market: Market = Market.SPOT,
        max_wait_s: float | None = None,
    ) -> None:
        """:meth:`charge` and settle at once, the weight counted as spent: for a caller that
        reads no ``rateLimits`` (a connection attempt, a fire-and-forget request). A refusal
        the server sends later goes to :meth:`refused`."""
        (await self.charge(url, weight, market=market, max_wait_s=max_wait_s)).settle()

    def refused(
        self,
        url: str,
        status: int,
        *,
        retry_after_ms: int | None = None,
        market: Market = Market.SPOT,
    ) -> None:
        """A WS-API request to ``url`` was answered 429 or 418, ``retryAfter`` (epoch ms, from
        the error's data) when given: the pool, REST included, pauses until then."""
        budget = self.for_url(url, market=market)
        budget.refused(status, _seconds_until(budget, retry_after_ms))

    def __iter__(self) -> itertools.chain[WeightBudget]:
        return itertools.chain(self._budgets.values())


class Charge:
    """The weight of one WebSocket API request, reserved in its pool until :meth:`settle`."""

    __slots__ = ("budget", "grant")

    def __init__(self, budget: WeightBudget, grant: Grant) -> None:
        self.budget = budget
        self.grant = grant

    def settle(
        self,
        *,
        status: int = 200,
        used_weight: int | None = None,
        limit: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """End the reservation with the server's answer: ``status`` (the response's; 0 when
        none came), ``used_weight`` and ``limit`` (the REQUEST_WEIGHT entry of its
        ``rateLimits``, see :func:`request_weight`; None: unknown, the weight counts as spent)
        and, on 429/418, the ``retryAfter`` of the error's data (epoch ms: the pool pauses until
        then). Idempotent."""
        if limit is not None and limit > 0 and not self.grant.settled:
            self.budget.set_limit(limit)  # a configured limit stays
        self.budget.settle(
            self.grant,
            used_weight=used_weight,
            status=status,
            retry_after_s=_seconds_until(self.budget, retry_after_ms),
        )


def _seconds_until(budget: WeightBudget, epoch_ms: int | None) -> float | None:
    return None if epoch_ms is None else max(0.0, epoch_ms / 1000 - budget.clock())


def request_weight(rate_limits: Iterable[Mapping[str, Any]]) -> tuple[int | None, int | None]:
    """(count, limit) of the one-minute REQUEST_WEIGHT entry of a WS-API response's
    ``rateLimits`` (JSON objects as Binance sends them); (None, None) when absent."""
    for rule in rate_limits:
        if (
            rule.get("rateLimitType") == "REQUEST_WEIGHT"
            and rule.get("interval") == "MINUTE"
            and rule.get("intervalNum", 1) == 1
        ):
            count, limit = rule.get("count"), rule.get("limit")
            return (
                count if isinstance(count, int) else None,
                limit if isinstance(limit, int) else None,
            )
    return None, None


def host_of(rest_url: str) -> str:
    """The budget key of a REST base URL: its host[:port], or the host whose weight pool it
    shares (``dapi.binance.com`` → ``fapi.binance.com``: USDⓈ-M and COIN-M count against one
    pool per IP, :data:`~fillstream.binance.endpoints.SHARED_POOLS`)."""
    netloc = urlsplit(rest_url).netloc
    if not netloc:
        raise ValueError(f"not an absolute URL: {rest_url!r}")
    host = netloc.lower()
    return SHARED_POOLS.get(host, host)
