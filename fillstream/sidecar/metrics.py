"""Prometheus metrics of the ingest pipeline (default registry; design.md §7 names).

Labels are ``account`` and ``market`` (plus ``source``/``reason`` enums), never symbols.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FILLS_TOTAL = Counter(
    "fillstream_fills_total",
    "New fills stored, by the path that delivered them first",
    ["account", "market", "source"],
)
FILLS_MISSED_BY_STREAM = Counter(
    "fillstream_fills_missed_by_stream_total",
    "Fills first stored by the reconcile path that the stream should have delivered (traded "
    "after its first session began): the stream never delivered them in time",
    ["account", "market"],
)
FILLS_BEFORE_STREAM = Counter(
    "fillstream_fills_before_stream_total",
    "Fills first stored by the reconcile path, traded before the account's stream first streamed "
    "in this process (start-up backfill of history): not missed by the stream",
    ["account", "market"],
)
FILLS_DUPLICATE = Counter(
    "fillstream_fills_duplicate_total",
    "Fills received again (already stored), by the path that delivered the copy",
    ["account", "market", "source"],
)
CLOSES_TOTAL = Counter(
    "fillstream_closes_total",
    "Position closes recorded (first revision), by classified reason",
    ["account", "market", "reason"],
)
CLOSE_REVISIONS = Counter(
    "fillstream_close_revisions_total",
    "Revisions and retractions of recorded closes caused by late fills",
    ["account", "market", "kind"],
)
ORDER_TRANSITIONS = Counter(
    "fillstream_order_transitions_total",
    "Order state transitions stored and published",
    ["account", "market"],
)
INGEST_ERRORS = Counter(
    "fillstream_ingest_errors_total",
    "Ingest transactions that failed (the submitter got the error and may retry)",
    ["account", "market"],
)
INGEST_BATCH_SIZE = Histogram(
    "fillstream_ingest_batch_size",
    "Fills per ingest transaction (micro-batches of what was queued)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
INGEST_SECONDS = Histogram(
    "fillstream_ingest_seconds",
    "From submit to PostgreSQL commit",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
