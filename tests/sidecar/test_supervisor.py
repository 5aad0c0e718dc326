"""One account's failure restarts that account with backoff; the others keep running.

The service runs in this process; account ``gamma`` points at a port where nothing listens
until the test starts a second simulator there, so its supervisor crashes, backs off, restarts,
and finally streams. Meanwhile ``alpha`` streams, /readyz names gamma, /status shows its
restarts and last error, and the crash tracebacks in the log carry no secret.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from fillstream.ledger import StreamState
from fillstream.sidecar.config import load_config
from fillstream.sidecar.embedded import free_port
from fillstream.sidecar.logs import setup_logging
from fillstream.sidecar.service import Service
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import pg_fill_count, wait_for, write_config


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    setup_logging("INFO", "json", out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_crashing_account_restarts_alone(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    gamma_port = free_port()
    gamma_sim = Simulator(SimConfig(accounts=("gamma",), rate=20, seed=3, port=gamma_port))
    gamma_url = f"127.0.0.1:{gamma_port}"
    async with Simulator(SimConfig(accounts=("alpha",), rate=20, seed=2)) as sim:
        path, env, _ = write_config(
            tmp_path / "fillstream.toml",
            sim,
            nats_target,
            port=0,
            extra_accounts=[("gamma", f"http://{gamma_url}", f"ws://{gamma_url}")],
        )
        (gamma,) = gamma_sim.accounts
        env |= {"TEST_DSN": pg_dsn, "GAMMA_API_KEY": gamma.api_key}
        env["GAMMA_API_SECRET"] = gamma.api_secret
        service = Service(load_config(path, env), env)
        await service.start()
        stop = asyncio.Event()
        serving = asyncio.create_task(service.serve(stop))
        try:
            alpha, gamma_sup = service.supervisors["alpha"], service.supervisors["gamma"]

            async def gamma_restarted_twice_alpha_streams() -> bool:
                return gamma_sup.restarts >= 2 and alpha.state is StreamState.STREAMING

            await wait_for(gamma_restarted_twice_alpha_streams, 60, "gamma crashing alone")
            await wait_for(lambda: _fills(pg_dsn), 60, "alpha's fills stored")
            ready = await service.readiness()
            assert not ready.ready
            assert ready.checks["account:alpha"] == "ok"
            assert ready.checks["account:gamma"] == "restarting"
            status = await service.status()
            g = status["accounts"]["gamma"]
            assert g["running"] is False
            assert g["restarts"] >= 2
            assert "VenueError" in g["last_error"]
            restarts = REGISTRY.get_sample_value(
                "fillstream_account_restarts_total", {"account": "gamma", "market": "usdm"}
            )
            assert restarts is not None and restarts >= 2

            async with aiohttp.ClientSession() as http:
                url = f"{service.http_url}/reconcile?account=alpha"
                async with http.post(url) as r:
                    assert r.status == 202
                    assert (await r.json())["triggered"] is True

            # The venue comes up: gamma's supervisor brings the account back by itself.
            await gamma_sim.start()

            async def all_ready() -> bool:
                return (await service.readiness()).ready

            await wait_for(all_ready, 60, "gamma recovered")
        finally:
            stop.set()
            await serving
            await gamma_sim.aclose()
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    crashes = [x for x in lines if x["msg"] == "account crashed; restarting"]
    assert crashes
    assert all(x["account"] == "gamma" and "Traceback" in x["exc"] for x in crashes)
    text = captured_logs.getvalue()
    for secret in (gamma.api_secret, *(a.api_secret for a in sim.accounts)):
        assert secret not in text


async def _fills(dsn: str) -> bool:
    return await pg_fill_count(dsn) >= 10
