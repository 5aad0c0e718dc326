"""The error families the domain knows (the venue's own, :class:`VenueError` with Binance's codes,
live in :mod:`fillstream.binance.errors`).

1. The venue said no: ``fillstream.binance.errors.VenueError``; retrying is a lookup.
2. Our caller misused an API or the configuration is wrong: :class:`ConfigError` / ``ValueError``.
   Input that is not what the venue documents (a malformed frame or row) is
   :class:`MalformedInput`, a ``ValueError``: counted and skipped, never retried.
3. A bug: anything else; only task supervisors catch it, log it with its traceback and count it.
"""

from __future__ import annotations


class FillstreamError(Exception):
    """Base of the errors fillstream raises on purpose."""


class ConfigError(FillstreamError):
    """The configuration is invalid; the message names the field and the reason."""


class MalformedInput(FillstreamError, ValueError):
    """A venue value that cannot be what the venue documents (not finite, out of range, an
    unknown enum value). The frame or row carrying it is counted as malformed and skipped."""
