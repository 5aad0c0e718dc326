"""Spot idle: N spot accounts (default 200) in one ``fillstream run`` process, nothing trading.

    python -m benchmarks.spot_idle [--accounts 200] [--window 60] [--per-connection 50]
                                   [--history-s 2] [--wait-startup] [--quick]

The simulator runs in a child process with N spot accounts (HMAC keys, its default spot symbols,
the real 6,000 weight a minute shared by spot REST and the WS API); its generator makes
``--history-s`` seconds of fills, then pauses. ``fillstream run`` runs in another child process
(embedded PostgreSQL and NATS JetStream, ``sync_interval: always``) with the production defaults
for the stream and reconcile timers and ``[spot] accounts_per_connection``
(``--per-connection``): the accounts share N / per-connection WS-API connections. Then:

1. **start-up**: seconds until every account streams (``/status``) and until every start gap is
   served (``fillstream_reconcile_runs_total{trigger="gap"}``); with ``--wait-startup`` also
   until every start-up reconcile has ended (at the real weight, 200 accounts' start-up history
   takes about half an hour: each account's balances name several symbols, each asked at 20
   weight);
2. **idle** (``--window`` s, a sixth of it later): CPU of the fillstream process (% of one core,
   from ``/proc``) and its RSS (max sampled each second). Nothing trades, every subscription is
   live (the server pings each connection every 20 s), and the REST side works through the
   start-up history and the periodic polls, which for 200 accounts want more weight than a
   minute has: it runs at the budget's limit, so the window measures what 200 quiet accounts
   cost on the venue's real budget (the weight charged per minute is reported beside it).

Prints a table and writes ``benchmarks/results/spot_idle.json``. Goal (issue 14): 200 accounts
idle < 5 % of a core and < 300 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.scale import _CONFIG, Sim, _done, _streaming, _window
from benchmarks.soak_service import ServiceProcess
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres, free_port

RESULTS = Path(__file__).parent / "results" / "spot_idle.json"
TARGETS = {"idle_cpu_pct_of_core": 5.0, "idle_rss_mib": 300.0}
SPOT_WEIGHT_LIMIT = 6000  # the simulator's default, Binance's (binance-wave2.md §A.5)


_ACCOUNT = """
[[accounts]]
name = "{name}"
market = "spot"
api_key_env = "K_{env}"
api_secret_env = "S_{env}"
endpoints = "custom"
rest_url = "{rest}"
ws_url = "{ws}"
"""


class SpotSim(Sim):
    """``fillstream sim`` with every account on spot (HMAC keys), the real 6,000 weight a minute."""

    def cli_args(self) -> list[str]:
        return [
            "--accounts", "", "--spot-accounts", ",".join(self.accounts),
            "--rate", str(self.args.rate),
        ]  # fmt: skip

    def config(self, path: Path, nats_url: str, dsn: str, tag: str) -> tuple[dict[str, str], int]:
        port = free_port()
        text = _CONFIG.format(nats=nats_url, stream=f"SPOT{tag}", prefix=f"spot{tag}", port=port)
        text += f"\n[spot]\naccounts_per_connection = {self.args.per_connection}\n"
        env = {"SCALE_DSN": dsn}
        for account in self.info["accounts"]:
            key = account["name"].upper()
            rest, ws = self.info["rest_url"], account["ws_api_url"]
            text += _ACCOUNT.format(name=account["name"], env=key, rest=rest, ws=ws)
            env[f"K_{key}"] = account["api_key"]
            env[f"S_{key}"] = account["api_secret"]
        path.write_text(text)
        return env, port


async def _started(service: ServiceProcess, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Poll until every account streams and has its start gap served (and, with
    ``--wait-startup``, its start-up reconcile ended): the seconds each took."""
    t0 = time.monotonic()
    marks: dict[str, float | None] = {"streaming": None, "gaps": None, "startup": None}
    wanted = ("streaming", "gaps", "startup") if args.wait_startup else ("streaming", "gaps")
    while any(marks[k] is None for k in wanted):
        elapsed = time.monotonic() - t0
        if elapsed > args.startup_timeout:
            raise TimeoutError(f"{n} spot accounts not started in {elapsed:.0f} s: {marks}")
        if service.reap_unexpected() is not None:
            raise RuntimeError(f"fillstream exited; see {service.log_path}")
        if marks["streaming"] is None and await _streaming(service, n) == n:
            marks["streaming"] = elapsed
        if marks["streaming"] is not None:
            metrics = await service.metrics()
            for key, trigger in (("gaps", "gap"), ("startup", "startup")):
                if marks[key] is None and _done(metrics, trigger) == n:
                    marks[key] = time.monotonic() - t0
        await asyncio.sleep(0.5)
    return marks


