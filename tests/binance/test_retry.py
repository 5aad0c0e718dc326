"""The retry policy: jittered backoff with floors, and the pacer shared by every account."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from fillstream.binance import VenueError
from fillstream.binance.retry import Backoff, PacerLimits, RetryPacer, is_overload


def test_a_timeout_or_5xx_is_retried_no_sooner_than_a_second() -> None:
    backoff = Backoff(0.05, 0.1, rng=random.Random(1))
    for exc in (VenueError(0, None, "TimeoutError"), VenueError(503, None, "busy"), TimeoutError()):
        assert is_overload(exc)
        assert backoff.after(exc) >= 1.0
    not_overload = VenueError(400, -1100, "bad parameter")
    assert not is_overload(not_overload)
    assert backoff.after(not_overload) <= 0.1


def test_retry_after_is_a_floor_and_delays_grow_with_jitter() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(2))
    limited = VenueError(429, -1003, "too many", retry_after_s=7)
    assert 7 <= backoff.after(limited) <= 8
    backoff.reset()
    delays = [backoff.next_delay() for _ in range(6)]
    for n, delay in enumerate(delays):
        ceiling = min(30.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling


@given(
    wanted=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200),
    rate=st.sampled_from([1.0, 2.0, 5.0]),
    burst=st.integers(min_value=1, max_value=10),
)
def test_a_pacer_never_lets_more_than_rate_times_t_plus_burst_go(
    wanted: list[float], rate: float, burst: int
) -> None:
    pacer = RetryPacer("test", PacerLimits(rate_per_s=rate, burst=burst))
    slots = sorted(pacer.slot(0.0, w) for w in wanted)
    for i, start in enumerate(slots):
        for j in range(i, len(slots)):
            window = slots[j] - start
            assert j - i + 1 <= rate * window + burst + 1e-9
    assert all(s >= 0 for s in slots)
