from __future__ import annotations

import pytest

from fillstream.sidecar.timespec import parse_duration_s, parse_since_ms


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "h1", "-5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s(text)


def test_since() -> None:
    now = 1_800_000_000_000
    assert parse_since_ms("1h", now) == now - 3_600_000
    assert parse_since_ms("1790000000000", now) == 1_790_000_000_000
    assert parse_since_ms("2026-10-01T00:00:00Z", now) == 1_790_812_800_000
    with pytest.raises(ValueError, match="neither"):
        parse_since_ms("yesterday", now)
