"""Operator commands that run once and exit: ``republish`` and ``reconcile``.

Both build their own pool and connections from the config (never the running service's) and
close them before returning. A dependency that cannot be reached ends the command with
:class:`~fillstream.sidecar.clients.Unreachable`, naming it and its (masked) address.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import IO, Any

import asyncpg
from nats.aio.client import Client as NatsClient

from fillstream.ledger import FillSink, IngestBatch, IngestResult, Market, Position
from fillstream.reconcile import Reconciler, RepairProgress
from fillstream.sidecar.clients import (
    close_all,
    connect_nats,
    create_venue,
    publisher_for,
    reach,
    reach_pool,
    weight_budgets,
)
from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.sidecar.pipeline import Pipeline
from fillstream.storage import (
    Ledger,
    OutboxRelay,
    PgCursorStore,
    PgOrderView,
    migrate,
)

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _connections(config: Config) -> AsyncIterator[tuple[asyncpg.Pool, NatsClient]]:
    pool = await reach_pool(config)
    try:
        nc = await connect_nats(config)
        try:
            yield pool, nc
        finally:
            await nc.close()
    finally:
        await pool.close()


async def republish(config: Config, since_ms: int) -> int:
    """Publish every fact stored since ``since_ms`` again (same ``Nats-Msg-Id``: JetStream and
    consumers drop what they already have). Returns the number of messages sent."""
    async with _connections(config) as (pool, nc):
        async with pool.acquire() as conn:
            await migrate(conn)
        publisher = publisher_for(config, nc)
        await publisher.ensure_stream()
        await publisher.start()
        try:
            relay = OutboxRelay(pool, publisher)
            ledger = Ledger(pool, prefix=config.nats.subject_prefix)
            sent = await relay.republish(ledger, since_ms)
        finally:
            await publisher.aclose()
    log.info("republished", extra={"messages": sent, "since_ms": since_ms})
    return sent


class _DryRunSink:
    """The sink of a dry run: reads positions from the ledger, refuses to store anything."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def submit(self, batch: IngestBatch) -> IngestResult:
        raise RuntimeError("dry run: nothing is stored")

    async def positions(self, account: str, market: Market) -> list[Position]:
        return await self._ledger.positions(account, market)


async def reconcile(
    config: Config, account: AccountConfig, since_ms: int, *, apply: bool, out: IO[str]
) -> int:
    """List the fills the venue has since ``since_ms`` and the store lacks (and positions the
    exchange disagrees with); with ``apply``, store them and publish them through the outbox.

    Returns the CLI exit code: 0, or 3 when a dry run found something to repair. Stop the
    service for this account first (or use its ``POST /reconcile``): the position book of a
    running service does not see fills another process stores.
    """
    pool = await reach_pool(config)
    opened: list[Any] = []
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        ledger = Ledger(pool, prefix=config.nats.subject_prefix)
        sink: FillSink = _DryRunSink(ledger)
        relay: OutboxRelay | None = None
        pipeline: Pipeline | None = None
        if apply:
            nc = await connect_nats(config)
            opened.append(nc)
            publisher = publisher_for(config, nc)
            await publisher.ensure_stream()
            await publisher.start()
            opened.append(publisher)
            relay = OutboxRelay(pool, publisher)
            await relay.start()
            pipeline = Pipeline(ledger, relay, max_batch=config.pipeline.max_batch)
            sink = pipeline
        venue = await reach(
            f"the venue's REST API of account {account.name}",
            account.resolved_rest_url,
            create_venue(config, account, weight_budgets(config)),
            config.rest.request_timeout_s * 3,
        )
        opened.append(venue)
        reconciler = Reconciler(
            account=account.name,
            market=account.market,
            venue=venue,
            sink=sink,
            cursors=PgCursorStore(pool),
            orders=PgOrderView(pool),
            index=PgFillIndex(pool),
            settings=account.reconcile_settings,
        )

        def progress(p: RepairProgress) -> None:
            out.write(
                f"  {p.symbol}: {p.found} trade(s), {p.missing} missing ({p.done}/{p.total})\n"
            )
            out.flush()

        report = await reconciler.repair(since_ms, apply=apply, progress=progress)
        for line in report.lines():
            out.write(line + "\n")
        if pipeline is not None and relay is not None:
            await pipeline.aclose(config.service.shutdown_deadline_s)
            if not await relay.wait_idle(config.service.shutdown_deadline_s):
                out.write(
                    "warning: some messages are still in the outbox (published at next start)\n"
                )
            await relay.aclose()
        if not apply and not report.clean:
            out.write("dry run: nothing changed; run again with --apply to repair\n")
            return 3
        return 0
    finally:
        await close_all([pool, *opened])
