"""Spot symbols per REST host: ``symbol → (base asset, quote asset)`` from exchangeInfo.

The reconciler needs them to turn an account's balances into symbols to poll (``myTrades`` takes
one symbol per call; reconcile/spot_symbols.py). ``GET /api/v3/exchangeInfo`` lists every symbol
(weight 20, unsigned, a few MB), so it is read once per host, shared by the host's accounts like
its weight budget, and again at most every :data:`REFRESH_INTERVAL_S` (new listings). A failed
read keeps what is known; the first read's failure is the caller's (``VenueError``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import msgspec

from fillstream.binance.errors import VenueError
from fillstream.binance.host_table import HostTable
from fillstream.binance.spot.rows import ExchangeInfo, SymbolInfo

log = logging.getLogger("fillstream.binance")

REFRESH_INTERVAL_S: Final = 3600.0

_decoder = msgspec.json.Decoder(ExchangeInfo)


class SpotSymbols(HostTable):
    """One host's symbol table (shared by the accounts of the host)."""

    def __init__(
        self,
        *,
        interval_s: float = REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self._symbols: dict[str, SymbolInfo] = {}

    def feed(self, body: bytes) -> bool:
        """Take the symbols of an exchangeInfo answer (also when it was read for the rate
        limits); False when the body does not fit (logged, what is known is kept)."""
        try:
            info = _decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("spot exchangeInfo: %s; keeping %d symbols", exc, len(self._symbols))
            return False
        self._symbols = {s.symbol: s for s in info.symbols}
        self._read_at = self._clock()  # a read for the rate limits counts: no second one
        return True

    async def get(self, fetch: Callable[[], Awaitable[bytes]]) -> Mapping[str, SymbolInfo]:
        """The table, reading exchangeInfo with ``fetch`` first when due. Raises
        ``VenueError`` only when nothing was ever read; later failures keep the old table."""
        async with self._lock:
            if self.due():
                self.reads += 1
                self._read_at = self._clock()  # success or not: an interval to the next read
                try:
                    body = await fetch()
                except VenueError as exc:
                    if not self._symbols:
                        self._read_at = None  # nothing known: the caller's failure, retried
                        raise
                    log.warning("spot exchangeInfo read failed (%s); keeping the table", exc)
                else:
                    self.feed(body)
        return self._symbols
