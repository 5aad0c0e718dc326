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

from fillstream.simulator import Simulator
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


async def stop_all(replicas: Sequence[Replica]) -> None:
    for replica in replicas:
        if replica.process is None or replica.proc.proc.returncode is not None:
            continue
        replica.proc.proc.send_signal(signal.SIGCONT)
        await replica.proc.stop(signal.SIGTERM)
