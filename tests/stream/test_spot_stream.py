"""Spot accounts over shared WS-API connections, against the simulator (its ``/ws-api/v3``), real
PostgreSQL and NATS behind the pipeline.

What issue 14 asks of the stream source: several accounts on one connection all stream; one
account's refused subscribe or terminated subscription touches only that account; connection
trouble (disconnect, ``serverShutdown``, the 24 h cut) resubscribes every account of the
connection, each with a gap; frames for an unknown subscription are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from fillstream.binance import Venue, VenueError
from fillstream.binance.budget import WeightBudgets
from fillstream.binance.rest import BinanceVenue
from fillstream.binance.signing import Signer
from fillstream.ledger import (
    FillSink,
    Gap,
    IngestBatch,
    IngestResult,
    Market,
    Position,
    StreamState,
)
from fillstream.sidecar.stack import IngestStack
from fillstream.simulator import SimConfig, Simulator
from fillstream.stream import (
    SpotCredentials,
    SpotUserStream,
    StreamSettings,
    WsApiPool,
    check_subscription,
)
from tests.conftest import NatsTarget
from tests.stream.rig import eventually, fast_settings, sample

SYMBOLS = ("BTCUSDT", "ETHUSDT")

TradeRef = tuple[str, int, int]


class Gaps:
    """A test ``GapListener``: records every gap and state of one account."""

    def __init__(self) -> None:
        self.gaps: list[Gap] = []
        self.states: list[StreamState] = []

    def on_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)

    def on_stream_state(self, account: str, market: Market, state: StreamState) -> None:
        self.states.append(state)

    def reasons(self) -> list[str]:
        return [g.reason for g in self.gaps]


class SpotRig:
    """One simulator with spot accounts, the ingest stack, one WS-API pool, a stream each."""

    def __init__(self, sim: Simulator, stack: IngestStack, settings: StreamSettings) -> None:
        self.sim = sim
        self.stack = stack
        self.settings = settings
        self.budgets = WeightBudgets()
        self.pool = WsApiPool(settings.ws_url, settings, budgets=self.budgets)
        self.streams: dict[str, SpotUserStream] = {}
        self.gaps: dict[str, Gaps] = {}

    def add(
        self,
        account: str,
        *,
        api_key: str | None = None,
        venue: Venue | None = None,
        sink: FillSink | None = None,
    ) -> SpotUserStream:
        creds = self.sim.account(account)
        secret = creds.private_key_pem or creds.api_secret
        gaps = self.gaps[account] = Gaps()
        stream = SpotUserStream(
            account,
            venue,
            sink or self.stack.pipeline,
            gaps,
            self.settings,
            credentials=SpotCredentials(api_key or creds.api_key, Signer.from_secret(secret)),
            status=self.stack.pipeline,
            market=Market.SPOT,
            pool=self.pool,
        )
        self.streams[account] = stream
        stream.start()
        return stream

    async def streaming(self, *accounts: str) -> None:
        for account in accounts:

            def live(stream: SpotUserStream = self.streams[account]) -> bool:
                return stream.state is StreamState.STREAMING and stream.connected

            await eventually(live, timeout_s=20, what=f"{account} streaming")

    def session_of(self, account: str) -> int:
        session = self.streams[account].session
        assert session is not None
        return session.id

    def truth(self, account: str) -> set[TradeRef]:
        fills = self.sim.ground_truth()["accounts"][account]["fills"]
        return {(f["symbol"], f["id"], f["orderId"]) for f in fills}

    async def stored(self, account: str) -> set[TradeRef]:
        rows = await self.stack.pool.fetch(
            "SELECT symbol, trade_id, order_id FROM fills WHERE account = $1", account
        )
        return {(r["symbol"], r["trade_id"], r["order_id"]) for r in rows}

    async def converged(self, *accounts: str) -> None:
        """Once every account traded, stop trading; wait until PostgreSQL holds every fill the
        venue made (no fault here loses one: the stream alone must deliver them)."""
        self.sim.resume()
        await eventually(
            lambda: all(self.truth(a) for a in accounts), what="a fill on every account"
        )
        self.sim.pause()
        for account in accounts:

            def drained(stream: SpotUserStream = self.streams[account]) -> bool:
                return stream.backlog == 0

            await eventually(drained, what=f"{account} drained")
        await self.stack.pipeline.wait_idle()
        for account in accounts:
            truth = self.truth(account)

            async def done(a: str = account, t: set[TradeRef] = truth) -> bool:
                return await self.stored(a) == t

            await eventually(done, timeout_s=20, what=f"{account}: PostgreSQL == ground truth")

    async def aclose(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.sim.aclose)
            stack.push_async_callback(self.stack.aclose)
            stack.push_async_callback(self.pool.aclose)
            for stream in self.streams.values():
                stack.push_async_callback(stream.aclose, 5.0)


RigFactory = Callable[..., Awaitable[SpotRig]]


@pytest.fixture
async def make_rig(pg_dsn: str, nats_target: NatsTarget) -> AsyncIterator[RigFactory]:
    rigs: list[SpotRig] = []

    async def make(
        accounts: int = 3,
        *,
        settings: dict[str, Any] | None = None,
        key_types: tuple[str, ...] = (),
        **sim: Any,
    ) -> SpotRig:
        tag = uuid.uuid4().hex[:6]
        names = tuple(f"s{i}{tag}" for i in range(accounts))
        sim["spot_key_types"] = dict(zip(names, key_types, strict=False))
        sim.setdefault("accounts", ())
        sim.setdefault("symbols", SYMBOLS)
        sim.setdefault("seed", 11)
        sim.setdefault("rate", 10.0)
        simulator = Simulator(SimConfig(spot_accounts=names, **sim))
        await simulator.start()
        simulator.pause()
        try:
            stack = await IngestStack.open(
                pg_dsn, nats_target.url, stream=nats_target.stream, prefix=nats_target.prefix
            )
        except BaseException:
            await simulator.aclose()
            raise
        options: dict[str, Any] = {"accounts_per_connection": 2, "silent_probe_s": 0.0}
        options.update(settings or {})
        stream_settings = msgspec.structs.replace(
            fast_settings(**options), ws_url=f"{simulator.ws_url}/ws-api/v3"
        )
        rig = SpotRig(simulator, stack, stream_settings)
        rigs.append(rig)
        for name in names:
            rig.add(name)
        return rig

    yield make
    for rig in rigs:
        await rig.aclose()


def names(rig: SpotRig) -> list[str]:
    return list(rig.streams)


async def test_accounts_share_connections_and_every_fill_arrives(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=3)
    a, b, c = names(rig)
    await rig.streaming(a, b, c)
    # Two accounts per connection: three accounts, two connections.
    sessions = {rig.session_of(x) for x in (a, b, c)}
    assert len(sessions) == 2
    assert rig.pool.connects == 2
    # Weight in the spot pool, as the venue counted it: 2 per connection, 2 per subscribe.
    budget = rig.budgets.for_url(rig.settings.ws_url)
    assert budget.used == 2 * 2 + 3 * 2
    rig.sim.resume()
    await eventually(
        lambda: all(rig.streams[x].fills >= 5 for x in (a, b, c)), what="fills on every account"
    )
    await rig.converged(a, b, c)
    for x in (a, b, c):
        assert rig.gaps[x].reasons() == ["start"]


async def test_a_refused_subscribe_leaves_its_neighbours_streaming(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=2, settings={"accounts_per_connection": 50})
    good, bad = names(rig)
    await rig.streams[good].aclose()  # re-add both once the fault is in place
    await rig.streams[bad].aclose()
    rig.sim.inject(bad, "refuse_subscribe", count=1000, code=-2015)
    rig.add(good)
    rig.add(bad)
    await eventually(lambda: rig.streams[bad].state is StreamState.AUTH_FAILED, what="auth_failed")
    await rig.streaming(good)
    assert not rig.streams[bad].connected
    assert sample("fillstream_stream_auth_failed", account=bad, market="spot") == 1
    rig.sim.resume()
    await eventually(lambda: rig.streams[good].fills >= 3, what="the neighbour's fills")
    assert rig.streams[good].state is StreamState.STREAMING


async def test_a_bad_key_leaves_its_49_socket_neighbours_streaming(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=49, settings={"accounts_per_connection": 50}, rate=2.0)
    neighbours = names(rig)
    bad = neighbours[0]
    await rig.streams[bad].aclose()
    rig.add(bad, api_key="x" * 64)  # well-formed, unknown to the venue: -2015
    await eventually(lambda: rig.streams[bad].state is StreamState.AUTH_FAILED, what="auth_failed")
    await rig.streaming(*neighbours[1:])
    assert {rig.session_of(x) for x in neighbours[1:]} == {rig.pool.sessions[1].id}
    assert len(rig.pool.sessions) == 1
    rig.sim.resume()
    await eventually(
        lambda: sum(rig.streams[x].fills > 0 for x in neighbours[1:]) >= 10,
        what="fills on the neighbours",
    )
    assert all(rig.streams[x].state is StreamState.STREAMING for x in neighbours[1:])


class StuckSink:
    """The pipeline, except that one account's batches wait until released: its sink is stuck
    (a poison batch, a lock), the fault a shared socket must not pass to the neighbours."""

    def __init__(self, sink: FillSink, stuck: str) -> None:
        self.sink = sink
        self.stuck = stuck
        self.released = asyncio.Event()

    async def submit(self, batch: IngestBatch) -> IngestResult:
        if batch.account == self.stuck:
            await self.released.wait()
        return await self.sink.submit(batch)

    def positions(self, account: str, market: Market) -> Awaitable[list[Position]]:
        return self.sink.positions(account, market)


async def test_a_stuck_sink_is_cut_off_and_its_neighbour_streams_on(make_rig: RigFactory) -> None:
    settings = {
        "accounts_per_connection": 50,
        "queue_max": 4,
        "max_batch": 2,
        "backpressure_max_s": 0.5,
    }
    rig = await make_rig(accounts=2, settings=settings, rate=20.0)
    stuck, neighbour = names(rig)
    for x in (stuck, neighbour):
        await rig.streams[x].aclose()
    sink = StuckSink(rig.stack.pipeline, stuck)
    rig.add(stuck, sink=sink)
    rig.add(neighbour, sink=sink)
    await rig.streaming(stuck, neighbour)
    rig.sim.resume()
    await eventually(
        lambda: (
            sample("fillstream_wsapi_frames_unrouted_total", market="spot", reason="overflow") >= 1
            and rig.streams[stuck].state is not StreamState.STREAMING
        ),
        what="the stuck account cut off",
    )
    fills = rig.streams[neighbour].fills
    await eventually(lambda: rig.streams[neighbour].fills >= fills + 5, what="neighbour fills")
    assert rig.streams[neighbour].state is StreamState.STREAMING
    assert rig.gaps[neighbour].reasons() == ["start"]
    sink.released.set()
    await eventually(
        lambda: "backpressure" in rig.gaps[stuck].reasons() and rig.streams[stuck].connected,
        what="the stuck account back, with a gap",
    )


async def test_terminated_subscription_resubscribes_only_that_account(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(accounts=2)
    a, b = names(rig)
    await rig.streaming(a, b)
    assert rig.session_of(a) == rig.session_of(b)
    sub_b = rig.streams[b].subscription_id
    old_a = rig.streams[a].subscription_id
    # Trading paused: what trades between the end and the resubscribe is the gap's (the
    # reconciler's), and this test has none.
    rig.sim.inject(a, "terminate_subscription")
    await eventually(
        lambda: (
            "subscription_terminated" in rig.gaps[a].reasons()
            and rig.streams[a].connected
            and rig.streams[a].subscription_id != old_a
        ),
        what="a resubscribed",
    )
    # Same connection, and the neighbour saw nothing.
    assert rig.session_of(a) == rig.session_of(b)
    assert rig.streams[b].subscription_id == sub_b
    assert rig.gaps[b].reasons() == ["start"]
    assert rig.pool.connects == 1
    await rig.converged(a, b)


async def test_disconnect_resubscribes_every_account_of_the_connection(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(accounts=3)
    a, b, c = names(rig)
    await rig.streaming(a, b, c)
    same = [x for x in (b, c) if rig.session_of(x) == rig.session_of(a)]
    other = [x for x in (b, c) if x not in same]
    assert len(same) == 1 and len(other) == 1
    rig.sim.inject(a, "disconnect")
    for x in (a, *same):

        def resubscribed(x: str = x) -> bool:
            return "reconnect" in rig.gaps[x].reasons() and rig.streams[x].connected

        await eventually(resubscribed, what=f"{x} resubscribed after the disconnect")
    assert rig.gaps[other[0]].reasons() == ["start"]
    assert StreamState.RECOVERING in rig.gaps[a].states
    rig.sim.resume()
    await eventually(lambda: rig.streams[a].fills >= 2, what="fills after the reconnect")
    await rig.converged(a, b, c)


async def test_server_shutdown_moves_the_connection_make_before_break(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(accounts=2)
    a, b = names(rig)
    await rig.streaming(a, b)
    old = rig.session_of(a)
    rig.sim.resume()
    rig.sim.inject(a, "server_shutdown", seconds=3.0)
    for x in (a, b):

        def moved(x: str = x) -> bool:
            return rig.streams[x].connected and rig.session_of(x) != old

        await eventually(moved, what=f"{x} moved off the retiring connection")
        # Moved before the old connection closed: a rotation gap, never a reconnect.
        assert rig.gaps[x].reasons() == ["start", "rotation"]
        assert StreamState.RECOVERING not in rig.gaps[x].states
    assert rig.session_of(a) == rig.session_of(b)
    await eventually(lambda: old not in rig.pool.sessions, what="the old connection closed")
    await rig.converged(a, b)


async def test_the_24h_cut_is_a_planned_move(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=1, settings={"rotate_after_s": 1.0})
    (a,) = names(rig)
    await rig.streaming(a)
    first = rig.session_of(a)
    await eventually(
        lambda: rig.streams[a].connected and rig.session_of(a) != first, what="rotated"
    )
    assert rig.gaps[a].reasons()[:2] == ["start", "rotation"]
    assert StreamState.RECOVERING not in rig.gaps[a].states


async def test_the_lifetime_subscription_cap_is_a_planned_move(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=1, settings={"lifetime_subscriptions_max": 2})
    (a,) = names(rig)
    await rig.streaming(a)
    first = rig.session_of(a)
    rig.sim.inject(a, "terminate_subscription")  # the resubscribe is the connection's 2nd
    await eventually(
        lambda: rig.streams[a].connected and rig.session_of(a) != first,
        what="moved before the cap",
    )
    assert rig.gaps[a].reasons() == ["start", "subscription_terminated", "rotation"]


async def test_a_clock_behind_the_venue_is_resynced(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=1)
    (a,) = names(rig)
    await rig.streaming(a)
    await rig.streams[a].aclose()
    rig.sim.inject(None, "clock_skew", ms=20_000)  # our timestamps now look 20 s old: -1021
    rig.add(a)
    await rig.streaming(a)
    assert 19_000 <= rig.pool.clock_offset_ms <= 21_000


async def test_a_socket_that_answers_but_delivers_nothing_is_caught_by_rest(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(
        accounts=1, settings={"stale_after_s": 1.0, "stale_recheck_max_s": 1.0}, rate=20.0
    )
    (a,) = names(rig)
    await rig.streaming(a)
    await rig.streams[a].aclose()
    creds = rig.sim.account(a)
    venue = await BinanceVenue.create(
        account=a,
        market=Market.SPOT,
        api_key=creds.api_key,
        api_secret=creds.api_secret,
        rest_url=rig.sim.rest_url,
        budget=rig.budgets,
    )
    try:
        stream = rig.add(a, venue=venue)
        await rig.streaming(a)
        rig.sim.resume()
        await eventually(lambda: bool(stream.activity.open_orders), what="an order working")
        silent = rig.session_of(a)
        rig.sim.inject(a, "silent", seconds=30.0)  # pings and requests answered, no events
        await eventually(lambda: "stale" in rig.gaps[a].reasons(), what="the stale verdict")
        await rig.streaming(a)
        assert rig.session_of(a) != silent  # resubscribed on another connection
        fills = stream.fills
        await eventually(lambda: stream.fills > fills, what="fills flow again")
    finally:
        await rig.streams[a].aclose()
        await venue.aclose()


async def test_duplicated_events_are_deduplicated(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=1)
    (a,) = names(rig)
    await rig.streaming(a)
    rig.sim.inject(a, "duplicate", count=40)
    rig.sim.resume()
    stream = rig.streams[a]
    await eventually(lambda: stream.duplicates >= 5, what="duplicates dropped")
    await rig.converged(a)


async def test_a_dropped_fill_is_proven_by_the_next_report_and_narrowly_gapped(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(accounts=1, rate=20.0)
    (a,) = names(rig)
    await rig.streaming(a)
    rig.sim.resume()
    stream = rig.streams[a]
    # First the stream sees orders from their NEW (evidence judges only orders seen whole)...
    await eventually(lambda: stream.fills >= 5, what="fills before the drops")
    rig.sim.inject(a, "drop_rate", p=0.3)  # ...then the venue drops events now and then
    await eventually(
        lambda: any(g.reason == "drop_evidence" and g.narrow for g in rig.gaps[a].gaps),
        what="a drop_evidence gap",
    )


async def test_unknown_subscription_id_is_counted_and_harmless(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=1)
    (a,) = names(rig)
    await rig.streaming(a)
    before = sample(
        "fillstream_wsapi_frames_unrouted_total", market="spot", reason="unknown_subscription"
    )
    rig.sim.inject(
        a,
        "inject_frame",
        raw='{"subscriptionId":999,"event":{"e":"balanceUpdate",'
        '"E":1789478401230,"a":"BTC","d":"1.0","T":1789478401230}}',
    )
    await eventually(
        lambda: (
            sample(
                "fillstream_wsapi_frames_unrouted_total",
                market="spot",
                reason="unknown_subscription",
            )
            == before + 1
        ),
        what="the unrouted frame counted",
    )
    rig.sim.resume()
    await eventually(lambda: rig.streams[a].fills >= 2, what="fills go on")
    assert rig.gaps[a].reasons() == ["start"]


async def test_envelopes_in_any_layout_reach_their_account(make_rig: RigFactory) -> None:
    rig = await make_rig(accounts=1)
    (a,) = names(rig)
    await rig.streaming(a)
    stream = rig.streams[a]
    sid = stream.subscription_id
    event = '{"e":"balanceUpdate","E":1789478401230,"a":"BTC","d":"1.5","T":1789478401230}'
    frames = stream.frames
    # Keys reordered and spaced (the full envelope decode), and without subscriptionId (one
    # subscription on the connection: the connection is the account).
    rig.sim.inject(a, "inject_frame", raw=f'{{ "event": {event}, "subscriptionId": {sid} }}')
    rig.sim.inject(a, "inject_frame", raw=f'{{"event":{event}}}')
    await eventually(lambda: stream.frames == frames + 2, what="both frames processed")
    await eventually(
        lambda: (
            sample("fillstream_stream_events_total", account=a, market="spot", type="balanceUpdate")
            == 2
        ),
        what="two balance events counted",
    )


async def test_rate_limited_subscribe_waits_retry_after_then_streams(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(accounts=1)
    (a,) = names(rig)
    await rig.streaming(a)
    await rig.streams[a].aclose()
    failures = sample("fillstream_stream_connect_failures_total", account=a, market="spot")
    rig.sim.inject(a, "ws_api_rate_limit", count=1, retry_after=2.0)
    started = time.monotonic()
    stream = rig.add(a)
    budget = rig.budgets.for_url(rig.settings.ws_url)
    # The 429 pauses the shared spot pool (REST waits with the WS API) for its retryAfter.
    await eventually(lambda: budget.paused_for()[1] > 0, what="the spot pool paused")
    await rig.streaming(a)
    assert time.monotonic() - started >= 1.5
    assert sample("fillstream_stream_connect_failures_total", account=a, market="spot") == (
        failures + 1
    )
    assert stream.state is StreamState.STREAMING


@pytest.mark.parametrize("key_type", ["RSA", "ED25519"])
async def test_rsa_and_ed25519_keys_subscribe(make_rig: RigFactory, key_type: str) -> None:
    rig = await make_rig(accounts=2, key_types=(key_type,))
    a, b = names(rig)
    assert rig.streams[a].credentials.signer.kind.value == key_type.lower()
    await rig.streaming(a, b)
    rig.sim.resume()
    await eventually(lambda: rig.streams[a].fills >= 2, what=f"fills with an {key_type} key")


async def test_check_subscription_subscribes_once_and_reports_a_refusal(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(accounts=1)
    (a,) = names(rig)
    creds = rig.sim.account(a)
    good = SpotCredentials(creds.api_key, Signer.from_secret(creds.api_secret))
    assert await check_subscription(a, good, rig.settings) == 0  # its own connection
    wrong = SpotCredentials(creds.api_key, Signer.from_secret("not-the-secret"))
    with pytest.raises(VenueError) as refused:
        await check_subscription(a, wrong, rig.settings)
    assert refused.value.is_auth and refused.value.code == -1022


def test_credentials_repr_masks_the_key() -> None:
    creds = SpotCredentials("abcdefgh" * 8, Signer.from_secret("secret"))
    assert "abcdefgh" * 2 not in repr(creds)
