"""REST semantics: parameters, authentication, weights and rate limits, as Binance has them."""

from __future__ import annotations

import time
from decimal import Decimal

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=("alpha", "beta"))


@pytest.fixture
def rest(http: aiohttp.ClientSession, sim: Simulator) -> Rest:
    return Rest(http, sim, "alpha")


async def _code(rest: Rest, method: str, path: str, params: dict[str, object]) -> tuple[int, int]:
    status, body, _ = await rest.call(method, path, params)
    return status, body["code"]


async def test_user_trades_rules(sim: Simulator, rest: Rest) -> None:
    for _ in range(3):
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
    path = "/fapi/v1/userTrades"
    assert await _code(rest, "GET", path, {}) == (400, -1102)
    assert await _code(rest, "GET", path, {"symbol": "NOPEUSDT"}) == (400, -1121)
    now = int(time.time() * 1000)
    assert await _code(rest, "GET", path, {"symbol": "BTCUSDT", "fromId": 1, "startTime": now}) == (
        400,
        -1128,
    )
    assert await _code(rest, "GET", path, {"symbol": "BTCUSDT", "limit": 1001}) == (400, -1130)
    eight_days = {"symbol": "BTCUSDT", "startTime": now - 8 * DAY_MS, "endTime": now}
    assert await _code(rest, "GET", path, eight_days) == (400, -1127)
    backwards = {"symbol": "BTCUSDT", "startTime": now, "endTime": now - 1}
    assert await _code(rest, "GET", path, backwards) == (400, -1128)

    rows = await rest.ok("GET", path, {"symbol": "BTCUSDT"})
    assert len(rows) == 3
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert await rest.ok("GET", path, {"symbol": "BTCUSDT", "limit": 2}) == rows[1:]  # newest
    window = {"symbol": "BTCUSDT", "startTime": now - DAY_MS, "limit": 2}
    assert await rest.ok("GET", path, window) == rows[:2]  # oldest first from startTime
    assert await rest.ok("GET", path, {"symbol": "BTCUSDT", "fromId": rows[2]["id"]}) == rows[2:]
    by_order = {"symbol": "BTCUSDT", "orderId": rows[1]["orderId"]}
    assert await rest.ok("GET", path, by_order) == [rows[1]]
    assert await rest.ok("GET", path, {"symbol": "ETHUSDT"}) == []
    # Another account never sees alpha's trades.
    assert await Rest(rest.http, sim, "beta").ok("GET", path, {"symbol": "BTCUSDT"}) == []


async def test_orders_and_algo_ids(sim: Simulator, rest: Rest) -> None:
    filled = await sim.trade("alpha", "ETHUSDT", "BUY", "0.100")
    resting = await sim.trade("alpha", "ETHUSDT", "BUY", "0.100", order_type="LIMIT", price="100")
    algo = await sim.algo(
        "alpha", "ETHUSDT", "STOP_MARKET", "SELL", trigger_price="1000", close_position=True
    )
    assert await _code(rest, "GET", "/fapi/v1/order", {"symbol": "ETHUSDT"}) == (400, -1102)
    for order_id in (123, algo["algoId"]):
        params = {"symbol": "ETHUSDT", "orderId": order_id}
        assert await _code(rest, "GET", "/fapi/v1/order", params) == (400, -2013)
    by_client = {"symbol": "ETHUSDT", "origClientOrderId": filled["clientOrderId"]}
    assert (await rest.ok("GET", "/fapi/v1/order", by_client))["orderId"] == filled["orderId"]
    open_one = {"symbol": "ETHUSDT", "orderId": filled["orderId"]}
    assert await _code(rest, "GET", "/fapi/v1/openOrder", open_one) == (400, -2013)
    opened = await rest.ok("GET", "/fapi/v1/openOrders", {"symbol": "ETHUSDT"})
    assert [o["orderId"] for o in opened] == [resting["orderId"]]
    after = {"symbol": "ETHUSDT", "orderId": resting["orderId"]}
    assert [o["status"] for o in await rest.ok("GET", "/fapi/v1/allOrders", after)] == ["NEW"]
    everything = await rest.ok("GET", "/fapi/v1/allOrders", {"symbol": "ETHUSDT"})
    assert [o["orderId"] for o in everything] == [filled["orderId"], resting["orderId"]]
    assert everything[0]["avgPrice"] != "0.00000"
    # The resting order is why positionRisk lists ETHUSDT; BTCUSDT has nothing.
    risk = await rest.ok("GET", "/fapi/v3/positionRisk")
    assert [(r["symbol"], r["positionAmt"]) for r in risk] == [("ETHUSDT", "0.1")]
    assert (await rest.ok("GET", "/fapi/v1/algoOrder", {"algoId": algo["algoId"]}))[
        "actualOrderId"
    ] == ""
    by_caid = {"clientAlgoId": algo["clientAlgoId"]}
    assert (await rest.ok("GET", "/fapi/v1/algoOrder", by_caid))["algoId"] == algo["algoId"]
    assert await _code(rest, "GET", "/fapi/v1/algoOrder", {"algoId": 1}) == (400, -2013)
    assert await _code(rest, "GET", "/fapi/v1/allAlgoOrders", {}) == (400, -1102)


