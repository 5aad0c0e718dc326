"""Per-IP REST weight, as Binance counts it (binance-facts §4.1).

Weight accumulates per IP in one-minute windows of the sim clock and is reported on every response
as ``X-MBX-USED-WEIGHT-1M``. The windows start on the wall clock's minutes, as Binance's do (at
clock speed 1 a window is a calendar minute), so a client's own minute agrees with the venue's.
A request that would pass the limit gets HTTP 429 with
``Retry-After`` (real seconds to the next window), and so does every request until then. A
client that sends more requests after three 429s in one window is banned: HTTP 418 with
``Retry-After``; bans start at 2 sim-minutes and double with each repeat, up to 3 sim-days.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fillstream.simulator.clock import SimClock

WINDOW_S = 60.0
IGNORED_429S_BEFORE_BAN = 3
FIRST_BAN_S = 120.0
MAX_BAN_S = 3 * 24 * 3600.0


@dataclass
class _Ip:
    window: int = -1
    used: int = 0
    rejected: int = 0
    banned_until: float = 0.0
    bans: int = 0


@dataclass(frozen=True)
class Verdict:
    """What to answer: ``status`` 200 (go on), 429 or 418, with the headers' values."""

    status: int
    used: int
    retry_after_s: int = 0
    banned_until_ms: int = 0


class WeightLimiter:
    """Counts weight per IP; :meth:`charge` decides whether a request may run."""

    def __init__(self, clock: SimClock, limit: int) -> None:
        self._clock = clock
        self.limit = limit
        self._ips: dict[str, _Ip] = {}
        # Sim seconds are counted from the start; shift them onto the wall clock's minutes.
        self._origin_s = time.time() % WINDOW_S - clock.sim_s()
        self.answered: dict[int, int] = {200: 0, 429: 0, 418: 0}
        self.weight_total = 0

    def _now(self) -> float:
        return self._clock.sim_s() + self._origin_s

    def _state(self, ip: str, now: float) -> _Ip:
        state = self._ips.get(ip)
        if state is None:
            state = self._ips[ip] = _Ip()
        window = int(now // WINDOW_S)
        if window != state.window:
            state.window = window
            state.used = 0
            state.rejected = 0
        return state

    def used(self, ip: str) -> int:
        return self._state(ip, self._now()).used

    def banned(self, ip: str) -> bool:
        """Whether ``ip`` is banned (418) right now."""
        state = self._ips.get(ip)
        return state is not None and state.banned_until > self._now()

    def charge(self, ip: str, weight: int) -> Verdict:
        verdict = self._charge(ip, weight)
        self.answered[verdict.status] += 1
        if verdict.status == 200:
            self.weight_total += weight
        return verdict

    def stats(self) -> dict[str, int]:
        """Answers so far (``ok``, ``429``, ``418``) and the weight charged in all."""
        return {
            "ok": self.answered[200],
            "429": self.answered[429],
            "418": self.answered[418],
            "weight_total": self.weight_total,
        }

    def _charge(self, ip: str, weight: int) -> Verdict:
        clock = self._clock
        now = self._now()
        state = self._state(ip, now)
        if state.banned_until > now:
            return self._ban_verdict(state, now)
        # Once told 429, the IP must wait for the next window: anything sent before is "ignoring
        # the 429" and is refused too, and the fourth refusal in a window turns into a ban.
        if state.rejected or state.used + weight > self.limit:
            if state.rejected >= IGNORED_429S_BEFORE_BAN:
                length = min(FIRST_BAN_S * 2**state.bans, MAX_BAN_S)
                state.bans += 1
                state.banned_until = now + length
                return self._ban_verdict(state, now)
            state.rejected += 1
            wait = (state.window + 1) * WINDOW_S - now
            return Verdict(429, state.used, _ceil_real(clock, wait))
        state.used += weight
        return Verdict(200, state.used)

    def _ban_verdict(self, state: _Ip, now: float) -> Verdict:
        clock = self._clock
        wait = state.banned_until - now
        until_ms = clock.server_ms() + int(clock.real_s(wait) * 1000)
        return Verdict(418, state.used, _ceil_real(clock, wait), until_ms)

    def reset(self) -> None:
        self._ips.clear()
        self.answered = dict.fromkeys(self.answered, 0)
        self.weight_total = 0


def _ceil_real(clock: SimClock, sim_seconds: float) -> int:
    return max(1, math.ceil(clock.real_s(sim_seconds)))


ORDER_LIMITS = ((10.0, 300, "10S", "TEN_SECONDS"), (60.0, 1200, "1M", "ONE_MINUTE"))


class OrderCounter:
    """New orders per account in 10-second and one-minute windows (sim clock), both products.

    Binance counts new orders (algo orders included, at 0 IP weight) per account and reports
    them on order endpoints as ``X-MBX-ORDER-COUNT-10S`` / ``-1M``; past 300 per 10 s or 1200 per
    minute an order is refused with 429 and ``-1015``.
    """

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, float], tuple[int, int]] = {}  # (account, len) → (win, n)

    def _current(self, account: str, length: float, now: float) -> int:
        window = int(now // length)
        seen = self._counts.get((account, length))
        return seen[1] if seen is not None and seen[0] == window else 0

    def charge(self, account: str, orders: int) -> tuple[dict[str, str], str | None]:
        """Count ``orders`` new orders: (headers, the refusal message if over a limit)."""
        now = self._clock.sim_s()
        counts = {length: self._current(account, length, now) for length, *_ in ORDER_LIMITS}
        refused: str | None = None
        for length, limit, _, name in ORDER_LIMITS:
            if orders and counts[length] + orders > limit:
                refused = f"Too many new orders; current limit is {limit} orders per {name}."
        if refused is None and orders:
            counts = {length: n + orders for length, n in counts.items()}
            for length, n in counts.items():
                self._counts[(account, length)] = (int(now // length), n)
        headers = {
            f"X-MBX-ORDER-COUNT-{label}": str(counts[length])
            for length, _, label, _ in ORDER_LIMITS
        }
        return headers, refused
