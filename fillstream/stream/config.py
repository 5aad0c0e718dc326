"""Stream settings: one frozen struct with defaults, units in the names.

The service builds :class:`StreamSettings` from the TOML config; tests build it directly with
short intervals. Validation (``validate``) runs once at start-up and raises ``ConfigError``.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

import msgspec

from fillstream.binance.endpoints import WS_URLS, UrlForm, user_stream_url
from fillstream.binance.usdm.events import USDM_EVENTS
from fillstream.ledger import ConfigError, Market
from fillstream.ledger.bounds import Range, out_of_range

_DAY_S = 86400.0
# Sane range of every number (issue 11): low enough for the tests' fast settings, high enough for
# any deployment, and never nan/inf. Both ends inclusive.
_RANGES: Final[dict[str, Range]] = {
    "open_timeout_s": (0.1, 600.0),
    "close_timeout_s": (0.0, 600.0),
    "ping_interval_s": (0.05, 600.0),
    "ping_timeout_s": (0.05, 600.0),
    "keepalive_interval_s": (0.05, 3600.0),
    "keepalive_jitter_s": (0.0, 3600.0),
    "keepalive_attempts": (1, 100),
    "keepalive_retry_s": (0.01, 600.0),
    "stale_after_s": (0.1, _DAY_S),
    "stale_recheck_max_s": (0.0, _DAY_S),
    "watchdog_symbols_max": (1, 1000),
    "silence_probe_after_s": (0.0, _DAY_S),
    "silence_probe_max_s": (0.1, _DAY_S),
    "tick_s": (0.01, 60.0),
    "trade_lite_grace_s": (0.0, 3600.0),
    "rotate_after_s": (0.1, _DAY_S),
    "rotation_overlap_s": (0.0, 600.0),
    "backoff_initial_s": (0.01, 600.0),
    "backoff_max_s": (0.01, 3600.0),
    "degraded_after_s": (0.0, _DAY_S),
    "queue_max": (1, 10_000_000),
    "max_batch": (1, 1_000_000),
    "submit_retry_max_s": (0.01, 3600.0),
    "gap_margin_ms": (0, 3_600_000),
    "drop_evidence_wait_s": (0.0, 60.0),
    "accounts_per_connection": (1, 1000),
    "lifetime_subscriptions_max": (1, 65_535),
    "recv_window_ms": (0, 60_000),
    "request_timeout_s": (0.1, 600.0),
    "silent_probe_s": (0.0, _DAY_S),
    "backpressure_max_s": (0.1, 50.0),
}


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one account's user-data stream connects, stays alive and recovers.

    ``ws_url`` is the base (scheme + host); the routed path is appended per ``url_form``:
    ``path`` → ``<ws_url><ws_path>/<key>``;
    ``query`` → ``<ws_url><ws_path>?listenKey=<key>&events=…``;
    ``stream`` → ``<ws_url>/private/stream?listenKey=<key>&events=…`` (combined envelopes).
    """

    ws_url: str = WS_URLS[(Market.USDM, "mainnet")]
    url_form: UrlForm = "query"
    ws_path: str = "/private/ws"
    events: tuple[str, ...] = USDM_EVENTS
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    # Our own ping (Binance pings every 3 min and drops us after 10 min without a pong).
    ping_interval_s: float = 30.0
    ping_timeout_s: float = 20.0
    # listenKey: PUT every interval plus a per-account offset in [0, jitter).
    keepalive_interval_s: float = 1800.0
    keepalive_jitter_s: float = 120.0
    keepalive_attempts: int = 3  # retryable PUT failures in a row before the key counts as lost
    keepalive_retry_s: float = 5.0
    # Data-staleness watchdog: no data event for this long while orders/positions are open →
    # compare REST's newest trade ids with the stream's; re-check at most every recheck interval.
    stale_after_s: float = 120.0
    stale_recheck_max_s: float = 600.0
    watchdog_symbols_max: int = 10
    # Silence probe (watchdog.SilenceProbe): a socket silent this long after data, or while orders
    # work, gets its key PUT once (weight 1); -1125 or another key → new key, new socket, gap.
    # Backs off to the max while the key answers; 0 turns the probe off.
    silence_probe_after_s: float = 5.0
    silence_probe_max_s: float = 300.0
    tick_s: float = 1.0
    # TRADE_LITE seen but no ORDER_TRADE_UPDATE for the trade within this long → a gap.
    trade_lite_grace_s: float = 10.0
    # Drop evidence (evidence.py) is judged this long after it arrived: the proof may be early.
    drop_evidence_wait_s: float = 0.3
    # Proactive make-before-break rotation before Binance's 24 h cut.
    rotate_after_s: float = 23 * 3600.0
    rotation_overlap_s: float = 2.0
    # Reconnect: exponential backoff with full jitter, capped, no attempt limit.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    degraded_after_s: float = 15.0  # an outage this long turns recovering into degraded
    # Reader → processor queue (frames); full means the reader stops reading (backpressure).
    queue_max: int = 10_000
    max_batch: int = 2_000  # frames handed to the sink in one submit at most
    submit_retry_max_s: float = 5.0
    gap_margin_ms: int = 5_000
    delete_key_on_shutdown: bool = True
    # Spot (WS-API subscriptions, binance-wave2.md §A): accounts sharing one connection (Binance
    # allows 1,000), the planned reconnect before the 65,535 lifetime subscriptions of a session,
    # the subscribe's recvWindow (0: not sent, Binance's 5,000 applies), how long a request may
    # wait for its answer, and a connection silent this long while it holds subscriptions asks
    # ``session.subscriptions`` (a lost answer closes it; a subscription missing is resubscribed);
    # 0 turns the probe off. The 24 h cut is ``rotate_after_s``. A spot account whose frame
    # queue stays full this long (its sink is stuck) is cut off its shared connection (a gap,
    # and a resubscribe once it drained) instead of pausing every neighbour's reader; under
    # the venue's one-minute pong limit.
    accounts_per_connection: int = 50
    lifetime_subscriptions_max: int = 65_000
    recv_window_ms: int = 0
    request_timeout_s: float = 10.0
    silent_probe_s: float = 30.0
    backpressure_max_s: float = 20.0

    def validate(self) -> StreamSettings:
        """Return self, or raise :class:`ConfigError` naming the bad field."""
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"stream.ws_url must start with ws:// or wss://: {self.ws_url!r}")
        problem = out_of_range(self, _RANGES)
        if problem is not None:
            raise ConfigError(f"stream.{problem}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ConfigError("stream.backoff_max_s must be >= stream.backoff_initial_s")
        if self.keepalive_interval_s + self.keepalive_jitter_s >= 3600:
            raise ConfigError("stream.keepalive_interval_s + jitter must stay under the 60 min key")
        if self.url_form != "path" and "ORDER_TRADE_UPDATE" not in self.events:
            raise ConfigError("stream.events must include ORDER_TRADE_UPDATE (the fills)")
        return self

    def url(self, listen_key: str) -> str:
        """The user-data URL for ``listen_key`` in the configured form."""
        return user_stream_url(self.ws_url, self.url_form, self.ws_path, listen_key, self.events)


def mask(listen_key: str) -> str:
    """A listenKey for logs: anyone holding it can read the account's stream."""
    return f"{listen_key[:4]}…" if listen_key else "<none>"


def mask_url(url: str, listen_key: str) -> str:
    return url.replace(quote(listen_key, safe=""), mask(listen_key)) if listen_key else url
