"""Several ``fillstream run`` replicas over one simulator, one PostgreSQL and one NATS."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fillstream.binance.budget import host_of
from fillstream.ledger import Market
from fillstream.sidecar.ownership import rendezvous
from fillstream.simulator import Simulator
from fillstream.storage.leases import account_key
from tests.conftest import NatsTarget
from tests.sidecar.harness import ServiceProcess, write_config

REPLICAS = """
[replicas]
enabled = true
bucket = "{bucket}"
lease_ttl_s = {ttl}
renew_interval_s = {renew}
stop_margin_s = {margin}
poll_interval_s = 0.3
takeover_grace_s = 0.3
cooldown_s = {cooldown_s}
"""

REST = """
[rest]
# The simulator's limit from the first request: a process starting while the others have
# used more than Binance's default 2,400 of this minute must not wait for the next minute
# (every replica shares the simulator's one IP).
weight_limits = {{ "{host}" = {limit} }}
"""


def rest_section(sim: Simulator) -> str:
    """``[rest]`` with the simulator's weight limit (see ``REST``)."""
    return REST.format(host=host_of(sim.rest_url), limit=sim.config.weight_limit_1m)


class Replica:
    """One replica: its process, config, and a view of its /status."""

    def __init__(self, name: str, config: Path, env: dict[str, str], port: int, log: Path):
        self.name = name
        self.config = config
        self.env = env
        self.port = port
        self.log = log
        self.process: ServiceProcess | None = None

    async def start(self) -> None:
        self.process = await ServiceProcess.start(self.config, self.env, self.log, self.port)

    @property
    def proc(self) -> ServiceProcess:
        assert self.process is not None
        return self.process

    async def status(self) -> dict[str, Any] | None:
        """/status, or None while it does not answer (starting, stopped, paused)."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http,
                http.get(f"{self.proc.url}/status") as r,
            ):
                body: dict[str, Any] = await r.json()
                return body
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def streaming(self) -> set[str]:
        """Accounts this replica owns whose stream is streaming."""
        body = await self.status()
        if body is None:
            return set()
        owned = set(body["service"]["replicas"]["owned"])
        return {
            name
            for name, a in body["accounts"].items()
            if name in owned and a["state"] == "streaming"
        }

    async def owned(self) -> set[str]:
        body = await self.status()
        return set() if body is None else set(body["service"]["replicas"]["owned"])


def make_cluster(
    sim: Simulator,
    nats_target: NatsTarget,
    pg_dsn: str,
    tmp_path: Path,
    count: int,
    *,
    cooldown_s: float = 3.0,
    lease_ttl_s: float = 3.0,
) -> list[Replica]:
    bucket = f"leases_{uuid.uuid4().hex[:8]}"
    replicas = []
    for n in range(count):
        path, env, port = write_config(tmp_path / f"replica{n}.toml", sim, nats_target)
        with path.open("a") as f:
            f.write(
                REPLICAS.format(
                    bucket=bucket,
                    cooldown_s=cooldown_s,
                    ttl=lease_ttl_s,
                    renew=lease_ttl_s / 6,
                    margin=lease_ttl_s / 2,
                )
                + rest_section(sim)
            )
        env["TEST_DSN"] = pg_dsn
        replicas.append(Replica(f"r{n}", path, env, port, tmp_path / f"replica{n}.log"))
    return replicas


async def ownership(replicas: Sequence[Replica]) -> dict[str, list[str]]:
    """account → the replicas streaming it (every live replica's view)."""
    views = await asyncio.gather(*(r.streaming() for r in replicas))
    owners: dict[str, list[str]] = {}
    for replica, accounts in zip(replicas, views, strict=True):
        for account in accounts:
            owners.setdefault(account, []).append(replica.name)
    return owners


async def wait_one_owner_each(
    replicas: Sequence[Replica], accounts: Sequence[str], timeout_s: float
) -> dict[str, str]:
    """Until every account streams on exactly one of ``replicas``; account → replica."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        last = await ownership(replicas)
        if set(last) == set(accounts) and all(len(v) == 1 for v in last.values()):
            return {a: v[0] for a, v in last.items()}
        await asyncio.sleep(0.2)
    missing = sorted(set(accounts) - set(last))
    doubled = {a: v for a, v in last.items() if len(v) > 1}
    raise AssertionError(f"ownership not settled: missing {missing}, doubled {doubled}")


async def wait_spread(
    replicas: Sequence[Replica], accounts: Sequence[str], timeout_s: float
) -> dict[str, str]:
    """Until the hand-overs are done: every account streams on exactly one replica, the one
    rendezvous hashing picks among the members every replica sees; account → replica."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, list[str]] = {}
    seen: list[Any] = []
    while time.monotonic() < deadline:
        views = await asyncio.gather(*(r.status() for r in replicas))
        seen = [None if b is None else b["service"]["replicas"] for b in views]
        bodies = [b for b in views if b is not None]
        members = {frozenset(b["service"]["replicas"]["members"]) for b in bodies}
        last = await ownership(replicas)
        if len(bodies) == len(replicas) and len(members) == 1:
            by_member = {
                b["service"]["replicas"]["member"]: r.name
                for r, b in zip(replicas, views, strict=True)
                if b is not None
            }
            (live,) = members
            want = {
                a: by_member.get(rendezvous(account_key(a, Market.USDM), live)) for a in accounts
            }
            if {a: [o] for a, o in want.items()} == last:
                return {a: o for a, o in want.items() if o is not None}
        await asyncio.sleep(0.2)
    raise AssertionError(f"accounts not spread: {last}; replicas: {seen}")


async def stop_all(replicas: Sequence[Replica]) -> None:
    for replica in replicas:
        if replica.process is None or replica.proc.proc.returncode is not None:
            continue
        replica.proc.proc.send_signal(signal.SIGCONT)
        await replica.proc.stop(signal.SIGTERM)


async def rest_requests(replica: Replica) -> dict[str, float]:
    """account → REST requests this incarnation of ``replica`` sent for it (its counters);
    empty while it does not answer."""
    if replica.process is None or replica.proc.proc.returncode is not None:
        return {}
    try:
        _, text = await replica.proc.get("/metrics")
    except aiohttp.ClientError:
        return {}
    sent: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "fillstream_rest_requests_total":
                account = s.labels["account"]
                sent[account] = sent.get(account, 0.0) + s.value
    return sent
