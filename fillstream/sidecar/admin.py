"""Operator commands that run once and exit: ``republish`` and ``reconcile``.

Both build their own pool and connections from the config (never the running service's) and
close them before returning. A dependency that cannot be reached ends the command with
:class:`~fillstream.sidecar.clients.Unreachable`, naming it and its (masked) address.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from fillstream.ledger import FillSink, IngestBatch, IngestResult, Market, Position
from fillstream.reconcile import Reconciler, RepairProgress
from fillstream.sidecar.clients import (
    close_all,
    create_venue,
    reach,
    weight_budgets,
)
from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.sidecar.stack import build_stack, open_stack
from fillstream.storage import (
    Ledger,
    PgCursorStore,
    PgOrderView,
)

log = logging.getLogger(__name__)


async def republish(config: Config, since_ms: int) -> int:
    """Publish every fact stored since ``since_ms`` again (same ``Nats-Msg-Id``: JetStream and
    consumers drop what they already have). Returns the number of messages sent."""
    async with open_stack(config, upto="publish", migrate_schema=True) as stack:
        sent = await stack.relay.republish(stack.ledger, since_ms)
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
    stack = await build_stack(config, upto="ingest" if apply else "ledger", migrate_schema=True)
    pool = stack.pool
    opened: list[Any] = [stack]
    try:
        sink: FillSink = stack.pipeline if stack.ingesting else _DryRunSink(stack.ledger)
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
        if stack.ingesting:
            await stack.pipeline.aclose(config.service.shutdown_deadline_s)
            if not await stack.relay.wait_idle(config.service.shutdown_deadline_s):
                out.write(
                    "warning: some messages are still in the outbox (published at next start)\n"
                )
            await stack.relay.aclose()
        if not apply and not report.clean:
            out.write("dry run: nothing changed; run again with --apply to repair\n")
            return 3
        return 0
    finally:
        await close_all(opened)
