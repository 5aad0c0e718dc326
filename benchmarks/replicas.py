"""Failover of replicas: how long an account is without a stream after its owner is SIGKILLed.

    python -m benchmarks.replicas [--accounts 30] [--replicas 3] [--rounds 3] [--rate 1]
                                  [--lease-ttl 3]

Embedded PostgreSQL and NATS (``sync_interval: always``), the simulator in this process,
``--replicas`` ``fillstream run`` child processes with ``[replicas]`` on (lease TTL
``--lease-ttl`` s, renewal every TTL/6, poll 0.3 s, grace 0.3 s, cool-down 3 s). Each round:
wait until every account streams on exactly one replica, SIGKILL the replica owning the most,
poll every survivor's ``/status`` every 0.1 s and record, per orphaned account, the seconds
from the kill until it streams on a survivor; then restart the killed replica and wait for the
accounts to spread again (the cool-down). At the end the generator pauses and ground truth =
PostgreSQL = JetStream is checked (fills and closes).

Baseline, measured in the same run: the same orphaned accounts on one plain process (replicas
off) started right after a SIGKILL, i.e. the best a restart-only deployment can do (it ignores
the time to notice the death and restart the pod). Writes ``benchmarks/results/replicas.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.replicas.cluster import Replica, make_cluster, ownership, stop_all
from tests.sidecar.harness import ServiceProcess, compare, write_config

RESULTS = Path(__file__).parent / "results" / "replicas.json"


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "n": len(ordered),
        "min": round(ordered[0], 3),
        "p50": round(statistics.median(ordered), 3),
        "p90": round(q(0.9), 3),
        "max": round(ordered[-1], 3),
    }


async def _settled(
    replicas: list[Replica], accounts: tuple[str, ...], timeout_s: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owners = await ownership(replicas)
        if set(owners) == set(accounts) and all(len(v) == 1 for v in owners.values()):
            return {a: v[0] for a, v in owners.items()}
        await asyncio.sleep(0.2)
    raise RuntimeError("ownership did not settle")


async def _spread(
    replicas: list[Replica], accounts: tuple[str, ...], timeout_s: float
) -> dict[str, str]:
    """Settled with every replica owning some (after the cool-down)."""
    deadline = time.monotonic() + timeout_s
    while True:
        owners = await _settled(replicas, accounts, timeout_s)
        if {r.name for r in replicas} <= set(owners.values()) or time.monotonic() > deadline:
            return owners
        await asyncio.sleep(0.5)


async def _failover_round(
    replicas: list[Replica], accounts: tuple[str, ...]
) -> tuple[Replica, list[float]]:
    owners = await _spread(replicas, accounts, 120)
    counts = {r.name: sum(1 for o in owners.values() if o == r.name) for r in replicas}
    victim = max(replicas, key=lambda r: counts[r.name])
    orphans = {a for a, o in owners.items() if o == victim.name}
    survivors = [r for r in replicas if r is not victim]
    killed = time.monotonic()
    await victim.proc.stop(signal.SIGKILL)
    back: dict[str, float] = {}
    while len(back) < len(orphans) and time.monotonic() - killed < 120:
        now = await ownership(survivors)
        at = time.monotonic() - killed
        for account in orphans - set(back):
            if account in now:
                back[account] = at
        await asyncio.sleep(0.1)
    return victim, [back.get(a, float("inf")) for a in sorted(orphans)]


async def _baseline(
    sim: Simulator, nats: NatsTarget, dsn: str, tmp: Path, orphans: int
) -> list[float]:
    """One plain process for ``orphans`` accounts: spawn → every account streaming."""
    names = [a.name for a in sim.accounts][:orphans]
    path, env, port = write_config(tmp / "baseline.toml", sim, nats)
    text = path.read_text().split("[[accounts]]")
    keep = [t for t in text[1:] if any(f'name = "{n}"' in t for n in names)]
    path.write_text(text[0] + "".join("[[accounts]]" + t for t in keep))
    env["TEST_DSN"] = dsn
    times = []
    for run in range(2):
        started = time.monotonic()
        service = await ServiceProcess.start(path, env, tmp / f"baseline{run}.log", port)
        replica = Replica("baseline", path, env, port, tmp / "unused.log")
        replica.process = service
        done: dict[str, float] = {}
        while len(done) < len(names) and time.monotonic() - started < 120:
            body = await replica.status()
            if body is not None:
                for name, a in body["accounts"].items():
                    if a["state"] == "streaming":
                        done.setdefault(name, time.monotonic() - started)
            await asyncio.sleep(0.1)
        times += list(done.values())
        await service.stop(signal.SIGKILL)
    return times


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pg, ns = EmbeddedPostgres(), EmbeddedNats(sync_always=True)
    admin_dsn, nats_url = pg.start(), ns.start()
    try:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute('CREATE DATABASE "replicas_bench"')
        await conn.close()
        dsn = admin_dsn.rpartition("/")[0] + "/replicas_bench"
        target = NatsTarget(url=nats_url, stream="FILLSTREAM", prefix="fillstream")
        accounts = tuple(f"acct{n:02d}" for n in range(args.accounts))
        config = SimConfig(accounts=accounts, rate=args.rate, seed=15, weight_limit_1m=240_000)
        with tempfile.TemporaryDirectory(prefix="replicas-bench-") as tmp_name:
            tmp = Path(tmp_name)
            async with Simulator(config) as sim:
                return await _run(sim, target, dsn, tmp, accounts=accounts, args=args)
    finally:
        ns.close()
        pg.close()


async def _run(
    sim: Simulator,
    target: NatsTarget,
    dsn: str,
    tmp: Path,
    *,
    accounts: tuple[str, ...],
    args: argparse.Namespace,
) -> dict[str, Any]:
    replicas = make_cluster(sim, target, dsn, tmp, args.replicas, lease_ttl_s=args.lease_ttl)
    takeovers: list[float] = []
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        await asyncio.gather(*(r.proc.wait_ready(120) for r in replicas))
        for n in range(args.rounds):
            victim, times = await _failover_round(replicas, accounts)
            print(f"round {n + 1}: {len(times)} accounts back in {_quantiles(times)}", flush=True)
            takeovers += times
            victim.log = tmp / f"{victim.name}-round{n + 2}.log"
            await victim.start()
            await victim.proc.wait_ready(120)
        sim.pause()
        await asyncio.sleep(5)
        result = await compare(sim, dsn, target)
        deadline = time.monotonic() + 90
        while not result.equal and time.monotonic() < deadline:
            await asyncio.sleep(1)
            result = await compare(sim, dsn, target)
    finally:
        await stop_all(replicas)
    orphans = max(1, round(len(takeovers) / max(1, args.rounds)))
    sim.resume()
    baseline = await _baseline(sim, target, dsn, tmp, orphans)
    report = {
        "accounts": len(accounts),
        "replicas": args.replicas,
        "rounds": args.rounds,
        "lease_ttl_s": args.lease_ttl,
        "bound_s": args.lease_ttl + 5,
        "takeover_s": _quantiles(takeovers),
        "within_bound": sum(1 for t in takeovers if t <= args.lease_ttl + 5),
        "baseline_restart_s": _quantiles(baseline),
        "ratio_p50": round(statistics.median(takeovers) / max(1e-9, statistics.median(baseline)), 2)
        if takeovers and baseline
        else None,
        "converged": result.equal,
        "problems": result.problems()[:10],
        "fills": len(result.truth.fills),
        "cpus": os.cpu_count(),
    }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas", description=__doc__)
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    report["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
