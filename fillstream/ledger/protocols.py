"""The small interfaces the paths depend on; ``sidecar`` wires the implementations.

``ledger`` stays free of asyncio, so asynchronous methods are declared as returning ``Awaitable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol

import msgspec

from fillstream.ledger.types import (
    FillSource,
    Gap,
    IngestBatch,
    IngestResult,
    Market,
    OrderUpdate,
    Position,
    StatusChange,
    StreamState,
)


class FillSink(Protocol):
    """Where both paths hand their facts (implemented by ``sidecar.pipeline``).

    ``submit`` returns once the batch is committed to PostgreSQL (publication to JetStream follows
    through the outbox); it is idempotent on the fill key, so re-submitting is always safe.
    """

    def submit(self, batch: IngestBatch) -> Awaitable[IngestResult]: ...

    def positions(self, account: str, market: Market) -> Awaitable[list[Position]]: ...


class GapListener(Protocol):
    """Told by the stream path about gaps and state changes (implemented by the reconciler).

    Both calls must return immediately (enqueue, do not await network I/O).
    """

    def on_gap(self, gap: Gap) -> None: ...

    def on_stream_state(self, account: str, market: Market, state: StreamState) -> None: ...


class StatusSink(Protocol):
    """Receives stream health transitions; the sidecar publishes them on ``status.<account>``."""

    def on_status(self, change: StatusChange) -> None: ...


class Cursor(msgspec.Struct, frozen=True, kw_only=True):
    """Progress of one (account, market, symbol): every trade ≤ ``trade_id`` is stored."""

    account: str
    market: Market
    symbol: str
    trade_id: int
    trade_time_ms: int
    updated_at_ms: int


class CursorStore(Protocol):
    """Per-symbol reconcile cursors, kept in PostgreSQL (implemented in ``storage``)."""

    def load(self, account: str, market: Market) -> Awaitable[dict[str, Cursor]]: ...

    def save(self, cursors: Sequence[Cursor]) -> Awaitable[None]: ...


class FillIndex(Protocol):
    """Which fills the store already holds (implemented over ``storage``).

    Lets the reconcile path enrich (order and algo lookups cost REST weight) only the fills the
    stream missed, and lets the repair dry run list exactly what it would add.
    """

    def stored_fills(
        self, account: str, market: Market, symbol: str, *, from_trade_id: int, to_trade_id: int
    ) -> Awaitable[set[tuple[int, int]]]:
        """``(trade_id, order_id)`` of the stored fills with ``from ≤ trade_id ≤ to``."""
        ...

    def newest_fill_ms(
        self, account: str, market: Market, *, source: FillSource
    ) -> Awaitable[int | None]:
        """Trade time of the newest stored fill first delivered by ``source`` (None: none).

        For the stream path, how far it has got: trades after it may still be in its queue.
        """
        ...


class OrderView(Protocol):
    """Orders as stored, for order sync (implemented in ``storage``)."""

    def open_orders(
        self, account: str, market: Market, *, updated_before_ms: int
    ) -> Awaitable[list[OrderUpdate]]: ...
