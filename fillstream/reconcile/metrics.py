"""Prometheus metrics of the reconcile path (design.md §7). Labels: account, market (+ the
trigger, outcome or reason); never symbols."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter(
    "fillstream_reconcile_runs_total",
    "Reconcile runs by trigger (startup, gap, periodic, manual, position, repair) and outcome "
    "(ok, error, rate_limited, auth_failed).",
    ["account", "market", "trigger", "outcome"],
)
DURATION = Histogram(
    "fillstream_reconcile_duration_seconds",
    "Duration of one reconcile run.",
    ["account", "market", "trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
FILLS_FOUND = Counter(
    "fillstream_reconcile_fills_found_total",
    "Fills read from userTrades and handed to the pipeline (new or already stored).",
    ["account", "market"],
)
FILLS_NEW = Counter(
    "fillstream_reconcile_fills_new_total",
    "Fills the reconcile path stored first (missed by the stream, or from before its first "
    "session).",
    ["account", "market"],
)
CURSOR_LAG = Gauge(
    "fillstream_reconcile_cursor_lag_seconds",
    "Age of the oldest point up to which every polled symbol is known complete.",
    ["account", "market"],
)
POSITIONS_CORRECTED = Counter(
    "fillstream_positions_corrected_total",
    "Positions set to what the exchange reports after a backfill did not reconcile them.",
    ["account", "market"],
)
ORDERS_CHECKED = Counter(
    "fillstream_orders_checked_total",
    "Stale open orders checked over REST, by outcome (unchanged, updated, algo, unknown, error).",
    ["account", "market", "outcome"],
)
BAD_ROWS = Counter(
    "fillstream_reconcile_bad_rows_total",
    "REST rows that did not match the expected shape (counted, logged, skipped).",
    ["account", "market", "endpoint"],
)
GAPS = Counter(
    "fillstream_reconcile_gaps_total",
    "Gap windows received from the stream path.",
    ["account", "market"],
)
SYMBOLS_SET_ASIDE = Gauge(
    "fillstream_reconcile_symbols_set_aside",
    "Symbols the venue refuses (-1121 invalid symbol, ...) set aside from reconcile runs; "
    "retried rarely. The account's other symbols are reconciled as usual.",
    ["account", "market"],
)
SYMBOLS_REFUSED = Counter(
    "fillstream_reconcile_symbol_refusals_total",
    "Per-symbol refusals by the venue (-1121 invalid symbol, -1122, -4141) that set a symbol "
    "aside (again).",
    ["account", "market"],
)
