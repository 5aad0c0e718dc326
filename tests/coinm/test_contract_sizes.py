"""COIN-M contract sizes: read from the simulator's exchangeInfo once per host, shared by the
host's accounts, refreshed for an unknown symbol at most once a minute; base_qty arithmetic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from fillstream.binance.budget import WeightBudgets
from fillstream.binance.coinm.sizes import ContractSizes
from fillstream.binance.errors import VenueError
from fillstream.binance.rest import BinanceVenue
from fillstream.ledger import Market
from fillstream.ledger.units import fill_base_qty
from fillstream.simulator import SimConfig, Simulator

D = Decimal


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimConfig(
        accounts=("cm", "cm2", "um"),
        coinm_accounts=("cm", "cm2"),
        coinm_symbols=("BTCUSD_PERP", "ETHUSD_PERP"),
        rate=0,
    )
    async with Simulator(config) as s:
        yield s


def _info_reads(account: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "fillstream_rest_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("account") == account
        and sample.labels.get("endpoint") == "exchangeInfo"
    )


async def _venue(sim: Simulator, name: str, market: Market, budgets: WeightBudgets) -> BinanceVenue:
    acct = next(a for a in sim.accounts if a.name == name)
    return await BinanceVenue.create(
        account=acct.name,
        market=market,
        api_key=acct.api_key,
        api_secret=acct.api_secret,
        rest_url=sim.rest_url,
        budget=budgets,
    )


@pytest.mark.asyncio
async def test_sizes_are_read_once_per_host_and_shared(sim: Simulator) -> None:
    budgets = WeightBudgets()
    before = _info_reads("cm") + _info_reads("cm2")
    cm = await _venue(sim, "cm", Market.COINM, budgets)
    cm2 = await _venue(sim, "cm2", Market.COINM, budgets)
    um = await _venue(sim, "um", Market.USDM, budgets)
    try:
        # One exchangeInfo read served the rate limits and the sizes of both COIN-M accounts.
        assert _info_reads("cm") + _info_reads("cm2") - before == 1
        assert cm.contract_size("BTCUSD_PERP") == D(100)
        assert cm2.contract_size("ETHUSD_PERP") == D(10)
        assert await cm2.contract_size_of("BTCUSD_PERP") == D(100)
        assert um.contract_size("BTCUSDT") is None  # linear: no contract size
        assert await um.contract_size_of("BTCUSDT") is None
        # An unknown symbol is not read again within the minute (the start-up read was one).
        assert await cm.contract_size_of("XRPUSD_PERP") is None
        assert _info_reads("cm") + _info_reads("cm2") - before == 1
    finally:
        for v in (cm, cm2, um):
            await v.aclose()


@pytest.mark.asyncio
async def test_unknown_symbol_refresh_is_bounded_to_one_a_minute() -> None:
    now = [1000.0]
    calls: list[int] = []
    answers = [
        b'{"symbols": [{"symbol": "BTCUSD_PERP", "contractSize": 100}]}',
        b'{"symbols": [{"symbol": "BTCUSD_PERP", "contractSize": 100},'
        b' {"symbol": "BTCUSD_270326", "contractSize": 100}]}',
    ]

    async def fetch() -> bytes:
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]

    sizes = ContractSizes(clock=lambda: now[0])
    assert await sizes.size("BTCUSD_PERP", fetch) == D(100)
    assert await sizes.size("BTCUSD_270326", fetch) is None  # listed a moment later
    assert len(calls) == 1  # not read again within the minute
    now[0] += 59.9
    assert await sizes.size("BTCUSD_270326", fetch) is None
    assert len(calls) == 1
    now[0] += 0.1
    assert await sizes.size("BTCUSD_270326", fetch) == D(100)
    assert len(calls) == 2
    assert await sizes.size("BTCUSD_270326", fetch) == D(100)  # known: no read
    assert len(calls) == 2


@pytest.mark.asyncio
async def test_a_failed_or_bad_read_keeps_what_is_known() -> None:
    now = [0.0]
    sizes = ContractSizes(clock=lambda: now[0])

    async def good() -> bytes:
        return (
            b'{"symbols": [{"symbol": "ETHUSD_PERP", "contractSize": 10},'
            b' {"symbol": "BADUSD_PERP", "contractSize": 0}]}'
        )

    async def failing() -> bytes:
        raise VenueError(503, None, "down", endpoint="exchangeInfo")

    async def garbage() -> bytes:
        return b'{"symbols": "nope"}'

    assert await sizes.size("ETHUSD_PERP", good) == D(10)
    assert sizes.get("BADUSD_PERP") is None  # a size <= 0 is no size
    now[0] += 60
    assert await sizes.refresh(failing) is None
    assert sizes.get("ETHUSD_PERP") == D(10)
    now[0] += 60
    # An answer without usable sizes is still returned (its rate limits serve the budget).
    assert await sizes.refresh(garbage) == b'{"symbols": "nope"}'
    assert sizes.get("ETHUSD_PERP") == D(10)


def test_base_qty_by_market() -> None:
    assert fill_base_qty(Market.USDM, D("0.004"), D("76950"), None) == D("0.004")
    assert fill_base_qty(Market.COINM, D(12), D("77012.4"), D(100)) == D("0.01558191")
    assert fill_base_qty(Market.COINM, D(12), D("77012.4"), None) is None
    assert fill_base_qty(Market.COINM, D(12), D(0), D(100)) is None
