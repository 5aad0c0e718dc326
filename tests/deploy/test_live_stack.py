"""The shipped deployment, run for real without a container engine.

The compose stack's ``sim`` profile, process by process: ``fillstream sim`` with the command line
of compose's ``sim`` service, and ``fillstream run`` with ``deploy/compose/fillstream.sim.toml``
and the environment of compose's ``fillstream-sim`` service (only the addresses are changed, by
``FILLSTREAM_…`` overrides, to loopback ports; PostgreSQL and NATS are the test servers). A real
Prometheus (Debian's ``prometheus`` binary) runs ``deploy/prometheus/prometheus.yml`` with
``alerts.yml`` against it. Checked:

* every metric the dashboard and the alerts use is served on /metrics, and the served set is the
  documented one (docs/metrics.md);
* /healthz and /readyz answer as the probes expect, and the Dockerfile's HEALTHCHECK command
  passes against /healthz (and fails against a closed port);
* Prometheus scrapes fillstream and a PromQL query over its HTTP API sees fills by source
  increase; every dashboard query evaluates; the alert rules load, and FillstreamFillsMissedByStream
  fires after the simulator drops stream events;
* SIGTERM stops the service cleanly within the compose/Kubernetes grace period.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import asyncpg
import pytest
import pytest_asyncio
import yaml

from fillstream.sidecar.embedded import free_port
from tests.deploy.catalog import MetricSpec, family_of
from tests.deploy.promql import dashboard_exprs, referenced_metrics
from tests.deploy.support import DEPLOY, DOCS, require_tool

T = TypeVar("T")
FILLSTREAM = Path(sys.executable).parent / "fillstream"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
GRACE_S = 30.0  # compose stop_grace_period of the fillstream services


class Live(NamedTuple):
    http: str  # http://127.0.0.1:<port> of fillstream
    admin: str  # the simulator's admin URL
    service: subprocess.Popen[bytes]
    log: Path


class Prom(NamedTuple):
    url: str


def wait_for(check: Callable[[], T | None], what: str, timeout_s: float = 60.0) -> T:
    """Poll ``check`` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our loopback URL)
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def http_post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 (our loopback URL)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(response.status)


def _log_tail(path: Path, lines: int = 30) -> str:
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


# ----------------------------------------------------------------------------------- fixtures


@pytest_asyncio.fixture(scope="module")
async def live_database(pg_admin_dsn: str) -> AsyncIterator[str]:
    name = f"fs_live_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{pg_admin_dsn.rpartition('/')[0]}/{name}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = GRACE_S) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return int(proc.returncode)


