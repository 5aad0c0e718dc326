"""COIN-M contract sizes per REST host: ``symbol → contractSize`` (USD per contract).

Read from ``/dapi/v1/exchangeInfo`` (weight 1, unsigned) once per host when the first COIN-M
account of that host starts, and again when a fill names a symbol the cache does not know (a
new dated contract): at most one read per :data:`REFRESH_INTERVAL_S` per host, so a stream of
fills on an unknown symbol costs one request a minute, not one per fill. A failed read keeps
what is known; a fill whose size is unknown carries None (its payload says null, never a guess).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Final

import msgspec

from fillstream.binance.coinm.parse import contract_sizes
from fillstream.binance.coinm.rows import ExchangeInfo
from fillstream.binance.errors import VenueError
from fillstream.binance.host_table import HostTable

log = logging.getLogger("fillstream.binance")

REFRESH_INTERVAL_S: Final = 60.0

_decoder = msgspec.json.Decoder(ExchangeInfo)


class ContractSizes(HostTable):
    """One host's cache (shared by the accounts of the host, like its weight budget)."""

    def __init__(
        self,
        *,
        interval_s: float = REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self._sizes: dict[str, Decimal] = {}
        self._task: asyncio.Task[None] | None = None

    def get(self, symbol: str) -> Decimal | None:
        """The size of ``symbol`` if known (no request)."""
        return self._sizes.get(symbol)

    def feed(self, body: bytes) -> None:
        """Take the sizes of an exchangeInfo answer (read for another reason: rate limits)."""
        try:
            info = _decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("COIN-M exchangeInfo: %s; keeping %d contract sizes", exc, len(self._sizes))
            return
        self._sizes.update(contract_sizes(info))

    @property
    def never_read(self) -> bool:
        return self._read_at is None

    async def refresh(self, fetch: Callable[[], Awaitable[bytes]]) -> bytes | None:
        """Read exchangeInfo with ``fetch`` unless a read went less than an interval ago;
        returns the answer (None: no read, or a failed one). ``fetch`` raises ``VenueError`` on
        failure (logged; what is known is kept)."""
        async with self._lock:
            if not self.due():
                return None
            self._read_at = self._clock()
            self.reads += 1
            try:
                body = await fetch()
            except VenueError as exc:
                log.warning("COIN-M exchangeInfo read failed (%s)", exc)
                return None
            self.feed(body)
            return body

    async def size(self, symbol: str, fetch: Callable[[], Awaitable[bytes]]) -> Decimal | None:
        """The size of ``symbol``, reading exchangeInfo first when it is unknown (bounded)."""
        if symbol not in self._sizes:
            await self.refresh(fetch)
        return self._sizes.get(symbol)

    def lookup(self, symbol: str, fetch: Callable[[], Awaitable[bytes]]) -> Decimal | None:
        """:meth:`get` without waiting; an unknown symbol starts a (bounded) background read,
        so the next fill of it knows its size. For the stream path, which cannot wait."""
        size = self._sizes.get(symbol)
        if size is None and self.due() and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._background(fetch))
        return size

    async def _background(self, fetch: Callable[[], Awaitable[bytes]]) -> None:
        await self.refresh(fetch)
