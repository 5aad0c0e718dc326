"""The set-aside policy: which refusals set a symbol aside, the rare retry and its backoff."""

from __future__ import annotations

import time

import pytest

from fillstream.binance import VenueError
from fillstream.ledger import Market
from fillstream.reconcile.setaside import SetAside
from tests.reconcile.rig import metric


def refused(code: int = -1121) -> VenueError:
    return VenueError(400, code, "Invalid symbol.", endpoint="userTrades")


async def test_refusal_sets_aside_retry_backs_off_and_an_answer_brings_it_back() -> None:
    aside = SetAside(account="sa1", market=Market.USDM, retry_s=60.0, retry_max_s=150.0)
    calls: list[str] = []

    async def refuse() -> int:
        calls.append("x")
        raise refused()

    assert await aside.guard("OLDUSDT", refuse) is None
    first = aside.symbols["OLDUSDT"]
    assert (first.code, first.refusals, first.reason) == (-1121, 1, "Invalid symbol.")
    assert 59.0 <= first.retry_at - time.monotonic() <= 60.0
    assert metric("fillstream_reconcile_symbols_set_aside", account="sa1") == 1
    # Not due: not even tried.
    assert await aside.guard("OLDUSDT", refuse) is None
    assert calls == ["x"]
    assert aside.waiting() == {"OLDUSDT"}
    # Due again and refused again: the delay doubles, capped at the maximum.
    for expected in (120.0, 150.0):
        aside.symbols["OLDUSDT"].retry_at = 0.0
        assert await aside.guard("OLDUSDT", refuse) is None
        entry = aside.symbols["OLDUSDT"]
        assert expected - 1.0 <= entry.retry_at - time.monotonic() <= expected
        assert entry.since_ms == first.since_ms
    assert metric("fillstream_reconcile_symbol_refusals_total", account="sa1") == 3

    async def answer() -> int:
        return 7

    aside.symbols["OLDUSDT"].retry_at = 0.0
    assert await aside.guard("OLDUSDT", answer) == 7
    assert aside.symbols == {}
    assert metric("fillstream_reconcile_symbols_set_aside", account="sa1") == 0


@pytest.mark.parametrize("code", [-1122, -4141])
async def test_other_per_symbol_refusals_set_aside(code: int) -> None:
    aside = SetAside(account=f"sa{code}", market=Market.USDM, retry_s=60.0, retry_max_s=60.0)

    async def refuse() -> None:
        raise refused(code)

    await aside.guard("OLDUSDT", refuse)
    assert set(aside.symbols) == {"OLDUSDT"}


@pytest.mark.parametrize(
    "error",
    [
        VenueError(429, -1003, "Too many requests.", retry_after_s=5.0),
        VenueError(418, -1003, "banned"),
        VenueError(503, None, "Service unavailable"),
        VenueError(401, -2015, "Invalid API-key, IP, or permissions for action."),
    ],
)
async def test_run_level_errors_are_not_a_symbol_refusal(error: VenueError) -> None:
    aside = SetAside(account="sa2", market=Market.USDM, retry_s=60.0, retry_max_s=60.0)

    async def fail() -> None:
        raise error

    with pytest.raises(VenueError):
        await aside.guard("BTCUSDT", fail)
    assert aside.symbols == {}
