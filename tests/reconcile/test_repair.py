"""Acceptance: the repair command on a ledger with deleted rows shows them in the dry run (with
the venue's rows as evidence), restores them with ``apply``, and a second ``apply`` changes
nothing. It runs like ``fillstream reconcile`` would: its own pipeline on the same database.
"""

from __future__ import annotations

import time

import msgspec

from fillstream.ledger import Market
from fillstream.reconcile import Reconciler, RepairProgress
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.sidecar.stack import IngestStack
from fillstream.simulator import SimConfig
from fillstream.storage.cursors import PgCursorStore
from fillstream.storage.orders import PgOrderView
from tests.conftest import NatsTarget
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import FAST_RECONCILE, until


async def test_repair_lists_restores_and_is_idempotent(
    rig_factory: RigFactory, pg_dsn: str, nats_target: NatsTarget
) -> None:
    since_ms = int(time.time() * 1000) - 60_000
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=9)) as rig:
        await rig.run("alpha")
        await until(rig.streaming, what="stream up")
        await rig.sim.burst("alpha", "BTCUSDT", 120, rate=400)
        await rig.sim.burst("alpha", "ETHUSDT", 81, rate=400)  # leaves a position open
        truth = rig.truth_tally("alpha")

        async def stored() -> bool:
            return (await rig.pg_tally("alpha")).fills == truth.fills

        await until(stored, what="fills stored")
        for us in rig.streams.values():
            await us.aclose()
        for rec in rig.reconcilers.values():
            await rec.aclose()
        deleted = await rig.stack.pool.fetch(
            "DELETE FROM fills WHERE account = 'alpha' AND trade_id % 7 = 3"
            " RETURNING symbol, trade_id, order_id"
        )
        assert len(deleted) > 10
        lost = {(r["symbol"], r["trade_id"], r["order_id"]) for r in deleted}
        remaining = await rig.pg_fill_count("alpha")

        # The repair command: a process of its own, with its own pipeline on the same stores.
        stack = await IngestStack.open(
            pg_dsn, nats_target.url, stream=nats_target.stream, prefix=nats_target.prefix
        )
        try:
            repair = Reconciler(
                account="alpha",
                market=Market.USDM,
                venue=await rig.venue("alpha"),
                sink=stack.pipeline,
                cursors=PgCursorStore(stack.pool),
                orders=PgOrderView(stack.pool),
                index=PgFillIndex(stack.pool),
                # No stream in this process; the service's is stopped: nothing to settle.
                settings=msgspec.structs.replace(FAST_RECONCILE, settle_delay_s=0.0),
            )
            seen: list[RepairProgress] = []
            dry = await repair.repair(since_ms, progress=seen.append)
            assert not dry.applied
            assert {(m.symbol, m.trade_id, m.order_id) for m in dry.missing} == lost
            assert dry.found == len(truth.fills)
            assert dry.corrections == []  # the missing fills explain the positions
            assert dry.added == 0
            assert await rig.pg_fill_count("alpha") == remaining  # a dry run writes nothing
            assert [p.symbol for p in seen] == dry.symbols
            assert any("would add fill" in line for line in dry.lines())
            evidence = next(m for m in dry.missing if m.symbol == "BTCUSDT")
            row = next(
                f
                for f in rig.truth()["accounts"]["alpha"]["fills"]
                if f["symbol"] == "BTCUSDT" and f["id"] == evidence.trade_id
            )
            assert str(evidence.price) == row["price"]
            assert evidence.qty == type(evidence.qty)(row["qty"])

            applied = await repair.repair(since_ms, apply=True)
            assert applied.added == len(lost)
            assert applied.corrections == []
            assert (await rig.pg_tally("alpha")).fills == truth.fills
            restored = await stack.pool.fetchval(
                "SELECT count(*) FROM fills WHERE account = 'alpha' AND source = 'reconcile'"
                " AND trade_id % 7 = 3"
            )
            assert restored == len(lost)

            again = await repair.repair(since_ms, apply=True)
            assert again.clean
            assert again.added == 0
            assert await rig.pg_fill_count("alpha") == len(truth.fills)
            await stack.relay.wait_idle()
        finally:
            await stack.aclose()
        assert (await rig.js_tally("alpha")).fill_ids == truth.fill_ids
