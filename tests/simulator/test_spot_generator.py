"""The spot generator through the WS API: the stream agrees with the ground truth (fills,
order lists, expiries, balances) and the activity is deterministic."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
import pytest

from fillstream.simulator import SimConfig, Simulator
from fillstream.simulator.spot_market import ZERO_FEE
from tests.simulator.conftest import SimFactory
from tests.simulator.test_spot_wsapi import WsApiClient

NAMES = ("s1", "s2")
ROUNDS = 120


@pytest.fixture
async def streamed(make_sim: SimFactory) -> tuple[Simulator, list[dict[str, Any]]]:
    sim = await make_sim(accounts=(), spot_accounts=NAMES, seed=11)
    async with aiohttp.ClientSession() as http:
        client = WsApiClient(await http.ws_connect(sim.ws_url + "/ws-api/v3"))
        for name in NAMES:
            await client.subscribe(sim.account(name))
        sim.step(ROUNDS)
        events = await client.wait_events(sim.hub.events_emitted)
        await client.close()
    return sim, events


def _of(events: list[dict[str, Any]], sub: int, kind: str) -> list[dict[str, Any]]:
    return [e["event"] for e in events if e["subscriptionId"] == sub and e["event"]["e"] == kind]


async def test_stream_agrees_with_ground_truth(
    streamed: tuple[Simulator, list[dict[str, Any]]],
) -> None:
    sim, events = streamed
    truth = sim.ground_truth(market="spot")["accounts"]
    moved = 0
    kinds: Counter[tuple[str, str]] = Counter()
    for sub, name in enumerate(NAMES):
        mine = truth[name]
        reports = _of(events, sub, "executionReport")
        trades = [r for r in reports if r["x"] == "TRADE"]
        assert all(r["t"] == -1 and r["N"] is None for r in reports if r["x"] != "TRADE")
        assert [(t["s"], t["t"]) for t in trades] == [(f["symbol"], f["id"]) for f in mine["fills"]]
        for t, f in zip(trades, mine["fills"], strict=True):
            assert (t["i"], t["l"], t["L"], t["Y"], t["m"], t["S"], t["g"]) == (
                f["orderId"], f["qty"], f["price"], f["quoteQty"], f["isMaker"], f["side"],
                f["orderListId"],
            )  # fmt: skip
            if f["symbol"] in ZERO_FEE:
                assert (t["n"], t["N"]) == ("0", None)  # zero-fee pair
            else:
                assert (t["n"], t["N"]) == (f["commission"], f["commissionAsset"])
        expired = [r for r in reports if r["x"] == "EXPIRED"]
        assert expired and all(r["eR"] for r in expired)
        final = {o["orderId"]: o for o in mine["orders"]}
        last: dict[int, dict[str, Any]] = {r["i"]: r for r in reports}
        assert {i: r["X"] for i, r in last.items()} == {i: o["status"] for i, o in final.items()}
        lists = _of(events, sub, "listStatus")
        kinds.update((s["c"], s["l"]) for s in lists)
        done = {s["g"] for s in lists if s["l"] == "ALL_DONE"}
        assert done == {g["orderListId"] for g in mine["order_lists"]
                        if g["listOrderStatus"] == "ALL_DONE"}  # fmt: skip
        for status in lists:
            legs = {o["i"] for o in status["O"]}
            assert all(final[i]["orderListId"] == status["g"] for i in legs)
        balances: dict[str, dict[str, str]] = {}
        for position in _of(events, sub, "outboundAccountPosition"):
            balances.update({b["a"]: {"free": b["f"], "locked": b["l"]} for b in position["B"]})
        assert balances == {a: v for a, v in mine["balances"].items() if a in balances}
        moves = [
            ("DELTA" if e["e"] == "balanceUpdate" else "EXTERNAL_LOCK", e["a"], e["d"], e["T"])
            for e in (x["event"] for x in events if x["subscriptionId"] == sub)
            if e["e"] in ("balanceUpdate", "externalLockUpdate")
        ]
        moved += len(moves)
        assert moves == [
            (b["kind"], b["asset"], b["delta"], b["time"]) for b in mine["balance_events"]
        ]


async def test_deterministic_given_the_seed() -> None:
    def run() -> bytes:
        sim = Simulator(SimConfig(accounts=(), spot_accounts=NAMES, seed=5, rate=0))
        sim.step(30)
        return sim.ground_truth_bytes(stable=True, market="spot")

    assert run() == run()
