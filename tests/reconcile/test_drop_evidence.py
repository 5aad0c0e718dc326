"""Silently dropped events are noticed from the stream's own evidence and recovered over REST
long before any periodic poll (issue 16).

The periodic poll is set to an hour and the TRADE_LITE backstop of the listener to an hour too, so
the only way a dropped fill can reach PostgreSQL in this test is a ``drop_evidence`` gap served by
an ``evidence`` run: the assertions check exactly that, not how fast it was.
"""

from __future__ import annotations

import asyncio

import pytest

from fillstream.reconcile import ReconcileSettings
from fillstream.simulator import SimConfig
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import metric, stream_settings, until

pytestmark = pytest.mark.asyncio

ACCOUNT = "alpha"
HOUR = 3600.0
ONLY_EVIDENCE = ReconcileSettings(
    interval_s=HOUR,
    degraded_interval_s=HOUR,
    position_check_interval_s=HOUR,
    all_symbol_calls_min_interval_s=HOUR,
    order_check_after_s=HOUR,
    funding_interval_s=0,
    symbols=("BTCUSDT", "ETHUSDT"),
)
SIGNALS = ("trade_lite_unmatched", "position_amount", "cumulative_qty", "trade_lite_missing")


def _runs(trigger: str) -> float:
    return metric("fillstream_reconcile_runs_total", account=ACCOUNT, trigger=trigger)


def _gaps(reason: str) -> float:
    return metric("fillstream_stream_gaps_total", account=ACCOUNT, reason=reason)


def _evidence(kind: str) -> float:
    return metric("fillstream_drop_evidence_total", account=ACCOUNT, kind=kind)


async def test_dropped_fills_are_recovered_through_drop_evidence(rig_factory: RigFactory) -> None:
    async with rig_factory(SimConfig(accounts=(ACCOUNT,), rate=0, seed=16)) as rig:
        stream = stream_settings(rig.sim, trade_lite_grace_s=HOUR, stale_after_s=HOUR)
        await rig.run(ACCOUNT, settings=ONLY_EVIDENCE, stream=stream)
        await until(rig.streaming, what="stream up")

        async def started() -> bool:
            return _runs("startup") >= 1 and rig.reconcilers[ACCOUNT].last_run is not None

        await until(started, what="start-up run")
        # Some trading first, so every position already has an ACCOUNT_UPDATE to compare with.
        rig.sim.step(20)

        async def warm() -> bool:
            return await rig.pg_fill_count(ACCOUNT) == len(
                rig.truth()["accounts"][ACCOUNT]["fills"]
            )

        await until(warm, what="warm-up fills stored")
        before = {t: _runs(t) for t in ("gap", "periodic", "manual")}
        kinds_before = {k: _evidence(k) for k in SIGNALS}

        rig.sim.inject(ACCOUNT, "drop_rate", p=0.15)
        for _ in range(150):  # the generator's realistic mix, paced so events spread over time
            rig.sim.step(2)
            await asyncio.sleep(0.01)
        rig.sim.inject(ACCOUNT, "drop_rate", p=0)
        # A little more trading without drops: later events are the evidence for the last drops.
        for _ in range(20):
            rig.sim.step(2)
            await asyncio.sleep(0.01)

        truth = rig.truth()["accounts"][ACCOUNT]
        dropped = int(truth["dropped_fill_events"])
        assert dropped > 0

        async def all_stored() -> bool:
            return await rig.pg_fill_count(ACCOUNT) == len(
                rig.truth()["accounts"][ACCOUNT]["fills"]
            )

        await until(all_stored, timeout_s=90, what="every fill stored")

        assert rig.truth_tally(ACCOUNT) == await rig.pg_tally(ACCOUNT)
        assert rig.truth_tally(ACCOUNT) == await rig.js_tally(ACCOUNT)
        # Recovered by evidence runs only: no periodic, manual or broad gap run since trading began.
        assert {t: _runs(t) for t in before} == before
        assert _runs("evidence") > 0
        assert _gaps("drop_evidence") > 0
        assert _gaps("trade_lite_unmatched") == 0
        for kind in SIGNALS:
            assert _evidence(kind) > kinds_before[kind], kind
        # Every dropped fill event is a fill the stream missed, attributed to the REST path.
        reconciled = await rig.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE account = $1 AND source = 'reconcile'", ACCOUNT
        )
        assert reconciled >= dropped
        assert metric("fillstream_fills_missed_by_stream_total", account=ACCOUNT) >= dropped
