"""What a fill found over REST needs before it is submitted: its order, and its algo parent.

``userTrades`` rows carry neither the client order id nor the order type, yet the close reason
comes from them (``autoclose-`` liquidation, ``adl_autoclose``, settlement, the conditional
order types) and from the algo linkage (``actualOrderId`` → TP/SL/trailing). So new fills are
enriched *before* they reach the pipeline: a close classified wrongly would be published wrongly.

Cost control: the stream's own data first — an order the stream reported (any of its
ORDER_TRADE_UPDATEs was stored) has its details in the store, and a child whose ALGO_UPDATE named
it (``ai``) has its algo link there (the book already holds it), so neither costs REST weight.
Only what the store lacks is read over REST: one ``allOrders`` page (weight 5, ≤ 1000 orders
from an order id upwards) instead of one ``order`` call (weight 1) per order when more than a few
are missing; order details are cached (they never change); the algo endpoints are read only for
children of conditional orders with no stored link. An order found in the store keeps the
stream's state unless that state is not final and older than the fill recovered (the stream
lost the transition the fill made): then its current state is read (``order``, weight 1).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from fillstream.binance import Venue, VenueError
from fillstream.binance.products import order_info
from fillstream.binance.usdm.parse import OrderInfo, actual_order_id, decode_row, decode_rows
from fillstream.binance.usdm.rows import AlgoOrder, Order
from fillstream.ledger import Market, OrderUpdate
from fillstream.ledger.classify import CONDITIONAL_REASONS
from fillstream.reconcile.metrics import BAD_ROWS

log = logging.getLogger(__name__)

SINGLE_LOOKUPS_MAX = 3  # up to this many missing orders: GET order each (weight 1)
ORDER_PAGES_MAX = 5  # allOrders pages per lookup before falling back to single GETs
SINGLE_FALLBACK_MAX = 20
ALGO_WINDOW_MS = 7 * 86_400_000 - 60_000  # allAlgoOrders windows must be shorter than 7 days
ALGO_SPLIT_DEPTH = 6


V = TypeVar("V")


@runtime_checkable
class StoredOrders(Protocol):
    """What the store knows of orders from the stream (``storage.PgOrderView`` implements it)."""

    def orders_by_id(
        self, account: str, market: Market, symbol: str, order_ids: Sequence[int]
    ) -> Awaitable[list[OrderUpdate]]: ...

    def linked_orders(
        self, account: str, market: Market, symbol: str, order_ids: Sequence[int]
    ) -> Awaitable[set[int]]: ...


def stored_info(order: OrderUpdate) -> OrderInfo:
    """A stored order's details, as :func:`order_info` makes them from a REST row (spot has
    no reduce-only flag: None, as on its stream fills)."""
    return OrderInfo(
        client_order_id=order.client_order_id,
        order_type=order.order_type or None,
        orig_type=order.orig_type or order.order_type or None,
        reduce_only=None if order.market is Market.SPOT else order.reduce_only,
    )


def _lru_put(
    cache: OrderedDict[tuple[str, int], V], size: int, key: tuple[str, int], value: V
) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


class Enrichment:
    """The result of one lookup: details per order id, fresh order rows, algo parents."""

    def __init__(self) -> None:
        self.info: dict[int, OrderInfo] = {}
        self.orders: dict[int, Order] = {}  # rows fetched by this lookup (current state)
        self.algos: dict[int, AlgoOrder] = {}  # child order id → its algo order


class Enricher:
    """Order and algo lookups for one account, with a bounded cache of order details."""

    def __init__(
        self,
        venue: Venue,
        *,
        account: str,
        market: Market,
        cache_size: int = 20000,
        stored: StoredOrders | None = None,
    ) -> None:
        self.venue = venue
        self.account = account
        self.market = market
        self.cache_size = cache_size
        self.stored = stored
        self._info: OrderedDict[tuple[str, int], OrderInfo] = OrderedDict()
        self._algos: OrderedDict[tuple[str, int], AlgoOrder] = OrderedDict()

    def remember(self, order: Order) -> None:
        _lru_put(self._info, self.cache_size, (order.symbol, order.orderId), order_info(order))

    def cached(self, symbol: str, order_id: int) -> OrderInfo | None:
        return self._info.get((symbol, order_id))

    async def lookup(
        self, symbol: str, order_ids: Iterable[int], *, times: Mapping[int, int]
    ) -> Enrichment:
        """Details of ``order_ids`` (fills of ``symbol``), fetching what is not cached.

        ``times`` maps an order id to the trade time of its newest fill (for the algo window).
        Orders the venue no longer serves stay without details; the fill is still submitted.
        """
        result = Enrichment()
        missing: list[int] = []
        for oid in sorted(set(order_ids)):
            info = self._info.get((symbol, oid))
            if info is None:
                missing.append(oid)
            else:
                self._info.move_to_end((symbol, oid))
                result.info[oid] = info
        stale: list[int] = []
        if missing and self.stored is not None:
            missing, stale = await self._from_store(symbol, missing, times, result)
        if missing or stale:
            for order in await self._fetch_orders(symbol, sorted(missing + stale)):
                self.remember(order)
                result.orders[order.orderId] = order
                result.info[order.orderId] = order_info(order)
        children = [
            oid
            for oid, info in result.info.items()
            if (info.orig_type in CONDITIONAL_REASONS or info.order_type in CONDITIONAL_REASONS)
        ]
        children += [oid for oid in missing if oid not in result.info]
        if children and self.market is not Market.SPOT:  # USDⓈ-M and COIN-M algo service
            result.algos = await self._algo_parents(symbol, children, times)
        return result

    async def _from_store(
        self, symbol: str, ids: list[int], times: Mapping[int, int], result: Enrichment
    ) -> tuple[list[int], list[int]]:
        """Take what the store holds of ``ids`` into ``result`` (and the cache).

        Returns the ids the store lacks, and the stored orders whose state is older than the
        fill being recovered and not final (the stream lost its later transitions: their
        current state is read over REST and stored, as for an order the store lacks).
        """
        assert self.stored is not None
        stale: list[int] = []
        for order in await self.stored.orders_by_id(self.account, self.market, symbol, ids):
            info = stored_info(order)
            _lru_put(self._info, self.cache_size, (symbol, order.order_id), info)
            result.info[order.order_id] = info
            if not order.terminal and order.update_time_ms < times.get(order.order_id, 0):
                stale.append(order.order_id)
        return [oid for oid in ids if oid not in result.info], stale

    # -- orders --------------------------------------------------------------------------------

    async def _fetch_orders(self, symbol: str, ids: list[int]) -> list[Order]:
        found: dict[int, Order] = {}
        wanted = set(ids)
        if len(ids) > SINGLE_LOOKUPS_MAX:
            next_id = ids[0]
            for _ in range(ORDER_PAGES_MAX):
                raw = await self.venue.all_orders(symbol, order_id=next_id, limit=1000)
                rows, bad = decode_rows(raw, Order)
                self._bad("allOrders", bad)
                for row in rows:
                    if row.orderId in wanted:
                        found[row.orderId] = row
                    else:
                        self.remember(row)  # a neighbour; likely needed soon
                if len(raw) < 1000 or not rows or wanted <= found.keys():
                    break
                next_id = max(r.orderId for r in rows) + 1
                if next_id > ids[-1]:
                    break
        rest = [oid for oid in ids if oid not in found]
        for oid in rest[:SINGLE_FALLBACK_MAX]:
            order = await self._fetch_order(symbol, oid)
            if order is not None:
                found[oid] = order
        if len(rest) > SINGLE_FALLBACK_MAX:
            log.warning(
                "%s %s: %d orders left without details this round",
                self.account,
                symbol,
                len(rest) - SINGLE_FALLBACK_MAX,
            )
        return list(found.values())

    async def _fetch_order(self, symbol: str, order_id: int) -> Order | None:
        try:
            raw = await self.venue.order(symbol, order_id)
        except VenueError as exc:
            if exc.is_not_found or exc.is_archived:
                return None  # archived (3 d / 90 d) or never ours: the fill keeps no details
            raise
        try:
            return decode_row(raw, Order)
        except ValueError:
            self._bad("order", [raw])
            return None

    # -- algo parents --------------------------------------------------------------------------

    async def _algo_parents(
        self, symbol: str, children: list[int], times: Mapping[int, int]
    ) -> dict[int, AlgoOrder]:
        result: dict[int, AlgoOrder] = {}
        unknown: list[int] = []
        for oid in children:
            algo = self._algos.get((symbol, oid))
            if algo is None:
                unknown.append(oid)
            else:
                result[oid] = algo
        if unknown and self.stored is not None:
            # Linked on the stream (ALGO_UPDATE ``ai``): the book holds the link already.
            linked = await self.stored.linked_orders(self.account, self.market, symbol, unknown)
            unknown = [oid for oid in unknown if oid not in linked]
        if not unknown:
            return result
        end = max(times.get(oid, 0) for oid in unknown) + 60_000
        window = (end - ALGO_WINDOW_MS, end)
        await self._find_algos(symbol, set(unknown), window, ALGO_SPLIT_DEPTH, result)
        return result

    async def _find_algos(
        self,
        symbol: str,
        wanted: set[int],
        window: tuple[int, int],
        depth: int,
        found: dict[int, AlgoOrder],
    ) -> None:
        """Read ``allAlgoOrders`` of ``window`` (``[start_ms, end_ms]``) until every ``wanted``
        child's algo is in ``found`` (every algo read is cached).

        A full page may hide rows: the window is halved, the newer half first (a triggered
        child's algo was most likely placed shortly before), and the search stops as soon as
        every wanted child is found.
        """
        start_ms, end_ms = window
        raw = await self.venue.all_algo_orders(symbol, start_ms=start_ms, end_ms=end_ms, limit=1000)
        rows, bad = decode_rows(raw, AlgoOrder)
        self._bad("allAlgoOrders", bad)
        for algo in rows:
            child = actual_order_id(algo)
            if child is not None:
                _lru_put(self._algos, self.cache_size, (symbol, child), algo)
                if child in wanted:
                    found[child] = algo
        if len(raw) < 1000 or depth <= 0 or end_ms - start_ms < 2:
            return
        mid = (start_ms + end_ms) // 2
        for half in ((mid + 1, end_ms), (start_ms, mid)):
            if wanted <= found.keys():
                return
            await self._find_algos(symbol, wanted, half, depth - 1, found)

    # -- helpers -------------------------------------------------------------------------------

    def _bad(self, endpoint: str, rows: list[object]) -> None:
        if rows:
            BAD_ROWS.labels(self.account, self.market, endpoint).inc(len(rows))
            log.warning(
                "%s: %d malformed %s row(s), skipped; first: %.300r",
                self.account,
                len(rows),
                endpoint,
                rows[0],
            )
