"""Prometheus metrics of the storage sinks (default registry; design.md §7 names)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISH_TOTAL = Counter(
    "fillstream_publish_total",
    "JetStream publishes by outcome: acked (stored), duplicate (already stored), failed",
    ["outcome"],
)
OUTBOX_PENDING = Gauge(
    "fillstream_outbox_pending",
    "Outbox rows committed to PostgreSQL and not yet acknowledged by JetStream",
)
RELAY_RETRIES = Counter(
    "fillstream_relay_retries_total",
    "Publish rounds the outbox relay had to retry (NATS down or slow)",
)
EVENT_TO_PUBLISH_SECONDS = Histogram(
    "fillstream_event_to_publish_seconds",
    "From receipt of the frame or REST row to the JetStream ack of its message",
    ["account", "market"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUARANTINED = Counter(
    "fillstream_quarantined_total",
    "Facts PostgreSQL refused for their data (out of range, constraint, invalid text), isolated "
    "from their batch and kept in the quarantine table; the rest of the batch is stored",
    ["account", "market", "kind"],
)
BALANCE_CHANGES = Counter(
    "fillstream_balance_changes_total",
    "Balance facts stored (spot: new ones only, a copy from the other path is not counted), by "
    "kind (position, delta, external_lock) and the path that delivered them first",
    ["account", "market", "kind", "source"],
)
