"""Scale: 1 to 500 accounts in one ``fillstream run`` process on one IP's real weight budget.

    python -m benchmarks.scale [--accounts 1,10,100,500] [--window 60] [--rate 5] [--quick]
                               [--weight-limit 2400] [--history-s 4] [--symbols BTCUSDT,...]

For each account count: a fresh simulator (child process, one venue, every account on it), a
fresh database and JetStream stream on the same embedded PostgreSQL and NATS
(``sync_interval: always``), and ``fillstream run`` as a child process with the production
defaults for the stream and reconcile timers (60 s poll, 2 s settle, 30 min keepalive). Then:

1. **start-up**, against the simulator's real 2,400 weight a minute (``--weight-limit``), every
   account with ``--history-s`` seconds of fills on ``--symbols`` made before the service starts:
   seconds until every account streams (``/status``), until every start gap is served and
   every start-up reconcile has ended (``fillstream_reconcile_runs_total``; how many ended
   ``ok`` is reported), the weight the
   venue charged (per minute of start-up), its 429/418 answers (must be 0), and the bound the
   budget sets: the start-up's weight over the usable weight a minute (80% of the limit);
2. **idle** (``--window`` s, generator paused): CPU of the fillstream process (% of one core,
   from ``/proc``), RSS (max sampled each second), over a window that includes the slow polls,
   keepalives and pings of every account;
3. **load** (``--window`` s, ``--rate`` fills/s per account): CPU, RSS, fills/s stored, and
   latency receipt → JetStream ack from the service's own histogram
   ``fillstream_event_to_publish_seconds`` (every account summed; quantiles interpolated within
   buckets as PromQL's ``histogram_quantile`` does).

Prints a table and writes ``benchmarks/results/scale.json``. Targets: design.md §9 and issue 18
(100 accounts streaming ≤ 15 s, 500 ≤ 60 s, no 429, idle < 2% of a core and < 150 MiB).
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

import aiohttp
import asyncpg
import msgspec

from benchmarks.end_to_end import proc_cpu_s
from benchmarks.soak_service import Metrics, ServiceProcess
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres, free_port

RESULTS = Path(__file__).parent / "results" / "scale.json"
LATENCY = "fillstream_event_to_publish_seconds"
RUNS = "fillstream_reconcile_runs_total"
HEADROOM = 0.2  # the budget's default: it plans on 80% of the limit

_CONFIG = """\
[database]
dsn_env = "SCALE_DSN"
pool_min_size = 2
pool_max_size = 10

[nats]
servers = ["{nats}"]
stream = "{stream}"
subject_prefix = "{prefix}"

[http]
listen = "127.0.0.1:{port}"

[logging]
level = "WARNING"
format = "json"
"""

_ACCOUNT = """
[[accounts]]
name = "{name}"
api_key_env = "K_{env}"
api_secret_env = "S_{env}"
endpoints = "custom"
rest_url = "{rest}"
ws_url = "{ws}"
"""


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """PromQL's ``histogram_quantile`` over cumulative ``(le, count)`` pairs (seconds)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            span = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / span if span else 1.0)
        prev_le, prev_count = le, count
    return prev_le


def latency_buckets(before: Metrics, after: Metrics) -> list[tuple[float, float]]:
    def sums(m: Metrics) -> dict[float, float]:
        out: dict[float, float] = {}
        for name, labels, value in m.samples:
            if name == f"{LATENCY}_bucket":
                le = float(labels["le"])
                out[le] = out.get(le, 0.0) + value
        return out

    a, b = sums(before), sums(after)
    return [(le, b[le] - a.get(le, 0.0)) for le in b]


class Sim:
    """``fillstream sim`` in a child process, driven through its admin API."""

    def __init__(self, accounts: list[str], args: argparse.Namespace) -> None:
        self.accounts = accounts
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}

    def cli_args(self) -> list[str]:
        """What ``fillstream sim`` is told besides the module: the accounts and their activity."""
        args = self.args
        return [
            "--accounts", ",".join(self.accounts), "--rate", str(args.rate),
            "--symbols", args.symbols, "--weight-limit", str(args.weight_limit),
        ]  # fmt: skip

    async def __aenter__(self) -> Sim:
        args = self.args
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fillstream.simulator.cli", *self.cli_args(),
            stdout=asyncio.subprocess.PIPE, limit=1 << 24,  # 500 accounts' keys: one long line
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        self.info = msgspec.json.decode(line)
        await asyncio.sleep(args.history_s)  # history: the generator runs before we start
        await self.admin("pause")
        return self

    async def status(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.info['admin_url']}/_sim/status") as resp,
        ):
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json()
            return body

    async def __aexit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def admin(self, action: str) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.info['admin_url']}/_sim/{action}") as resp,
        ):
            resp.raise_for_status()

    def config(self, path: Path, nats_url: str, dsn: str, tag: str) -> tuple[dict[str, str], int]:
        port = free_port()
        text = _CONFIG.format(nats=nats_url, stream=f"SCALE{tag}", prefix=f"scale{tag}", port=port)
        env = {"SCALE_DSN": dsn}
        for account in self.info["accounts"]:
            key = account["name"].upper()
            text += _ACCOUNT.format(
                name=account["name"], env=key, rest=self.info["rest_url"], ws=self.info["ws_url"]
            )
            env[f"K_{key}"] = account["api_key"]
            env[f"S_{key}"] = account["api_secret"]
        path.write_text(text)
        return env, port


