"""fillstream's metric catalogue, read from the code: every ``fillstream_`` metric that the
packages' ``metrics`` modules register in the default Prometheus registry."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, NamedTuple

from prometheus_client import REGISTRY

import fillstream


class MetricSpec(NamedTuple):
    name: str  # as exposed: counters with their _total suffix
    type: str
    labels: tuple[str, ...]


def code_metrics() -> dict[str, MetricSpec]:
    for module in pkgutil.walk_packages(fillstream.__path__, "fillstream."):
        if module.name.rsplit(".", 1)[-1].endswith("metrics"):
            importlib.import_module(module.name)
    specs: dict[str, MetricSpec] = {}
    # prometheus_client keeps no public list of collectors; its metric objects keep their
    # name, type and label names in these attributes.
    collectors: Any = REGISTRY._collector_to_names
    for collector in list(collectors):
        name = getattr(collector, "_name", "")
        if not name.startswith("fillstream_"):
            continue
        kind = collector._type
        exposed = f"{name}_total" if kind == "counter" else name
        specs[exposed] = MetricSpec(exposed, kind, tuple(collector._labelnames))
    return specs


def family_of(sample_name: str, specs: dict[str, MetricSpec]) -> MetricSpec | None:
    """The metric a PromQL series name belongs to (``x_bucket`` → histogram ``x``)."""
    if sample_name in specs:
        return specs[sample_name]
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name.removesuffix(suffix)
        if base != sample_name and base in specs and specs[base].type == "histogram":
            return specs[base]
    return None
