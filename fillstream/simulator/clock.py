"""The simulator's two clocks.

* **Wall time** (:meth:`SimClock.wall_ms`): real epoch milliseconds. Every timestamp in events and
  REST rows uses it, so a service under test sees plausible exchange times. ``/fapi/v1/time`` and
  the signature timestamp check use :meth:`server_ms` (wall time plus the ``clock_skew`` fault).
* **Sim time** (:meth:`SimClock.sim_s`): seconds since start, running ``speed`` times faster than
  real time. Only timers use it: listenKey validity (60 min), the 24 h connection cut, server
  pings and pong timeouts, the rate-limit minute, funding intervals and bans. With
  ``clock_speed=3600`` an hour of timers passes in a second while timestamps stay real.
"""

from __future__ import annotations

import time


class SimClock:
    """Wall clock with a skew offset, plus an accelerated monotonic timer clock."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be > 0")
        self.speed = speed
        self.skew_ms = 0
        self._t0 = time.monotonic()
        self._advanced_s = 0.0
        self._last_wall_ms = 0

    def wall_ms(self) -> int:
        """Real epoch ms, never going backwards (event and row timestamps)."""
        now = time.time_ns() // 1_000_000
        if now < self._last_wall_ms:
            return self._last_wall_ms
        self._last_wall_ms = now
        return now

    def server_ms(self) -> int:
        """What ``/fapi/v1/time`` answers: wall time plus the injected skew."""
        return self.wall_ms() + self.skew_ms

    def sim_s(self) -> float:
        """Accelerated seconds since start (timers only)."""
        return (time.monotonic() - self._t0) * self.speed + self._advanced_s

    def advance(self, sim_seconds: float) -> None:
        """Jump the timer clock forward (tests: expire keys or cut sockets without waiting)."""
        if sim_seconds < 0:
            raise ValueError("the timer clock only moves forward")
        self._advanced_s += sim_seconds

    def real_s(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of timer time take."""
        return sim_seconds / self.speed

    @staticmethod
    def mono() -> float:
        """Real monotonic seconds (REST visibility lag, fault durations given in real seconds)."""
        return time.monotonic()
