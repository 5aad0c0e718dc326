"""Start-up across every account of the process, in the order the weight budget serves them.

One IP's REST budget (fapi: 2,400 a minute) is shared by every account. If each account simply
started everything at once, the first accounts' history sweeps (``openOrders`` for all symbols
costs 40, ``income`` 30, each symbol's trades 5 a page) would spend the minute before the last
accounts had even asked for a listenKey. So start-up goes in phases:

1. ``streams``: only ``STREAM`` requests go (clock sync, one exchangeInfo per host, listenKey:
   weight 1 each); every other priority waits in the budget's queue. It ends when every account
   has made its first connect attempt (live, refused or failed: a failing account retries on its
   own backoff and does not hold the others), or after ``streams_max_s``.
2. ``gaps``: the gap backfills of the most recent window (each stream's start gap) go; the
   start-up reconcile of every account is held. It ends when every account that connected has
   served its first gap, or after ``gaps_max_s``.
3. ``history``: every reconciler's start-up run (deeper history, symbol discovery) is released;
   periodic polls wait in the budget's queue (they would otherwise take most of each minute
   between two history requests). It ends when every account's start-up run has ended, or
   after ``history_max_s``.
4. ``open``: periodic work goes too; the budget's priorities keep listenKeys, gaps and history
   ahead of it.

An account that (re)starts after the start-up is not held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from fillstream.binance import RestPriority
from fillstream.binance.budget import WeightBudgets

log = logging.getLogger(__name__)


class HeldStartup(Protocol):
    def hold_startup(self) -> None: ...

    def release_startup(self) -> None: ...


class StartupOrder:
    """The phase of the process's start-up; the account supervisors report to it."""

    def __init__(
        self,
        *,
        streams_max_s: float = 60.0,
        gaps_max_s: float = 300.0,
        history_max_s: float = 1800.0,
    ) -> None:
        self.streams_max_s = streams_max_s
        self.gaps_max_s = gaps_max_s
        self.history_max_s = history_max_s
        self.phase = "streams"
        self._budgets: WeightBudgets | None = None
        self._streams: set[str] = set()  # accounts whose first connect attempt is pending
        self._gaps: set[str] = set()  # accounts whose first gap is pending
        self._history: set[str] = set()  # accounts whose start-up run is pending
        self._held: dict[str, HeldStartup] = {}
        self._started = time.monotonic()
        self._phase_since = self._started
        self._timer: asyncio.TimerHandle | None = None
        self.durations: dict[str, float] = {}

    def join(self, account: str, budgets: WeightBudgets) -> None:
        """Count ``account`` in (before the accounts run)."""
        if self.phase != "streams":
            return
        if self._budgets is None:
            self._budgets = budgets
            budgets.hold(RestPriority.GAP)
        self._streams.add(account)
        self._gaps.add(account)
        self._history.add(account)

    def attach(self, account: str, reconciler: HeldStartup) -> None:
        """An incarnation of ``account`` starts: hold its start-up run until ``history``."""
        if self.phase in ("history", "open"):
            return
        reconciler.hold_startup()
        self._held[account] = reconciler
        if self._timer is None:
            self._arm(self.streams_max_s)

    def stream_attempted(self, account: str, *, connected: bool) -> None:
        self._streams.discard(account)
        if not connected:
            self._gaps.discard(account)  # no gap to wait for; its start-up run covers it
        self._advance()

    def gap_done(self, account: str) -> None:
        self._gaps.discard(account)
        self._advance()

    def history_done(self, account: str) -> None:
        self._history.discard(account)
        self._advance()

    def leave(self, account: str) -> None:
        """``account`` stopped or crashed: the others do not wait for it."""
        self._streams.discard(account)
        self._gaps.discard(account)
        self._history.discard(account)
        self._advance()

    def status(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "phase_s": round(time.monotonic() - self._phase_since, 1),
            "waiting_for_streams": len(self._streams),
            "waiting_for_gaps": len(self._gaps),
            "waiting_for_history": len(self._history),
            "phase_durations_s": {k: round(v, 1) for k, v in self.durations.items()},
        }

    # -- internals -----------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        phase = self.phase
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire, phase)

    def _expire(self, phase: str) -> None:
        if self.phase != phase:
            return
        pending = {"streams": self._streams, "gaps": self._gaps, "history": self._history}[phase]
        left = len(pending)
        log.warning(
            "start-up phase %s took longer than its bound; going on without %d accounts",
            phase,
            left,
        )
        pending.clear()
        self._advance()

    def _advance(self) -> None:
        if self.phase == "streams" and not self._streams:
            self._enter("gaps")
            if self._budgets is not None:
                self._budgets.hold(None)
            self._arm(self.gaps_max_s)
        if self.phase == "gaps" and not self._gaps:
            self._enter("history")
            if self._budgets is not None:
                self._budgets.hold(RestPriority.PERIODIC)
            self._arm(self.history_max_s)
            held, self._held = self._held, {}
            for reconciler in held.values():
                reconciler.release_startup()
        if self.phase == "history" and not self._history:
            self._enter("open")
            if self._timer is not None:
                self._timer.cancel()
            if self._budgets is not None:
                self._budgets.hold(None)

    def _enter(self, phase: str) -> None:
        now = time.monotonic()
        self.durations[self.phase] = now - self._phase_since
        log.info("start-up phase %s done in %.1f s", self.phase, now - self._phase_since)
        self.phase = phase
        self._phase_since = now
