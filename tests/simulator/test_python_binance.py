"""python-binance's own ``AsyncClient``, pointed at the simulator, through every call we make.

The overrides that work (python-binance 1.0.37 builds every USDⓈ-M URL from ``FUTURES_URL`` plus
``/v1``, ``/v2`` or ``/v3``; ``AsyncClient.create()`` would ping the spot API, so construct it):

    client = AsyncClient(api_key, api_secret)
    client.FUTURES_URL = sim.rest_url + "/fapi"
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import pytest

with warnings.catch_warnings():
    # python-binance imports a deprecated websockets name; pytest turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from binance import AsyncClient
    from binance.exceptions import BinanceAPIException

from fillstream.simulator import Simulator
from tests.simulator.conftest import SimFactory


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=("alpha",), symbols=("BTCUSDT", "ETHUSDT"))


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[AsyncClient]:
    acct = sim.accounts[0]
    client = AsyncClient(acct.api_key, acct.api_secret)
    client.FUTURES_URL = sim.rest_url + "/fapi"
    client.FUTURES_DATA_URL = sim.rest_url + "/futures/data"
    try:
        yield client
    finally:
        await client.close_connection()


async def test_listen_key_lifecycle(sim: Simulator, client: AsyncClient) -> None:
    key = await client.futures_stream_get_listen_key()
    assert len(key) == 64
    assert await client.futures_stream_get_listen_key() == key  # one active key per account
    assert await client.futures_stream_keepalive(key) == {"listenKey": key}
    assert await client.futures_stream_close(key) == {}
    with pytest.raises(BinanceAPIException) as gone:
        await client.futures_stream_keepalive(key)
    assert gone.value.code == -1125
    assert await client.futures_stream_get_listen_key() != key  # a fresh one after DELETE


async def test_reads_every_endpoint_with_verified_signatures(
    sim: Simulator, client: AsyncClient
) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010", parts=2)  # two fills, one order
    await sim.trade("alpha", "BTCUSDT", "SELL", "0.004")  # a reducing fill: realized PnL
    algo = await sim.algo(
        "alpha", "BTCUSDT", "STOP_MARKET", "SELL", trigger_price="70000", close_position=True
    )
    truth = sim.ground_truth()["accounts"]["alpha"]

    assert (await client.futures_time())["serverTime"] > 0
    info = await client.futures_exchange_info()
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert info["rateLimits"][0]["limit"] == 2400

    trades = await client.futures_account_trades(symbol="BTCUSDT")
    assert trades == [{k: v for k, v in f.items() if k != "account"} for f in truth["fills"]]
    assert len(trades) == 3
    first_order = trades[0]["orderId"]
    assert (
        await client.futures_account_trades(symbol="BTCUSDT", fromId=trades[1]["id"])
        == (trades[1:])
    )

    orders = await client.futures_get_all_orders(symbol="BTCUSDT")
    assert [o["orderId"] for o in orders] == [first_order, trades[2]["orderId"]]
    order = await client.futures_get_order(symbol="BTCUSDT", orderId=first_order)
    assert order["status"] == "FILLED"
    assert order["executedQty"] == "0.010"
    assert await client.futures_get_open_orders(symbol="BTCUSDT") == []

    risk = await client.futures_position_information(symbol="BTCUSDT")
    assert [(r["symbol"], r["positionSide"], r["positionAmt"]) for r in risk] == [
        ("BTCUSDT", "BOTH", "0.006")
    ]

    income = await client.futures_income_history(symbol="BTCUSDT")
    by_type = {(r["incomeType"], r["tradeId"]) for r in income}
    assert ("REALIZED_PNL", str(trades[2]["id"])) in by_type
    assert {("COMMISSION", str(t["id"])) for t in trades} <= by_type

    assert (await client.futures_get_algo_order(algoId=algo["algoId"]))["algoStatus"] == "NEW"
    opened = await client.futures_get_open_algo_orders(symbol="BTCUSDT")
    assert [a["algoId"] for a in opened] == [algo["algoId"]]
    everything = await client.futures_get_all_algo_orders(symbol="BTCUSDT")
    assert [a["clientAlgoId"] for a in everything] == [algo["clientAlgoId"]]

    # Algo ids live in their own id space: the order endpoint does not know them.
    with pytest.raises(BinanceAPIException) as missing:
        await client.futures_get_order(symbol="BTCUSDT", orderId=algo["algoId"])
    assert missing.value.code == -2013


async def test_wrong_secret_or_key_is_refused(sim: Simulator) -> None:
    acct = sim.accounts[0]
    wrong_secret = AsyncClient(acct.api_key, "0" * 64)
    wrong_key = AsyncClient("f" * 64, acct.api_secret)
    try:
        for c in (wrong_secret, wrong_key):
            c.FUTURES_URL = sim.rest_url + "/fapi"
        with pytest.raises(BinanceAPIException) as bad_signature:
            await wrong_secret.futures_account_trades(symbol="BTCUSDT")
        assert (bad_signature.value.status_code, bad_signature.value.code) == (400, -1022)
        with pytest.raises(BinanceAPIException) as bad_key:
            await wrong_key.futures_account_trades(symbol="BTCUSDT")
        assert (bad_key.value.status_code, bad_key.value.code) == (401, -2015)
    finally:
        await wrong_secret.close_connection()
        await wrong_key.close_connection()


async def test_orders_placed_through_the_client(sim: Simulator, client: AsyncClient) -> None:
    placed = await client.futures_create_order(
        symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.500"
    )
    assert placed["status"] == "FILLED"
    assert placed["cumQty"] == placed["executedQty"] == "0.500"
    assert "avgPrice" not in placed and "cumQuote" not in placed  # gone from acks (2026-07)
    with pytest.raises(BinanceAPIException) as moved:
        await client._request_futures_api(  # the raw endpoint, as an old client would call it
            "post",
            "order",
            True,
            data={"symbol": "ETHUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "1"},
        )
    assert moved.value.code == -4120
    algo = await client.futures_create_algo_order(
        symbol="ETHUSDT", side="SELL", type="TAKE_PROFIT_MARKET", triggerPrice="9999",
        closePosition="true",
    )  # fmt: skip
    assert algo["algoStatus"] == "NEW"
    cancelled = await client.futures_cancel_algo_order(algoId=algo["algoId"])
    assert cancelled["msg"] == "success"
    rest = await client.futures_create_order(
        symbol="ETHUSDT", side="SELL", type="LIMIT", quantity="0.5", price="99999",
        timeInForce="GTC",
    )  # fmt: skip
    assert rest["status"] == "NEW"
    assert [o["orderId"] for o in await client.futures_get_open_orders()] == [rest["orderId"]]
    gone = await client.futures_cancel_order(symbol="ETHUSDT", orderId=rest["orderId"])
    assert gone["status"] == "CANCELED"
