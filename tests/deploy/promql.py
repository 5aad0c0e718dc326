"""The PromQL of the dashboard and of the alert rules, and the metric names it uses."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.deploy.support import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "fillstream.json"
RULES = DEPLOY / "prometheus" / "alerts.yml"

_METRIC = re.compile(r"\bfillstream_[a-z0-9_]+")
# Grafana's variables, replaced by values Prometheus accepts so the expressions can be checked.
_GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$account": ".*",
    "$market": ".*",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included; rows themselves excluded."""
    out: list[dict[str, Any]] = []
    for panel in (dash or dashboard())["panels"]:
        out.extend(panel.get("panels", []))
        if panel["type"] != "row":
            out.append(panel)
    return out


def dashboard_exprs(*, substitute: bool = False) -> dict[str, str]:
    """``"<panel title> / <refId>"`` -> PromQL (Grafana variables replaced if ``substitute``)."""
    exprs: dict[str, str] = {}
    for panel in panels():
        for target in panel.get("targets", []):
            expr = target["expr"]
            if substitute:
                for var, value in _GRAFANA_VARS.items():
                    expr = expr.replace(var, value)
            exprs[f"{panel['title']} / {target['refId']}"] = expr
    return exprs


def variable_queries() -> list[str]:
    return [
        v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        for v in dashboard()["templating"]["list"]
        if v["type"] == "query"
    ]


def alert_exprs() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {
        rule["alert"]: rule["expr"]
        for group in doc["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def referenced_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is used (dashboard panels, variables, alerts)."""
    uses: dict[str, set[str]] = {}
    sources = {
        **{f"dashboard: {k}": v for k, v in dashboard_exprs().items()},
        **{f"dashboard variable: {q}": q for q in variable_queries()},
        **{f"alert: {k}": v for k, v in alert_exprs().items()},
    }
    for where, expr in sources.items():
        for name in metric_names(expr):
            uses.setdefault(name, set()).add(where)
    return uses
