"""Every stream and REST fault on a COIN-M account, and the COIN-M generator against the truth."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fillstream.simulator import Simulator
from tests.simulator.conftest import Rest, SimFactory, StreamReader, fill_events, stream, wait_until

EVENTS_PER_FILL = 3  # ORDER_TRADE_UPDATE NEW, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE (no LITE)


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim(
        accounts=("um", "cm"),
        coinm_accounts=("cm",),
        coinm_symbols=("BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_261225"),
        seed=5,
    )


@pytest.fixture
def rest(http: aiohttp.ClientSession, sim: Simulator) -> Rest:
    return Rest(http, sim, "cm")


async def _key(rest: Rest) -> str:
    status, body, _ = await rest.call("POST", "/dapi/v1/listenKey", signed=False)
    assert status == 200, body
    return str(body["listenKey"])


@contextlib.asynccontextmanager
async def dstream(sim: Simulator, rest: Rest) -> AsyncIterator[StreamReader]:
    key = await _key(rest)
    live = sim.hub.live_subscriptions("cm")
    async with stream(f"{sim.ws_url}/ws/{key}") as reader:
        await wait_until(lambda: sim.hub.live_subscriptions("cm") == live + 1)
        yield reader


async def _buy(sim: Simulator, n: int = 1) -> None:
    for _ in range(n):
        await sim.trade("cm", "BTCUSD_PERP", "BUY", "1")


async def _trades(rest: Rest) -> int:
    return len(await rest.ok("GET", "/dapi/v1/userTrades", {"symbol": "BTCUSD_PERP"}))


async def test_drop_and_duplicate(sim: Simulator, rest: Rest) -> None:
    async with dstream(sim, rest) as reader:
        sim.inject("cm", "drop", count=EVENTS_PER_FILL + 2)  # one fill, then most of the next
        await _buy(sim, 3)
        await wait_until(lambda: len(reader.events) == 1 + EVENTS_PER_FILL)
        sim.inject("cm", "duplicate", count=EVENTS_PER_FILL)
        await _buy(sim)
        await wait_until(lambda: len(reader.events) == 1 + 3 * EVENTS_PER_FILL)
    assert len(fill_events(reader.events)) == 3  # one of the three, then one sent twice
    assert await _trades(rest) == 4
    truth = sim.ground_truth()["accounts"]["cm"]
    assert (truth["dropped_fill_events"], len(truth["fills"])) == (2, 4)


async def test_disconnect_silence_and_cut(sim: Simulator, rest: Rest) -> None:
    async with dstream(sim, rest) as reader:
        assert sim.inject("cm", "disconnect") == {
            "account": "cm",
            "kind": "disconnect",
            "sockets": 1,
        }
        await wait_until(lambda: reader.closed)
        assert reader.close_code == 1006
    async with dstream(sim, rest) as reader:
        sim.inject("cm", "silent", seconds=30)
        await _buy(sim)
        assert sim.ground_truth()["accounts"]["cm"]["undelivered_fill_events"] == 1
        sim.clear_faults()
        assert sim.inject("cm", "cut")["sockets"] == 1
        await wait_until(lambda: reader.closed)
        assert reader.close_code == 1001
    assert reader.fills() == 0


async def test_listen_key_expiry(sim: Simulator, rest: Rest) -> None:
    um_rest = Rest(rest.http, sim, "cm")
    um_key = await um_rest.listen_key()  # the account's USDⓈ-M key
    async with dstream(sim, rest) as reader:
        keys = sim.inject("cm", "expire_listen_key")["listen_keys"]
        await wait_until(lambda: bool(reader.of("listenKeyExpired")))
        await _buy(sim)
        status, body, _ = await rest.call("PUT", "/dapi/v1/listenKey", signed=False)
    assert (status, body["code"]) == (400, -1125)
    assert isinstance(keys, list)
    assert set(keys) == {reader.of("listenKeyExpired")[0]["listenKey"], um_key}
    assert fill_events(reader.events) == []
    # A key that expires by itself (60 sim-minutes) pushes the event too.
    async with dstream(sim, rest) as reader:
        sim.clock.advance(3601)
        await wait_until(lambda: bool(reader.of("listenKeyExpired")))


async def test_rest_errors_and_lag_on_dapi(sim: Simulator, rest: Rest) -> None:
    sim.inject("cm", "rest_error", status=429, count=1, retry_after=3)
    status, body, headers = await rest.call("GET", "/dapi/v1/userTrades", {"pair": "BTCUSD"})
    assert (status, body["code"], headers["Retry-After"]) == (429, -1003, "3")
    sim.inject("cm", "rest_error", status=418, count=1)
    assert (await rest.call("GET", "/dapi/v1/positionRisk"))[0] == 418
    await _buy(sim)
    bought_at = time.monotonic()
    await wait_until(lambda: time.monotonic() - bought_at > 1.0)
    sim.inject("cm", "rest_lag", seconds=1.0)
    await _buy(sim)
    assert await _trades(rest) == 1
    risk = await rest.ok("GET", "/dapi/v1/positionRisk", {"pair": "BTCUSD"})
    assert [r["positionAmt"] for r in risk if r["symbol"] == "BTCUSD_PERP"] == ["1"]
    sim.inject("cm", "rest_lag", seconds=0)
    assert await _trades(rest) == 2


def _fills_in(events: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(o["s"], o["t"]) for o in fill_events(events)}


async def test_generator_trades_coinm_as_rest_and_truth_say(sim: Simulator, rest: Rest) -> None:
    async with dstream(sim, rest) as reader:
        sim.step(400)
        made = sim.fills_generated_by("cm")
        await wait_until(lambda: reader.fills() == made)
    truth = sim.ground_truth()["accounts"]["cm"]
    assert truth["undelivered_fill_events"] == 0
    assert truth["fills"] and {f["symbol"] for f in truth["fills"]} <= {
        "BTCUSD_PERP",
        "ETHUSD_PERP",
        "BTCUSD_261225",
    }
    assert _fills_in(reader.events) == {(f["symbol"], f["id"]) for f in truth["fills"]}
    assert {c["reason"] for c in truth["closes"]} >= {"manual", "take_profit", "stop_loss"}
    assert all(c["marginAsset"] in ("BTC", "ETH") for c in truth["closes"])
    assert any(e["e"] == "ALGO_UPDATE" for e in reader.events)
    # REST agrees with the truth, per symbol.
    for symbol in {f["symbol"] for f in truth["fills"]}:
        rows = await rest.ok("GET", "/dapi/v1/userTrades", {"symbol": symbol, "limit": 1000})
        assert rows == [
            {k: v for k, v in f.items() if k != "account"}
            for f in truth["fills"]
            if f["symbol"] == symbol
        ]
    um = sim.ground_truth()["accounts"]["um"]
    assert um["market"] == "usdm" and {f["symbol"] for f in um["fills"]} <= {"BTCUSDT", "ETHUSDT"}
