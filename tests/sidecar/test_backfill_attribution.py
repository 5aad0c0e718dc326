"""The first start against an account with history: the start-up backfill's fills are counted
and logged as ``before_stream``, not as missed by the stream; a fill the stream then loses is."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from fillstream.ledger import StreamState
from fillstream.sidecar.config import load_config
from fillstream.sidecar.logs import setup_logging
from fillstream.sidecar.service import Service
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import pg_fill_count, wait_for, write_config

ACCOUNT = "histo"
HISTORY = 24


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    setup_logging("INFO", "text", out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"account": ACCOUNT, "market": "usdm", **labels}) or 0.0


def attribution() -> tuple[float, float, float]:
    return (
        metric("fillstream_fills_before_stream_total"),
        metric("fillstream_fills_missed_by_stream_total"),
        metric("fillstream_fills_total", source="reconcile"),
    )


async def test_startup_backfill_is_history_not_missed(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    async with Simulator(SimConfig(accounts=(ACCOUNT,), rate=0, seed=11)) as sim:
        assert await sim.burst(ACCOUNT, "BTCUSDT", HISTORY) == HISTORY  # before fillstream runs
        path, env, _ = write_config(tmp_path / "fillstream.toml", sim, nats_target, port=0)
        env["TEST_DSN"] = pg_dsn
        before = attribution()
        service = Service(load_config(path, env), env)
        await service.start()
        stop = asyncio.Event()
        serving = asyncio.create_task(service.serve(stop))
        try:
            supervisor = service.supervisors[ACCOUNT]

            async def backfilled_and_streaming() -> bool:
                return (
                    supervisor.state is StreamState.STREAMING
                    and await pg_fill_count(pg_dsn) == HISTORY
                )

            await wait_for(backfilled_and_streaming, 60, "history stored, stream up")
            history = tuple(a - b for a, b in zip(attribution(), before, strict=True))
            assert history == (HISTORY, 0, HISTORY)
            log_text = captured_logs.getvalue()
            assert f"{HISTORY} fill(s) from before the stream's first session" in log_text
            assert "missed" not in log_text

            # Now the stream is up: the fill events it never receives are missed by it.
            sim.inject(ACCOUNT, "drop", count=8)  # events of every kind; some are fills
            assert await sim.burst(ACCOUNT, "ETHUSDT", 10) == 10

            async def all_stored() -> bool:
                return await pg_fill_count(pg_dsn) == HISTORY + 10

            await wait_for(all_stored, 60, "the new fills stored")
            doc = sim.ground_truth()["accounts"][ACCOUNT]
            lost = doc["dropped_fill_events"]
            assert lost > 0

            async def attributed() -> bool:
                return bool(attribution()[2] - before[2] == HISTORY + lost)

            await wait_for(attributed, 60, "the dropped fills recovered over REST")
            after = tuple(a - b for a, b in zip(attribution(), before, strict=True))
            assert after == (HISTORY, lost, HISTORY + lost)
        finally:
            stop.set()
            await serving