async def _streaming(service: ServiceProcess, accounts: int) -> int:
    """How many accounts have a live socket (``/status``)."""
    status = await service.status()
    rows = status.get("accounts") if status else None
    if not isinstance(rows, dict):
        return 0
    return sum(
        1
        for r in rows.values()
        if isinstance(r, dict) and isinstance(r.get("stream"), dict) and r["stream"]["connected"]
    )


def _done(metrics: Metrics | None, trigger: str, outcome: str | None = None) -> int:
    """How many accounts finished a ``trigger`` reconcile run (with ``outcome``, or any)."""
    if metrics is None:
        return 0
    labels = {"trigger": trigger} if outcome is None else {"trigger": trigger, "outcome": outcome}
    done = metrics.by_label(RUNS, "account", **labels)
    return sum(1 for v in done.values() if v >= 1)


async def _startup(
    service: ServiceProcess, sim: Sim, n: int, timeout_s: float, until: str
) -> dict[str, Any]:
    """Poll until every account streams, served its start gap and its start-up reconcile (or
    only the first ``until`` of these)."""
    t0 = time.monotonic()
    marks: dict[str, float | None] = {"streaming": None, "gaps": None, "startup": None}
    wanted = list(marks)[: list(marks).index(until) + 1]
    while any(marks[k] is None for k in wanted):
        elapsed = time.monotonic() - t0
        if elapsed > timeout_s:
            raise TimeoutError(f"{n} accounts not started in {timeout_s:g} s: {marks}")
        if service.reap_unexpected() is not None:
            raise RuntimeError(f"fillstream exited; see {service.log_path}")
        if marks["streaming"] is None and await _streaming(service, n) == n:
            marks["streaming"] = elapsed
        if marks["streaming"] is not None:
            metrics = await service.metrics()
            for key, trigger in (("gaps", "gap"), ("startup", "startup")):
                if marks[key] is None and _done(metrics, trigger) == n:
                    marks[key] = time.monotonic() - t0
        await asyncio.sleep(0.25 if marks["streaming"] is None else 2.0)
    rest = (await sim.status())["rest"]
    ok = _done(await service.metrics(), "startup", "ok") if marks["startup"] is not None else None
    return {**marks, "rest": rest, "startup_ok": ok}


async def _window(pid: int, seconds: float) -> tuple[float, float]:
    """(CPU % of one core, max RSS MiB) of ``pid`` over ``seconds``."""
    cpu0, t0 = proc_cpu_s(pid), time.monotonic()
    rss = rss_mib(pid)
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1.0)
        rss = max(rss, rss_mib(pid))
    return (proc_cpu_s(pid) - cpu0) / (time.monotonic() - t0) * 100, rss


