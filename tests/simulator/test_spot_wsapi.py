"""The spot WS API: ``userDataStream.subscribe.signature``, several accounts on one connection,
the event envelope, and Binance's error codes for bad subscribes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
import pytest

from fillstream.simulator import SimAccount, Simulator
from fillstream.simulator.spot_keys import sign
from tests.simulator.conftest import SimFactory

EXECUTION_FIELDS = frozenset(  # binance-facts §5.3: every field a client reads
    {"e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x", "X", "r", "i", "l",
     "z", "L", "n", "N", "T", "t", "I", "w", "m", "M", "O", "Z", "Y", "Q", "W", "V"}
)  # fmt: skip


class WsApiClient:
    """A bare WS API client: requests by id, events in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            body = msgspec.json.decode(msg.data)
            async with self._changed:
                if "event" in body:
                    self.events.append(body)
                else:
                    self.answers[body["id"]] = body
                self._changed.notify_all()

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        body: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            body["params"] = params
        await self.ws.send_str(msgspec.json.encode(body).decode())
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: request_id in self.answers), 5)
        return self.answers.pop(request_id)

    async def subscribe(self, account: SimAccount, **extra: Any) -> dict[str, Any]:
        return await self.request("userDataStream.subscribe.signature", signed(account, **extra))

    async def wait_events(self, count: int, within: float = 5.0) -> list[dict[str, Any]]:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.events) >= count), within
            )
        return list(self.events)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def signed(account: SimAccount, **extra: Any) -> dict[str, Any]:
    """``apiKey``, ``timestamp`` (+ extra) and the signature over them, sorted by name."""
    params: dict[str, Any] = {"apiKey": account.api_key, "timestamp": int(time.time() * 1000)}
    params |= extra
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    params["signature"] = sign(
        account.key_type, payload, secret=account.api_secret, private_pem=account.private_key_pem
    )
    return params


@pytest.fixture
async def spot_sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=(), spot_accounts=("s1", "s2", "s3"))


@pytest.fixture
async def connect(spot_sim: Simulator) -> AsyncIterator[Any]:
    session = aiohttp.ClientSession()
    clients: list[WsApiClient] = []

    async def open_client(sim: Simulator = spot_sim) -> WsApiClient:
        client = WsApiClient(await session.ws_connect(sim.ws_url + "/ws-api/v3"))
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()
    await session.close()


