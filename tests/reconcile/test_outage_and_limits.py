"""Acceptance: a stream outage during trading is backfilled as soon as the socket is back (not at
the next poll), and a 429 burst and a 418 ban are survived with no further bans and no lost
fills, the shared budget keeping every other request under the venue's limit.

How fast the recovery is (≤ 2 s after a 60 s outage) is measured by ``benchmarks.gap_recovery``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fillstream.reconcile import ReconcileSettings
from fillstream.simulator import SimConfig
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import FAST_RECONCILE, Rig, metric, until

# Polls so rare they cannot explain a recovery within the test: only the gap run can.
SLOW_POLLS = ReconcileSettings(
    interval_s=3600.0,
    degraded_interval_s=3600.0,
    settle_delay_s=1.0,
    stream_lag_grace_s=2.0,
    position_check_interval_s=3600.0,
    symbols=("BTCUSDT", "ETHUSDT"),
)


async def test_outage_is_backfilled_by_the_gap_not_the_next_poll(rig_factory: RigFactory) -> None:
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=11)) as rig:
        rec = await rig.run("alpha", settings=SLOW_POLLS)
        await until(rig.streaming, what="stream up")

        async def startup_done() -> bool:
            return rec.last_run is not None and rec.last_run.trigger != "gap"

        await until(startup_done, what="start-up run")
        gap_runs = metric("fillstream_reconcile_runs_total", account="alpha", trigger="gap")
        trading = asyncio.create_task(rig.sim.burst("alpha", "BTCUSDT", 600, rate=100))
        await until(_fills_at_least(rig, 100), what="trading under way")
        # The socket goes and reconnects are refused for 2 s, while fills keep coming.
        rig.sim.inject("alpha", "refuse_ws", seconds=2)
        rig.sim.inject("alpha", "disconnect")
        await trading
        truth = rig.truth_tally("alpha")

        async def complete() -> bool:
            return (await rig.pg_tally("alpha")).fills == truth.fills

        await until(complete, timeout_s=60, what="outage fills stored")
        doc = rig.truth()["accounts"]["alpha"]
        assert doc["undelivered_fill_events"] > 0  # the outage really lost fills
        assert metric("fillstream_reconcile_runs_total", account="alpha", trigger="gap") > gap_runs
        assert rec.last_run is not None
        assert (await rig.js_tally("alpha")).fill_ids == truth.fill_ids


async def test_429_burst_and_418_ban_survived_without_further_bans(
    rig_factory: RigFactory,
) -> None:
    # A small weight limit: the budget (read from exchangeInfo) must throttle the fast polls.
    config = SimConfig(accounts=("alpha",), rate=0, seed=5, weight_limit_1m=400)
    async with rig_factory(config) as rig:
        statuses = {s: _responses(s) for s in ("418", "429")}
        await rig.run("alpha", settings=FAST_RECONCILE)
        await until(rig.streaming, what="stream up")
        assert rig.budgets.for_url(rig.sim.rest_url).limit == 400
        rig.sim.inject("alpha", "drop_rate", p=0.2)
        trading = asyncio.create_task(rig.sim.burst("alpha", "ETHUSDT", 400, rate=100))
        await until(_fills_at_least(rig, 100), what="trading under way")
        rig.sim.inject(None, "rest_error", status=429, count=3, retry_after=1)
        await until(lambda: _passed(_responses("429") >= statuses["429"] + 3), what="429s")
        rig.sim.inject(None, "rest_error", status=418, count=1, retry_after=3)
        await until(lambda: _passed(_responses("418") >= statuses["418"] + 1), what="418")
        await trading
        rig.sim.inject("alpha", "drop_rate", p=0.0)
        truth = rig.truth_tally("alpha")

        async def complete() -> bool:
            return (await rig.pg_tally("alpha")).fills == truth.fills

        await until(complete, timeout_s=120, what="every fill stored")
        # Only the injected refusals: the budget never ran into the venue's own limit.
        assert _responses("418") == statuses["418"] + 1
        assert _responses("429") == statuses["429"] + 3
        assert metric("fillstream_rest_paused_seconds_total", reason="banned") > 0
        assert (await rig.js_tally("alpha")).fill_ids == truth.fill_ids


def _responses(status: str) -> float:
    return metric("fillstream_rest_requests_total", account="alpha", status=status)


async def _passed(value: bool) -> bool:
    return value


def _fills_at_least(rig: Rig, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return rig.sim.fills_generated >= n

    return check
