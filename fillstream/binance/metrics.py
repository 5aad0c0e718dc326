"""Prometheus metrics of the REST venue wrapper and its shared weight budgets.

Labels: ``account``/``market``/``endpoint``/``status`` per request; ``host`` for the budget (the
weight limit is per IP and REST host, shared by every account on it). Never symbols, never keys.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REST_REQUESTS = Counter(
    "fillstream_rest_requests_total",
    "REST requests sent, by endpoint and HTTP status (0 = no answer: network error or timeout).",
    ["account", "market", "endpoint", "status"],
)
REST_WEIGHT_USED = Gauge(
    "fillstream_rest_weight_used",
    "Request weight used in the current minute on this REST host (X-MBX-USED-WEIGHT-1M).",
    ["host"],
)
REST_WEIGHT_LIMIT = Gauge(
    "fillstream_rest_weight_limit",
    "Request weight limit per minute on this REST host (config or exchangeInfo).",
    ["host"],
)
REST_PAUSED_SECONDS = Counter(
    "fillstream_rest_paused_seconds_total",
    "Seconds REST to this host was held back: weight (near the limit), rate_limited (429), "
    "banned (418).",
    ["host", "reason"],
)
REST_QUEUED_WEIGHT = Gauge(
    "fillstream_rest_queued_weight",
    "Request weight waiting in this REST host's budget queue, by priority (stream, gap, history, "
    "periodic): waiting is not failing, the HTTP timeout starts when a request is sent.",
    ["host", "priority"],
)
REST_CLOCK_OFFSET = Gauge(
    "fillstream_rest_clock_offset_ms",
    "Venue server time minus local time, as last measured with the time endpoint.",
    ["account", "market"],
)
