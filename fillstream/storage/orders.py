"""Stored orders for order sync (:class:`fillstream.ledger.OrderView`), and which order states
are published."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import asyncpg

from fillstream.ledger import Market, OrderUpdate
from fillstream.storage import rows


class OrderPublishing(enum.StrEnum):
    """``[nats] publish_orders``: what a consumer of ``<prefix>.order.>`` sees.

    Order states are coalesced per ingest batch either way: of an order's transitions committed
    in one transaction only the latest is stored and published (at low rate a batch is one
    event, so every transition is seen; under load NEW → PARTIALLY_FILLED → FILLED within one
    batch arrives as FILLED alone). A state older than the stored one is never published.
    """

    ALL = "all"  # the latest state of every order each batch moved forward (the default)
    TERMINAL = "terminal"  # only final states: FILLED, CANCELED, EXPIRED(_IN_MATCH), UNKNOWN
    NONE = "none"  # no order messages (orders are still stored; fills and closes published)

    def selects(self, order: OrderUpdate) -> bool:
        if self is OrderPublishing.ALL:
            return True
        return self is OrderPublishing.TERMINAL and order.terminal


class PgOrderView:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open_orders(
        self, account: str, market: Market, *, updated_before_ms: int
    ) -> list[OrderUpdate]:
        """Orders stored as NEW or PARTIALLY_FILLED whose last update is older than the bound."""
        records = await self.pool.fetch(
            "SELECT * FROM orders WHERE account = $1 AND market = $2"
            " AND status IN ('NEW', 'PARTIALLY_FILLED') AND update_time_ms < $3"
            " ORDER BY update_time_ms",
            account,
            market.value,
            updated_before_ms,
        )
        return [rows.order_from_record(r) for r in records]

    async def order(
        self, account: str, market: Market, symbol: str, order_id: int
    ) -> OrderUpdate | None:
        """The stored state of one order, if any."""
        record = await self.pool.fetchrow(
            "SELECT * FROM orders WHERE account = $1 AND market = $2 AND symbol = $3"
            " AND order_id = $4",
            account,
            market.value,
            symbol,
            order_id,
        )
        return None if record is None else rows.order_from_record(record)

    async def orders_by_id(
        self, account: str, market: Market, symbol: str, order_ids: Sequence[int]
    ) -> list[OrderUpdate]:
        """The stored state of those of ``order_ids`` the store holds (for REST enrichment)."""
        records = await self.pool.fetch(
            "SELECT * FROM orders WHERE account = $1 AND market = $2 AND symbol = $3"
            " AND order_id = ANY($4::bigint[])",
            account,
            market.value,
            symbol,
            list(order_ids),
        )
        return [rows.order_from_record(r) for r in records]

    async def linked_orders(
        self, account: str, market: Market, symbol: str, order_ids: Sequence[int]
    ) -> set[int]:
        """Those of ``order_ids`` a stored algo link names as its triggered child."""
        records = await self.pool.fetch(
            "SELECT DISTINCT order_id FROM algo_links WHERE account = $1 AND market = $2"
            " AND order_id = ANY($3::bigint[]) AND symbol = $4",
            account,
            market.value,
            list(order_ids),
            symbol,
        )
        return {int(r["order_id"]) for r in records}
