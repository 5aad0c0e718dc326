"""The reconciler's runs: what triggers them, at which REST priority, and what they report."""

from __future__ import annotations

import enum
import math

import msgspec

from fillstream.binance import RestPriority
from fillstream.ledger import Gap


class Trigger(enum.StrEnum):
    STARTUP = "startup"
    GAP = "gap"
    EVIDENCE = "evidence"  # narrow gaps: the live stream proved a fill of a symbol missing
    PERIODIC = "periodic"
    MANUAL = "manual"
    REPAIR = "repair"


PRIORITY = {
    # The window a socket may have missed: right after the listenKeys and sockets.
    Trigger.GAP: RestPriority.GAP,
    # A narrow gap the live stream proved (drop evidence): with the outage gaps, behind the
    # listenKeys and sockets (a lost key would cost far more than a late fill).
    Trigger.EVIDENCE: RestPriority.GAP,
    # Deeper history and symbol discovery: after every account's gap.
    Trigger.STARTUP: RestPriority.HISTORY,
    Trigger.MANUAL: RestPriority.HISTORY,
    Trigger.REPAIR: RestPriority.HISTORY,
    # What is left.
    Trigger.PERIODIC: RestPriority.PERIODIC,
}


class RunReport(msgspec.Struct, kw_only=True):
    """What one run did (also kept as :attr:`Reconciler.last_run` for ``/status``)."""

    trigger: str
    outcome: str = "ok"  # ok, error, rate_limited, auth_failed
    started_at_ms: int = 0
    duration_s: float = 0.0
    symbols: int = 0
    found: int = 0
    new: int = 0
    corrected: int = 0
    orders_updated: int = 0
    funding: int = 0
    error: str | None = None


def merge_gaps(gaps: list[Gap]) -> Gap:
    """One window covering them all; symbols united (empty — "all" — wins)."""
    first = gaps[0]
    until: int | None = 0
    symbols: set[str] = set()
    everything = False
    for gap in gaps:
        until = None if until is None or gap.until_ms is None else max(until, gap.until_ms)
        everything = everything or not gap.symbols
        symbols |= gap.symbols
    return Gap(
        account=first.account,
        market=first.market,
        since_ms=min(g.since_ms for g in gaps),
        until_ms=until,
        reason="+".join(sorted({g.reason for g in gaps})),
        symbols=frozenset() if everything else frozenset(symbols),
    )


Window = tuple[int, int]
"""``(since_ms, until_ms)``: trade times a missing fill lies within."""


class NarrowGaps:
    """Narrow gaps (drop evidence) waiting to be served, coalesced per symbol.

    A burst of evidence about one symbol becomes one window; a symbol is swept at most once per
    ``min_interval_s`` (each sweep costs a ``userTrades`` call, weight 5, plus the order lookups
    of what it recovers), so the REST cost grows with the symbols that drop, not with the drops.
    """

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._windows: dict[str, Window] = {}
        self._last: dict[str, float] = {}  # symbol → monotonic start of its last sweep

    def __bool__(self) -> bool:
        return bool(self._windows)

    def add(self, gap: Gap) -> None:
        for symbol in gap.symbols:
            self._merge(symbol, (gap.since_ms, gap.until_ms or gap.since_ms))

    def _merge(self, symbol: str, window: Window) -> None:
        old = self._windows.get(symbol)
        if old is not None:
            window = (min(old[0], window[0]), max(old[1], window[1]))
        self._windows[symbol] = window

    def due_at(self) -> float:
        """When the next symbol may be swept (monotonic; ``inf`` when nothing waits)."""
        last, interval = self._last, self.min_interval_s
        return min((last.get(s, -math.inf) + interval for s in self._windows), default=math.inf)

    def take(self, now: float, *, force: bool = False) -> dict[str, Window]:
        """Remove and return the windows of the symbols due at ``now`` (all with ``force``)."""
        interval = self.min_interval_s
        due = {
            s: w
            for s, w in self._windows.items()
            if force or self._last.get(s, -math.inf) + interval <= now
        }
        for symbol in due:
            del self._windows[symbol]
            self._last[symbol] = now
        for symbol in [s for s, t in self._last.items() if t + interval < now]:
            del self._last[symbol]  # bounded: only symbols swept within the interval
        return due

    def put_back(self, windows: dict[str, Window]) -> None:
        """Windows a failed run did not serve (their symbols keep their spacing)."""
        for symbol, window in windows.items():
            self._merge(symbol, window)
