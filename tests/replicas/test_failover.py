"""Replicas as ``fillstream run`` subprocesses against the simulator, PostgreSQL and NATS.

* 3 replicas, 30 accounts trading: each account streams on exactly one; SIGKILL one replica:
  its accounts come back on the others; ground truth = PostgreSQL = JetStream (closes too);
  a replica stopping while others live never deletes a listenKey.
* split brain: a replica paused (SIGSTOP) past its leases, then resumed: the other took its
  accounts, it gives them up (its tenure timer or the fence), and nothing is duplicated or
  wrongly closed.

Takeover times are reported by benchmarks/replicas.py, not asserted here.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg

from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.replicas.cluster import (
    make_cluster,
    stop_all,
    wait_one_owner_each,
)
from tests.sidecar.harness import converge, pg_fill_count, wait_for

ACCOUNTS = tuple(f"acct{n:02d}" for n in range(30))


async def _owners_in_pg(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT account, owner FROM account_owners")
    finally:
        await conn.close()
    return {r["account"]: r["owner"] for r in rows}


async def test_three_replicas_thirty_accounts_sigkill_one(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    config = SimConfig(accounts=ACCOUNTS, rate=1.0, seed=15, weight_limit_1m=120_000)
    async with Simulator(config) as sim:
        replicas = make_cluster(sim, nats_target, pg_dsn, tmp_path, 3)
        try:
            await asyncio.gather(*(r.start() for r in replicas))
            await asyncio.gather(*(r.proc.wait_ready(90) for r in replicas))
            owners = await wait_one_owner_each(replicas, ACCOUNTS, 120)
            assert len(await _owners_in_pg(pg_dsn)) == len(ACCOUNTS)
            spread = {r.name: sum(1 for o in owners.values() if o == r.name) for r in replicas}
            assert all(spread.values()), spread  # every replica runs some

            async def flowing() -> bool:
                return await pg_fill_count(pg_dsn) >= 60

            await wait_for(flowing, 60, "fills stored")
            victim = max(replicas, key=lambda r: spread[r.name])
            orphans = [a for a, o in owners.items() if o == victim.name]
            assert await victim.proc.stop(signal.SIGKILL) == -signal.SIGKILL
            survivors = [r for r in replicas if r is not victim]
            after = await wait_one_owner_each(survivors, ACCOUNTS, 60)
            assert {after[a] for a in orphans} <= {r.name for r in survivors}

            # A replica stopping while another lives hands over and deletes no listenKey.
            leaving, last = survivors
            assert await leaving.proc.stop(signal.SIGTERM) == 0
            assert all(sim.keys.active(a) is not None for a in ACCOUNTS)
            await wait_one_owner_each([last], ACCOUNTS, 60)

            sim.pause()
            result = await converge(sim, pg_dsn, nats_target)
            assert len(result.truth.fills) > 60
            assert result.postgres.duplicate_fills == 0
            assert result.jetstream.duplicate_fills == 0
            # The last replica alone: a clean shutdown may delete the keys now.
            assert await last.proc.stop(signal.SIGTERM) == 0
            assert all(sim.keys.active(a) is None for a in ACCOUNTS)
        finally:
            await stop_all(replicas)


async def test_split_brain_paused_replica_is_fenced_and_gives_up(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    accounts = ("alpha", "beta", "gamma", "delta")
    config = SimConfig(accounts=accounts, rate=4.0, seed=16, weight_limit_1m=120_000)
    async with Simulator(config) as sim:
        # No rebalancing back to the resumed replica during the test.
        replicas = make_cluster(sim, nats_target, pg_dsn, tmp_path, 2, cooldown_s=3600)
        paused, other = replicas
        try:
            await paused.start()
            await paused.proc.wait_ready(90)
            await wait_one_owner_each([paused], accounts, 60)  # alone: it takes all four
            await other.start()
            await other.proc.wait_ready(90)

            async def flowing() -> bool:
                return await pg_fill_count(pg_dsn) >= 40

            await wait_for(flowing, 60, "fills stored")
            paused.proc.proc.send_signal(signal.SIGSTOP)
            await wait_one_owner_each([other], accounts, 60)  # past the leases: taken over
            await asyncio.sleep(2.0)  # the paused one's socket buffers frames meanwhile
            paused.proc.proc.send_signal(signal.SIGCONT)

            async def gave_up() -> bool:
                body = await paused.status()
                return body is not None and not body["service"]["replicas"]["owned"]

            await wait_for(gave_up, 30, "the resumed replica gave its accounts up")
            body = await paused.status()
            assert body is not None
            handovers = body["service"]["replicas"]["handovers"]
            stood_down = sum(handovers.get(k, 0) for k in ("expired", "lost", "fenced"))
            assert stood_down >= len(accounts), handovers
            await wait_one_owner_each(replicas, accounts, 10)  # still one owner each
            # A standby (owning nothing) is ready, and says so per check; its metrics agree.
            status, ready = await paused.proc.get_json("/readyz")
            assert status == 200
            assert ready["checks"] == {"postgres": "ok", "nats": "ok", "replicas": "ok"}
            _, text = await paused.proc.get("/metrics")
            for line in (
                'fillstream_replica_owned{account="alpha",market="usdm"} 0.0',
                "fillstream_replica_members 2.0",
                'fillstream_replica_handovers_total{account="alpha",kind="acquired",'
                'market="usdm"} 1.0',
            ):
                assert line in text, line
            _, text = await other.proc.get("/metrics")
            assert 'fillstream_replica_owned{account="alpha",market="usdm"} 1.0' in text
            # Giving up never deleted the key the other replica streams on.
            assert all(sim.keys.active(a) is not None for a in accounts)

            sim.pause()
            result = await converge(sim, pg_dsn, nats_target)
            assert result.postgres.duplicate_fills == 0
            assert result.jetstream.duplicate_fills == 0
        finally:
            await stop_all(replicas)
