"""The soak's processes: ``fillstream run`` as a child process it can SIGKILL, and the embedded
PostgreSQL and NATS servers it can stop, crash and restart on the same port and data.

Nothing here knows about faults or verdicts; :mod:`benchmarks.soak` drives these.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from fillstream.simulator import Simulator

STREAM, PREFIX = "FILLSTREAM", "fillstream"

_CONFIG = """\
[database]
dsn_env = "SOAK_DSN"
pool_min_size = 2
pool_max_size = 8
command_timeout_s = 10

[nats]
servers = ["{nats}"]
stream = "{stream}"
subject_prefix = "{prefix}"

[http]
listen = "127.0.0.1:{port}"

[stream]
# Short enough that every fault of the schedule is detected and healed within the soak.
stale_after_s = 5
degraded_after_s = 5
backoff_max_s = 2

[reconcile]
interval_s = {interval}
degraded_interval_s = 1

[service]
shutdown_deadline_s = 15
restart_initial_s = 0.2
restart_max_s = 2

[logging]
level = "INFO"
format = "json"
"""

_ACCOUNT = """
[[accounts]]
name = "{name}"
api_key_env = "SOAK_{upper}_KEY"
api_secret_env = "SOAK_{upper}_SECRET"
endpoints = "custom"
rest_url = "{rest}"
ws_url = "{ws}"
"""


def _env_name(account: str) -> str:
    return account.upper().replace("-", "_")


def write_config(
    path: Path, sim: Simulator, nats_url: str, dsn: str, *, reconcile_interval_s: float
) -> tuple[dict[str, str], int]:
    """Write the service's TOML for ``sim``'s accounts; returns (environment, HTTP port)."""
    port = free_port()
    text = _CONFIG.format(
        nats=nats_url, stream=STREAM, prefix=PREFIX, port=port, interval=reconcile_interval_s
    )
    env = {"SOAK_DSN": dsn}
    for account in sim.accounts:
        upper = _env_name(account.name)
        text += _ACCOUNT.format(name=account.name, upper=upper, rest=sim.rest_url, ws=sim.ws_url)
        env[f"SOAK_{upper}_KEY"] = account.api_key
        env[f"SOAK_{upper}_SECRET"] = account.api_secret
    path.write_text(text)
    return env, port


class ServiceProcess:
    """``python -m fillstream.sidecar.cli run --config F``; one log file per incarnation."""

    def __init__(self, config: Path, env: Mapping[str, str], port: int, log_dir: Path) -> None:
        self.config = config
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.url = f"http://127.0.0.1:{port}"
        self.log_dir = log_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.incarnation = 0
        self.started_wall = 0.0  # time.time() of the current incarnation's spawn
        self.exits: list[tuple[int, int | None, str]] = []  # (incarnation, code, how)
        self._http: aiohttp.ClientSession | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"fillstream-{self.incarnation}.log"

    async def spawn(self) -> None:
        self.incarnation += 1
        self.started_wall = time.time()
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fillstream.sidecar.cli",
                "run",
                "--config",
                str(self.config),
                env=self.env,
                stdout=log,
                stderr=log,
            )

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush anything."""
        await self._end(signal.SIGKILL, "sigkill")

    async def terminate(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait for the clean shutdown; returns its exit code."""
        return await self._end(signal.SIGTERM, "sigterm", timeout_s)

    async def _end(self, sig: signal.Signals, how: str, timeout_s: float = 10.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                how += "+timeout-sigkill"
        self.exits.append((self.incarnation, proc.returncode, how))
        self.proc = None
        return proc.returncode

    def reap_unexpected(self) -> int | None:
        """If the process ended by itself, record it and return its code (else None)."""
        proc = self.proc
        if proc is None or proc.returncode is None:
            return None
        self.exits.append((self.incarnation, proc.returncode, "exited by itself"))
        self.proc = None
        return proc.returncode

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._http

    async def ready(self) -> bool:
        """GET /readyz answers 200 (every account streaming or deliberately polling)."""
        if not self.running:
            return False
        try:
            http = await self._session()
            async with http.get(self.url + "/readyz") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def wait_ready(self, timeout_s: float) -> float:
        """Seconds until /readyz said 200; raises ``TimeoutError`` after ``timeout_s``."""
        start = time.monotonic()
        while not await self.ready():
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(
                    f"fillstream exited with {self.proc.returncode}; see {self.log_path}"
                )
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"fillstream not ready within {timeout_s}s; see {self.log_path}")
            await asyncio.sleep(0.1)
        return time.monotonic() - start

    async def status(self) -> dict[str, object] | None:
        try:
            http = await self._session()
            async with http.get(self.url + "/status") as resp:
                body = await resp.json()
                return body if isinstance(body, dict) else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def metrics(self, attempts: int = 3) -> Metrics | None:
        """A /metrics scrape, or None when the service did not answer (a loaded event loop
        answers late: each attempt may take 30 s)."""
        http = await self._session()
        for _ in range(attempts):
            try:
                async with http.get(
                    self.url + "/metrics", timeout=aiohttp.ClientTimeout(total=30)
                ) as resp:
                    return Metrics(await resp.text())
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(1.0)
        return None

    async def aclose(self) -> None:
        if self.running:
            await self.kill()
        if self._http is not None:
            await self._http.close()
            self._http = None


class Metrics:
    """A parsed /metrics scrape: ``value(name, account=..., source=...)`` sums matching samples."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples.append((s.name, dict(s.labels), float(s.value)))

    def value(self, name: str, **labels: str) -> float:
        return sum(
            v
            for n, lab, v in self.samples
            if n == name and all(lab.get(k) == want for k, want in labels.items())
        )

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for n, lab, v in self.samples:
            if n == name and all(lab.get(k) == want for k, want in labels.items()):
                out[lab.get(label, "")] = out.get(lab.get(label, ""), 0.0) + v
        return out


class Infra:
    """Embedded PostgreSQL and NATS in ``base``, restartable on the same port and data."""

    def __init__(self, base: Path) -> None:
        (base / "postgres").mkdir(parents=True, exist_ok=True)
        self.pg = EmbeddedPostgres(base / "postgres")
        self.nats = EmbeddedNats(base / "nats", sync_always=True)
        self.dsn = ""
        self.nats_url = ""

    async def start(self) -> None:
        admin = await asyncio.to_thread(self.pg.start)
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute("CREATE DATABASE soak")
        finally:
            await conn.close()
        self.dsn = self.pg.dsn("soak")
        self.nats_url = await asyncio.to_thread(self.nats.start)

    async def stop_pg(self, crash: bool) -> None:
        """Fast shutdown, or a crash: SIGKILL to the postmaster's whole process group."""
        if crash:
            await asyncio.to_thread(_kill_group, self.pg)
        else:
            await asyncio.to_thread(self.pg.stop)

    async def start_pg(self) -> None:
        await asyncio.to_thread(self.pg.start, 120.0)

    async def stop_nats(self, crash: bool) -> None:
        await asyncio.to_thread(self.nats.kill if crash else self.nats.stop)

    async def start_nats(self) -> None:
        await asyncio.to_thread(self.nats.start)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.nats.stop()
        with contextlib.suppress(Exception):
            self.pg.stop()


def _kill_group(server: EmbeddedPostgres) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    # The postmaster runs in its own session (start_new_session): its group is its backends.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    server.proc = None
