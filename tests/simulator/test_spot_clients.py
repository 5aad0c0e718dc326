"""Real clients against the simulator's spot API agree with its ground truth.

python-binance 1.0.37: ``AsyncClient`` with ``API_URL = <rest_url>/api`` (construct it;
``create()`` pings production) and its WS API (``client.ws_api``) pointed at
``<ws_url>/ws-api/v3``, which its ``user_socket()`` subscribes on with
``userDataStream.subscribe.signature``; ccxt.pro's ``binance`` does the same on
``urls["api"]["ws"]["ws-api"]["spot"]``. ccxt's ``binance`` with ``urls["api"]["public"]`` and
``["private"]`` at ``<rest_url>/api/v3`` (every other base pointed at the simulator too, where
it 404s) and ``fetchCurrencies``/``fetchMargins`` off (they call ``/sapi``).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]
import ccxt.pro as ccxt_pro  # type: ignore[import-untyped]
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from binance import AsyncClient, BinanceSocketManager
    from binance.ws.websocket_api import WebsocketAPI

from fillstream.simulator import Simulator
from tests.simulator.conftest import SimFactory

SYMBOLS = ("BTCUSDT", "ETHUSDT", "ETHBTC")


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    sim = await make_sim(
        accounts=(),
        spot_accounts=("hmac", "ed", "rsa"),
        spot_symbols=SYMBOLS,
        spot_key_types={"ed": "ED25519", "rsa": "RSA"},
    )
    sim.step(25)
    return sim


def _pb_client(sim: Simulator, name: str) -> AsyncClient:
    acct = sim.account(name)
    if acct.key_type == "HMAC":
        client = AsyncClient(acct.api_key, acct.api_secret)
    else:
        client = AsyncClient(acct.api_key, private_key=acct.private_key_pem)
    client.API_URL = sim.rest_url + "/api"
    client.ws_api = WebsocketAPI(url=sim.ws_url + "/ws-api/v3")
    # Its read loop notices a close only at the next frame or after TIMEOUT (10 s) idle.
    client.ws_api.TIMEOUT = 0.2
    return client


@pytest.fixture
async def clients(sim: Simulator) -> AsyncIterator[dict[str, AsyncClient]]:
    made = {name: _pb_client(sim, name) for name in ("hmac", "ed", "rsa")}
    yield made
    for client in made.values():
        await client.close_connection()


def _truth(sim: Simulator, name: str) -> dict[str, Any]:
    truth: dict[str, Any] = sim.ground_truth(market="spot")["accounts"][name]
    return truth


def _fills(sim: Simulator, name: str, symbol: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in f.items() if k not in ("side", "account")}
        for f in _truth(sim, name)["fills"]
        if f["symbol"] == symbol
    ]


def _orders(sim: Simulator, name: str, symbol: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in o.items() if k != "account"}
        for o in _truth(sim, name)["orders"]
        if o["symbol"] == symbol
    ]


@pytest.mark.parametrize("name", ["hmac", "ed", "rsa"])
async def test_python_binance_rest_agrees(
    sim: Simulator, clients: dict[str, AsyncClient], name: str
) -> None:
    client = clients[name]
    for symbol in SYMBOLS:
        assert await client.get_my_trades(symbol=symbol) == _fills(sim, name, symbol)
        assert await client.get_all_orders(symbol=symbol) == _orders(sim, name, symbol)
    account = await client.get_account()
    balances = {b["asset"]: {"free": b["free"], "locked": b["locked"]} for b in account["balances"]}
    assert balances == _truth(sim, name)["balances"]


@pytest.mark.parametrize("name", ["hmac", "ed"])
async def test_python_binance_user_socket_over_the_ws_api(
    sim: Simulator, clients: dict[str, AsyncClient], name: str
) -> None:
    client = clients[name]
    before = len(_truth(sim, name)["fills"])
    socket = BinanceSocketManager(client).user_socket()
    async with socket as stream:
        await sim.spot_trade(name, "ETHUSDT", "BUY", "0.05", parts=2)
        seen: list[dict[str, Any]] = []
        while len([e for e in seen if e.get("x") == "TRADE"]) < 2:
            seen.append(await asyncio.wait_for(stream.recv(), 5))
    fills = _truth(sim, name)["fills"][before:]
    trades = [e for e in seen if e["e"] == "executionReport" and e["x"] == "TRADE"]
    assert [(t["s"], t["t"], t["l"], t["L"], t["n"], t["N"]) for t in trades] == [
        (f["symbol"], f["id"], f["qty"], f["price"], f["commission"], f["commissionAsset"])
        for f in fills
    ]


def _ccxt(sim: Simulator, make: Any) -> Any:
    acct = sim.account("hmac")
    exchange = make(
        {
            "apiKey": acct.api_key,
            "secret": acct.api_secret,
            "options": {
                "defaultType": "spot",
                "fetchCurrencies": False,
                "fetchMargins": False,
                "fetchMarkets": {"types": ["spot"]},
            },
        }
    )
    for base in list(exchange.urls["api"]):
        if base != "ws":
            exchange.urls["api"][base] = f"{sim.rest_url}/not-simulated/{base}"
    exchange.urls["api"]["public"] = exchange.urls["api"]["private"] = sim.rest_url + "/api/v3"
    return exchange


@pytest.fixture
async def ccxt_client(sim: Simulator) -> AsyncIterator[Any]:
    exchange = _ccxt(sim, ccxt_async.binance)
    yield exchange
    await exchange.close()


@pytest.fixture
async def ccxt_pro_client(sim: Simulator) -> AsyncIterator[Any]:
    """ccxt.pro's binance: spot user data over ``userDataStream.subscribe.signature`` on the
    ``ws-api`` URL (every other WebSocket base left unused)."""
    exchange = _ccxt(sim, ccxt_pro.binance)
    exchange.urls["api"]["ws"]["ws-api"]["spot"] = sim.ws_url + "/ws-api/v3"
    yield exchange
    await exchange.close()


async def test_ccxt_agrees(sim: Simulator, ccxt_client: Any) -> None:
    markets = await ccxt_client.load_markets()
    assert {m["id"] for m in markets.values()} == set(SYMBOLS)
    for symbol, unified in (("BTCUSDT", "BTC/USDT"), ("ETHBTC", "ETH/BTC")):
        trades = await ccxt_client.fetch_my_trades(unified)
        assert [t["info"] for t in trades] == _fills(sim, "hmac", symbol)
        assert [(t["id"], t["side"]) for t in trades] == [
            (str(f["id"]), f["side"].lower())
            for f in _truth(sim, "hmac")["fills"]
            if f["symbol"] == symbol
        ]
        orders = await ccxt_client.fetch_orders(unified)
        assert [o["info"] for o in orders] == _orders(sim, "hmac", symbol)


async def test_ccxt_pro_watch_my_trades_over_the_ws_api(
    sim: Simulator, ccxt_pro_client: Any
) -> None:
    await ccxt_pro_client.load_markets()
    await ccxt_pro_client.authenticate({"type": "spot"})  # the subscription, acknowledged
    before = len(_truth(sim, "hmac")["fills"])
    await sim.spot_trade("hmac", "ETHUSDT", "BUY", "0.05", parts=2)
    fills = _truth(sim, "hmac")["fills"][before:]
    assert len(fills) == 2
    seen: dict[str, Any] = {}
    while len(seen) < len(fills):
        for trade in await asyncio.wait_for(ccxt_pro_client.watch_my_trades("ETH/USDT"), 5):
            seen[trade["id"]] = trade
    infos = [t["info"] for t in seen.values()]  # the executionReports as received
    assert [(i["s"], i["t"], i["l"], i["L"], i["n"], i["N"]) for i in infos] == [
        (f["symbol"], f["id"], f["qty"], f["price"], f["commission"], f["commissionAsset"])
        for f in fills
    ]
    assert [t["id"] for t in seen.values()] == [str(f["id"]) for f in fills]
