"""Every fault kind, injected programmatically or over the admin API, and its effect."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import websockets

from fillstream.simulator import FaultSpec, Simulator
from tests.simulator.conftest import Rest, SimFactory, StreamReader, fill_events, stream, wait_until

EVENTS_PER_FILL = 4  # ORDER_TRADE_UPDATE NEW, TRADE_LITE, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE


@contextlib.asynccontextmanager
async def connected(sim: Simulator, rest: Rest) -> AsyncIterator[StreamReader]:
    key = await rest.listen_key()
    live = sim.hub.live_subscriptions("alpha")
    async with stream(f"{sim.ws_url}/private/ws/{key}") as reader:
        await wait_until(lambda: sim.hub.live_subscriptions("alpha") == live + 1)
        yield reader


async def _buy(sim: Simulator, n: int = 1) -> None:
    for _ in range(n):
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim()


@pytest.fixture
def rest(http: aiohttp.ClientSession, sim: Simulator) -> Rest:
    return Rest(http, sim, "alpha")


async def _trades(rest: Rest) -> int:
    return len(await rest.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}))


async def test_drop_count_keeps_rest_history(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        sim.inject("alpha", "drop", count=EVENTS_PER_FILL + 3)  # one fill, then most of the next
        await _buy(sim, 3)
        await wait_until(lambda: len(reader.events) == 1 + EVENTS_PER_FILL)
    assert [e["e"] for e in reader.events] == [
        "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE",
        "TRADE_LITE",
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
    ]
    assert len(fill_events(reader.events)) == 1
    assert await _trades(rest) == 3
    truth = sim.ground_truth()["accounts"]["alpha"]
    assert (truth["dropped_fill_events"], len(truth["fills"])) == (2, 3)


async def test_drop_rate_is_seeded_and_ends_at_zero(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        sim.inject("alpha", "drop_rate", p=0.5)
        await _buy(sim, 40)
        sim.inject("alpha", "drop_rate", p=0)
        await _buy(sim)
        await wait_until(lambda: bool(reader.events) and reader.events[-1]["e"] == "ACCOUNT_UPDATE")
        dropped = sim.ground_truth()["accounts"]["alpha"]["dropped_fill_events"]
        await wait_until(lambda: reader.fills() == 41 - dropped)
    assert 5 < dropped < 35
    assert await _trades(rest) == 41


async def test_disconnect_cuts_without_a_close_frame(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        assert sim.inject("alpha", "disconnect")["sockets"] == 1
        await wait_until(lambda: reader.closed)
    assert reader.close_code == 1006
    async with connected(sim, rest) as reader:
        sim.inject("alpha", "disconnect", code=4000)
        await wait_until(lambda: reader.closed)
    assert reader.close_code == 4000


async def test_silent_socket_answers_pings_but_sends_nothing(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        sim.inject("alpha", "silent", seconds=0.5)
        silenced_at = time.monotonic()
        await _buy(sim)
        pong = await reader.ws.ping()
        await pong  # the socket is alive
        assert reader.events == []
        await wait_until(lambda: time.monotonic() - silenced_at > 0.5)
        await _buy(sim)
        await wait_until(lambda: reader.fills() == 1)
    truth = sim.ground_truth()["accounts"]["alpha"]
    assert truth["undelivered_fill_events"] == 1
    assert await _trades(rest) == 2


async def test_expire_listen_key_now(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        key = sim.inject("alpha", "expire_listen_key")["listen_key"]
        await wait_until(lambda: bool(reader.of("listenKeyExpired")))
        await _buy(sim)
        status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", signed=False)
    assert reader.of("listenKeyExpired")[0]["listenKey"] == key
    assert (status, body["code"]) == (400, -1125)
    assert fill_events(reader.events) == []


async def test_rest_lag_hides_rows_for_a_while(sim: Simulator, rest: Rest) -> None:
    await _buy(sim)
    bought_at = time.monotonic()
    await wait_until(lambda: time.monotonic() - bought_at > 1.0)
    sim.inject("alpha", "rest_lag", seconds=1.0)  # the first buy is older: visible
    async with connected(sim, rest) as reader:
        order = await sim.trade("alpha", "BTCUSDT", "BUY", "0.002")
        lagged_at = time.monotonic()
        await wait_until(lambda: reader.fills() == 1)  # the stream is not delayed
        assert await _trades(rest) == 1
        params = {"symbol": "BTCUSDT", "orderId": order["orderId"]}
        assert (await rest.call("GET", "/fapi/v1/order", params))[1]["code"] == -2013
        risk = await rest.ok("GET", "/fapi/v3/positionRisk")
        assert [r["positionAmt"] for r in risk] == ["0.001"]
        await wait_until(lambda: time.monotonic() - lagged_at > 1.05)
        assert await _trades(rest) == 2
        assert (await rest.ok("GET", "/fapi/v1/order", params))["status"] == "FILLED"
        assert [r["positionAmt"] for r in await rest.ok("GET", "/fapi/v3/positionRisk")] == [
            "0.003"
        ]
    sim.inject("alpha", "rest_lag", seconds=0)
    assert sim.faults() == []


async def test_duplicate_and_reorder(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        sim.inject("alpha", "duplicate", count=EVENTS_PER_FILL)
        await _buy(sim)
        await wait_until(lambda: len(reader.events) == 2 * EVENTS_PER_FILL)
        twice = [e["e"] for e in reader.events]
        assert twice == [e for e in twice[::2] for _ in range(2)]
        sim.inject("alpha", "reorder", count=EVENTS_PER_FILL)
        await _buy(sim)
        await wait_until(lambda: len(reader.events) == 3 * EVENTS_PER_FILL)
    reordered = [e["e"] for e in reader.events[2 * EVENTS_PER_FILL :]]
    assert reordered == ["ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE", "TRADE_LITE", "ORDER_TRADE_UPDATE"]
    assert reader.events[-1]["o"]["x"] == "NEW"


async def test_reorder_releases_a_partial_batch(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        sim.inject("alpha", "reorder", count=100)
        await _buy(sim)
        await wait_until(lambda: len(reader.events) == EVENTS_PER_FILL, within=5)
    assert reader.events[0]["e"] == "ACCOUNT_UPDATE"


async def test_rest_errors(sim: Simulator, rest: Rest) -> None:
    sim.inject("alpha", "rest_error", status=429, count=2, retry_after=7)
    for _ in range(2):
        status, body, headers = await rest.call("GET", "/fapi/v1/openOrders", {})
        assert (status, body["code"], headers["Retry-After"]) == (429, -1003, "7")
    assert (await rest.call("GET", "/fapi/v1/openOrders", {}))[0] == 200
    sim.inject("alpha", "rest_error", status=418, retry_after=30)
    status, _, headers = await rest.call("GET", "/fapi/v1/openOrders", {})
    assert (status, headers["Retry-After"]) == (418, "30")
    sim.inject("alpha", "rest_error", status=503)
    status, body, _ = await rest.call("GET", "/fapi/v1/openOrders", {})
    assert (status, body["code"]) == (503, -1001)
    sim.inject(None, "rest_error", status=500, code=-1007)  # anyone, even unauthenticated
    status, body, _ = await rest.call("GET", "/fapi/v1/time", signed=False, key="")
    assert (status, body["code"]) == (500, -1007)
    assert sim.faults() == []  # every burst used up


async def test_clock_skew_moves_server_time_and_the_window(sim: Simulator, rest: Rest) -> None:
    sim.inject(None, "clock_skew", ms=30_000)
    server = (await rest.ok("GET", "/fapi/v1/time"))["serverTime"]
    assert 25_000 < server - time.time() * 1000 < 35_000
    status, body, _ = await rest.call("GET", "/fapi/v1/openOrders", {})
    assert (status, body["code"]) == (400, -1021)
    query = rest.signed_query({}, offset_ms=30_000)
    assert (await rest.call("GET", "/fapi/v1/openOrders", query=query))[0] == 200


async def test_refuse_ws_for_a_while(sim: Simulator, rest: Rest) -> None:
    key = await rest.listen_key()
    sim.inject("alpha", "refuse_ws", seconds=0.3)
    refused_at = time.monotonic()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{sim.ws_url}/private/ws/{key}")
    assert refused.value.response.status_code == 503
    await wait_until(lambda: time.monotonic() - refused_at > 0.35)
    async with stream(f"{sim.ws_url}/private/ws/{key}"):
        await wait_until(lambda: sim.hub.live_subscriptions("alpha") == 1)


async def test_inject_frame_and_cut(sim: Simulator, rest: Rest) -> None:
    async with connected(sim, rest) as reader:
        raw = '{"e":"SOMETHING_NEW","E":1}'
        assert sim.inject("alpha", "inject_frame", raw="not json {")["sockets"] == 1
        sim.inject("alpha", "inject_frame", raw=raw)
        await wait_until(lambda: len(reader.frames) == 2)
        assert reader.frames == ["not json {", raw]
        sim.inject("alpha", "cut")
        await wait_until(lambda: reader.closed)
    assert reader.close_code == 1001


async def test_admin_api(sim: Simulator, rest: Rest, http: aiohttp.ClientSession) -> None:
    url = f"{sim.admin_url}/_sim/faults"
    async with http.post(url, json={"account": "alpha", "kind": "drop", "count": 5}) as resp:
        assert resp.status == 200
    async with http.post(url, json={"kind": "clock_skew", "ms": 5}) as resp:
        assert resp.status == 200
    async with http.get(url) as resp:
        listed = (await resp.json())["faults"]
    assert {"account": "alpha", "kind": "drop", "count": 5} in listed
    assert {"account": None, "kind": "clock_skew", "ms": 5} in listed
    for bad in ({"kind": "nope"}, {"account": "alpha", "kind": "drop", "count": -1}, {}):
        async with http.post(url, json=bad) as resp:
            assert resp.status == 400
            assert "error" in await resp.json()
    async with http.delete(url) as resp:
        assert (await resp.json()) == {"faults": []}
    assert sim.faults() == []
    async with http.post(
        f"{sim.admin_url}/_sim/trade",
        json={"account": "alpha", "symbol": "BTCUSDT", "side": "BUY", "qty": "0.001"},
    ) as resp:
        assert (await resp.json())["status"] == "FILLED"
    async with http.get(f"{sim.admin_url}/_sim/ledger") as resp:
        ledger = await resp.json()
    assert len(ledger["accounts"]["alpha"]["fills"]) == 1
    body = {"account": "alpha", "symbol": "ETHUSDT", "count": 10, "rate": 0}
    async with http.post(f"{sim.admin_url}/_sim/burst", json=body) as resp:
        assert await resp.json() == {"fills": 10}
    async with http.get(f"{sim.admin_url}/_sim/status") as resp:
        status = await resp.json()
    assert (status["fills_generated"], status["events_emitted"]) == (11, 44)
    assert not status["accounts"]["alpha"]["listen_key_active"]
    async with http.post(
        f"{sim.admin_url}/_sim/mark", json={"symbol": "ETHUSDT", "price": "2500"}
    ) as resp:
        assert (await resp.json())["mark"] == "2500.00"
    async with http.post(f"{sim.admin_url}/_sim/clock", json={"advance_s": 60}) as resp:
        assert (await resp.json())["sim_s"] >= 60
    async with http.post(f"{sim.admin_url}/_sim/pause") as resp:
        assert await resp.json() == {"paused": True}


async def test_faults_from_config(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(
        accounts=("alpha", "beta"),
        faults=(
            FaultSpec(kind="drop", params={"count": 2}),  # every account
            FaultSpec(kind="rest_error", account="beta", params={"status": 429}),
        ),
    )
    kinds = {(f["account"], f["kind"]) for f in sim.faults()}
    assert kinds == {("alpha", "drop"), ("beta", "drop"), ("beta", "rest_error")}
    assert (await Rest(http, sim, "beta").call("GET", "/fapi/v1/openOrders", {}))[0] == 429
    assert (await Rest(http, sim, "alpha").call("GET", "/fapi/v1/openOrders", {}))[0] == 200
