"""COIN-M (``/dapi``, dstream) beside USDⓈ-M in one simulator, through python-binance's own
``futures_coin_*`` calls and raw requests."""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from binance import AsyncClient
    from binance.exceptions import BinanceAPIException

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory, fill_events, stream, wait_until

DAY_MS = 24 * 3600 * 1000
SYMBOLS = ("BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_261225")


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=("um", "cm"), coinm_accounts=("cm",), coinm_symbols=SYMBOLS)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[AsyncClient]:
    acct = sim.account("cm")
    client = AsyncClient(acct.api_key, acct.api_secret)
    client.FUTURES_URL = sim.rest_url + "/fapi"
    client.FUTURES_COIN_URL = sim.rest_url + "/dapi"
    try:
        yield client
    finally:
        await client.close_connection()


@pytest.fixture
def rest(http: aiohttp.ClientSession, sim: Simulator) -> Rest:
    return Rest(http, sim, "cm")


async def test_python_binance_reads_every_coinm_endpoint(
    sim: Simulator, client: AsyncClient
) -> None:
    await sim.trade("cm", "BTCUSD_PERP", "BUY", "12", parts=2)
    await sim.trade("cm", "BTCUSD_261225", "BUY", "3")
    await sim.trade("cm", "BTCUSD_PERP", "SELL", "5")
    truth = sim.ground_truth()["accounts"]["cm"]
    assert truth["market"] == "coinm"

    info = await client.futures_coin_exchange_info()
    assert [(s["symbol"], s["contractSize"], s["marginAsset"]) for s in info["symbols"]] == [
        ("BTCUSD_PERP", 100, "BTC"),
        ("ETHUSD_PERP", 10, "ETH"),
        ("BTCUSD_261225", 100, "BTC"),
    ]
    assert info["symbols"][2]["contractType"] == "CURRENT_QUARTER"
    assert info["symbols"][2]["deliveryDate"] == 1798185600000  # 2026-12-25 08:00 UTC
    assert (await client.futures_coin_time())["serverTime"] > 0

    perp = await client.futures_coin_account_trades(symbol="BTCUSD_PERP")
    rows = [{k: v for k, v in f.items() if k != "account"} for f in truth["fills"]]
    assert perp == [r for r in rows if r["symbol"] == "BTCUSD_PERP"]
    assert [r["qty"] for r in perp] == ["6", "6", "5"]  # contracts
    by_pair = await client.futures_coin_account_trades(pair="BTCUSD")
    assert sorted(r["id"] for r in by_pair) == sorted(r["id"] for r in rows)
    after = await client.futures_coin_account_trades(symbol="BTCUSD_PERP", fromId=perp[1]["id"])
    assert after == perp[1:]

    orders = await client.futures_coin_get_all_orders(symbol="BTCUSD_PERP")
    assert [o["executedQty"] for o in orders] == ["12", "5"]
    assert orders[0]["pair"] == "BTCUSD" and "cumBase" in orders[0]
    one = await client.futures_coin_get_order(symbol="BTCUSD_PERP", orderId=orders[0]["orderId"])
    assert one["status"] == "FILLED"
    assert await client.futures_coin_get_open_orders(symbol="BTCUSD_PERP") == []

    risk = await client.futures_coin_position_information()
    assert [(r["symbol"], r["positionAmt"]) for r in risk] == [
        ("BTCUSD_261225", "3"),
        ("BTCUSD_PERP", "7"),
        ("ETHUSD_PERP", "0"),  # every symbol, flat ones too
    ]
    eth_only = await client.futures_coin_position_information(marginAsset="ETH")
    assert [r["symbol"] for r in eth_only] == ["ETHUSD_PERP"]

    income = await client.futures_coin_income_history(symbol="BTCUSD_PERP")
    assert {r["asset"] for r in income} == {"BTC"}
    assert ("REALIZED_PNL", str(perp[2]["id"])) in {(r["incomeType"], r["tradeId"]) for r in income}
    with pytest.raises(BinanceAPIException) as paged:
        await client.futures_coin_income_history(symbol="BTCUSD_PERP", page=2)
    assert paged.value.code == -1104  # `page` is no longer read: paginate by time

    balances = {b["asset"]: b for b in await client.futures_coin_account_balance()}
    assert set(balances) == {"BTC", "ETH"}
    assert Decimal(balances["BTC"]["balance"]) == sim.states["cm"].wallet("BTC")
    account = await client.futures_coin_account()
    assert {p["symbol"] for p in account["positions"]} == {"BTCUSD_PERP", "BTCUSD_261225"}

    # A USDⓈ-M symbol is not a COIN-M one, and the other way round.
    with pytest.raises(BinanceAPIException) as wrong:
        await client.futures_coin_account_trades(symbol="BTCUSDT")
    assert wrong.value.code == -1121
    with pytest.raises(BinanceAPIException) as wrong_way:
        await client.futures_account_trades(symbol="BTCUSD_PERP")
    assert wrong_way.value.code == -1121


