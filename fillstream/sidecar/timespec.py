"""Durations and points in time as operators type them: ``90s``, ``15m``, ``1h30m``, ``2d``,
an ISO 8601 timestamp, or epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration_s(text: str) -> float:
    """``"1h30m"`` → 5400.0; a bare number is seconds. Raises ``ValueError`` with the reason."""
    t = text.strip().lower()
    if not t:
        raise ValueError("empty duration")
    try:
        return _non_negative(float(t), text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(t):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(t):
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 15m, 1h30m, 2d)")
    return _non_negative(total, text)


def _non_negative(value: float, text: str) -> float:
    if value < 0:
        raise ValueError(f"{text!r}: a duration cannot be negative")
    return value


def parse_since_ms(text: str, now_ms: int) -> int:
    """A start time in epoch ms: ``"2d"`` (ago), ``"2026-10-01T00:00:00Z"``, or epoch ms."""
    t = text.strip()
    if t.isdigit() and len(t) >= 12:  # epoch milliseconds (12+ digits: after 1973)
        return int(t)
    try:
        return now_ms - int(parse_duration_s(t) * 1000)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (2d, 1h) nor a timestamp (2026-10-01T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
