"""The alert rules and the Prometheus config pass promtool, and their unit tests pass.

Also: every alert of the issue is there, each has a severity and a runbook link whose anchor is a
heading of docs/runbook.md.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.deploy.support import DEPLOY, DOCS, require_tool, run

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"

REQUIRED_ALERTS = {
    "FillstreamAccountNotStreaming",  # an account not streaming for 2 m
    "FillstreamFillsMissedByStream",  # any fill missed by the stream
    "FillstreamCursorLagHigh",  # cursor lag over 10 m
    "FillstreamOutboxGrowing",  # outbox pending growing for 5 m
    "FillstreamListenKeyKeepaliveFailing",  # listenKey keepalive failures
    "FillstreamRestWeightHigh",  # REST weight over 80%
    "FillstreamAuthFailed",  # auth_failed
}


def _promtool(*args: str) -> str:
    promtool = require_tool("promtool")
    done = run(promtool, *args, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of ``markdown``."""
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_promtool_check_rules() -> None:
    assert "SUCCESS" in _promtool("check", "rules", RULES.name)


def test_promtool_check_config() -> None:
    assert "SUCCESS" in _promtool("check", "config", PROM_CONFIG.name)


def test_promtool_rule_unit_tests() -> None:
    assert "SUCCESS" in _promtool("test", "rules", RULE_TESTS.name)


def test_every_required_alert_exists_and_is_unit_tested() -> None:
    names = {rule["alert"] for rule in _alerts()}
    assert names >= REQUIRED_ALERTS
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names <= tested, f"alerts never shown firing in a unit test: {names - tested}"


def test_every_alert_has_severity_and_a_runbook_entry() -> None:
    anchors = github_anchors((DOCS / "runbook.md").read_text())
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/runbook.md", url
        assert anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"docs/runbook.md has no heading for {rule['alert']}"
