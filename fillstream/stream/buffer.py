"""The bounded frame buffer between the socket readers and the processor.

A deque with two events instead of ``asyncio.Queue``: the hot path (append one frame, take all
that is queued) costs a fraction of the queue's per-item bookkeeping, and the processor takes
what is queued in one call. Bounded: a reader finding it full waits for room (backpressure).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameBuffer(Generic[T]):
    """FIFO of at most ``maxsize`` items (a waiting writer may overshoot by its one item)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put_nowait(self, item: T) -> None:
        """Append regardless of size (callers check :meth:`full` first)."""
        self._items.append(item)
        if not self._readable.is_set():
            self._readable.set()

    async def put(self, item: T) -> None:
        """Append once there is room."""
        while len(self._items) >= self.maxsize:
            self._room.clear()
            await self._room.wait()
        self.put_nowait(item)

    async def wait_below(self, size: int) -> None:
        """Return once fewer than ``size`` items are queued (``size`` ≤ ``maxsize``)."""
        while len(self._items) >= size:
            self._room.clear()
            await self._room.wait()

    async def take(self, limit: int) -> list[T]:
        """Wait for at least one item; remove and return up to ``limit`` of them, oldest first."""
        items = self._items
        while not items:
            self._readable.clear()
            await self._readable.wait()
        if len(items) <= limit:
            taken = list(items)
            items.clear()
        else:
            taken = [items.popleft() for _ in range(limit)]
        if len(items) < self.maxsize and not self._room.is_set():
            self._room.set()
        return taken
