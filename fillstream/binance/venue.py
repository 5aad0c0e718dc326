"""The :class:`Venue` protocol: one account's REST access to Binance, as the paths see it.

Implemented by :class:`fillstream.binance.rest.BinanceVenue`; the sidecar builds one per account
and hands it to both paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from fillstream.ledger import Market

Json = Any  # a decoded JSON value as the venue returned it


class Venue(Protocol):
    """One account's REST access to its exchange (implemented in ``binance.rest`` over
    python-binance's ``AsyncClient``, with the shared per-host weight budget and error mapping).

    Every method raises :class:`fillstream.binance.errors.VenueError` when the venue says no.
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
