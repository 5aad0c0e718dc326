"""Prometheus metrics of the service lifecycle (default registry). Labels: account and market."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ACCOUNT_RESTARTS = Counter(
    "fillstream_account_restarts_total",
    "Times an account's stream and reconcile paths crashed and were restarted by its supervisor",
    ["account", "market"],
)
ACCOUNT_RUNNING = Gauge(
    "fillstream_account_running",
    "1 while the account's paths run; 0 while its supervisor waits to restart them",
    ["account", "market"],
)
SHUTDOWN_OUTBOX_LEFT = Gauge(
    "fillstream_shutdown_outbox_left",
    "Outbox rows still unpublished when the last shutdown's deadline ended (drained at next start)",
)
