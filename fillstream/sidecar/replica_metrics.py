"""Prometheus metrics of account ownership across replicas (issue 15; default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OWNED = Gauge(
    "fillstream_replica_owned",
    "1 while this process holds the account's lease and runs it; 0 otherwise (replicas on)",
    ["account", "market"],
)
LEASE_AGE = Gauge(
    "fillstream_replica_lease_age_seconds",
    "Seconds since this process took the account's lease (0 when it does not hold it)",
    ["account", "market"],
)
HANDOVERS = Counter(
    "fillstream_replica_handovers_total",
    "Ownership changes of this process by kind: acquired, released (handed over or shut down), "
    "expired (could not renew in time), lost (someone else wrote the lease), fenced, refused "
    "(the fence's claim found a newer owner)",
    ["account", "market", "kind"],
)
FENCE_REFUSALS = Counter(
    "fillstream_replica_fence_refusals_total",
    "Ingest writes PostgreSQL refused because another process owns the account (stale epoch)",
    ["account", "market"],
)
MEMBERS = Gauge(
    "fillstream_replica_members",
    "Live replicas seen in the lease bucket at the last poll (this process included)",
)