async def test_orders_and_algo_service_on_dapi(sim: Simulator, client: AsyncClient) -> None:
    placed = await client.futures_coin_create_order(
        symbol="ETHUSD_PERP", side="SELL", type="MARKET", quantity="4"
    )
    assert (placed["status"], placed["cumQty"], placed["executedQty"]) == ("FILLED", "4", "4")
    assert "avgPrice" not in placed and "cumBase" not in placed
    with pytest.raises(BinanceAPIException) as moved:
        await client.futures_coin_create_order(
            symbol="ETHUSD_PERP", side="BUY", type="STOP_MARKET", quantity="4", stopPrice="2500"
        )
    assert moved.value.code == -4120  # COIN-M conditional orders live in the Algo Service
    algo = await client._request_futures_coin_api(
        "post",
        "algoOrder",
        True,
        data={
            "algoType": "CONDITIONAL", "symbol": "ETHUSD_PERP", "side": "BUY",
            "type": "STOP_MARKET", "triggerPrice": "2500", "closePosition": "true",
        },
    )  # fmt: skip
    assert (algo["algoStatus"], algo["reduceOnly"]) == ("NEW", False)
    opened = await client._request_futures_coin_api("get", "openAlgoOrders", True, data={})
    assert [a["algoId"] for a in opened] == [algo["algoId"]]
    sim.set_mark("ETHUSD_PERP", "2600")  # the stop triggers and closes the short
    done = await client._request_futures_coin_api(
        "get", "algoOrder", True, data={"algoId": algo["algoId"]}
    )
    assert done["algoStatus"] == "FINISHED"
    close = sim.ground_truth()["accounts"]["cm"]["closes"][-1]
    assert (close["symbol"], close["reason"], close["marginAsset"]) == (
        "ETHUSD_PERP",
        "stop_loss",
        "ETH",
    )
    # The USDⓈ-M algo endpoints do not show COIN-M algo orders.
    assert await client._request_futures_api("get", "openAlgoOrders", True, data={}) == []


async def test_user_trades_rules(sim: Simulator, rest: Rest) -> None:
    for _ in range(3):
        await sim.trade("cm", "BTCUSD_PERP", "BUY", "1")
    path = "/dapi/v1/userTrades"
    now = int(time.time() * 1000)

    async def code(params: dict[str, object]) -> tuple[int, int]:
        status, body, _ = await rest.call("GET", path, params)
        return status, body["code"]

    assert await code({}) == (400, -1102)
    assert await code({"symbol": "BTCUSD_PERP", "pair": "BTCUSD"}) == (400, -1128)
    assert await code({"pair": "BTCUSD", "fromId": 1}) == (400, -1128)
    assert await code({"pair": "BTCUSD", "orderId": 1}) == (400, -1128)
    assert await code({"pair": "NOPEUSD"}) == (400, -1121)
    week_and_a_day = {"pair": "BTCUSD", "startTime": now - 8 * DAY_MS, "endTime": now}
    assert await code(week_and_a_day) == (400, -1127)
    assert await code({"symbol": "BTCUSD_PERP", "limit": 1001}) == (400, -1130)
    rows = await rest.ok("GET", path, {"pair": "BTCUSD", "limit": 2})
    assert len(rows) == 2  # the newest two
    assert await rest.ok("GET", path, {"pair": "BTCUSD", "startTime": now - DAY_MS, "limit": 1})
    # 3 months of history: a window that ends before it holds nothing.
    old = {"symbol": "BTCUSD_PERP", "startTime": now - 100 * DAY_MS, "endTime": now - 95 * DAY_MS}
    assert await rest.ok("GET", path, old) == []


