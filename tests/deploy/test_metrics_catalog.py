"""docs/metrics.md, the dashboard and the alert rules agree with the metrics the code defines.

Static: the code's registry is read by importing every ``metrics`` module. The check against a
running fillstream's /metrics is tests/deploy/test_live_metrics.py.
"""

from __future__ import annotations

import re

from tests.deploy.catalog import MetricSpec, code_metrics, family_of
from tests.deploy.promql import alert_exprs, dashboard_exprs, referenced_metrics
from tests.deploy.support import DOCS

_ROW = re.compile(r"^\| `(fillstream_[a-z0-9_]+)` \| (\w+) \|([a-z_, ]*)\| .+ \|$", re.M)
_SELECTOR = re.compile(r"\b(fillstream_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\bby \(([^)]*)\) \((?:\w+\()*(fillstream_[a-z0-9_]+)")
TARGET_LABELS = {"job", "instance"}


def _documented() -> dict[str, MetricSpec]:
    rows = _ROW.findall((DOCS / "metrics.md").read_text())
    return {
        name: MetricSpec(name, kind, tuple(x.strip() for x in labels.split(",") if x.strip()))
        for name, kind, labels in rows
    }


def _labels(spec: MetricSpec, sample_name: str) -> set[str]:
    extra = {"le"} if sample_name.endswith("_bucket") else set()
    return set(spec.labels) | extra | TARGET_LABELS


def test_metrics_md_documents_every_metric_exactly() -> None:
    documented, defined = _documented(), code_metrics()
    undocumented = sorted(set(defined) - set(documented))
    assert not undocumented, f"add these metrics to a table in docs/metrics.md: {undocumented}"
    stale = sorted(set(documented) - set(defined))
    assert not stale, f"docs/metrics.md lists metrics the code no longer defines: {stale}"
    changed = {n: (documented[n], defined[n]) for n in defined if documented[n] != defined[n]}
    assert not changed, f"type or labels differ between docs/metrics.md and the code: {changed}"


def test_dashboard_and_alerts_use_only_defined_metrics() -> None:
    specs = code_metrics()
    unknown = {
        name: sorted(where)
        for name, where in referenced_metrics().items()
        if family_of(name, specs) is None
    }
    assert not unknown


def test_dashboard_and_alerts_use_only_labels_the_metrics_have() -> None:
    specs = code_metrics()
    exprs = {**dashboard_exprs(), **alert_exprs()}
    problems = []
    for where, expr in exprs.items():
        for name, matchers in _SELECTOR.findall(expr):
            spec = family_of(name, specs)
            used = set(_MATCHER.findall(matchers))
            if spec and not used <= _labels(spec, name):
                problems.append(f"{where}: {name} has no label {used - _labels(spec, name)}")
        for labels, name in _BY.findall(expr):
            spec = family_of(name, specs)
            used = {x.strip() for x in labels.split(",")}
            if spec and not used <= _labels(spec, name):
                problems.append(f"{where}: {name} has no label {used - _labels(spec, name)}")
    assert not problems
