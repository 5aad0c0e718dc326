"""The spot venue against the simulator: typed rows, 24 h windows, -2026, the percent-encoded
signed payload, futures-only calls refused, and the weight of every call as Binance counts it."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import REGISTRY

from fillstream.binance import VenueError
from fillstream.binance.endpoints import SPOT_ENDPOINTS
from fillstream.binance.rest import BinanceVenue, WeightBudgets
from fillstream.binance.spot.rows import AccountInfo, MyTrade, SpotOrder
from fillstream.ledger import ConfigError, Market
from fillstream.simulator import SimConfig, Simulator
from tests.simulator.conftest import Rest

DAY_MS = 86_400_000


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SimConfig(accounts=(), spot_accounts=("s1",), rate=0, seed=11, spot_archive_after_s=0)
    )
    await simulator.start()
    simulator.step(20)
    try:
        yield simulator
    finally:
        await simulator.aclose()


@pytest.fixture
async def venue(sim: Simulator) -> AsyncIterator[BinanceVenue]:
    acct = sim.account("s1")
    v = await BinanceVenue.create(
        account="s1",
        market=Market.SPOT,
        api_key=acct.api_key,
        api_secret=acct.api_secret,
        rest_url=sim.rest_url,
        budget=WeightBudgets(),
    )
    try:
        yield v
    finally:
        await v.aclose()


async def test_rows_are_spot_rows_equal_to_the_ground_truth(
    sim: Simulator, venue: BinanceVenue
) -> None:
    truth = sim.ground_truth(market="spot")["accounts"]["s1"]
    symbol = truth["fills"][0]["symbol"]
    trades = await venue.user_trades(symbol, from_id=0)
    assert trades and all(isinstance(t, MyTrade) for t in trades)
    expected = [
        (f["id"], f["orderId"], f["quoteQty"]) for f in truth["fills"] if f["symbol"] == symbol
    ]
    assert [(t.id, t.orderId, t.quoteQty) for t in trades if isinstance(t, MyTrade)] == expected
    orders = await venue.all_orders(symbol)
    assert orders and all(isinstance(o, SpotOrder) for o in orders)
    one = await venue.order(symbol, trades[0].orderId if isinstance(trades[0], MyTrade) else 0)
    assert isinstance(one, SpotOrder) and one.symbol == symbol
    info = await venue.account_info()
    assert isinstance(info, AccountInfo)
    assert {b.asset: b.free for b in info.balances} == {
        a: b["free"] for a, b in truth["balances"].items() if b["free"] != "0" or b["locked"] != "0"
    }
    reads = _requests("s1", "exchangeInfo")
    assert reads >= 1  # the start-up read, for the rate limits
    symbols = await venue.spot_symbols()
    assert _requests("s1", "exchangeInfo") == reads  # the start-up read (rate limits) filled it
    assert set(sim.config.spot_symbols) <= symbols.keys()
    assert symbols["ETHBTC"].baseAsset == "ETH" and symbols["ETHBTC"].quoteAsset == "BTC"


def _requests(account: str, endpoint: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "fillstream_rest_requests"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("account") == account
        and sample.labels.get("endpoint") == endpoint
    )


async def test_windows_are_at_most_24_hours(venue: BinanceVenue) -> None:
    now = int(time.time() * 1000)
    assert isinstance(
        await venue.user_trades("BTCUSDT", start_ms=now - DAY_MS + 1, end_ms=now), list
    )
    with pytest.raises(ValueError, match="exceeds"):
        await venue.user_trades("BTCUSDT", start_ms=now - DAY_MS, end_ms=now)


async def test_an_archived_order_is_a_final_answer(sim: Simulator, venue: BinanceVenue) -> None:
    # A resting order cancelled without fills is archived (after 0 s here: -2026).
    row = await sim.spot_trade("s1", "BTCUSDT", "BUY", "0.001", order_type="LIMIT", price="1000")
    order_id = int(str(row["orderId"]))
    async with aiohttp.ClientSession() as http:
        await Rest(http, sim, "s1").ok(
            "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order_id}
        )
    with pytest.raises(VenueError) as err:
        await venue.order("BTCUSDT", order_id)
    assert err.value.is_archived and not err.value.retryable and not err.value.is_not_found


async def test_the_signed_payload_is_percent_encoded(venue: BinanceVenue) -> None:
    # A UTF-8 symbol (Binance lists some since 2025-12): the signature must cover the encoded
    # bytes as sent, else -1022; a good one gets the venue's verdict on the symbol itself.
    with pytest.raises(VenueError) as err:
        await venue.user_trades("币安人生USDT")
    assert err.value.code == -1121, err.value


async def test_futures_only_calls_are_refused_on_spot(venue: BinanceVenue) -> None:
    for call in (
        venue.create_listen_key(),
        venue.position_risk(),
        venue.income(),
        venue.algo_order(1),
    ):
        with pytest.raises(ConfigError):
            await call


async def test_every_call_weighs_what_binance_counts(sim: Simulator, venue: BinanceVenue) -> None:
    truth = sim.ground_truth(market="spot")["accounts"]["s1"]
    fill = truth["fills"][0]
    calls = [
        ("userTrades", venue.user_trades, (fill["symbol"],), {"from_id": 0}),
        ("userTrades", venue.user_trades, (fill["symbol"],), {"order_id": fill["orderId"]}),
        ("allOrders", venue.all_orders, (fill["symbol"],), {}),
        ("order", venue.order, (fill["symbol"], fill["orderId"]), {}),
        ("account", venue.account_info, (), {}),
        ("openOrders", venue.open_orders, (), {}),
    ]
    expected = [20, 5, 20, 4, 20, 80]  # binance-wave2.md §A.6, and what the budget charged:
    assert [SPOT_ENDPOINTS[name].weight for name, *_ in calls[:1]] == expected[:1]
    for _ in range(3):  # a minute boundary between two calls resets the venue's count: again
        minute = int(time.time() // 60)
        used = [venue.budget.used]
        for _, call, args, kw in calls:
            await call(*args, **kw)  # type: ignore[operator]
            used.append(venue.budget.used)  # the venue's X-MBX-USED-WEIGHT-1M, as reported
        if int(time.time() // 60) == minute:
            break
    assert [b - a for a, b in itertools.pairwise(used)] == expected
    assert venue.budget.limit == 6000  # the spot pool, from exchangeInfo
