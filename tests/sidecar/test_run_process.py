"""``fillstream run`` as a subprocess against the simulator, the test PostgreSQL and NATS.

* endpoints: /metrics, /readyz, /status scraped while fills flow;
* SIGTERM while events flow: exit 0, listenKeys deleted, outbox empty, nothing lost after a
  restart (ground truth = PostgreSQL = JetStream);
* SIGKILL during heavy ingest, then a restart: nothing lost, nothing duplicated;
* the API secret (and the DSN password) never appear in logs, /status, /metrics or --help.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import (
    ServiceProcess,
    converge,
    outbox_pending,
    pg_fill_count,
    run_cli,
    wait_for,
    write_config,
)

DSN_PASSWORD = "dsn-password-never-shown-42"


def _with_password(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    user, _, host = rest.partition("@")
    return f"{scheme}://{user}:{DSN_PASSWORD}@{host}"


async def test_sigterm_while_events_flow_then_restart_loses_nothing(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    async with Simulator(SimConfig(accounts=("alpha", "beta"), rate=40, seed=11)) as sim:
        config, env, port = write_config(tmp_path / "fillstream.toml", sim, nats_target)
        env["TEST_DSN"] = _with_password(pg_dsn)
        secrets = [a.api_secret for a in sim.accounts] + [DSN_PASSWORD]
        service = await ServiceProcess.start(config, env, tmp_path / "run1.log", port)
        await service.wait_ready()

        async def flowing() -> bool:
            return await pg_fill_count(pg_dsn) >= 40

        await wait_for(flowing, 60, "fills stored")
        status, metrics = await service.get("/metrics")
        assert status == 200
        for name in (
            'fillstream_fills_total{account="alpha",market="usdm",source="stream"}',
            'fillstream_stream_state{account="beta",market="usdm",state="streaming"} 1.0',
            "fillstream_outbox_pending",
            "fillstream_account_restarts_total",
        ):
            assert name in metrics, name
        status, ready = await service.get_json("/readyz")
        assert status == 200
        assert ready["checks"] == {
            "postgres": "ok",
            "nats": "ok",
            "account:alpha": "ok",
            "account:beta": "ok",
            "ingest:alpha": "ok",
            "ingest:beta": "ok",
        }
        status, body = await service.get_json("/status")
        assert status == 200
        alpha = body["accounts"]["alpha"]
        assert alpha["state"] == "streaming"
        assert alpha["running"] is True
        assert alpha["stream"]["listen_key_active"] is True
        assert alpha["last_event_age_s"] is not None
        assert "outbox_pending" in alpha
        assert body["service"]["nats_connected"] is True
        _, status_text = await service.get("/status")

        # SIGTERM while the generator keeps trading.
        assert sim.keys.active("alpha") is not None
        assert await service.stop(signal.SIGTERM) == 0
        assert sim.keys.active("alpha") is None  # listenKeys deleted on the way out
        assert sim.keys.active("beta") is None
        assert await outbox_pending(pg_dsn) == 0
        logs = service.logs()
        assert '"msg":"shutting down"' in logs
        assert '"msg":"fillstream stopped"' in logs

        # Restart; stop trading; everything the venue has is in PostgreSQL and JetStream once.
        restarted = await ServiceProcess.start(config, env, tmp_path / "run2.log", port)
        await restarted.wait_ready()
        sim.pause()
        result = await converge(sim, pg_dsn, nats_target)
        assert len(result.truth.fills) > 40
        _, metrics_after = await restarted.get("/metrics")
        assert await restarted.stop(signal.SIGTERM) == 0

        _, help_text = await run_cli(["run", "--help"], env)
        for secret in secrets:
            for where, text in (
                ("run1 logs", logs),
                ("run2 logs", restarted.logs()),
                ("/status", status_text),
                ("/metrics", metrics + metrics_after),
                ("--help", help_text),
            ):
                assert secret not in text, f"secret found in {where}"


async def test_sigkill_during_heavy_ingest_then_restart(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    async with Simulator(SimConfig(accounts=("alpha",), rate=0, seed=5)) as sim:
        config, env, port = write_config(tmp_path / "fillstream.toml", sim, nats_target)
        env["TEST_DSN"] = pg_dsn
        service = await ServiceProcess.start(config, env, tmp_path / "run1.log", port)
        await service.wait_ready()
        burst = asyncio.create_task(sim.burst("alpha", "BTCUSDT", 6000, rate=3000))

        async def ingesting() -> bool:
            return await pg_fill_count(pg_dsn) >= 1000

        await wait_for(ingesting, 60, "heavy ingest under way", poll_s=0.05)
        assert await service.stop(signal.SIGKILL) == -signal.SIGKILL
        made = await burst
        assert made == 6000
        assert await pg_fill_count(pg_dsn) < 6000  # the crash really cut ingest short

        restarted = await ServiceProcess.start(config, env, tmp_path / "run2.log", port)
        await restarted.wait_ready()
        result = await converge(sim, pg_dsn, nats_target)
        assert len(result.truth.fills) == 6000
        assert result.postgres.duplicate_fills == 0
        assert result.jetstream.duplicate_fills == 0
        assert await restarted.stop() == 0
