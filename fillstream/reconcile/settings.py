"""Reconciler settings: one frozen struct, units in the names, validated on construction.

The service builds it from the ``[reconcile]`` TOML section (and per-account overrides).
"""

from __future__ import annotations

import msgspec

MAX_HORIZON_DAYS = 90.0  # userTrades keeps about three months


class ReconcileSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How often and how far the REST path looks.

    - ``interval_s`` / ``degraded_interval_s``: the periodic poll while the stream is healthy /
      while it is not (connecting, recovering, degraded, stopped, auth_failed, or no stream).
    - ``settle_delay_s``: while streaming, trades younger than this are left to the stream.
    - ``stream_lag_grace_s``: while streaming and the stream's newest stored fill keeps moving
      (it is working through a backlog), trades after that fill are left to it; once it has
      stood still this long the stream counts as idle and anything it lacks as missed.
    - ``horizon_days``: how far back a symbol without a cursor is backfilled (≤ 90).
    - ``order_check_after_s``: an order open locally with no update for this long is checked.
    - ``position_check_interval_s``: how often the book is compared with ``positionRisk``.
    - ``all_symbol_calls_min_interval_s``: the least time between the heavy all-symbol calls
      (``openOrders`` without a symbol costs 40).
    - ``funding_interval_s``: how often ``income`` FUNDING_FEE rows are read (0 = never).
    - ``symbols``: always polled, whatever else is known.
    - ``recent_cursor_days``: symbols whose cursor moved within this many days are polled.
    - ``evidence_interval_s``: the least time between two drop-evidence sweeps of one symbol;
      evidence arriving meanwhile is coalesced into the next (latency vs REST weight).
    """

    interval_s: float = 60.0
    degraded_interval_s: float = 5.0
    settle_delay_s: float = 2.0
    stream_lag_grace_s: float = 10.0
    horizon_days: float = 7.0
    order_check_after_s: float = 120.0
    max_order_checks_per_run: int = 50
    position_check_interval_s: float = 60.0
    all_symbol_calls_min_interval_s: float = 300.0
    funding_interval_s: float = 300.0
    symbols: tuple[str, ...] = ()
    recent_cursor_days: float = 7.0
    page_limit: int = 1000
    order_cache_size: int = 20000
    retry_backoff_max_s: float = 60.0
    evidence_interval_s: float = 1.0

    def __post_init__(self) -> None:
        positive = {
            "interval_s": self.interval_s,
            "degraded_interval_s": self.degraded_interval_s,
            "horizon_days": self.horizon_days,
            "position_check_interval_s": self.position_check_interval_s,
            "retry_backoff_max_s": self.retry_backoff_max_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"reconcile.{name} must be > 0, got {value}")
        for name, value in {
            "settle_delay_s": self.settle_delay_s,
            "stream_lag_grace_s": self.stream_lag_grace_s,
            "order_check_after_s": self.order_check_after_s,
            "all_symbol_calls_min_interval_s": self.all_symbol_calls_min_interval_s,
            "funding_interval_s": self.funding_interval_s,
            "recent_cursor_days": self.recent_cursor_days,
            "evidence_interval_s": self.evidence_interval_s,
        }.items():
            if value < 0:
                raise ValueError(f"reconcile.{name} must be ≥ 0, got {value}")
        if self.horizon_days > MAX_HORIZON_DAYS:
            raise ValueError(
                f"reconcile.horizon_days must be ≤ {MAX_HORIZON_DAYS:g} (the venue keeps about "
                f"three months of trades), got {self.horizon_days}"
            )
        if not 1 <= self.page_limit <= 1000:
            raise ValueError(f"reconcile.page_limit must be in [1, 1000], got {self.page_limit}")
        if self.max_order_checks_per_run < 0 or self.order_cache_size < 1:
            raise ValueError("reconcile.max_order_checks_per_run/order_cache_size out of range")
