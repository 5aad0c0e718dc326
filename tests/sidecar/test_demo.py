"""``fillstream demo --duration S``: embedded servers, simulator, service, faults; exits 0 with a
summary showing ground truth = PostgreSQL = JetStream, having used both paths."""

from __future__ import annotations

import re

from tests.sidecar.harness import run_cli


async def test_demo_runs_and_agrees_with_ground_truth() -> None:
    code, out = await run_cli(["demo", "--duration", "15", "--no-view"], timeout_s=240)
    assert code == 0, out
    assert re.search(r"^NATS +nats://127\.0\.0\.1:\d+", out, re.M)
    assert re.search(r"^metrics +http://127\.0\.0\.1:\d+/metrics", out, re.M)
    assert re.search(r"^watch it: fillstream tail --nats nats://127\.0\.0\.1:\d+$", out, re.M)
    assert "RESULT: ground truth = PostgreSQL = JetStream (fills and closes)" in out
    # Both paths delivered: alpha drops a share of its events, which only REST can recover.
    dropped = re.search(r"^  fill events dropped +(\d+)$", out, re.M)
    assert dropped is not None and int(dropped.group(1)) > 0
    fills = re.search(r"^alpha fills +(\d+) +(\d+) +(\d+)$", out, re.M)
    assert fills is not None and int(fills.group(1)) > 50
    assert len(set(fills.groups())) == 1
    closes = re.search(r"^alpha closes +(\d+) +(\d+) +(\d+)$", out, re.M)
    assert closes is not None and int(closes.group(1)) > 0
