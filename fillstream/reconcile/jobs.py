"""The reconciler's runs: what triggers them, at which REST priority, and what they report."""

from __future__ import annotations

import enum

import msgspec

from fillstream.ledger import Gap, RestPriority


class Trigger(enum.StrEnum):
    STARTUP = "startup"
    GAP = "gap"
    PERIODIC = "periodic"
    MANUAL = "manual"
    REPAIR = "repair"


PRIORITY = {
    # The window a socket may have missed: right after the listenKeys and sockets.
    Trigger.GAP: RestPriority.GAP,
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
