"""NATS restarted while an account changes hands: afterwards every account has exactly one
owner again, and at no sample did two replicas stream the same account; ground truth =
PostgreSQL = JetStream."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from fillstream.sidecar.embedded import EmbeddedNats
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.replicas.cluster import make_cluster, ownership, stop_all, wait_one_owner_each
from tests.sidecar.harness import converge

ACCOUNTS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")


async def test_nats_restart_during_a_handover(
    pg_dsn: str, private_nats: EmbeddedNats, tmp_path: Path
) -> None:
    target = NatsTarget(url=private_nats.url, stream="RESTART", prefix="restart")
    config = SimConfig(accounts=ACCOUNTS, rate=3.0, seed=17, weight_limit_1m=120_000)
    async with Simulator(config) as sim:
        replicas = make_cluster(sim, target, pg_dsn, tmp_path, 3)
        doubled: list[dict[str, list[str]]] = []
        sampling = True

        async def sample() -> None:
            while sampling:
                owners = await ownership(replicas)
                if any(len(v) > 1 for v in owners.values()):
                    doubled.append(owners)
                await asyncio.sleep(0.2)

        try:
            await asyncio.gather(*(r.start() for r in replicas))
            await asyncio.gather(*(r.proc.wait_ready(90) for r in replicas))
            owners = await wait_one_owner_each(replicas, ACCOUNTS, 90)
            sampler = asyncio.create_task(sample())
            victim = next(r for r in replicas if r.name in owners.values())
            await victim.proc.stop(signal.SIGKILL)  # its accounts change hands ...
            private_nats.kill()  # ... while NATS goes away
            await asyncio.sleep(2.0)
            private_nats.start()
            survivors = [r for r in replicas if r is not victim]
            await wait_one_owner_each(survivors, ACCOUNTS, 90)
            sampling = False
            await sampler
            assert doubled == []
            sim.pause()
            result = await converge(sim, pg_dsn, target)
            assert result.postgres.duplicate_fills == 0
            assert result.jetstream.duplicate_fills == 0
        finally:
            sampling = False
            await stop_all(replicas)
