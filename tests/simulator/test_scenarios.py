"""Conditional orders, forced closes, funding and hedge mode, event by event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory, StreamReader, fill_events, stream, wait_until


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(accounts=("alpha", "beta"), hedge_accounts=("beta",), seed=5)


@pytest.fixture
async def reader(sim: Simulator, http: aiohttp.ClientSession) -> AsyncIterator[StreamReader]:
    ka = await Rest(http, sim, "alpha").listen_key()
    kb = await Rest(http, sim, "beta").listen_key()
    async with stream(f"{sim.ws_url}/private/stream?listenKey={ka}&listenKey={kb}") as r:
        await wait_until(lambda: sim.hub.live_subscriptions("beta") == 1)
        yield r


def _data(reader: StreamReader) -> list[dict[str, Any]]:
    return [e["data"] for e in reader.events]


async def _settle(sim: Simulator, reader: StreamReader) -> list[dict[str, Any]]:
    """Wait until every event emitted so far has arrived; return them (unwrapped)."""
    await wait_until(lambda: len(reader.events) == sim.hub.events_emitted)
    return _data(reader)


async def test_take_profit_lifecycle(sim: Simulator, reader: StreamReader) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
    tp = await sim.algo(
        "alpha", "BTCUSDT", "TAKE_PROFIT_MARKET", "SELL", trigger_price="78000",
        close_position=True,
    )  # fmt: skip
    sl = await sim.algo(
        "alpha", "BTCUSDT", "STOP_MARKET", "SELL", trigger_price="75000", quantity="0.010",
        reduce_only=True,
    )  # fmt: skip
    sim.set_mark("BTCUSDT", "78100")
    events = await _settle(sim, reader)
    algo = [(e["o"]["aid"], e["o"]["X"], e["o"]["ai"]) for e in events if e["e"] == "ALGO_UPDATE"]
    child = next(
        e["o"]
        for e in events
        if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["c"] == tp["clientAlgoId"]
    )
    assert (child["o"], child["ot"], child["sp"], child["cp"]) == (
        "MARKET",
        "TAKE_PROFIT_MARKET",
        "78000.00",
        True,
    )
    ai = str(child["i"])
    assert algo == [
        (tp["algoId"], "NEW", ""),
        (sl["algoId"], "NEW", ""),
        (tp["algoId"], "TRIGGERING", ""),
        (tp["algoId"], "TRIGGERED", ai),
        (sl["algoId"], "EXPIRED", ""),  # the position it protected is gone
        (tp["algoId"], "FINISHED", ai),
    ]
    rest_view = sim.ground_truth()["accounts"]["alpha"]["algo_orders"][0]
    assert (rest_view["actualOrderId"], rest_view["algoStatus"]) == (ai, "FINISHED")
    assert rest_view["executedQty"] == "0.010"
    close = sim.ground_truth()["accounts"]["alpha"]["closes"][-1]
    assert (close["reason"], close["closeOrderId"]) == ("take_profit", child["i"])


async def test_child_fills_sometimes_arrive_before_triggered(
    sim: Simulator, reader: StreamReader
) -> None:
    seen: set[str] = set()
    for _ in range(16):
        await sim.trade("alpha", "ETHUSDT", "BUY", "0.100")
        placed = await sim.algo(
            "alpha", "ETHUSDT", "STOP_MARKET", "SELL", trigger_price="2300", close_position=True
        )
        sim.set_mark("ETHUSDT", "2290")
        sim.set_mark("ETHUSDT", "2400")
        events = await _settle(sim, reader)
        mine = [
            e
            for e in events
            if (e["e"] == "ALGO_UPDATE" and e["o"]["aid"] == placed["algoId"])
            or (e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["c"] == placed["clientAlgoId"])
        ]
        steps = [e["o"]["x"] if e["e"] == "ORDER_TRADE_UPDATE" else e["o"]["X"] for e in mine]
        seen.add("fill-first" if steps.index("TRADE") < steps.index("TRIGGERED") else "in-order")
    assert seen == {"fill-first", "in-order"}
    reasons = {c["reason"] for c in sim.ground_truth()["accounts"]["alpha"]["closes"]}
    assert reasons == {"stop_loss"}


async def test_trailing_stop_activates_then_triggers(sim: Simulator, reader: StreamReader) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
    ts = await sim.algo(
        "alpha", "BTCUSDT", "TRAILING_STOP_MARKET", "SELL", callback_rate="1.0",
        activate_price="77500", close_position=True,
    )  # fmt: skip
    for mark in ("77000", "77600", "78500", "78000", "77700"):
        sim.set_mark("BTCUSDT", mark)
    events = await _settle(sim, reader)
    updates = [(e["o"]["X"], e["o"]["ia"]) for e in events if e["e"] == "ALGO_UPDATE"]
    assert updates == [
        ("NEW", False),
        ("NEW", True),  # activated at 77600
        ("TRIGGERING", True),
        ("TRIGGERED", True),
        ("FINISHED", True),
    ]  # 78500 * 0.99 = 77715 >= 77700: triggered on the last move
    assert sim.ground_truth()["accounts"]["alpha"]["closes"][-1]["reason"] == "trailing_stop"
    assert ts["callbackRate"] == "1.0"


async def test_liquidation_with_margin_call_first(sim: Simulator, reader: StreamReader) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.100")
    resting = await sim.trade("alpha", "BTCUSDT", "BUY", "0.010", order_type="LIMIT", price="60000")
    sim.set_mark("BTCUSDT", "74000")  # 3.8 % down: past the margin-call line at 20x
    sim.set_mark("BTCUSDT", "73000")  # over 4.5 % down: liquidated
    events = await _settle(sim, reader)
    kinds = [e["e"] for e in events]
    first_liquidation = next(
        i
        for i, e in enumerate(events)
        if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "EXPIRED"
    )
    assert kinds.index("MARGIN_CALL") < first_liquidation
    call = next(e for e in events if e["e"] == "MARGIN_CALL")
    assert (call["p"][0]["s"], call["p"][0]["pa"], call["p"][0]["mt"]) == (
        "BTCUSDT",
        "0.1",
        "CROSSED",
    )
    expired = [
        e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "EXPIRED"
    ]
    assert [(o["i"], o["er"]) for o in expired] == [(resting["orderId"], "5")]
    liq = [
        e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["o"] == "LIQUIDATION"
    ]
    assert [(o["x"], o["X"]) for o in liq] == [("NEW", "NEW"), ("CALCULATED", "FILLED")]
    assert liq[1]["c"].startswith("autoclose-")
    assert liq[1]["t"] != 0 and liq[1]["l"] == "0.100" and liq[1]["rp"].startswith("-")
    lite_trades = {e["t"] for e in events if e["e"] == "TRADE_LITE"}
    assert liq[1]["t"] not in lite_trades  # TRADE_LITE reports TRADE executions only
    close = sim.ground_truth()["accounts"]["alpha"]["closes"][-1]
    assert (close["reason"], close["closeTradeId"]) == ("liquidation", liq[1]["t"])


async def test_adl_and_settlement(sim: Simulator, reader: StreamReader) -> None:
    await sim.trade("alpha", "BTCUSDT", "SELL", "0.010")
    await sim.trade("alpha", "ETHUSDT", "BUY", "1.000")
    sim.set_mark("BTCUSDT", "76000")
    assert sim.mark("BTCUSDT") == Decimal("76000")
    assert sim.force_close("alpha", "BTCUSDT", "adl")
    assert sim.force_close("alpha", "ETHUSDT", "settlement")
    assert not sim.force_close("alpha", "ETHUSDT", "settlement")  # nothing left
    events = await _settle(sim, reader)
    fills = fill_events(events)
    adl, settle = fills[-2], fills[-1]
    assert (adl["c"], adl["o"], adl["x"], adl["n"], adl["S"]) == (
        "adl_autoclose",
        "LIQUIDATION",
        "CALCULATED",
        "0",
        "BUY",
    )
    assert float(adl["rp"]) > 0  # ADL only ever hits a winning position
    assert settle["c"].startswith("settlement_autoclose-") and settle["x"] == "TRADE"
    reasons = [c["reason"] for c in sim.ground_truth()["accounts"]["alpha"]["closes"]]
    assert reasons == ["adl", "settlement"]


async def test_funding_fee_events_and_income(
    sim: Simulator, reader: StreamReader, http: aiohttp.ClientSession
) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
    await sim.trade("alpha", "ETHUSDT", "SELL", "0.500")
    assert sim.funding("alpha") == 2
    events = await _settle(sim, reader)
    funding = [
        e["a"] for e in events if e["e"] == "ACCOUNT_UPDATE" and e["a"]["m"] == "FUNDING_FEE"
    ]
    assert [(a["S"], a["P"]) for a in funding] == [("BTCUSDT", []), ("ETHUSDT", [])]
    income = await Rest(http, sim, "alpha").ok(
        "GET", "/fapi/v1/income", {"incomeType": "FUNDING_FEE"}
    )
    assert [(r["symbol"], r["income"], r["tradeId"]) for r in income] == [
        (a["S"], a["B"][0]["bc"], "") for a in funding
    ]


async def test_funding_on_the_timer(make_sim: SimFactory) -> None:
    sim = await make_sim(funding_interval_s=0.05)
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
    await wait_until(
        lambda: any(r["incomeType"] == "FUNDING_FEE" for r in sim.states["alpha"].income)
    )


async def test_hedge_mode_positions_and_limit_orders(
    sim: Simulator, reader: StreamReader, http: aiohttp.ClientSession
) -> None:
    await sim.trade("beta", "BTCUSDT", "BUY", "0.010", position_side="LONG")
    await sim.trade("beta", "BTCUSDT", "SELL", "0.004", position_side="SHORT")
    with pytest.raises(ValueError, match="hedge mode"):
        await sim.trade("beta", "BTCUSDT", "BUY", "0.010", position_side="BOTH")
    sell = await sim.trade(
        "beta", "BTCUSDT", "SELL", "0.020", order_type="LIMIT", price="77000",
        position_side="LONG",
    )  # fmt: skip
    assert sell["origQty"] == "0.010"  # a closing order is clamped to the position
    sim.set_mark("BTCUSDT", "77100")
    risk = await Rest(http, sim, "beta").ok("GET", "/fapi/v3/positionRisk")
    assert [(r["positionSide"], r["positionAmt"]) for r in risk] == [("SHORT", "-0.004")]
    events = await _settle(sim, reader)
    maker = fill_events(events)[-1]
    assert (maker["i"], maker["m"], maker["L"], maker["X"]) == (
        sell["orderId"],
        True,
        "77000.00",
        "FILLED",
    )
    close = sim.ground_truth()["accounts"]["beta"]["closes"][0]
    assert (close["positionSide"], close["reason"]) == ("LONG", "manual")


async def test_partial_fills_of_one_order(sim: Simulator, reader: StreamReader) -> None:
    order = await sim.trade("alpha", "BTCUSDT", "BUY", "0.009", parts=3)
    events = await _settle(sim, reader)
    fills = [f for f in fill_events(events) if f["i"] == order["orderId"]]
    assert [(f["l"], f["z"], f["X"]) for f in fills] == [
        ("0.003", "0.003", "PARTIALLY_FILLED"),
        ("0.003", "0.006", "PARTIALLY_FILLED"),
        ("0.003", "0.009", "FILLED"),
    ]
    assert len({f["t"] for f in fills}) == 3


async def test_a_resting_close_never_crosses_zero(sim: Simulator, reader: StreamReader) -> None:
    await sim.trade("beta", "ETHUSDT", "BUY", "1.000", position_side="LONG")
    resting = await sim.trade(
        "beta", "ETHUSDT", "SELL", "1.000", order_type="LIMIT", price="2600",
        position_side="LONG",
    )  # fmt: skip
    await sim.trade("beta", "ETHUSDT", "SELL", "0.600", position_side="LONG")  # 0.4 left
    sim.set_mark("ETHUSDT", "2650")
    events = await _settle(sim, reader)
    last = [e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE"][-1]
    assert (last["i"], last["X"], last["er"]) == (resting["orderId"], "EXPIRED", "4")
    assert [p["positionAmt"] for p in sim.ground_truth()["accounts"]["beta"]["positions"]] == [
        "0.4"
    ]