async def test_income_paginates_by_time(sim: Simulator, rest: Rest) -> None:
    for price in ("50000", "51000", "52000"):
        sim.set_mark("BTCUSD_PERP", price)
        await sim.trade("cm", "BTCUSD_PERP", "BUY", "1")
        sim.set_mark("BTCUSD_PERP", "60000")
        await sim.trade("cm", "BTCUSD_PERP", "SELL", "1")
    everything = await rest.ok("GET", "/dapi/v1/income", {"limit": 1000})
    assert len(everything) == 9  # 6 commissions, 3 realized PnL
    times = [r["time"] for r in everything]
    assert times == sorted(times)
    first = await rest.ok("GET", "/dapi/v1/income", {"startTime": times[0], "limit": 4})
    assert first == everything[:4]  # oldest first from startTime
    later = [r for r in everything if r["time"] > first[-1]["time"]]
    rest_of = await rest.ok("GET", "/dapi/v1/income", {"startTime": first[-1]["time"] + 1})
    assert rest_of == later  # the next page: from the last row's time on
    upto = await rest.ok("GET", "/dapi/v1/income", {"startTime": times[0], "endTime": times[0]})
    assert upto == [r for r in everything if r["time"] == times[0]]  # both ends inclusive


async def test_one_weight_pool_and_one_hedge_setting(sim: Simulator, rest: Rest) -> None:
    _, _, first = await rest.call("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})
    _, _, second = await rest.call("GET", "/dapi/v1/positionRisk")
    _, _, third = await Rest(rest.http, sim, "um").call("GET", "/dapi/v1/income")
    used = [int(h["X-MBX-USED-WEIGHT-1M"]) for h in (first, second, third)]
    assert used == [1, 2, 22]  # one pool per IP: fapi 1, dapi 1, dapi income 20
    mode = {"dualSidePosition": "true"}
    assert (await rest.ok("POST", "/dapi/v1/positionSide/dual", mode))["code"] == 200
    assert (await rest.ok("GET", "/fapi/v1/positionSide/dual"))["dualSidePosition"] is True
    status, body, _ = await rest.call("POST", "/fapi/v1/positionSide/dual", mode)
    assert (status, body["code"]) == (400, -4059)
    await sim.trade("cm", "BTCUSD_PERP", "BUY", "1", position_side="LONG")
    off = {"dualSidePosition": "false"}
    status, body, _ = await rest.call("POST", "/fapi/v1/positionSide/dual", off)
    assert (status, body["code"]) == (400, -4068)  # a COIN-M position blocks the USDⓈ-M switch


async def test_dstream_carries_coinm_events_only(sim: Simulator, rest: Rest) -> None:
    status, body, _ = await rest.call("POST", "/dapi/v1/listenKey", signed=False)
    assert status == 200
    cm_key = body["listenKey"]
    um_key = await rest.listen_key()  # the same account's USDⓈ-M key: another stream
    assert cm_key != um_key
    async with (
        stream(f"{sim.ws_url}/ws/{cm_key}") as dstream,
        stream(f"{sim.ws_url}/private/ws/{um_key}") as fstream,
    ):
        await wait_until(lambda: sim.hub.live_subscriptions("cm") == 2)
        sim.set_mark("BTCUSD_PERP", "50000")
        await sim.trade("cm", "BTCUSD_PERP", "BUY", "10")
        await sim.trade("cm", "BTCUSDT", "BUY", "0.001")
        await wait_until(lambda: fstream.fills() == 1)
        await wait_until(lambda: len(dstream.of("ACCOUNT_UPDATE")) == 1)  # after the fill
        alias = sim.account("cm").alias
        order = dstream.of("ORDER_TRADE_UPDATE")[-1]
        o = order["o"]
        assert order["i"] == alias
        assert (o["s"], o["l"], o["z"], o["L"], o["N"], o["ma"]) == (
            "BTCUSD_PERP", "10", "10", "50000.0", "BTC", "BTC"
        )  # fmt: skip
        assert (o["n"], o["rp"]) == ("0.00001000", "0")
        assert not {"si", "ss", "gtd"} & set(o)
        update = dstream.of("ACCOUNT_UPDATE")[-1]
        assert update["i"] == alias
        assert update["a"]["B"][0]["a"] == "BTC"
        assert update["a"]["P"][0]["pa"] == "10"
        assert dstream.of("TRADE_LITE") == []  # no TRADE_LITE on COIN-M
        assert {e["o"]["s"] for e in fstream.of("ORDER_TRADE_UPDATE")} == {"BTCUSDT"}


async def test_delivery_close_of_a_dated_contract(sim: Simulator, rest: Rest) -> None:
    await sim.trade("cm", "BTCUSD_261225", "SELL", "4")
    sim.set_mark("BTCUSD_261225", "70000")
    assert not sim.force_close("cm", "ETHUSD_PERP", "delivery")  # nothing there
    await sim.trade("cm", "BTCUSD_PERP", "BUY", "1")
    with pytest.raises(ValueError, match="perpetual"):
        sim.force_close("cm", "BTCUSD_PERP", "delivery")
    assert sim.force_close("cm", "BTCUSD_261225", "delivery")
    truth = sim.ground_truth(market="coinm")["accounts"]["cm"]
    close = truth["closes"][-1]
    order = next(o for o in truth["orders"] if o["orderId"] == close["closeOrderId"])
    assert order["clientOrderId"].startswith("delivery_autoclose-")
    assert (close["reason"], close["symbol"]) == ("delivery", "BTCUSD_261225")
    fill = truth["fills"][-1]
    assert (fill["commission"], fill["realizedPnl"]) == ("0", close["realizedPnl"])
    income = await rest.ok("GET", "/dapi/v1/income", {"incomeType": "DELIVERED_SETTELMENT"})
    assert [(r["income"], r["tradeId"]) for r in income] == [
        (close["realizedPnl"], str(close["closeTradeId"]))
    ]
    assert sim.ground_truth(market="usdm")["accounts"]["cm"]["fills"] == []


async def test_ready_line_gives_each_accounts_product(sim: Simulator) -> None:
    accounts = sim.ready_info()["accounts"]
    assert isinstance(accounts, list)
    um, cm = accounts
    assert (um["market"], um["rest_base"], um["stream_url"]) == (
        "usdm",
        f"{sim.rest_url}/fapi",
        f"{sim.ws_url}/private/ws/{{listenKey}}",
    )
    assert (cm["market"], cm["rest_base"], cm["listen_key_path"], cm["stream_url"]) == (
        "coinm",
        f"{sim.rest_url}/dapi",
        "/dapi/v1/listenKey",
        f"{sim.ws_url}/ws/{{listenKey}}",
    )


def test_fill_helper_sees_coinm_fills() -> None:
    event = {"e": "ORDER_TRADE_UPDATE", "o": {"x": "TRADE", "t": 5}}
    assert fill_events([event]) == [event["o"]]


async def test_algo_update_on_dstream_can_be_switched_off(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    for pushed in (True, False):
        sim = await make_sim(accounts=("cm",), coinm_accounts=("cm",), coinm_algo_update=pushed)
        rest = Rest(http, sim, "cm")
        _, body, _ = await rest.call("POST", "/dapi/v1/listenKey", signed=False)
        async with stream(f"{sim.ws_url}/ws/{body['listenKey']}") as reader:
            await wait_until(lambda s=sim: s.hub.live_subscriptions("cm") == 1)  # type: ignore[misc]
            await sim.trade("cm", "BTCUSD_PERP", "BUY", "2")
            algo = await sim.algo(
                "cm", "BTCUSD_PERP", "STOP_MARKET", "SELL", trigger_price="1000",
                close_position=True,
            )  # fmt: skip
            await sim.trade("cm", "BTCUSD_PERP", "SELL", "2")  # closes: the stop expires
            # Every event emitted is this socket's: wait for all of them.
            await wait_until(
                lambda r=reader, s=sim: len(r.events) == s.hub.events_emitted  # type: ignore[misc]
            )
        algo_events = [e["o"]["X"] for e in reader.of("ALGO_UPDATE")]
        assert algo_events == (["NEW", "EXPIRED"] if pushed else [])
        row = sim.ground_truth()["accounts"]["cm"]["algo_orders"][0]
        assert (row["algoId"], row["algoStatus"]) == (algo["algoId"], "EXPIRED")  # REST knows
