"""Reconnect backoff of the stream path: the shared retry policy of :mod:`fillstream.binance.retry`.

Exponential with jitter (a fleet that lost its sockets in the same second does not reconnect in
lockstep), at least ``FAILURE_FLOOR_S`` after a timeout or 5xx, a venue-supplied ``Retry-After``
as a floor, and every account's reconnects paced by one process-wide :class:`RetryPacer`.
"""

from __future__ import annotations

from fillstream.binance.retry import FAILURE_FLOOR_S, Backoff, RetryPacer, is_overload, pacer

__all__ = ["FAILURE_FLOOR_S", "Backoff", "RetryPacer", "is_overload", "pacer"]