async def test_income_links_trades_and_pages(sim: Simulator, rest: Rest) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
    sim.set_mark("BTCUSDT", "80000")
    await sim.trade("alpha", "BTCUSDT", "SELL", "0.010")
    sim.funding()  # the position is flat: nothing to charge
    trades = await rest.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    income = await rest.ok("GET", "/fapi/v1/income", {})
    assert [(r["incomeType"], r["tradeId"]) for r in income] == [
        ("COMMISSION", str(trades[0]["id"])),
        ("REALIZED_PNL", str(trades[1]["id"])),
        ("COMMISSION", str(trades[1]["id"])),
    ]
    assert income[1]["income"] == trades[1]["realizedPnl"]
    assert income[0]["income"] == "-" + trades[0]["commission"]  # a fee leaves the wallet
    since = int(time.time() * 1000) - DAY_MS
    page2 = await rest.ok("GET", "/fapi/v1/income", {"limit": 2, "page": 2, "startTime": since})
    assert page2 == income[2:]
    only = await rest.ok("GET", "/fapi/v1/income", {"incomeType": "REALIZED_PNL"})
    assert only == [income[1]]


async def test_signature_key_and_timestamp_checks(sim: Simulator, rest: Rest) -> None:
    path = "/fapi/v1/userTrades"
    good = rest.signed_query({"symbol": "BTCUSDT"})
    assert (await rest.call("GET", path, query=good))[0] == 200
    tampered = good.replace("BTCUSDT", "ETHUSDT")
    assert (await rest.call("GET", path, query=tampered))[1]["code"] == -1022
    unsigned = good.rsplit("&signature=", 1)[0]
    assert (await rest.call("GET", path, query=unsigned))[1]["code"] == -1102
    no_timestamp = "symbol=BTCUSDT"
    assert (await rest.call("GET", path, query=no_timestamp))[1]["code"] == -1102
    status, body, _ = await rest.call("GET", path, query=good, key="")
    assert (status, body["code"]) == (401, -2014)
    status, body, _ = await rest.call("GET", path, query=good, key="x" * 64)
    assert (status, body["code"]) == (401, -2015)
    late = rest.signed_query({"symbol": "BTCUSDT"}, offset_ms=-6000)
    assert (await rest.call("GET", path, query=late))[1]["code"] == -1021
    ahead = rest.signed_query({"symbol": "BTCUSDT"}, offset_ms=1500)
    assert (await rest.call("GET", path, query=ahead))[1]["code"] == -1021
    wide = rest.signed_query({"symbol": "BTCUSDT", "recvWindow": 20000}, offset_ms=-6000)
    assert (await rest.call("GET", path, query=wide))[0] == 200
    too_wide = rest.signed_query({"symbol": "BTCUSDT", "recvWindow": 60001})
    assert (await rest.call("GET", path, query=too_wide))[1]["code"] == -1131
    # The listenKey endpoints need the key header only.
    status, body, _ = await rest.call("POST", "/fapi/v1/listenKey", signed=False, key="")
    assert (status, body["code"]) == (401, -2014)
    status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", signed=False)
    assert (status, body["code"]) == (400, -1125)


async def test_weights_429_retry_after_then_418(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(weight_limit_1m=100)
    rest = Rest(http, sim, "alpha")
    sim.clock.advance(60 - sim.clock.sim_s() % 60 + 1)  # start of a fresh minute
    _, _, headers = await rest.call("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    assert headers["X-MBX-USED-WEIGHT-1M"] == "5"
    _, _, headers = await rest.call("GET", "/fapi/v1/openOrders", {})
    assert headers["X-MBX-USED-WEIGHT-1M"] == "45"  # 40 without a symbol
    _, _, headers = await rest.call("GET", "/fapi/v1/income", {})
    assert headers["X-MBX-USED-WEIGHT-1M"] == "75"
    info = await rest.ok("GET", "/fapi/v1/exchangeInfo")
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 100,
    }
    assert await _code(rest, "GET", "/fapi/v1/income", {}) == (429, -1003)
    for _ in range(2):
        status, _, headers = await rest.call("GET", "/fapi/v1/income", {})
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 60
    status, body, headers = await rest.call("GET", "/fapi/v1/time", signed=False)
    assert status == 418  # a fourth request after three 429s in the window: banned
    assert "banned until" in body["msg"]
    assert int(headers["Retry-After"]) >= 100
    sim.clock.advance(61)
    assert (await rest.call("GET", "/fapi/v1/time", signed=False))[0] == 418  # still banned
    sim.clock.advance(120)
    assert (await rest.call("GET", "/fapi/v1/time", signed=False))[0] == 200


async def test_account_and_balance(sim: Simulator, rest: Rest) -> None:
    await sim.trade("alpha", "ETHUSDT", "BUY", "1.000")
    for path in ("/fapi/v2/account", "/fapi/v3/account"):
        body = await rest.ok("GET", path)
        assert body["canTrade"] is True
        assert [(p["symbol"], p["positionAmt"]) for p in body["positions"]] == [("ETHUSDT", "1")]
        assert body["assets"][0]["asset"] == "USDT"
    wallet = (await rest.ok("GET", "/fapi/v2/account"))["totalWalletBalance"]
    fee = Decimal(sim.ground_truth()["accounts"]["alpha"]["fills"][0]["commission"])
    assert Decimal(wallet) == 100_000 - fee  # the opening fee left the wallet
    [usdt] = await rest.ok("GET", "/fapi/v3/balance")
    assert (usdt["asset"], usdt["balance"]) == ("USDT", wallet)


async def test_exchange_info_symbols(sim: Simulator, rest: Rest) -> None:
    info = await rest.ok("GET", "/fapi/v1/exchangeInfo")
    btc = info["symbols"][0]
    assert (btc["symbol"], btc["contractType"], btc["marginAsset"]) == (
        "BTCUSDT",
        "PERPETUAL",
        "USDT",
    )
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10"
    assert filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert abs((await rest.ok("GET", "/fapi/v1/time"))["serverTime"] - time.time() * 1000) < 5000
