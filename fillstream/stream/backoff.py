"""Exponential backoff with full jitter, capped, with no attempt limit.

Full jitter (a uniform draw in ``[0, min(cap, initial·2ⁿ)]``) spreads a fleet of accounts that
lost their sockets in the same second, so they do not reconnect in lockstep. A venue-supplied
``Retry-After`` is a floor, never shortened by the jitter.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive failed attempts; :meth:`reset` after a success."""

    def __init__(self, initial_s: float, max_s: float, *, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.max_s, self.initial_s * 2.0 ** min(self.attempts, 62))

    def next_delay(self, retry_after_s: float | None = None) -> float:
        """The delay before the next attempt (and count this failure)."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempts += 1
        if retry_after_s is not None and retry_after_s > delay:
            return retry_after_s
        return delay

    def reset(self) -> None:
        self.attempts = 0
