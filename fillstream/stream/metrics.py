"""Prometheus metrics of the stream path (default registry; labels ``account`` and ``market``).

:class:`StreamMetrics` binds the label values of one account once, so the hot path touches
pre-resolved children only.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from fillstream.ledger import StreamState

_LABELS = ("account", "market")
_LAG_CLAMP_MS = 10**12  # ±10⁹ s: far beyond any bucket, and an int→float conversion that fits

STATE = Gauge(
    "fillstream_stream_state",
    "1 for the stream's current state, 0 for the others",
    [*_LABELS, "state"],
)
CONNECTED = Gauge(
    "fillstream_stream_connected", "1 while a user-data socket is open and live", _LABELS
)
AUTH_FAILED = Gauge(
    "fillstream_stream_auth_failed",
    "1 when the venue rejected the account's API key; its stream stopped retrying (alert)",
    _LABELS,
)
EVENTS = Counter(
    "fillstream_stream_events", "User-data events decoded, by event type", [*_LABELS, "type"]
)
DECODE_ERRORS = Counter(
    "fillstream_stream_decode_errors",
    "Frames that yielded no event, by kind (malformed|unknown)",
    [*_LABELS, "kind"],
)
RECONNECTS = Counter(
    "fillstream_stream_reconnects",
    "Socket (re)connections, by the reason that caused them",
    [*_LABELS, "reason"],
)
LISTEN_KEY_OPS = Counter(
    "fillstream_listen_key_operations",
    "listenKey REST operations, by op (create|keepalive|close) and outcome",
    [*_LABELS, "op", "outcome"],
)
LAST_EVENT_AGE = Gauge(
    "fillstream_stream_last_event_age_seconds",
    "Seconds since the last user-data event was received (since start when none yet)",
    _LABELS,
)
EVENT_LAG = Histogram(
    "fillstream_stream_event_lag_seconds",
    "Frame receipt time minus the exchange's event time E, of fill events",
    _LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_DEPTH = Gauge(
    "fillstream_stream_queue_depth", "Frames received and not yet processed", _LABELS
)
BACKPRESSURE = Counter(
    "fillstream_stream_backpressure",
    "Times the reader found the frame queue full and paused reading",
    _LABELS,
)
DUPLICATES = Counter(
    "fillstream_stream_duplicate_events",
    "Events dropped as duplicates (rotation overlap, venue re-sends, TRADE_LITE twins)",
    _LABELS,
)
CONNECT_FAILURES = Counter(
    "fillstream_stream_connect_failures",
    "Connection attempts that failed (listenKey create or WebSocket handshake); retried",
    _LABELS,
)
GAPS = Counter(
    "fillstream_stream_gaps",
    "Gap windows handed to the reconciler, by reason",
    [*_LABELS, "reason"],
)
SUBMIT_ERRORS = Counter(
    "fillstream_stream_submit_errors",
    "Batches the sink failed to accept (retried until accepted)",
    _LABELS,
)
WATCHDOG_CHECKS = Counter(
    "fillstream_stream_watchdog_checks",
    "Staleness verifications against REST, by verdict (ok|quiet|mismatch|error)",
    [*_LABELS, "verdict"],
)

# Spot WS-API connections (shared by many accounts: labelled by market, not account).
WSAPI_CONNECTIONS = Gauge(
    "fillstream_wsapi_connections",
    "Open WS-API connections carrying user-data subscriptions",
    ["market"],
)
WSAPI_SUBSCRIPTIONS = Gauge(
    "fillstream_wsapi_subscriptions", "Accounts placed on the open WS-API connections", ["market"]
)
WSAPI_REQUESTS = Counter(
    "fillstream_wsapi_requests",
    "WS-API requests, by method and outcome (ok, failed: no answer, or the refusal's status)",
    ["market", "method", "outcome"],
)
WSAPI_UNROUTED = Counter(
    "fillstream_wsapi_frames_unrouted",
    "WS-API frames no account took, by reason (unknown_subscription|unknown_response|malformed|"
    "unknown)",
    ["market", "reason"],
)


class StreamMetrics:
    """The stream metrics of one account, children resolved once."""

    def __init__(self, account: str, market: str) -> None:
        self.account = account
        self.market = market
        self.connected = CONNECTED.labels(account, market)
        self.auth_failed = AUTH_FAILED.labels(account, market)
        self.last_event_age = LAST_EVENT_AGE.labels(account, market)
        self.event_lag = EVENT_LAG.labels(account, market)
        self.queue_depth = QUEUE_DEPTH.labels(account, market)
        self.backpressure = BACKPRESSURE.labels(account, market)
        self.duplicates = DUPLICATES.labels(account, market)
        self.submit_errors = SUBMIT_ERRORS.labels(account, market)
        self.connect_failures = CONNECT_FAILURES.labels(account, market)
        self.malformed = DECODE_ERRORS.labels(account, market, "malformed")
        self.unknown = DECODE_ERRORS.labels(account, market, "unknown")
        self._events: dict[str, Counter] = {}
        self._states = {s: STATE.labels(account, market, s.value) for s in StreamState}
        self.auth_failed.set(0)
        self.connected.set(0)

    def events(self, counts: dict[str, int]) -> None:
        """Count events by type (one increment per type per processor pass)."""
        for event_type, n in counts.items():
            child = self._events.get(event_type)
            if child is None:
                child = EVENTS.labels(self.account, self.market, event_type)
                self._events[event_type] = child
            child.inc(n)

    def observe_lag(self, received_ns: int, event_ms: int) -> None:
        """Observe receipt minus event time ``E`` (seconds) of one fill event.

        The wire bounds ``E`` (``TimeMs``: frames outside it are malformed), so the lag is a
        float; it is clamped to ±10⁹ s anyway so no value can raise ``OverflowError`` here.
        """
        lag_ms = received_ns // 1_000_000 - event_ms
        self.event_lag.observe(max(-_LAG_CLAMP_MS, min(_LAG_CLAMP_MS, lag_ms)) / 1000)

    def state(self, state: StreamState) -> None:
        for s, child in self._states.items():
            child.set(1 if s is state else 0)

    def reconnect(self, reason: str) -> None:
        RECONNECTS.labels(self.account, self.market, reason).inc()

    def listen_key(self, op: str, outcome: str) -> None:
        LISTEN_KEY_OPS.labels(self.account, self.market, op, outcome).inc()

    def gap(self, reason: str) -> None:
        GAPS.labels(self.account, self.market, reason).inc()

    def watchdog(self, verdict: str) -> None:
        WATCHDOG_CHECKS.labels(self.account, self.market, verdict).inc()
