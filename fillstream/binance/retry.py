"""Retry policy as data: per-caller backoff, and one pacer per kind of retry for the process.

Two rules keep a fleet of failing accounts from storming the venue:

- every retry backs off: exponential, with jitter, never sooner than ``FAILURE_FLOOR_S`` after a
  timeout, a network error or a 5xx (the venue is struggling: a fast retry only adds load), and
  never sooner than the venue's ``Retry-After``;
- retries of one kind (stream connects, listenKey keepalives, reconcile runs, account restarts)
  share one :class:`RetryPacer` per process, so 100 accounts failing together make at most
  ``rate_per_s`` retries a second between them, whatever their own backoffs say.

Pure: the caller measures time and sleeps; nothing here waits.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from fillstream.binance.errors import VenueError

FAILURE_FLOOR_S = 1.0
"""The least delay before retrying after a timeout, a network error or a 5xx."""

RETRY_AFTER_JITTER_S = 1.0
"""Spread added on top of a ``Retry-After``: a fleet told the same second does not return in it."""


def is_overload(exc: BaseException) -> bool:
    """A timeout, a network error or a 5xx: the venue (or the path to it) is struggling."""
    if isinstance(exc, VenueError):
        return exc.status == 0 or exc.status >= 500
    status = getattr(exc, "status", None)  # an HTTP client's response error (handshake refused)
    if isinstance(status, int):
        return status >= 500
    return isinstance(exc, (TimeoutError, OSError))


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after_s if isinstance(exc, VenueError) else None


class Backoff:
    """Delays for consecutive failed attempts of one caller; :meth:`reset` after a success.

    Exponential with "equal jitter": the n-th delay is drawn from ``[c/2, c]`` with
    ``c = min(max_s, initial_s · 2ⁿ)``, so a fleet spreads out but nobody retries at once. A
    ``Retry-After`` and the failure floor are lower bounds, never shortened by the jitter.
    """

    def __init__(self, initial_s: float, max_s: float, *, rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay (before floors)."""
        return min(self.max_s, self.initial_s * 2.0 ** min(self.attempts, 62))

    def next_delay(self, retry_after_s: float | None = None, *, floor_s: float = 0.0) -> float:
        """The delay before the next attempt (and count this failure)."""
        ceiling = self.ceiling()
        delay = max(self._rng.uniform(ceiling / 2, ceiling), floor_s)
        self.attempts += 1
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, retry_after_s + self._rng.uniform(0.0, RETRY_AFTER_JITTER_S))
        return delay

    def after(self, exc: BaseException) -> float:
        """:meth:`next_delay` for the failure ``exc`` (its ``Retry-After``, its floor)."""
        floor = FAILURE_FLOOR_S if is_overload(exc) else 0.0
        return self.next_delay(retry_after_of(exc), floor_s=floor)

    def reset(self) -> None:
        self.attempts = 0


@dataclass(frozen=True)
class PacerLimits:
    """At most ``rate_per_s`` retries a second on average, ``burst`` at once."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0 or self.burst < 1:
            raise ValueError(f"pacer needs rate_per_s > 0 and burst >= 1, got {self}")


class RetryPacer:
    """Spaces out retries of one kind across every caller of the process (GCRA).

    :meth:`slot` books the earliest moment at or after ``earliest`` at which one more retry keeps
    the kind within its limits, and returns it; the caller sleeps until then. Bookings are
    first come, first served, so a caller that books early is never overtaken.
    """

    def __init__(self, kind: str, limits: PacerLimits) -> None:
        self.kind = kind
        self.limits = limits
        self._interval = 1.0 / limits.rate_per_s
        self._tolerance = (limits.burst - 1) * self._interval
        self._tat = -math.inf  # theoretical arrival time of the next retry
        self.booked = 0

    def slot(self, now: float, earliest: float) -> float:
        """Book one retry; the time (same clock as ``now``) it may go, ``>= earliest``."""
        start = max(earliest, now)
        go = max(start, self._tat - self._tolerance)
        self._tat = max(self._tat, go) + self._interval
        self.booked += 1
        return go

    def delay(self, now: float, wanted_s: float) -> float:
        """Book one retry wanted ``wanted_s`` from ``now``; the delay to sleep (``>= wanted_s``)."""
        return self.slot(now, now + max(0.0, wanted_s)) - now


DEFAULT_PACERS: dict[str, PacerLimits] = {
    "stream.connect": PacerLimits(rate_per_s=5.0, burst=10),
    "listen_key.keepalive": PacerLimits(rate_per_s=2.0, burst=5),
    "reconcile.retry": PacerLimits(rate_per_s=2.0, burst=5),
    "account.restart": PacerLimits(rate_per_s=1.0, burst=3),
}
"""The kinds of retry and their process-wide limits (a stream connect is a listenKey POST plus a
socket handshake: 5 a second is at most ~10 requests a second, whatever the number of accounts)."""

_PACERS: dict[str, RetryPacer] = {}


def pacer(kind: str) -> RetryPacer:
    """The process's pacer for ``kind`` (one of :data:`DEFAULT_PACERS`)."""
    found = _PACERS.get(kind)
    if found is None:
        found = _PACERS[kind] = RetryPacer(kind, DEFAULT_PACERS[kind])
    return found
