"""What third-party clients (ccxt, the official connectors, python-binance) found missing."""

from __future__ import annotations

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory, stream, wait_until


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=("alpha", "hedger"), hedge_accounts=("hedger",))


@pytest.fixture
def rest(http: aiohttp.ClientSession, sim: Simulator) -> Rest:
    return Rest(http, sim, "alpha")


async def test_position_risk_v2_lists_every_symbol(sim: Simulator, rest: Rest) -> None:
    await sim.trade("alpha", "ETHUSDT", "BUY", "0.100")
    rows = await rest.ok("GET", "/fapi/v2/positionRisk")
    assert [(r["symbol"], r["positionSide"], r["positionAmt"]) for r in rows] == [
        ("BTCUSDT", "BOTH", "0.000"),
        ("ETHUSDT", "BOTH", "0.100"),
    ]
    eth = rows[1]
    assert eth["leverage"] == "20" and eth["marginType"] == "cross"
    assert eth["entryPrice"] == (await rest.ok("GET", "/fapi/v3/positionRisk"))[0]["entryPrice"]
    one = await rest.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    assert [r["symbol"] for r in one] == ["BTCUSDT"]
    hedged = await Rest(rest.http, sim, "hedger").ok("GET", "/fapi/v2/positionRisk")
    assert [(r["symbol"], r["positionSide"]) for r in hedged] == [
        ("BTCUSDT", "LONG"),
        ("BTCUSDT", "SHORT"),
        ("ETHUSDT", "LONG"),
        ("ETHUSDT", "SHORT"),
    ]
    _, _, headers = await rest.call("GET", "/fapi/v2/positionRisk")
    assert headers["X-MBX-USED-WEIGHT-1M"] == str(5 * 5)


async def test_algo_orders_are_not_reduce_only_by_default(sim: Simulator, rest: Rest) -> None:
    placed = {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "STOP_MARKET",
        "triggerPrice": "78000",
        "quantity": "0.010",
    }
    plain = await rest.ok("POST", "/fapi/v1/algoOrder", placed)
    reducing = await rest.ok("POST", "/fapi/v1/algoOrder", placed | {"reduceOnly": "true"})
    assert (plain["reduceOnly"], reducing["reduceOnly"]) == (False, True)
    sim.set_mark("BTCUSDT", "78100")  # both trigger on a flat account
    rows = {r["algoId"]: r for r in sim.ground_truth()["accounts"]["alpha"]["algo_orders"]}
    assert rows[plain["algoId"]]["algoStatus"] == "FINISHED"
    assert rows[plain["algoId"]]["executedQty"] == "0.010"  # it opened a long
    assert rows[reducing["algoId"]]["algoStatus"] == "REJECTED"  # nothing to reduce
    risk = await rest.ok("GET", "/fapi/v3/positionRisk")
    assert [(r["symbol"], r["positionAmt"]) for r in risk] == [("BTCUSDT", "0.01")]


async def test_order_endpoints_report_order_counts(sim: Simulator, rest: Rest) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001"}
    counts = []
    for _ in range(2):
        _, body, headers = await rest.call("POST", "/fapi/v1/order", order | {"price": "1000"})
        counts.append((headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]))
    assert counts == [("1", "1"), ("2", "2")]
    status, _, headers = await rest.call(
        "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": body["orderId"]}
    )
    assert (status, headers["X-MBX-ORDER-COUNT-1M"]) == (200, "2")  # a cancel is no new order
    algo = {"algoType": "CONDITIONAL", "type": "STOP_MARKET", "triggerPrice": "70000"}
    _, _, headers = await rest.call("POST", "/fapi/v1/algoOrder", order | algo)
    assert headers["X-MBX-ORDER-COUNT-1M"] == "3"  # algo orders count (at 0 IP weight)
    _, _, other = await Rest(rest.http, sim, "hedger").call(
        "POST", "/fapi/v1/order", order | {"price": "1000", "positionSide": "LONG"}
    )
    assert other["X-MBX-ORDER-COUNT-1M"] == "1"  # per account
    _, _, read = await rest.call("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})
    assert "X-MBX-ORDER-COUNT-1M" not in read
    sim.rest.ctx.orders.charge("alpha", 297)  # 300 in this 10 s window now
    status, body, _ = await rest.call("POST", "/fapi/v1/order", order | {"price": "1000"})
    assert (status, body["code"]) == (429, -1015)


async def test_market_and_public_bases_accept_handshakes(sim: Simulator, rest: Rest) -> None:
    key = await rest.listen_key()
    async with (
        stream(f"{sim.ws_url}/private/ws/{key}") as private,
        stream(f"{sim.ws_url}/market/ws/{key}") as market,
        stream(f"{sim.ws_url}/public/stream?streams=btcusdt@depth") as public,
        stream(f"{sim.ws_url}/market/ws?listenKey={key}") as market_query,
    ):
        await wait_until(lambda: sim.ws.accepted == 4)
        assert sim.hub.live_subscriptions("alpha") == 1  # the private socket only
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        await wait_until(lambda: private.fills() == 1)
        for reader in (market, public, market_query):
            await reader.ws.send('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":7}')
            # One socket's frames leave in order: a fill pushed to it would come first.
            await wait_until(lambda r=reader: bool(r.frames))  # type: ignore[misc]
            assert reader.events == [{"result": None, "id": 7}]


async def test_prices_are_printed_to_the_symbols_precision(sim: Simulator, rest: Rest) -> None:
    key = await rest.listen_key()
    async with stream(f"{sim.ws_url}/private/ws/{key}") as reader:
        await wait_until(lambda: sim.hub.live_subscriptions("alpha") == 1)
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        sim.set_mark("BTCUSDT", "77003.30")
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.002")  # entry: 1/3 + 2/3, not a tick
        await wait_until(lambda: len(reader.of("ACCOUNT_UPDATE")) == 2)
        streamed = reader.of("ACCOUNT_UPDATE")[-1]["a"]["P"][0]
    exact = sim.states["alpha"].positions[("BTCUSDT", "BOTH")].entry
    assert len(str(exact)) > 20  # what used to be printed
    (v3,) = await rest.ok("GET", "/fapi/v3/positionRisk")
    v2 = (await rest.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"}))[0]
    printed = f"{exact:.2f}"  # BTCUSDT: pricePrecision 2
    assert streamed["ep"] == v3["entryPrice"] == v2["entryPrice"] == printed
    for text in (streamed["bep"], v3["breakEvenPrice"], v3["liquidationPrice"]):
        assert len(text.split(".")[1]) == 2, text
