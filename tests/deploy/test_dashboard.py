"""The Grafana dashboard: valid JSON, valid PromQL, the panels the issue asks for, a sane layout.

PromQL is checked by promtool: every panel query (Grafana variables substituted) becomes a
recording rule of a throw-away rule file, which ``promtool check rules`` parses.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.promql import dashboard, dashboard_exprs, metric_names, panels
from tests.deploy.support import DEPLOY, require_tool, run

# The issue's list, each with the metric that shows it.
REQUIRED_METRICS = {
    "fills/s by source": "fillstream_fills_total",
    "missed by the stream": "fillstream_fills_missed_by_stream_total",
    "stream state per account": "fillstream_stream_state",
    "reconnects by reason": "fillstream_stream_reconnects_total",
    "listenKey outcomes": "fillstream_listen_key_operations_total",
    "last-event age": "fillstream_stream_last_event_age_seconds",
    "event latency percentiles": "fillstream_stream_event_lag_seconds_bucket",
    "reconcile runs": "fillstream_reconcile_runs_total",
    "reconcile duration": "fillstream_reconcile_duration_seconds_bucket",
    "cursor lag": "fillstream_reconcile_cursor_lag_seconds",
    "REST weight": "fillstream_rest_weight_used",
    "outbox pending": "fillstream_outbox_pending",
    "closes by reason": "fillstream_closes_total",
    "spot balance facts": "fillstream_balance_changes_total",
    "spot WS-API subscriptions": "fillstream_wsapi_subscriptions",
}


def test_dashboard_identity_and_datasource() -> None:
    dash = dashboard()
    assert dash["uid"] == "fillstream"
    assert dash["title"] == "fillstream"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"account", "market"} <= set(variables)
    for panel in panels(dash):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert panel.get("description"), f"panel {panel['title']!r} has no description"


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs().values()))
    missing = {what: m for what, m in REQUIRED_METRICS.items() if m not in used}
    assert not missing


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, expr in enumerate(dashboard_exprs(substitute=True).values())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run(promtool, "check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load((prov / "dashboards" / "fillstream.yaml").read_text())
    path = boards["providers"][0]["options"]["path"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/fillstream.json:{path}/fillstream.json:ro" in mounts
