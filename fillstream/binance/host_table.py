"""What a per-host exchangeInfo table shares: reads paced to one at a time and at most one per
interval, counted. COIN-M's contract sizes (:mod:`.coinm.sizes`) and spot's symbols
(:mod:`.spot.symbols`) are two such tables, each with its own answer to a failed read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class HostTable:
    """One host's table, shared by the accounts of the host like its weight budget."""

    def __init__(self, *, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self.reads = 0  # exchangeInfo reads attempted (tests and logs)

    def due(self) -> bool:
        """Whether a read may go now (never read, or the last one is an interval old)."""
        return self._read_at is None or self._clock() - self._read_at >= self.interval_s
