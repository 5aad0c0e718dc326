"""Order sync: orders that look open locally but have had no update for a while.

The stream may have missed their terminal transition. Each is read with ``GET order``; a state
the store does not have yet is submitted (the pipeline keeps forward transitions only and
publishes them on ``fillstream.order.…``). ``-2013`` means the venue no longer knows the id as a
regular order: it is looked up as an algo order (a separate id space; futures only), and if
still unknown it is marked ``UNKNOWN``, a terminal state, so it stops looking open forever.
Spot's ``-2026`` (the order is archived: cancelled or expired without fills, long ago) is final
too: the order is marked ``UNKNOWN`` at once (outcome ``archived``), never asked about again.
"""

from __future__ import annotations

import logging
import time

import msgspec

from fillstream.binance import Venue, VenueError
from fillstream.binance.products import order_update
from fillstream.binance.usdm.parse import algo_link_from_algo_order, decode_row
from fillstream.binance.usdm.rows import AlgoOrder, Order
from fillstream.ledger import (
    AlgoLink,
    FillSink,
    FillSource,
    IngestBatch,
    Market,
    OrderUpdate,
    OrderView,
)
from fillstream.reconcile.enrich import Enricher
from fillstream.reconcile.metrics import BAD_ROWS, ORDERS_CHECKED

log = logging.getLogger(__name__)

# An algo's terminal status, as the status of the order that stood for it locally.
_ALGO_TERMINAL = {
    "CANCELED": "CANCELED",
    "EXPIRED": "EXPIRED",
    "REJECTED": "EXPIRED",
    "FINISHED": "FILLED",
}


class OrderSync:
    """Checks stale open orders of one account."""

    def __init__(
        self,
        *,
        account: str,
        market: Market,
        venue: Venue,
        sink: FillSink,
        view: OrderView,
        enricher: Enricher,
        check_after_s: float,
        max_checks: int,
    ) -> None:
        self.account = account
        self.market = market
        self.venue = venue
        self.sink = sink
        self.view = view
        self.enricher = enricher
        self.check_after_s = check_after_s
        self.max_checks = max_checks

    async def run(self) -> int:
        """Check up to ``max_checks`` stale orders (oldest first); returns how many changed."""
        now_ms = int(time.time() * 1000)
        stale = await self.view.open_orders(
            self.account, self.market, updated_before_ms=now_ms - int(self.check_after_s * 1000)
        )
        updates: list[OrderUpdate] = []
        links: list[AlgoLink] = []
        for local in stale[: self.max_checks]:
            outcome, update, link = await self._check(local, now_ms)
            ORDERS_CHECKED.labels(self.account, self.market, outcome).inc()
            if update is not None:
                updates.append(update)
            if link is not None:
                links.append(link)
        if updates or links:
            await self.sink.submit(
                IngestBatch(
                    account=self.account,
                    market=self.market,
                    source=FillSource.RECONCILE,
                    orders=tuple(updates),
                    algo_links=tuple(links),
                )
            )
        return len(updates)

    async def _check(
        self, local: OrderUpdate, now_ms: int
    ) -> tuple[str, OrderUpdate | None, AlgoLink | None]:
        try:
            raw = await self.venue.order(local.symbol, local.order_id)
        except VenueError as exc:
            if exc.is_archived:
                return "archived", self._unknown(local, now_ms, "archived (-2026)"), None
            if not exc.is_not_found:
                if exc.retryable:
                    raise  # rate limits and outages end the run; the next one retries
                log.warning("%s: order %s check failed: %s", self.account, local.order_id, exc)
                return "error", None, None
            return await self._not_found(local, now_ms)
        try:
            order = decode_row(raw, Order)
            self.enricher.remember(order)
            remote = order_update(order, account=self.account, market=self.market)
        except ValueError as exc:
            BAD_ROWS.labels(self.account, self.market, "order").inc()
            log.warning("%s: malformed order row (%s): %.300r", self.account, exc, raw)
            return "error", None, None
        if remote.status == local.status and remote.update_time_ms <= local.update_time_ms:
            return "unchanged", None, None
        return "updated", remote, None

    async def _not_found(
        self, local: OrderUpdate, now_ms: int
    ) -> tuple[str, OrderUpdate | None, AlgoLink | None]:
        algo: AlgoOrder | None = None
        if self.market is not Market.SPOT:  # USDⓈ-M and COIN-M have the algo service
            try:
                algo = decode_row(await self.venue.algo_order(local.order_id), AlgoOrder)
            except VenueError as exc:
                if exc.retryable:
                    raise
            except ValueError:
                algo = None
        if algo is not None and algo.symbol == local.symbol:
            link = algo_link_from_algo_order(algo, account=self.account, market=self.market)
            status = _ALGO_TERMINAL.get(algo.algoStatus)
            update = None
            if status is not None:
                update = msgspec.structs.replace(
                    local,
                    status=status,
                    update_time_ms=max(link.update_time_ms, local.update_time_ms + 1),
                    source=FillSource.RECONCILE,
                )
            return "algo", update, link
        return "unknown", self._unknown(local, now_ms, "unknown to the venue (-2013)"), None

    def _unknown(self, local: OrderUpdate, now_ms: int, why: str) -> OrderUpdate:
        """``local`` in the terminal ``UNKNOWN`` state: the venue will not tell more."""
        log.info(
            "%s: order %s %s %s; marking it UNKNOWN",
            self.account,
            local.symbol,
            local.order_id,
            why,
        )
        return msgspec.structs.replace(
            local,
            status="UNKNOWN",
            update_time_ms=max(now_ms, local.update_time_ms + 1),
            source=FillSource.RECONCILE,
            received_at_ns=time.time_ns(),
        )
