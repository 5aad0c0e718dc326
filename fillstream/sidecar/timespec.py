"""Durations and points in time as operators type them: ``90s``, ``15m``, ``1h30m``, ``2d``,
an ISO 8601 timestamp, or epoch milliseconds.

Every value is checked against a sane range before anything uses it: a duration is finite and
not negative; a start time (``--since``) is not in the future and not older than the caller's
``max_age_s``. So ``inf``, ``1e400``, ``1000000w``, ``99999999999999999999d`` or epoch seconds
(ambiguous with a duration in seconds) end as a one-line ``ValueError``, never as a run that
pages back forever or an ``OverflowError``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# A start time this far in the future is a clock skew between machines, not a typo.
_FUTURE_TOLERANCE_MS = 60_000
DEFAULT_MAX_AGE_S = 10 * 365 * 86400.0  # ten years: older than any venue history
# Bare integers of 9 to 11 digits are epoch seconds (2001..5138): refused as ambiguous.
_EPOCH_SECONDS_DIGITS = range(9, 12)


def parse_duration_s(text: str) -> float:
    """``"1h30m"`` → 5400.0; a bare number is seconds. Raises ``ValueError`` with the reason
    (also for ``nan``, ``inf`` and anything that overflows to it)."""
    t = text.strip().lower()
    if not t:
        raise ValueError("empty duration")
    try:
        return _checked(float(t), text)
    except ValueError as exc:
        if "finite" in str(exc) or "negative" in str(exc):
            raise
    pos, total = 0, 0.0
    for match in _PART.finditer(t):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(t):
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 15m, 1h30m, 2d)")
    return _checked(total, text)


def _checked(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{text!r}: a duration must be finite")
    if value < 0:
        raise ValueError(f"{text!r}: a duration cannot be negative")
    return value


def parse_since_ms(text: str, now_ms: int, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> int:
    """A start time in epoch ms: ``"2d"`` (ago), ``"2026-10-01T00:00:00Z"``, or epoch ms.

    Raises ``ValueError`` when ``text`` is none of those, or names a time in the future or more
    than ``max_age_s`` before ``now_ms``.
    """
    t = text.strip()
    since_ms = _since_ms(t, text, now_ms)
    if since_ms > now_ms + _FUTURE_TOLERANCE_MS:
        raise ValueError(f"{text!r} is in the future")
    if since_ms < now_ms - max_age_s * 1000:
        raise ValueError(f"{text!r} is more than {_age(max_age_s)} ago (the most allowed here)")
    return since_ms


def _since_ms(t: str, text: str, now_ms: int) -> int:
    if t.isdigit() and len(t) >= 12:  # epoch milliseconds (12+ digits: after 1973)
        return int(t)
    if t.isdigit() and len(t) in _EPOCH_SECONDS_DIGITS:
        raise ValueError(
            f"{text!r} looks like epoch seconds; give epoch milliseconds ({t}000), "
            "a timestamp (2026-10-01T00:00:00Z) or a duration (2d, 6h)"
        )
    try:
        seconds = parse_duration_s(t)
    except ValueError as exc:
        if "finite" in str(exc) or "negative" in str(exc):
            raise
    else:
        if seconds * 1000 > now_ms:
            raise ValueError(f"{text!r} ago is before 1970")
        return now_ms - round(seconds * 1000)
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2d, 1h) nor a timestamp (2026-10-01T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _age(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days < 365 * 2 else f"{days / 365:g} years"