def _partial_row(
    n: int, started: dict[str, Any], before: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Start-up only (``--until streaming|gaps``): the long start-up reconcile is not awaited."""
    rest = started["rest"]
    row = {
        "accounts": n,
        "all_streaming_s": round(started["streaming"], 1),
        "all_gaps_served_s": None if started["gaps"] is None else round(started["gaps"], 1),
        "weight_so_far": rest["weight_total"] - before["weight_total"],
        "rest_429_418": sum(rest[k] - before[k] for k in ("429", "418")),
    }
    print(f"{n:>4} accounts (until {args.until}) {row}", flush=True)
    return row


async def measure(
    n: int, args: argparse.Namespace, pg: EmbeddedPostgres, nats_url: str
) -> dict[str, Any]:
    names = [f"acct{i:03d}" for i in range(n)]
    base = Path(tempfile.mkdtemp(prefix="fillstream-scale-"))
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute(f"CREATE DATABASE scale{n}")
    await admin.close()
    try:
        async with Sim(names, args) as sim:
            env, port = sim.config(base / "fillstream.toml", nats_url, pg.dsn(f"scale{n}"), str(n))
            service = ServiceProcess(base / "fillstream.toml", env, port, base)
            before_rest = (await sim.status())["rest"]
            await service.spawn()
            try:
                started = await _startup(service, sim, n, args.startup_timeout, args.until)
                if args.until != "startup":
                    await service.aclose()
                    return _partial_row(n, started, before_rest, args)
                assert service.proc is not None
                pid = service.proc.pid
                await asyncio.sleep(args.window / 6)  # let the start-up's stragglers finish
                idle_cpu, idle_rss = await _window(pid, args.window)
                before = await service.metrics()
                await sim.admin("resume")
                load_cpu, load_rss = await _window(pid, args.window)
                await sim.admin("pause")
                after = await service.metrics()
                if before is None or after is None:
                    raise RuntimeError(f"fillstream did not answer /metrics ({service.log_path})")
                fills = after.value("fillstream_fills_total") - before.value(
                    "fillstream_fills_total"
                )
                buckets = latency_buckets(before, after)
                p50, p99 = (histogram_quantile(q, buckets) for q in (0.5, 0.99))
                end_rest = (await sim.status())["rest"]
            finally:
                await service.aclose()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rest = started["rest"]
    weight = rest["weight_total"] - before_rest["weight_total"]
    startup_s = started["startup"]
    usable = args.weight_limit * (1 - HEADROOM)
    refusals = sum(end_rest[k] - before_rest[k] for k in ("429", "418"))
    row = {
        "accounts": n,
        "all_streaming_s": round(started["streaming"], 1),
        "all_gaps_served_s": round(started["gaps"], 1),
        "all_startup_reconciled_s": round(startup_s, 1),
        "startup_weight": weight,
        "startup_weight_per_min": round(weight / max(startup_s, 60.0) * 60),
        "budget_bound_s": round(weight / usable * 60, 1),
        "rest_429_418": refusals,
        "startup_runs_ok": started["startup_ok"],
        "startup_requests_by_route": {
            route: count - before_rest["by_route"].get(route, 0)
            for route, count in sorted(rest["by_route"].items())
        },
        "idle_cpu_pct_of_core": round(idle_cpu, 2),
        "idle_rss_mib": round(idle_rss, 1),
        "load_fills_per_s": round(fills / args.window, 1),
        "load_cpu_pct_of_core": round(load_cpu, 1),
        "load_rss_mib": round(load_rss, 1),
        "load_p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "load_p99_ms": None if p99 is None else round(p99 * 1000, 2),
    }
    print(
        f"{n:>4} accounts  streaming {row['all_streaming_s']:6.1f} s  gaps "
        f"{row['all_gaps_served_s']:6.1f} s  start-up {row['all_startup_reconciled_s']:6.1f} s "
        f"(weight {weight}, budget bound {row['budget_bound_s']} s, "
        f"{row['startup_weight_per_min']}/min)  429/418 {refusals}  idle cpu {idle_cpu:5.2f}% "
        f"rss {idle_rss:6.1f} MiB  |  load {row['load_fills_per_s']:7.1f} fills/s cpu "
        f"{load_cpu:5.1f}% rss {load_rss:6.1f} MiB  p50 {row['load_p50_ms']} ms "
        f"p99 {row['load_p99_ms']} ms",
        flush=True,
    )
    return row


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pg = EmbeddedPostgres()
    ns = EmbeddedNats(sync_always=True)
    rows = []
    try:
        await asyncio.to_thread(pg.start)
        nats_url = await asyncio.to_thread(ns.start)
        for n in args.accounts:
            rows.append(await measure(n, args, pg, nats_url))
    finally:
        await asyncio.to_thread(ns.close)
        await asyncio.to_thread(pg.close)
    return {
        "benchmark": "scale",
        "command": "python -m benchmarks.scale " + " ".join(sys.argv[1:]),
        "window_s": args.window,
        "rate_per_account": args.rate,
        "weight_limit_per_min": args.weight_limit,
        "history_s": args.history_s,
        "symbols": args.symbols,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        },
        "runs": rows,
        "targets": {
            "all_streaming_s_100": 15,
            "all_streaming_s_500": 60,
            "rest_429_418": 0,
            "idle_cpu_pct_of_core_100": 2,
            "idle_rss_mib_100": 150,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument(
        "--accounts",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10, 100, 500],
        help="comma-separated account counts (default 1,10,100,500)",
    )
    parser.add_argument(
        "--weight-limit", type=int, default=2400, help="the venue's weight a minute (real: 2400)"
    )
    parser.add_argument(
        "--history-s", type=float, default=4.0, help="seconds of fills made before the start"
    )
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT", help="traded symbols")
    parser.add_argument("--startup-timeout", type=float, default=900.0, help="seconds")
    parser.add_argument(
        "--until",
        choices=["streaming", "gaps", "startup"],
        default="startup",
        help="start-up only up to this mark, no idle/load windows (default: all of it)",
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds per idle/load window")
    parser.add_argument("--rate", type=float, default=5.0, help="fills/s per account under load")
    parser.add_argument("--quick", action="store_true", help="20 s windows")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.window = 20.0
    report = asyncio.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
