"""WebSocket mechanics: server pings, pong timeouts, listenKey expiry, the 24 h cut."""

from __future__ import annotations

import aiohttp

from tests.simulator.conftest import Rest, SimFactory, fill_events, stream, wait_until


async def test_server_pings_and_drops_clients_that_never_pong(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(ping_interval_s=0.1, pong_timeout_s=0.5)
    key = await Rest(http, sim, "alpha").listen_key()
    pings = 0
    async with http.ws_connect(f"{sim.ws_url}/private/ws/{key}", autoping=False) as mute:
        while True:
            msg = await mute.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1  # and never answered
                continue
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            break
    assert pings >= 2

    # A client that answers pings (websockets does, on its own) stays connected.
    async with stream(f"{sim.ws_url}/private/ws/{key}") as polite:
        sim.clock.advance(0)
        await wait_until(lambda: sim.ws.accepted == 2)
        deadline = sim.clock.sim_s() + 1.5
        await wait_until(lambda: sim.clock.sim_s() > deadline)
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        await wait_until(lambda: polite.fills() == 1)
        assert not polite.closed


async def test_listen_key_expiry_pushes_event_then_silence(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    rest = Rest(http, sim, "alpha")
    key = await rest.listen_key()
    async with stream(f"{sim.ws_url}/private/ws/{key}") as old:
        await wait_until(lambda: sim.hub.live_subscriptions("alpha") == 1)
        sim.clock.advance(3000)
        assert (await rest.call("PUT", "/fapi/v1/listenKey", signed=False))[0] == 200
        sim.clock.advance(3000)  # 100 min after creation, 50 after the keepalive: still valid
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        await wait_until(lambda: old.fills() == 1)
        sim.clock.advance(601)
        await wait_until(lambda: bool(old.of("listenKeyExpired")))
        assert old.of("listenKeyExpired")[0]["listenKey"] == key
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", signed=False)
        assert (status, body["code"]) == (400, -1125)
        fresh = await rest.listen_key()
        assert fresh != key
        async with stream(f"{sim.ws_url}/private/ws/{fresh}") as new:
            await wait_until(lambda: sim.hub.live_subscriptions("alpha") == 1)
            await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
            await wait_until(lambda: new.fills() == 1)
        assert old.fills() == 1  # the socket stayed open but silent
        assert not old.closed
    assert sim.ground_truth()["accounts"]["alpha"]["undelivered_fill_events"] == 1


async def test_accelerated_clock_expires_keys_by_itself(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(clock_speed=7200)  # an hour of timers in half a second
    key = await Rest(http, sim, "alpha").listen_key()
    async with stream(f"{sim.ws_url}/private/ws/{key}") as reader:
        await wait_until(lambda: bool(reader.of("listenKeyExpired")), within=10)


async def test_the_24h_cut_closes_with_1001(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    rest = Rest(http, sim, "alpha")
    key = await rest.listen_key()
    async with stream(f"{sim.ws_url}/private/ws/{key}") as reader:
        await wait_until(lambda: sim.hub.live_subscriptions("alpha") == 1)
        sim.clock.advance(23 * 3600)
        await rest.call("PUT", "/fapi/v1/listenKey", signed=False)  # keep the key itself alive
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        await wait_until(lambda: reader.fills() == 1)
        sim.clock.advance(3600)
        await wait_until(lambda: reader.closed)
    assert reader.close_code == 1001


async def test_unknown_key_connects_but_gets_nothing(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    async with stream(f"{sim.ws_url}/private/ws/{'x' * 64}") as reader:
        await Rest(http, sim, "alpha").listen_key()
        await sim.trade("alpha", "BTCUSDT", "BUY", "0.001")
        await wait_until(lambda: sim.ground_truth()["accounts"]["alpha"]["fills_generated"] == 1)
        assert fill_events(reader.events) == []
        assert not reader.closed
