"""What third-party clients (ccxt, the official connectors, python-binance) found missing."""

from __future__ import annotations

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory


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