def _start_sim(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """compose's ``sim`` command, on a free loopback port, with a faster generator."""
    command = list(COMPOSE["services"]["sim"]["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(free_port())
    ready = workdir / "sim-ready.json"
    log = (workdir / "sim.log").open("wb")
    proc = subprocess.Popen(
        [str(FILLSTREAM), *command, "--rate", "20", "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, "the simulator", 30)
        assert proc.poll() is None, _log_tail(workdir / "sim.log")
        info: dict[str, Any] = json.loads(ready.read_text())
    except BaseException:
        _stop(proc)
        raise
    return proc, info


@pytest.fixture(scope="module")
def live(
    live_database: str, nats_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("live-stack")
    sim, info = _start_sim(workdir)
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    spec = COMPOSE["services"]["fillstream-sim"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FILLSTREAM_")},
        **{k: str(v) for k, v in spec["environment"].items()},
        # Only the addresses differ from compose: loopback ports instead of service names.
        "FILLSTREAM_DSN": live_database,
        "FILLSTREAM_NATS__SERVERS": nats_server_url,
        "FILLSTREAM_NATS__STREAM": f"FS_LIVE_{tag.upper()}",
        "FILLSTREAM_NATS__SUBJECT_PREFIX": f"fslive{tag}",
        "FILLSTREAM_HTTP__LISTEN": f"127.0.0.1:{port}",
        "FILLSTREAM_ACCOUNTS__ALPHA__REST_URL": info["rest_url"],
        "FILLSTREAM_ACCOUNTS__ALPHA__WS_URL": info["ws_url"],
        # Find what the stream missed within seconds, not the default minute.
        "FILLSTREAM_RECONCILE__INTERVAL_S": "1",
    }
    config = DEPLOY / "compose" / "fillstream.sim.toml"
    log_path = workdir / "fillstream.log"
    log = log_path.open("wb")
    service = subprocess.Popen(
        [str(FILLSTREAM), "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    http = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: service.poll() is not None or http_get(f"{http}/readyz")[0] == 200,
            "fillstream /readyz",
        )
        assert service.poll() is None, _log_tail(log_path)
        yield Live(http=http, admin=info["admin_url"], service=service, log=log_path)
    finally:
        _stop(service)
        _stop(sim)


@pytest.fixture(scope="module")
def prometheus(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    port = free_port()
    for job in config["scrape_configs"]:
        target = (
            urllib.parse.urlsplit(live.http).netloc if job["job_name"] == "fillstream" else None
        )
        job["static_configs"] = [{"targets": [target or f"127.0.0.1:{port}"]}]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    for rule_file in config["rule_files"]:
        shutil.copy(DEPLOY / "prometheus" / rule_file, workdir / rule_file)
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: proc.poll() is not None or http_get(f"{url}/-/ready")[0] == 200,
            "prometheus /-/ready",
        )
        assert proc.poll() is None, _log_tail(workdir / "prometheus.log")
        yield Prom(url)
    finally:
        _stop(proc)


def query(prom: Prom, promql: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{prom.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    answer = json.loads(body) if body else {}
    assert status == 200 and answer.get("status") == "success", (promql, status, body)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def scalar_by(prom: Prom, promql: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in query(prom, promql)}


# ---------------------------------------------------------------------------------------- tests


def _served(live: Live) -> dict[str, MetricSpec]:
    status, text = http_get(f"{live.http}/metrics")
    assert status == 200
    types = re.findall(r"^# TYPE (fillstream_[a-z0-9_]+) (\w+)$", text, re.M)
    return {
        name: MetricSpec(name, kind, ())
        for name, kind in types
        if not (name.endswith("_created") and kind == "gauge")
    }


def test_every_metric_of_the_dashboard_and_alerts_is_served(live: Live) -> None:
    served = _served(live)
    missing = {
        name: sorted(where)
        for name, where in referenced_metrics().items()
        if family_of(name, served) is None
    }
    assert not missing


def test_served_metrics_are_the_documented_ones(live: Live) -> None:
    documented = set(
        re.findall(r"^\| `(fillstream_[a-z0-9_]+)` \|", (DOCS / "metrics.md").read_text(), re.M)
    )
    assert set(_served(live)) == documented


def test_probe_endpoints(live: Live) -> None:
    status, body = http_get(f"{live.http}/healthz")
    assert status == 200, body
    status, body = http_get(f"{live.http}/readyz")
    assert status == 200, body
    assert json.loads(body)["ready"] is True


def test_dockerfile_healthcheck_command(live: Live) -> None:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    m = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M)
    assert m, "no HEALTHCHECK CMD in exec form"
    command = json.loads(m.group(1))
    assert command[0] == "python"
    cmd = [sys.executable, *command[1:]]
    env = {**os.environ, "FILLSTREAM_HEALTH_URL": f"{live.http}/healthz"}
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    env["FILLSTREAM_HEALTH_URL"] = f"http://127.0.0.1:{free_port()}/healthz"
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode != 0


def test_prometheus_sees_fills_by_source_increase(prometheus: Prom) -> None:
    wait_for(
        lambda: scalar_by(prometheus, 'up{job="fillstream"}', "job") == {"fillstream": 1.0}, "up"
    )
    promql = "sum by (source) (fillstream_fills_total)"
    first = wait_for(lambda: scalar_by(prometheus, promql, "source").get("stream"), "stream fills")
    wait_for(
        lambda: scalar_by(prometheus, promql, "source").get("stream", 0) > first,
        "fills by source to increase",
    )
    increase = 'sum by (source) (increase(fillstream_fills_total{source="stream"}[1m]))'
    assert scalar_by(prometheus, increase, "source")["stream"] > 0


def test_every_dashboard_query_evaluates(prometheus: Prom) -> None:
    wait_for(lambda: query(prometheus, "fillstream_fills_total"), "a scrape")
    empty = []
    for where, expr in dashboard_exprs(substitute=True).items():
        if not query(prometheus, expr):
            empty.append(where)
    # Quiet metrics (no close, no reconnect yet) may be empty; the core panels may not.
    for panel in ("Fills/s by source / A", "Stream state per account / A", "Outbox pending / A"):
        assert panel not in empty


def rules_health(prom: Prom) -> dict[str, str]:
    _, body = http_get(f"{prom.url}/api/v1/rules")
    return {
        rule["name"]: rule["health"]
        for group in json.loads(body)["data"]["groups"]
        for rule in group["rules"]
    }


def _alerts(prom: Prom) -> dict[str, str]:
    status, body = http_get(f"{prom.url}/api/v1/alerts")
    assert status == 200
    return {a["labels"]["alertname"]: a["state"] for a in json.loads(body)["data"]["alerts"]}


def test_alert_rules_load_and_missed_fills_fire(live: Live, prometheus: Prom) -> None:
    expected = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {r["alert"] for g in expected["groups"] for r in g["rules"]}
    assert set(rules_health(prometheus)) == names
    wait_for(lambda: all(h == "ok" for h in rules_health(prometheus).values()), "rules evaluated")
    assert "FillstreamAuthFailed" not in _alerts(prometheus)

    # The simulator withholds the next stream events (REST still has them): the reconciler finds
    # them, fillstream_fills_missed_by_stream_total rises, and the alert fires in Prometheus.
    missed = 'sum(fillstream_fills_missed_by_stream_total{account="alpha"})'
    before = wait_for(lambda: query(prometheus, missed), "missed counter scraped")
    baseline = float(before[0]["value"][1])
    assert http_post_json(
        f"{live.admin}/_sim/faults", {"account": "alpha", "kind": "drop", "count": 5}
    ) in (200, 201)
    wait_for(
        lambda: float(query(prometheus, missed)[0]["value"][1]) > baseline,
        "the stream misses to be found and scraped",
    )
    wait_for(
        lambda: _alerts(prometheus).get("FillstreamFillsMissedByStream") == "firing",
        "FillstreamFillsMissedByStream to fire",
    )


def test_sigterm_stops_cleanly_within_the_grace_period(live: Live) -> None:
    started = time.monotonic()
    code = _stop(live.service)
    assert code == 0, _log_tail(live.log)
    assert time.monotonic() - started < GRACE_S
    assert "fillstream stopped" in live.log.read_text()
