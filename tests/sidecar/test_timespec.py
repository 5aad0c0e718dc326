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


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400", "infinity"])
def test_non_finite_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"finite|duration"):
        parse_duration_s(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1700000000", "looks like epoch seconds"),
        ("1000000w", "before 1970"),
        ("99999999999999999999d", "before 1970"),
        ("inf", "finite"),
        ("1e400", "finite"),
        ("nan", "finite"),
        ("-2d", "neither a duration"),
        ("-5", "negative"),
        ("20y", "neither a duration"),
        ("2030-01-01T00:00:00Z", "in the future"),
        ("99999999999999999999", "in the future"),
        ("1999-01-01T00:00:00Z", "more than 10 years ago"),
        ("100d", "more than 90 days ago"),
    ],
)
def test_since_out_of_range(text: str, reason: str) -> None:
    now = 1_800_000_000_000  # 2027-01-15
    with pytest.raises(ValueError, match=reason):
        parse_since_ms(text, now, max_age_s=90 * 86400 if text == "100d" else 10 * 365 * 86400)


def test_since_at_the_edges() -> None:
    now = 1_800_000_000_000
    assert parse_since_ms("90d", now, max_age_s=90 * 86400) == now - 90 * 86_400_000
    assert parse_since_ms("0s", now) == now
    assert parse_since_ms(str(now + 30_000), now) == now + 30_000  # clock skew is tolerated
