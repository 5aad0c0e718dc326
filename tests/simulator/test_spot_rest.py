"""Spot REST (``/api/v3``): myTrades, allOrders, order, account; weights, combos and windows."""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory


@pytest.fixture
async def spot_sim(make_sim: SimFactory) -> Simulator:
    sim = await make_sim(accounts=(), spot_accounts=("s1", "s2"))
    sim.step(30)  # seeded activity: markets, limits, lists, cancels, transfers
    return sim


@pytest.fixture
def rest(http: aiohttp.ClientSession, spot_sim: Simulator) -> Rest:
    return Rest(http, spot_sim, "s1")


async def test_my_trades_match_the_ground_truth(spot_sim: Simulator, rest: Rest) -> None:
    truth = spot_sim.ground_truth(market="spot")["accounts"]["s1"]
    assert truth["fills"], "the generator made no fills"
    for symbol in spot_sim.config.spot_symbols:
        status, rows, headers = await rest.call("GET", "/api/v3/myTrades", {"symbol": symbol})
        assert status == 200
        expected = [
            {k: v for k, v in f.items() if k not in ("side", "account")}
            for f in truth["fills"]
            if f["symbol"] == symbol
        ]
        assert rows == expected[-500:]
        for row in rows:
            assert list(row) == [
                "symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty",
                "commission", "commissionAsset", "time", "isBuyer", "isMaker", "isBestMatch",
            ]  # fmt: skip
        assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 20


async def test_my_trades_from_id_order_id_and_weights(spot_sim: Simulator, rest: Rest) -> None:
    fills = spot_sim.ground_truth()["accounts"]["s1"]["fills"]
    symbol = fills[0]["symbol"]
    mine = [f for f in fills if f["symbol"] == symbol]
    from_id = mine[-1]["id"]
    rows = await rest.ok("GET", "/api/v3/myTrades", {"symbol": symbol, "fromId": from_id})
    assert [r["id"] for r in rows] == [from_id]
    _, _, before = await rest.call("GET", "/api/v3/time", signed=False)
    used = int(before["X-MBX-USED-WEIGHT-1M"])
    _, rows, after = await rest.call(
        "GET", "/api/v3/myTrades", {"symbol": symbol, "orderId": mine[0]["orderId"]}
    )
    assert rows and {r["orderId"] for r in rows} == {mine[0]["orderId"]}
    assert int(after["X-MBX-USED-WEIGHT-1M"]) == used + 5


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, -1102),
        ({"symbol": "NOPE"}, -1121),
        ({"symbol": "BTCUSDT", "fromId": 1, "startTime": 1}, -1128),
        ({"symbol": "BTCUSDT", "orderId": 1, "startTime": 1}, -1128),
        ({"symbol": "BTCUSDT", "startTime": 0, "endTime": 24 * 3600 * 1000 + 1}, -1127),
        ({"symbol": "BTCUSDT", "limit": 1001}, -1130),
    ],
)
async def test_my_trades_refusals(rest: Rest, params: dict[str, object], code: int) -> None:
    status, body, _ = await rest.call("GET", "/api/v3/myTrades", params)
    assert status == 400 and body["code"] == code, body


async def test_orders_and_account(spot_sim: Simulator, rest: Rest) -> None:
    truth = spot_sim.ground_truth()["accounts"]["s1"]
    symbol = truth["orders"][0]["symbol"]
    rows = await rest.ok("GET", "/api/v3/allOrders", {"symbol": symbol})
    expected = [{k: v for k, v in o.items() if k != "account"} for o in truth["orders"]]
    assert rows == [o for o in expected if o["symbol"] == symbol]
    one = await rest.ok("GET", "/api/v3/order", {"symbol": symbol, "orderId": rows[0]["orderId"]})
    assert one == rows[0]
    status, body, _ = await rest.call("GET", "/api/v3/order", {"symbol": symbol, "orderId": 7})
    assert (status, body["code"]) == (400, -2013)
    account = await rest.ok("GET", "/api/v3/account")
    balances = {b["asset"]: {"free": b["free"], "locked": b["locked"]} for b in account["balances"]}
    assert balances == truth["balances"]
    assert account["accountType"] == "SPOT"


async def test_signed_payload_must_be_percent_encoded(spot_sim: Simulator, rest: Rest) -> None:
    """The 2026-01-15 rule: the signature covers the bytes as sent, still encoded."""
    raw = f"symbol=BTCUSDT&newClientOrderId=a%20b&timestamp={int(time.time() * 1000)}"
    decoded = raw.replace("%20", " ")
    bad = hmac.new(rest.secret.encode(), decoded.encode(), hashlib.sha256).hexdigest()
    status, body, _ = await rest.call("GET", "/api/v3/openOrders", query=f"{raw}&signature={bad}")
    assert (status, body["code"]) == (400, -1022)
    good = hmac.new(rest.secret.encode(), raw.encode(), hashlib.sha256).hexdigest()
    status, body, _ = await rest.call("GET", "/api/v3/openOrders", query=f"{raw}&signature={good}")
    assert status == 200, body


async def test_archived_orders_and_open_orders(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(accounts=(), spot_accounts=("s1",), spot_archive_after_s=3600)
    rest = Rest(http, sim, "s1")
    mark = sim.spot.symbols["BTCUSDT"].mark
    resting = await sim.spot_trade(
        "s1", "BTCUSDT", "BUY", "0.001", order_type="LIMIT", price=mark / 2,
        client_order_id="rest-1",
    )  # fmt: skip
    opened = await rest.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert [o["orderId"] for o in opened] == [resting["orderId"]]
    by_client = await rest.ok(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-1"}
    )
    assert by_client["orderId"] == resting["orderId"] and by_client["status"] == "NEW"
    cancelled = await rest.ok(
        "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": resting["orderId"]}
    )
    assert cancelled["status"] == "CANCELED"
    assert await rest.ok("GET", "/api/v3/openOrders") == []
    sim.clock.advance(3601)  # cancelled with nothing filled, past the archive horizon
    status, body, _ = await rest.call(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": resting["orderId"]}
    )
    assert (status, body["code"]) == (400, -2026)
    assert await rest.ok("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}) == []


async def test_place_market_order_full_response(spot_sim: Simulator, rest: Rest) -> None:
    placed = await rest.ok(
        "POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                                  "quantity": "0.01"}
    )  # fmt: skip
    assert placed["status"] == "FILLED" and len(placed["fills"]) == 1
    trades = await rest.ok(
        "GET", "/api/v3/myTrades", {"symbol": "ETHUSDT", "orderId": placed["orderId"]}
    )
    assert [t["id"] for t in trades] == [f["tradeId"] for f in placed["fills"]]
    status, body, _ = await rest.call(
        "POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                                  "quantity": "1000"}
    )  # fmt: skip
    assert (status, body["code"]) == (400, -2010)
