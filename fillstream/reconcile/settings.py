"""Reconciler settings: one frozen struct, units in the names, validated on construction.

The service builds it from the ``[reconcile]`` TOML section (and per-account overrides).
"""

from __future__ import annotations

from typing import Final

import msgspec

from fillstream.ledger.bounds import Range, out_of_range

MAX_HORIZON_DAYS = 90.0  # userTrades keeps about three months
_DAY_S = 86400.0
# Sane range of every number (issue 11), both ends inclusive; nan and inf never pass.
_RANGES: Final[dict[str, Range]] = {
    "interval_s": (0.05, _DAY_S),
    "degraded_interval_s": (0.05, _DAY_S),
    "settle_delay_s": (0.0, 3600.0),
    "stream_lag_grace_s": (0.0, 3600.0),
    # the venue keeps about three months of trades
    "horizon_days": (1e-9, MAX_HORIZON_DAYS),
    "order_check_after_s": (0.0, 7 * _DAY_S),
    "max_order_checks_per_run": (0, 10_000),
    "position_check_interval_s": (0.05, _DAY_S),
    "all_symbol_calls_min_interval_s": (0.0, _DAY_S),
    "funding_interval_s": (0.0, _DAY_S),  # 0: never
    "recent_cursor_days": (0.0, MAX_HORIZON_DAYS),
    "page_limit": (1, 1000),
    "order_cache_size": (1, 10_000_000),
    "retry_backoff_max_s": (0.01, _DAY_S),
    "refused_symbol_retry_s": (1.0, 7 * _DAY_S),
    "refused_symbol_retry_max_s": (1.0, 7 * _DAY_S),
    "evidence_interval_s": (0.0, 3600.0),
    "spot_probe_max": (0, 1000),
}


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
    - ``refused_symbol_retry_s`` / ``refused_symbol_retry_max_s``: a symbol the venue refuses
      (``-1121`` invalid symbol, as for a delisted contract) is set aside and tried again after
      this long, doubling per refusal up to the maximum; the other symbols carry on.
    - ``evidence_interval_s``: the least time between two drop-evidence sweeps of one symbol;
      evidence arriving meanwhile is coalesced into the next (latency vs REST weight).
    - ``spot_quote_assets`` / ``spot_probe_max``: spot only, which symbols the balances point
      at (reconcile/spot_symbols.py): quote assets tried beside the held ones, and the most
      symbols probed per balance read (0: the balances are read, and submitted, but name no
      symbols).
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
    refused_symbol_retry_s: float = 1800.0
    refused_symbol_retry_max_s: float = 6 * 3600.0
    evidence_interval_s: float = 1.0
    spot_quote_assets: tuple[str, ...] = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB")
    spot_probe_max: int = 10

    def __post_init__(self) -> None:
        problem = out_of_range(self, _RANGES)
        if problem is not None:
            raise ValueError(f"reconcile.{problem}")
