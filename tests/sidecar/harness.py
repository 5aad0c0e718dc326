"""Helpers for the service tests: a config for the simulator, ``fillstream`` subprocesses,
HTTP scraping and convergence checks (ground truth = PostgreSQL = JetStream)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats

from fillstream.sidecar.config import load_config
from fillstream.sidecar.embedded import free_port
from fillstream.sidecar.service import Service
from fillstream.sidecar.tally import (
    Comparison,
    Tally,
    tally_jetstream,
    tally_postgres,
    truth_from_ledger,
)
from fillstream.simulator import Simulator
from tests.conftest import NatsTarget

TOML = """
[database]
dsn_env = "TEST_DSN"
pool_min_size = 1
pool_max_size = 6

[nats]
servers = ["{nats}"]
stream = "{stream}"
subject_prefix = "{prefix}"

[http]
listen = "127.0.0.1:{port}"
enable_reconcile_endpoint = true

[stream]
stale_after_s = 5
degraded_after_s = 5
backoff_max_s = 1

[reconcile]
interval_s = 3
degraded_interval_s = 1
settle_delay_s = 0.5

[service]
shutdown_deadline_s = 15
restart_initial_s = 0.2
restart_max_s = 2
"""

ACCOUNT = """
[[accounts]]
name = "{name}"
api_key_env = "{upper}_API_KEY"
api_secret_env = "{upper}_API_SECRET"
endpoints = "custom"
rest_url = "{rest}"
ws_url = "{ws}"
symbols = ["BTCUSDT", "ETHUSDT"]
"""


def write_config(
    path: Path,
    sim: Simulator,
    nats_target: NatsTarget,
    *,
    port: int | None = None,
    extra_accounts: Sequence[tuple[str, str, str]] = (),
) -> tuple[Path, dict[str, str], int]:
    """A TOML config for ``sim``'s accounts (plus ``extra_accounts`` as (name, rest, ws)), the
    environment holding their keys (and ``TEST_DSN`` unset: the caller adds it), and the port."""
    port = port or free_port()
    text = TOML.format(
        nats=nats_target.url, stream=nats_target.stream, prefix=nats_target.prefix, port=port
    )
    env: dict[str, str] = {}
    accounts = [(a.name, sim.rest_url, sim.ws_url) for a in sim.accounts]
    for name, rest, ws in [*accounts, *extra_accounts]:
        upper = name.upper()
        text += ACCOUNT.format(name=name, upper=upper, rest=rest, ws=ws)
    for a in sim.accounts:
        env[f"{a.name.upper()}_API_KEY"] = a.api_key
        env[f"{a.name.upper()}_API_SECRET"] = a.api_secret
    for name, _, _ in extra_accounts:
        env[f"{name.upper()}_API_KEY"] = f"{name}-key-0123456789"
        env[f"{name.upper()}_API_SECRET"] = f"{name}-secret-0123456789"
    path.write_text(text)
    return path, env, port


class ServiceProcess:
    """``fillstream run`` in a subprocess; its stderr (JSON log lines) goes to ``log_path``."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path, url: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.url = url

    @classmethod
    async def start(
        cls, config: Path, env: dict[str, str], log_path: Path, port: int
    ) -> ServiceProcess:
        proc = await start_cli(["run", "--config", str(config)], env, log_path)
        return cls(proc, log_path, f"http://127.0.0.1:{port}")

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.url + path) as r:
            return r.status, await r.text()

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.get(self.url + path) as r:
            return r.status, await r.json()

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        async def ready() -> bool:
            if self.proc.returncode is not None:
                raise AssertionError(f"service exited {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _ = await self.get("/readyz")
            except aiohttp.ClientError:
                return False
            return status == 200

        await wait_for(ready, timeout_s, f"service ready\n{self.logs()[-3000:]}")


async def start_cli(
    args: list[str], env: dict[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    """``python -m fillstream.sidecar.cli ARGS`` with ``env`` added; stdout+stderr to the log."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fillstream.sidecar.cli",
            *args,
            env=full_env,
            stdout=log,
            stderr=log,
        )


async def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> tuple[int, str]:
    """Run a CLI command to completion; returns (exit code, combined output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fillstream.sidecar.cli",
        *args,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str, poll_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll_s)


async def pg_fill_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM fills"))
    finally:
        await conn.close()


async def outbox_pending(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    finally:
        await conn.close()


async def compare(sim: Simulator, dsn: str, nats_target: NatsTarget) -> Comparison:
    accounts = [a.name for a in sim.accounts]
    truth = truth_from_ledger(sim.ground_truth())
    conn = await asyncpg.connect(dsn)
    try:
        pg = await tally_postgres(conn, accounts)
    finally:
        await conn.close()
    nc = await nats.connect(nats_target.url)
    try:
        js = await tally_jetstream(nc, nats_target.stream, nats_target.prefix, accounts)
    finally:
        await nc.close()
    return Comparison(truth=truth, postgres=pg, jetstream=js)


async def converge(
    sim: Simulator, dsn: str, nats_target: NatsTarget, timeout_s: float = 90.0
) -> Comparison:
    """Poll until ground truth = PostgreSQL = JetStream (the generator must be paused)."""
    last = Comparison(truth=Tally(), postgres=Tally(), jetstream=Tally())

    async def equal() -> bool:
        nonlocal last
        last = await compare(sim, dsn, nats_target)
        return last.equal

    try:
        await wait_for(equal, timeout_s, "convergence", poll_s=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last.problems()[:10]}") from None
    return last


@contextlib.asynccontextmanager
async def serving(
    sim: Simulator, pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> AsyncIterator[Service]:
    """An in-process service for ``sim``'s accounts (config from :func:`write_config`),
    serving until the block ends, then shut down in order."""
    path, env, _ = write_config(tmp_path / "fillstream.toml", sim, nats_target, port=0)
    env["TEST_DSN"] = pg_dsn
    service = Service(load_config(path, env), env)
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(stop))
    try:
        yield service
    finally:
        stop.set()
        await task
