"""The private stream, read with a plain ``websockets`` client, agrees with REST and the truth."""

from __future__ import annotations

from typing import Any

import aiohttp

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory, fill_events, stream, wait_until

OTU_FIELDS = {
    "s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "N", "n", "T",
    "t", "b", "a", "m", "R", "wt", "ot", "ps", "cp", "pP", "si", "ss", "rp", "V", "pm", "gtd",
    "er",
}  # fmt: skip


async def _all_trades(rest: Rest, symbols: tuple[str, ...]) -> dict[tuple[str, int], Any]:
    rows: dict[tuple[str, int], Any] = {}
    for symbol in symbols:
        from_id = 0
        while True:
            page = await rest.ok(
                "GET", "/fapi/v1/userTrades", {"symbol": symbol, "fromId": from_id, "limit": 1000}
            )
            for row in page:
                rows[(symbol, row["id"])] = row
            if len(page) < 1000:
                break
            from_id = page[-1]["id"] + 1
    return rows


async def test_fill_events_match_user_trades_truth_and_position_risk(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    symbols = ("BTCUSDT", "ETHUSDT")
    sim = await make_sim(accounts=("alpha",), symbols=symbols, rate=400, seed=7)
    rest = Rest(http, sim, "alpha")
    key = await rest.listen_key()
    async with stream(f"{sim.ws_url}/private/ws/{key}") as reader:
        await wait_until(lambda: reader.fills() >= 400, within=60)
        sim.pause()
        count = sim.fills_generated
        missed = sim.states["alpha"].undelivered_fill_events  # made before we connected
        await wait_until(lambda: reader.fills() >= count - missed, within=30)
    events = reader.events

    fills = fill_events(events)
    truth = sim.ground_truth()["accounts"]["alpha"]
    assert len(truth["fills"]) == count
    assert len(fills) == count - missed
    trades = await _all_trades(rest, symbols)
    assert len(trades) == count
    by_id = {(f["symbol"], f["id"]): f for f in truth["fills"]}
    for o in fills:
        assert set(o) >= OTU_FIELDS
        row = trades[(o["s"], o["t"])]
        assert (row["orderId"], row["price"], row["qty"]) == (o["i"], o["L"], o["l"])
        assert (row["commission"], row["commissionAsset"]) == (o["n"], o["N"])
        assert (row["realizedPnl"], row["time"], row["maker"]) == (o["rp"], o["T"], o["m"])
        assert (row["side"], row["positionSide"]) == (o["S"], o["ps"])
        assert {**row, "account": "alpha"} == by_id[(o["s"], o["t"])]
        assert o["x"] == ("CALCULATED" if o["o"] == "LIQUIDATION" else "TRADE")

    # TRADE_LITE precedes the ORDER_TRADE_UPDATE of every ordinary trade.
    seen_lite: set[tuple[str, int]] = set()
    for e in events:
        if e["e"] == "TRADE_LITE":
            seen_lite.add((e["s"], e["t"]))
        elif e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE":
            assert (e["o"]["s"], e["o"]["t"]) in seen_lite

    # The last ACCOUNT_UPDATE of each position equals positionRisk.
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        if e["e"] == "ACCOUNT_UPDATE" and e["a"]["m"] == "ORDER":
            for p in e["a"]["P"]:
                last[(p["s"], p["ps"])] = p
    risk = await rest.ok("GET", "/fapi/v3/positionRisk")
    shown = {(r["symbol"], r["positionSide"]): r for r in risk if r["positionAmt"] != "0"}
    streamed = {k: p for k, p in last.items() if p["pa"] != "0"}
    assert streamed.keys() == shown.keys()
    for k, p in streamed.items():
        assert (p["pa"], p["ep"]) == (shown[k]["positionAmt"], shown[k]["entryPrice"])

    # The generator exercised what the issue asks for.
    reasons = {c["reason"] for c in truth["closes"]}
    assert {"manual", "take_profit", "stop_loss"} <= reasons, reasons
    assert any(o["X"] == "PARTIALLY_FILLED" for o in fills)
    assert {o["m"] for o in fills} == {True, False}
    assert any(e["e"] == "ALGO_UPDATE" for e in events)


async def test_events_filter_and_combined_stream(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(accounts=("alpha", "beta"), hedge_accounts=("beta",))
    ka = await Rest(http, sim, "alpha").listen_key()
    kb = await Rest(http, sim, "beta").listen_key()
    filtered_url = f"{sim.ws_url}/private/ws?listenKey={ka}&events=ORDER_TRADE_UPDATE/TRADE_LITE"
    combined_url = (
        f"{sim.ws_url}/private/stream?listenKey={ka}&events=ACCOUNT_UPDATE&listenKey={kb}"
    )
    async with stream(filtered_url) as filtered, stream(combined_url) as combined:
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.002")
        await sim.trade("beta", "ETHUSDT", "SELL", "0.1", position_side="SHORT")
        await wait_until(lambda: len(filtered.events) >= 3)  # NEW, TRADE_LITE, TRADE
        await wait_until(lambda: len(combined.events) >= 1 + 4)
    assert {e["e"] for e in filtered.events} == {"ORDER_TRADE_UPDATE", "TRADE_LITE"}
    streams = [(e["stream"], e["data"]["e"]) for e in combined.events]
    assert streams == [
        (ka, "ACCOUNT_UPDATE"),
        (kb, "ORDER_TRADE_UPDATE"),
        (kb, "TRADE_LITE"),
        (kb, "ORDER_TRADE_UPDATE"),
        (kb, "ACCOUNT_UPDATE"),
    ]
    beta_position = combined.events[-1]["data"]["a"]["P"][0]
    assert (beta_position["pa"], beta_position["ps"]) == ("-0.1", "SHORT")


async def test_subscribe_message_adds_a_key(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim: Simulator = await make_sim()
    key = await Rest(http, sim, "alpha").listen_key()
    async with stream(f"{sim.ws_url}/private/stream") as reader:
        await reader.ws.send(f'{{"method":"SUBSCRIBE","params":["{key}"],"id":1}}')
        await wait_until(lambda: len(reader.events) >= 1)
        assert reader.events[0] == {"result": None, "id": 1}
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.002")
        await wait_until(lambda: len(reader.events) >= 5)
    assert {e["stream"] for e in reader.events[1:]} == {key}
