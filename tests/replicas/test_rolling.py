"""A rolling restart of every replica, one by one, while the accounts trade: each SIGTERM hands
the accounts over (no listenKey deleted while another replica lives), nothing is lost or
duplicated, every close is right (ground truth = PostgreSQL = JetStream)."""

from __future__ import annotations

import signal
from pathlib import Path

from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.replicas.cluster import make_cluster, stop_all, wait_one_owner_each
from tests.sidecar.harness import converge

ACCOUNTS = tuple(f"acct{n}" for n in range(9))


async def test_rolling_restart_of_three_replicas(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    config = SimConfig(accounts=ACCOUNTS, rate=3.0, seed=18, weight_limit_1m=120_000)
    async with Simulator(config) as sim:
        replicas = make_cluster(sim, nats_target, pg_dsn, tmp_path, 3, cooldown_s=1.0)
        try:
            for replica in replicas:
                await replica.start()
                await replica.proc.wait_ready(90)
            await wait_one_owner_each(replicas, ACCOUNTS, 60)
            for n, replica in enumerate(replicas):
                others = [r for r in replicas if r is not replica]
                assert await replica.proc.stop(signal.SIGTERM) == 0
                assert all(sim.keys.active(a) is not None for a in ACCOUNTS)
                await wait_one_owner_each(others, ACCOUNTS, 60)  # handed over
                replica.log = tmp_path / f"{replica.name}-restart{n}.log"
                await replica.start()
                await replica.proc.wait_ready(90)
                await wait_one_owner_each(replicas, ACCOUNTS, 60)
            sim.pause()
            result = await converge(sim, pg_dsn, nats_target)
            assert len(result.truth.fills) > 50
            assert result.postgres.duplicate_fills == 0
            assert result.jetstream.duplicate_fills == 0
        finally:
            await stop_all(replicas)
