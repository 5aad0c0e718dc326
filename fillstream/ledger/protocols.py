"""The small interfaces the paths depend on; ``sidecar`` wires the implementations.

``ledger`` stays free of asyncio, so asynchronous methods are declared as returning ``Awaitable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

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

Json = Any  # a decoded JSON value as the venue returned it


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


class Venue(Protocol):
    """One account's REST access to its exchange (implemented in ``sidecar.venue`` over
    python-binance's ``AsyncClient``, with the shared per-host weight budget and error mapping).

    Every method raises :class:`fillstream.ledger.errors.VenueError` when the venue says no.
    Rows are returned as decoded JSON, exactly as the venue sent them; the paths convert them.
    """

    market: Market

    def server_time_ms(self) -> Awaitable[int]: ...

    def create_listen_key(self) -> Awaitable[str]: ...

    def keepalive_listen_key(self) -> Awaitable[str]: ...

    def close_listen_key(self) -> Awaitable[None]: ...

    def user_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[list[Json]]: ...

    def all_orders(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[list[Json]]: ...

    def order(self, symbol: str, order_id: int) -> Awaitable[Json]: ...

    def open_orders(self, symbol: str | None = None) -> Awaitable[list[Json]]: ...

    def position_risk(self, symbol: str | None = None) -> Awaitable[list[Json]]: ...

    def income(
        self,
        *,
        symbol: str | None = None,
        income_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[list[Json]]: ...

    def algo_order(self, algo_id: int) -> Awaitable[Json]: ...

    def open_algo_orders(self, symbol: str | None = None) -> Awaitable[list[Json]]: ...

    def all_algo_orders(
        self,
        symbol: str,
        *,
        algo_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[list[Json]]: ...

    def account_permissions(self) -> Awaitable[Mapping[str, bool]]: ...
