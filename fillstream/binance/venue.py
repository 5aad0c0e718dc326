"""The :class:`Venue` protocol: one account's REST access to Binance, as the paths see it, typed
with the REST rows beside it (:mod:`fillstream.binance.usdm.rows`; a product's rows extend
those: COIN-M's ``UserTrade``, spot's ``MyTrade`` and ``SpotOrder``).

Implemented by :class:`fillstream.binance.rest.BinanceVenue`; the sidecar builds one per account
and hands it to both paths. Each body is decoded once, into its row type: a list endpoint answers
:data:`Rows` (a row that does not fit is a :class:`BadRow` in its place, for the caller to count
and log), a one-row endpoint the row or a :class:`BadRow`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from decimal import Decimal
from typing import Any, Protocol, TypeAlias, TypeVar

from fillstream.binance.spot.rows import AccountInfo, SymbolInfo
from fillstream.binance.usdm.rows import (
    AlgoOrder,
    Income,
    OpenOrder,
    Order,
    PositionRisk,
    UserTrade,
)
from fillstream.ledger import Market

Json = Any  # a decoded JSON value as the venue returned it

T = TypeVar("T")


class BadRow:
    """A one-row answer that does not fit its row type: the row as JSON, and why."""

    __slots__ = ("raw", "reason")

    def __init__(self, raw: Json, reason: str) -> None:
        self.raw = raw
        self.reason = reason

    def __repr__(self) -> str:
        return f"BadRow({self.reason!r:.120}, {self.raw!r:.300})"


Rows: TypeAlias = list[T | BadRow]
"""The rows of one answer, in order, each decoded into its type or, when it does not fit, a
:class:`BadRow` in its place (so a page's length is what the venue sent)."""


class Venue(Protocol):
    """One account's REST access to its exchange (implemented in ``binance.rest`` over
    python-binance's ``AsyncClient``, with the shared per-host weight budget and error mapping).

    Every method raises :class:`fillstream.binance.errors.VenueError` when the venue says no.
    Rows are returned typed (decoded once); the paths turn them into ledger types with the
    product's parse module (:mod:`fillstream.binance.products` picks it).

    On spot, ``user_trades`` is ``myTrades`` (``MyTrade`` rows; a window of at most 24 h),
    ``all_orders``/``order`` answer ``SpotOrder`` rows (an archived order: a ``VenueError``
    with ``is_archived``), and the futures-only calls (listenKeys, ``position_risk``,
    ``income``, ``algo_order``) raise ``ConfigError``; ``account_info`` and ``spot_symbols``
    are spot's own (``ConfigError`` elsewhere).
    """

    market: Market

    def server_time_ms(self) -> Awaitable[int]: ...

    def contract_size(self, symbol: str) -> Decimal | None:
        """COIN-M: USD per contract of ``symbol`` if known, without waiting (an unknown symbol
        starts a bounded exchangeInfo read, at most one a minute per host); None on linear."""
        ...

    def contract_size_of(self, symbol: str) -> Awaitable[Decimal | None]:
        """:meth:`contract_size`, waiting for that read when the symbol is unknown."""
        ...

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
        order_id: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[Rows[UserTrade]]: ...

    def all_orders(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[Rows[Order]]: ...

    def order(self, symbol: str, order_id: int) -> Awaitable[Order | BadRow]: ...

    def open_orders(self, symbol: str | None = None) -> Awaitable[Rows[OpenOrder]]: ...

    def position_risk(self, symbol: str | None = None) -> Awaitable[Rows[PositionRisk]]: ...

    def income(
        self,
        *,
        symbol: str | None = None,
        income_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[Rows[Income]]: ...

    def algo_order(self, algo_id: int) -> Awaitable[AlgoOrder | BadRow]: ...

    def open_algo_orders(self, symbol: str | None = None) -> Awaitable[Rows[AlgoOrder]]: ...

    def all_algo_orders(
        self,
        symbol: str,
        *,
        algo_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Awaitable[Rows[AlgoOrder]]: ...

    def account_permissions(self) -> Awaitable[Mapping[str, bool]]: ...

    def account_info(self) -> Awaitable[AccountInfo | BadRow]:
        """Spot: the account's non-zero balances (``GET /api/v3/account``, weight 20)."""
        ...

    def spot_symbols(self) -> Awaitable[Mapping[str, SymbolInfo]]:
        """Spot: every symbol's base and quote asset (exchangeInfo, cached per host)."""
        ...
