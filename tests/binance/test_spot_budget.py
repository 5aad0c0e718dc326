"""Spot's weight pool: REST and the WebSocket API share one budget of 6,000 a minute per IP
(binance-wave2.md §A.5), a 429 from either pauses both, and the endpoint weights are spot's."""

from __future__ import annotations

import asyncio

import pytest

from fillstream.binance import RestPriority, VenueError
from fillstream.binance.budget import WeightBudgets, request_weight
from fillstream.binance.endpoints import SPOT_ENDPOINTS, WS_URLS
from fillstream.ledger import Market

REST = "https://api.binance.com"
WS_API = WS_URLS[(Market.SPOT, "mainnet")]  # wss://ws-api.binance.com:443/ws-api/v3


class FakeClock:
    def __init__(self, now: float = 1_000_020.0) -> None:  # 20 s into a minute
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rest_and_ws_api_hosts_share_one_pool_of_6000() -> None:
    budgets = WeightBudgets()
    rest = budgets.for_url(REST, market=Market.SPOT)
    for url in (WS_API, "wss://ws-api.binance.com:9443/ws-api/v3", "https://api3.binance.com"):
        assert budgets.for_url(url, market=Market.SPOT) is rest
    assert rest.limit == 6000
    testnet = budgets.for_url("wss://ws-api.testnet.binance.vision/ws-api/v3", market=Market.SPOT)
    assert testnet is budgets.for_url("https://testnet.binance.vision", market=Market.SPOT)
    assert budgets.for_url("https://fapi.binance.com", market=Market.USDM).limit == 2400


async def test_ws_api_weight_counts_in_the_rest_budget_and_settles_to_the_servers_count() -> None:
    budgets = WeightBudgets(clock=FakeClock())
    rest = budgets.for_url(REST, market=Market.SPOT)
    connect = await budgets.charge(WS_API, 2)
    subscribe = await budgets.charge(WS_API, 2)
    assert rest.in_flight == 4
    connect.settle()  # no rateLimits on a connection: its weight counts as spent
    assert (rest.in_flight, rest.used) == (2, 2)
    count, limit = request_weight(
        [
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "count": 3},
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
                "count": 70,
            },
        ]
    )
    assert (count, limit) == (70, 6000)
    subscribe.settle(status=200, used_weight=count, limit=limit)
    assert (rest.in_flight, rest.used) == (0, 70)
    await budgets.spend(WS_API, 2)
    assert rest.used == 72
    assert request_weight([]) == (None, None)


async def test_a_ws_api_429_pauses_rest_until_retry_after() -> None:
    clock = FakeClock()
    budgets = WeightBudgets(clock=clock)
    rest = budgets.for_url(REST, market=Market.SPOT)
    charge = await budgets.charge(WS_API, 2)
    charge.settle(status=429, retry_after_ms=int((clock.now + 30) * 1000))
    reason, left = rest.paused_for()
    assert reason == "rate_limited" and left == pytest.approx(30)
    with pytest.raises(VenueError) as err:
        await rest.acquire(20, RestPriority.GAP, max_wait_s=5)
    assert err.value.is_rate_limited and err.value.retry_after_s == pytest.approx(30)
    with pytest.raises(VenueError):  # the stream path is held back as well, without sending
        await budgets.charge(WS_API, 2, max_wait_s=5)
    waiting = asyncio.create_task(budgets.spend(WS_API, 2))
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.now += 31
    rest.refresh()
    await asyncio.wait_for(waiting, 1)


async def test_a_ban_reported_later_stops_the_pool() -> None:
    clock = FakeClock()
    budgets = WeightBudgets(clock=clock)
    budgets.refused(WS_API, 418, retry_after_ms=int((clock.now + 600) * 1000))
    reason, left = budgets.for_url(REST, market=Market.SPOT).paused_for()
    assert reason == "banned" and left == pytest.approx(600)
    budgets.refused(WS_API, 200)  # not a refusal: changes nothing
    assert budgets.for_url(REST, market=Market.SPOT).paused_for()[0] == "banned"


def test_spot_endpoint_weights() -> None:
    trades = SPOT_ENDPOINTS["userTrades"]
    assert trades.path == "myTrades"
    assert trades.weight_of({"symbol": "BTCUSDT", "fromId": 5}) == 20
    assert trades.weight_of({"symbol": "BTCUSDT", "orderId": 5}) == 5
    assert SPOT_ENDPOINTS["allOrders"].weight_of({"symbol": "BTCUSDT"}) == 20
    assert SPOT_ENDPOINTS["order"].weight_of({"symbol": "BTCUSDT", "orderId": 1}) == 4
    assert SPOT_ENDPOINTS["account"].weight_of({}) == 20
    assert SPOT_ENDPOINTS["openOrders"].weight_of({}) == 80
