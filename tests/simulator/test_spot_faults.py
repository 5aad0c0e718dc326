"""Faults on spot accounts: per-subscription faults leave socket neighbours alone; connection
faults hit the whole connection; WS API limits, pings and the 24 h cut."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory
from tests.simulator.test_spot_wsapi import WsApiClient, signed

NAMES = ("s1", "s2")


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=(), spot_accounts=NAMES)


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def _both(sim: Simulator, http: aiohttp.ClientSession, **kw: Any) -> WsApiClient:
    client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3", **kw))
    for name in NAMES:
        assert (await client.subscribe(sim.account(name)))["status"] == 200
    return client


def _ids(client: WsApiClient, sub: int, kind: str = "executionReport") -> list[int]:
    return [
        e["event"]["i"]
        for e in client.events
        if e.get("subscriptionId") == sub and e["event"]["e"] == kind
    ]


async def _trade_both(sim: Simulator) -> None:
    for name in NAMES:
        await sim.spot_trade(name, "BTCUSDT", "BUY", "0.001")


async def test_drop_and_duplicate_touch_one_subscription(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    client = await _both(sim, http)
    sim.inject("s1", "drop", count=3)  # NEW, TRADE, outboundAccountPosition of s1's order
    await _trade_both(sim)
    await client.wait_events(3)
    sim.inject("s1", "duplicate", count=1)
    await sim.spot_trade("s1", "BTCUSDT", "SELL", "0.001")
    await client.wait_events(7)
    assert len(_ids(client, 1)) == 2  # s2: NEW + TRADE, untouched
    assert len(_ids(client, 0)) == 3  # s1: its first order dropped; the next NEW sent twice
    truth = sim.ground_truth()["accounts"]["s1"]
    assert truth["dropped_fill_events"] == 1


async def test_terminate_and_refuse_subscribe(sim: Simulator, http: aiohttp.ClientSession) -> None:
    client = await _both(sim, http)
    assert sim.inject("s1", "terminate_subscription")["subscriptions"] == 1
    events = await client.wait_events(1)
    assert events[0]["subscriptionId"] == 0
    assert events[0]["event"]["e"] == "eventStreamTerminated"
    assert (await client.request("session.subscriptions"))["result"] == [{"subscriptionId": 1}]
    await _trade_both(sim)
    await client.wait_events(4)
    assert _ids(client, 0) == [] and len(_ids(client, 1)) == 2
    sim.inject("s1", "refuse_subscribe", count=2)
    for _ in range(2):
        refused = await client.subscribe(sim.account("s1"))
        assert (refused["status"], refused["error"]["code"]) == (401, -2015)
    assert (await client.subscribe(sim.account("s1")))["result"] == {"subscriptionId": 2}


async def test_connection_faults_hit_the_whole_connection(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    client = await _both(sim, http)
    assert sim.inject("s1", "silent", seconds=30)["sockets"] == 1
    await _trade_both(sim)
    assert sim.ground_truth()["accounts"]["s2"]["undelivered_fill_events"] == 1
    sim.clear_faults()
    assert sim.inject("s2", "disconnect")["sockets"] == 1
    await asyncio.wait_for(client._reader, 5)  # the socket is gone for both accounts
    assert client.ws.closed


async def test_server_shutdown(sim: Simulator, http: aiohttp.ClientSession) -> None:
    client = await _both(sim, http)
    assert sim.inject("s2", "server_shutdown", seconds=0.1)["connections"] == 1
    events = await client.wait_events(1)
    assert list(events[0]) == ["event"] and events[0]["event"]["e"] == "serverShutdown"
    await asyncio.wait_for(client._reader, 5)
    assert client.ws.close_code == 1001


async def test_ws_api_rate_limit_fault(sim: Simulator, http: aiohttp.ClientSession) -> None:
    client = await _both(sim, http)
    sim.inject("s1", "ws_api_rate_limit", count=2, retry_after=3)
    for _ in range(2):
        limited = await client.request("ping")
        assert limited["status"] == 429 and limited["error"]["code"] == -1003
        data = limited["error"]["data"]
        assert data["retryAfter"] - data["serverTime"] == 3000
    assert (await client.request("ping"))["status"] == 200


async def test_weight_pool_429_then_418_disconnects(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(accounts=(), spot_accounts=("s1",), spot_weight_limit_1m=12)
    rest = Rest(http, sim, "s1")
    _, _, headers = await rest.call("GET", "/api/v3/time", signed=False)
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))  # weight 2
    answer = await client.subscribe(sim.account("s1"))  # 2 more: 5 of 12, shared with REST
    assert answer["rateLimits"][0]["count"] == 5
    statuses = [(await client.request("ping"))["status"] for _ in range(3)]
    assert statuses == [200, 200, 200]  # 11 of 12
    limited = await client.request("ping")
    assert limited["status"] == 429 and limited["error"]["data"]["retryAfter"] > 0
    status, body, _ = await rest.call("GET", "/api/v3/time", signed=False)
    assert (status, body["code"]) == (429, -1003)  # REST shares the pool: refused too
    assert (await client.request("ping"))["status"] == 429  # the third refusal this minute
    banned = await client.request("ping")  # sent anyway: banned
    assert banned["status"] == 418 and "banned until" in banned["error"]["msg"]
    await asyncio.wait_for(client._reader, 5)  # banned IPs are disconnected


async def test_pings_pong_timeout_and_24h_cut(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(accounts=(), spot_accounts=("s1",), clock_speed=100.0)
    answering = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))
    silent = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3", autoping=False))
    # 20 s pings and a 60 s pong timeout are 0.2 s and 0.6 s at clock speed 100.
    await asyncio.wait_for(silent._reader, 5)
    assert not answering.ws.closed
    assert (await answering.subscribe(sim.account("s1")))["status"] == 200
    sim.clock.advance(24 * 3600)
    await asyncio.wait_for(answering._reader, 5)
    assert answering.ws.close_code == 1001


async def test_rest_lag_and_rest_error_on_a_spot_account(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    rest = Rest(http, sim, "s1")
    await sim.spot_trade("s1", "BTCUSDT", "BUY", "0.001")
    sim.inject("s1", "rest_lag", seconds=60)
    await sim.spot_trade("s1", "BTCUSDT", "BUY", "0.002")
    # REST shows only what is 60 s old: nothing yet (the stream is not delayed).
    assert await rest.ok("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}) == []
    assert await rest.ok("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}) == []
    sim.clear_faults()
    assert len(await rest.ok("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})) == 2
    sim.inject("s1", "rest_error", status=503, count=1)
    status, body, _ = await rest.call("GET", "/api/v3/account")
    assert (status, body["code"]) == (503, -1001)
    other = Rest(http, sim, "s2")
    assert (await other.call("GET", "/api/v3/account"))[0] == 200


async def test_spot_only_kinds_refuse_futures_accounts(make_sim: SimFactory) -> None:
    sim = await make_sim(accounts=("f1",), spot_accounts=("s1",))
    with pytest.raises(ValueError, match="spot accounts"):
        sim.inject("f1", "terminate_subscription")
    assert signed(sim.account("s1"))["apiKey"] == sim.account("s1").api_key


async def test_cut_inject_frame_reorder_and_refused_handshakes(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    client = await _both(sim, http)
    sim.inject("s1", "reorder", count=2)
    await sim.spot_trade("s1", "BTCUSDT", "BUY", "0.001")  # NEW, TRADE, position: 2 held
    events = await client.wait_events(3)
    assert [e["event"].get("x") for e in events[:2]] == ["TRADE", "NEW"]
    assert sim.inject("s1", "inject_frame", raw='{"event":{"e":"odd"}}')["sockets"] == 1
    assert (await client.wait_events(4))[3] == {"event": {"e": "odd"}}
    assert sim.inject("s2", "cut")["sockets"] == 1
    await asyncio.wait_for(client._reader, 5)
    assert client.ws.close_code == 1001
    sim.inject(None, "refuse_ws", seconds=30)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(sim.ws_url + "/ws-api/v3")
    assert refused.value.status == 503


async def test_refuse_subscribe_with_a_transient_code(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))
    sim.inject("s1", "refuse_subscribe", count=1, code=-1001)
    refused = await client.subscribe(sim.account("s1"))
    assert (refused["status"], refused["error"]["code"]) == (503, -1001)
    assert "Internal error" in refused["error"]["msg"]
    assert (await client.subscribe(sim.account("s1")))["status"] == 200