async def measure(args: argparse.Namespace, pg: EmbeddedPostgres, nats_url: str) -> dict[str, Any]:
    n = args.accounts
    names = [f"spot{i:03d}" for i in range(n)]
    base = Path(tempfile.mkdtemp(prefix="fillstream-spot-idle-"))
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute(f"CREATE DATABASE spotidle{n}")
    await admin.close()
    try:
        async with SpotSim(names, args) as sim:
            config = base / "fillstream.toml"
            env, port = sim.config(config, nats_url, pg.dsn(f"spotidle{n}"), f"SPOT{n}")
            service = ServiceProcess(config, env, port, base)
            before = (await sim.status())["spot"]["rest"]
            await service.spawn()
            try:
                marks = await _started(service, n, args)
                assert service.proc is not None
                await asyncio.sleep(args.window / 6)  # the start gaps' stragglers
                at_start = (await sim.status())["spot"]
                cpu, rss = await _window(service.proc.pid, args.window)
                spot = (await sim.status())["spot"]
                startup_done = _done(await service.metrics(), "startup")
            finally:
                await service.aclose()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    window_weight = spot["rest"]["weight_total"] - at_start["rest"]["weight_total"]
    startup_s = marks["startup"]
    assert marks["streaming"] is not None and marks["gaps"] is not None
    row = {
        "accounts": n,
        "accounts_per_connection": args.per_connection,
        "ws_api_connections": spot["ws_api"]["connections"],
        "all_streaming_s": round(marks["streaming"], 1),
        "all_gaps_served_s": round(marks["gaps"], 1),
        "all_startup_reconciled_s": None if startup_s is None else round(startup_s, 1),
        "startup_reconciles_done_after_window": startup_done,
        "idle_window_s": args.window,
        "idle_cpu_pct_of_core": round(cpu, 2),
        "idle_rss_mib": round(rss, 1),
        # What the REST side did meanwhile, as the venue charged it (spot REST + WS API).
        "window_weight_per_min": round(window_weight / args.window * 60),
        "weight_limit_per_min": SPOT_WEIGHT_LIMIT,
        "rest_429_418": sum(spot["rest"][k] - before[k] for k in ("429", "418")),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    return row


def print_row(row: dict[str, Any]) -> None:
    ok = {k: row[k] <= v for k, v in TARGETS.items()}
    startup = row["all_startup_reconciled_s"]
    print(
        f"\nSpot idle: {row['accounts']} accounts, {row['accounts_per_connection']} per WS-API "
        f"connection ({row['ws_api_connections']} connections at the venue)"
    )
    print(f"  {'measure':34} {'value':>10} {'goal':>8}")
    lines: list[tuple[str, object, str]] = [
        ("all streaming (s)", row["all_streaming_s"], ""),
        ("all start gaps served (s)", row["all_gaps_served_s"], ""),
        ("all start-up reconciles (s)", "-" if startup is None else startup, ""),
        ("start-up reconciles done", row["startup_reconciles_done_after_window"], ""),
        ("REST weight/min in the window", row["window_weight_per_min"], ""),
        ("429/418 answers", row["rest_429_418"], "0"),
    ]
    for key, label in (
        ("idle_cpu_pct_of_core", "idle CPU (% of a core)"),
        ("idle_rss_mib", "RSS (MiB)"),
    ):
        lines.append((label, row[key], f"< {TARGETS[key]:g} {'ok' if ok[key] else 'MISSED'}"))
    for label, value, goal in lines:
        print(f"  {label:34} {value!s:>10} {goal:>8}")
    print(f"  1-min load after the window: {row['loadavg_1m_after']}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pg = EmbeddedPostgres()
    ns = EmbeddedNats(sync_always=True)
    load_before = round(os.getloadavg()[0], 2)
    try:
        await asyncio.to_thread(pg.start)
        nats_url = await asyncio.to_thread(ns.start)
        row = await measure(args, pg, nats_url)
    finally:
        await asyncio.to_thread(ns.close)
        await asyncio.to_thread(pg.close)
    return {
        "benchmark": "spot_idle",
        "command": "python -m benchmarks.spot_idle " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m_before": load_before,
        },
        "run": row,
        "targets": TARGETS,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spot_idle", description=__doc__)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--per-connection", type=int, default=50, help="[spot] setting")
    parser.add_argument("--rate", type=float, default=1.0, help="fills/s per account (history)")
    parser.add_argument("--history-s", type=float, default=2.0, help="seconds of history")
    parser.add_argument("--startup-timeout", type=float, default=3600.0, help="seconds")
    parser.add_argument(
        "--wait-startup",
        action="store_true",
        help="measure only after every start-up reconcile ended (200 accounts: half an hour)",
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds of idle measured")
    parser.add_argument("--quick", action="store_true", help="20 s window")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.window = 20.0
    report = asyncio.run(main_async(args))
    print_row(report["run"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