async def test_subscribe_and_receive_execution_reports(spot_sim: Simulator, connect: Any) -> None:
    client = await connect()
    answer = await client.subscribe(spot_sim.account("s1"))
    assert answer["status"] == 200 and answer["result"] == {"subscriptionId": 0}
    assert answer["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    assert answer["rateLimits"][0]["limit"] == 6000
    await spot_sim.spot_trade("s1", "BTCUSDT", "BUY", "0.01", parts=2)
    events = await client.wait_events(5)  # NEW, TRADE, position, TRADE, position
    kinds = [(e["event"]["e"], e["event"].get("x")) for e in events]
    assert kinds == [
        ("executionReport", "NEW"),
        ("executionReport", "TRADE"),
        ("outboundAccountPosition", None),
        ("executionReport", "TRADE"),
        ("outboundAccountPosition", None),
    ]
    assert all(e["subscriptionId"] == 0 for e in events)
    new, trade = events[0]["event"], events[1]["event"]
    assert set(trade) >= EXECUTION_FIELDS
    assert new["t"] == -1 and new["N"] is None and new["n"] == "0"
    truth = spot_sim.ground_truth(market="spot")["accounts"]["s1"]
    fills = truth["fills"]
    assert [f["id"] for f in fills] == [events[1]["event"]["t"], events[3]["event"]["t"]]
    assert trade["l"] == fills[0]["qty"] and trade["L"] == fills[0]["price"]
    assert trade["Y"] == fills[0]["quoteQty"] and trade["N"] == fills[0]["commissionAsset"]
    assert trade["n"] == fills[0]["commission"] and trade["m"] is False
    assert fills[0]["side"] == "BUY" and truth["closes"] == []
    position = events[2]["event"]
    assert {b["a"] for b in position["B"]} >= {"BTC", "USDT"}


async def test_many_accounts_on_one_connection(spot_sim: Simulator, connect: Any) -> None:
    client = await connect()
    ids = [(await client.subscribe(spot_sim.account(n)))["result"] for n in ("s1", "s2", "s3")]
    assert ids == [{"subscriptionId": 0}, {"subscriptionId": 1}, {"subscriptionId": 2}]
    subs = await client.request("session.subscriptions")
    assert subs["result"] == [{"subscriptionId": i} for i in range(3)]
    status = await client.request("session.status")
    assert status["result"]["userDataStream"] is True
    await spot_sim.spot_trade("s2", "ETHUSDT", "SELL", "0.5")
    events = await client.wait_events(3)
    assert {e["subscriptionId"] for e in events} == {1}  # only s2's subscription
    again = await client.subscribe(spot_sim.account("s2"))
    assert again["status"] == 400 and again["error"]["code"] == -2035


async def test_unsubscribe_sends_event_stream_terminated(spot_sim: Simulator, connect: Any) -> None:
    client = await connect()
    await client.subscribe(spot_sim.account("s1"))
    await client.subscribe(spot_sim.account("s2"))
    answer = await client.request("userDataStream.unsubscribe", {"subscriptionId": 0})
    assert answer["status"] == 200 and answer["result"] == {}
    events = await client.wait_events(1)
    assert events[0] == {
        "subscriptionId": 0,
        "event": {"e": "eventStreamTerminated", "E": events[0]["event"]["E"]},
    }
    await spot_sim.spot_trade("s1", "BTCUSDT", "BUY", "0.001")
    await spot_sim.spot_trade("s2", "BTCUSDT", "BUY", "0.001")
    events = await client.wait_events(4)
    assert {e["subscriptionId"] for e in events[1:]} == {1}
    gone = await client.request("userDataStream.unsubscribe", {"subscriptionId": 0})
    assert gone["error"]["code"] == -2036
    # A new subscription gets the next id: ids count up per connection.
    assert (await client.subscribe(spot_sim.account("s1")))["result"] == {"subscriptionId": 2}
    await client.request("userDataStream.unsubscribe")  # no id: all of them
    events = await client.wait_events(6)
    ended = sorted(
        e["subscriptionId"] for e in events if e["event"]["e"] == "eventStreamTerminated"
    )
    assert ended == [0, 1, 2]
    assert (await client.request("session.status"))["result"]["userDataStream"] is False


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"signature": "00" * 32}, -1022),
        ({"apiKey": "A" * 64}, -2015),
        ({"apiKey": "short"}, -2014),
        ({"timestamp": 1}, -1021),
        ({"recvWindow": 60001}, -1131),
        ({"timestamp": None}, -1102),
    ],
)
async def test_subscribe_errors(
    spot_sim: Simulator, connect: Any, change: dict[str, Any], code: int
) -> None:
    client = await connect()
    params = signed(spot_sim.account("s1")) | change
    if "recvWindow" in change:
        params = signed(spot_sim.account("s1"), recvWindow=60001)
    params = {k: v for k, v in params.items() if v is not None}
    answer = await client.request("userDataStream.subscribe.signature", params)
    assert answer["error"]["code"] == code, answer
    assert answer["status"] in (400, 401)


async def test_signature_covers_recv_window_and_time_and_ping(
    spot_sim: Simulator, connect: Any
) -> None:
    client = await connect()
    ok = await client.subscribe(spot_sim.account("s1"), recvWindow=10000)
    assert ok["status"] == 200
    assert (await client.request("ping"))["result"] == {}
    server = (await client.request("time"))["result"]["serverTime"]
    assert abs(server - time.time() * 1000) < 5000
    unknown = await client.request("order.place")
    assert unknown["error"]["code"] == -1020
    async with aiohttp.ClientSession() as http:
        url = spot_sim.ws_url + "/ws-api/v3?returnRateLimits=false"
        quiet = WsApiClient(await http.ws_connect(url))
        answer = await quiet.request("session.status")
        assert "rateLimits" not in answer and answer["result"]["returnRateLimits"] is False
        await quiet.close()


@pytest.mark.parametrize("key_type", ["RSA", "ED25519"])
async def test_rsa_and_ed25519_keys(make_sim: SimFactory, key_type: str) -> None:
    sim = await make_sim(accounts=(), spot_accounts=("k",), spot_key_types={"k": key_type})
    acct = sim.account("k")
    record = sim.spot_record(acct)
    assert record["key_type"] == key_type and record["api_secret"] == ""
    assert str(record["private_key_pem"]).startswith("-----BEGIN PRIVATE KEY-----")
    async with aiohttp.ClientSession() as http:
        client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))
        forged = signed(acct)
        forged["signature"] = forged["signature"][::-1]
        bad = await client.request("userDataStream.subscribe.signature", forged)
        assert bad["error"]["code"] == -1022
        assert (await client.subscribe(acct))["result"] == {"subscriptionId": 0}
        await sim.spot_trade("k", "BTCUSDT", "SELL", "0.001")
        assert (await client.wait_events(1))[0]["event"]["e"] == "executionReport"
        await client.close()


