"""The chaos soak, short: every fault kind once or more, then zero discrepancies.

Runs ``python -m benchmarks.soak`` as a child process (it starts its own PostgreSQL and NATS,
which it crashes and restarts, and SIGKILLs its own ``fillstream run``), about a minute of wall
time, and asserts exit 0 and a clean JSON report: ground truth = PostgreSQL = JetStream (count,
ids, every field), closes equal, attribution and metrics consistent. The 10-minute version is
``python -m benchmarks.soak --duration 600 --rate 500 --accounts 4`` (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks.soak_faults import ALL_KINDS

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_soak_has_zero_discrepancies(tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.soak",
        "--duration", "45",
        "--rate", "40",
        "--accounts", "2",
        "--seed", "7",
        "--fault-interval", "1.6",
        "--reconcile-interval", "3",
        "--settle-timeout", "60",
        "--output", str(output),
        "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    log = tmp_path / "soak.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            code = proc.wait(timeout=270)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the soak stops its servers on SIGTERM
            code = proc.wait(timeout=25)
    tail = log.read_text()[-6000:]
    assert code == 0, tail
    report = json.loads(output.read_text())
    assert report["result"] == "PASS", tail
    assert report["discrepancies"] == 0, tail
    assert set(report["faults_by_kind"]) >= set(ALL_KINDS), report["faults_by_kind"]
    assert all(c["ok"] for c in report["checks"]), tail
    assert report["fills"] > 500, tail
    # Both paths delivered: the stream most fills, the reconcile path what the faults hid.
    totals = report["accounts"].values()
    assert sum(a["stream"] for a in totals) > sum(a["reconcile"] for a in totals) > 0