async def test_subscription_limits_per_connection(make_sim: SimFactory) -> None:
    sim = await make_sim(
        accounts=(), spot_accounts=("a", "b", "c"), ws_api_max_active=2, ws_api_max_lifetime=4
    )
    async with aiohttp.ClientSession() as http:
        client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))
        assert (await client.subscribe(sim.account("a")))["status"] == 200
        assert (await client.subscribe(sim.account("b")))["status"] == 200
        full = await client.subscribe(sim.account("c"))
        assert full["error"]["code"] == -2042 and "active" in full["error"]["msg"]
        await client.request("userDataStream.unsubscribe", {"subscriptionId": 0})
        assert (await client.subscribe(sim.account("c")))["result"] == {"subscriptionId": 2}
        await client.request("userDataStream.unsubscribe", {"subscriptionId": 1})
        assert (await client.subscribe(sim.account("a")))["result"] == {"subscriptionId": 3}
        await client.request("userDataStream.unsubscribe", {"subscriptionId": 3})
        spent = await client.subscribe(sim.account("a"))  # 4 over this connection's life
        assert spent["error"]["code"] == -2042 and "ID" in spent["error"]["msg"]
        await client.close()


async def test_amend_and_self_trade_prevention_reports(spot_sim: Simulator, connect: Any) -> None:
    client = await connect()
    await client.subscribe(spot_sim.account("s1"))
    spot = spot_sim.spot
    price = spot.symbols["ETHUSDT"].mark / 2
    for _ in range(2):
        await spot_sim.spot_trade("s1", "ETHUSDT", "BUY", "1", order_type="LIMIT", price=price)
    book = spot.books["s1"]
    first, second = list(book.open_orders.values())
    locked = book.asset("USDT").locked
    spot.engine.amend(book, first, Decimal("0.4"))
    spot.engine.prevent_match(book, second, 42)
    events = await client.wait_events(8)
    replaced = next(e["event"] for e in events if e["event"].get("x") == "REPLACED")
    assert (replaced["i"], replaced["q"], replaced["X"]) == (first.order_id, "0.40000000", "NEW")
    prevented = next(e["event"] for e in events if e["event"].get("x") == "TRADE_PREVENTION")
    assert prevented["X"] == "EXPIRED_IN_MATCH" and prevented["U"] == 42
    assert {"v", "A", "B", "u", "U", "Cs", "pl", "pL", "pY"} <= set(prevented)
    assert book.asset("USDT").locked == first.locked < locked
    rows = {o["orderId"]: o for o in spot_sim.ground_truth()["accounts"]["s1"]["orders"]}
    assert rows[first.order_id]["origQty"] == "0.40000000"
    assert rows[second.order_id]["status"] == "EXPIRED_IN_MATCH"


async def test_logon_flow_with_an_ed25519_key(make_sim: SimFactory) -> None:
    sim = await make_sim(accounts=(), spot_accounts=("ed", "mac"), spot_key_types={"ed": "ED25519"})
    ed, mac = sim.account("ed"), sim.account("mac")
    async with aiohttp.ClientSession() as http:
        client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))
        early = await client.request("userDataStream.subscribe")
        assert (early["status"], early["error"]["code"]) == (401, -1002)
        hmac_logon = await client.request("session.logon", signed(mac))
        assert hmac_logon["error"]["code"] == -1002  # Ed25519 keys only
        logon = await client.request("session.logon", signed(ed))
        assert logon["result"]["apiKey"] == ed.api_key and logon["result"]["authorizedSince"]
        assert (await client.request("userDataStream.subscribe"))["result"] == {"subscriptionId": 0}
        assert (await client.subscribe(mac))["result"] == {"subscriptionId": 1}
        again = await client.subscribe(ed)  # one subscription per account and connection
        assert again["error"]["code"] == -2035
        out = await client.request("session.logout")
        assert out["result"]["apiKey"] is None
        events = await client.wait_events(1)
        assert events[0] == {
            "subscriptionId": 0,
            "event": {"e": "eventStreamTerminated", "E": events[0]["event"]["E"]},
        }
        subs = await client.request("session.subscriptions")
        assert subs["result"] == [{"subscriptionId": 1}]  # .signature ones survive a logout
        await client.close()
