"""Issue 4's acceptance lines, against the simulator with real PostgreSQL and NATS.

Each outage test runs the simulator's generator, breaks the stream one way, and then checks:
the account is back in ``streaming``; a gap was emitted whose window holds every fill the stream
missed; and once the gaps are backfilled (``BackfillGaps``, standing in for the reconciler),
PostgreSQL and JetStream hold exactly the ground truth.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from fillstream.ledger import StreamState
from fillstream.simulator import SimConfig
from tests.conftest import NatsTarget
from tests.stream.rig import Rig, eventually, fast_settings, sample

SYMBOLS = ("BTCUSDT", "ETHUSDT")


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(pg_dsn: str, nats_target: NatsTarget) -> AsyncIterator[RigFactory]:
    """Build the rig with simulator options (one per test); closed at teardown."""
    rigs: list[Rig] = []

    async def make(**options: Any) -> Rig:
        options.setdefault("accounts", (f"a{uuid.uuid4().hex[:8]}",))
        options.setdefault("symbols", SYMBOLS)
        options.setdefault("seed", 7)
        options.setdefault("rate", 20.0)
        r = await Rig.open(SimConfig(**options), pg_dsn, nats_target)
        rigs.append(r)
        return r

    try:
        yield make
    finally:
        for r in rigs:
            await r.aclose()


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()


def account_of(rig: Rig) -> str:
    return rig.sim.config.accounts[0]


async def assert_recovered(rig: Rig, account: str, *, gaps_before: int, reason: str) -> None:
    """Back in streaming, a gap of ``reason`` after the fault, every missed fill inside a gap,
    and after backfill PostgreSQL == JetStream == ground truth."""
    stream, listener = rig.streams[account], rig.listeners[account]
    await eventually(
        lambda: any(g.reason == reason for g in listener.gaps[gaps_before:]),
        timeout_s=60,
        what=f"a {reason} gap",
    )
    await rig.streaming(account)
    await rig.settle(account)
    stored = await rig.stored(account)
    truth = rig.truth(account)
    assert set(stored) == set(truth)
    missed = {ref: truth[ref] for ref, source in stored.items() if source == "reconcile"}
    uncovered = {ref: t for ref, t in missed.items() if listener.covering(t) is None}
    assert not uncovered, f"fills missed by the stream outside every gap: {uncovered}"
    ids = await rig.published_fill_ids(account)
    assert len(ids) == len(set(ids)) == len(truth)
    assert stream.state is StreamState.STREAMING


async def test_streams_fills_orders_and_keepalives_on_schedule(make_rig: RigFactory) -> None:
    """Accelerated clock: the sim's 60 min key lives 2 s; a keepalive every 0.2 s keeps it."""
    rig = await make_rig(clock_speed=1800.0)
    account = account_of(rig)
    settings = fast_settings(keepalive_interval_s=0.2)
    stream = await rig.add(account, settings, backfill=False)
    await rig.streaming(account)
    key = stream.listen_key
    ops = {"account": account, "market": "usdm", "op": "keepalive", "outcome": "ok"}
    await eventually(
        lambda: sample("fillstream_listen_key_operations_total", **ops) >= 20,
        timeout_s=30,
        what="20 keepalives",
    )
    # 20 keepalives = 4 s = 2 sim-hours: the key never expired, the socket never changed.
    assert stream.listen_key == key
    assert [g.reason for g in rig.listeners[account].gaps] == ["start"]
    await rig.settle(account)
    stored = await rig.stored(account)
    assert set(stored.values()) == {"stream"}
    assert stream.fills == len(stored) > 0
    # ACCOUNT_UPDATE positions, kept for cross-checks, match the venue's open positions.
    truth_positions = {
        (p["symbol"], p["positionSide"]): Decimal(p["positionAmt"])
        for p in rig.sim.ground_truth()["accounts"][account]["positions"]
    }
    reported = {(s, ps.value): p.qty for (s, ps), p in stream.positions().items() if p.qty}
    assert reported == truth_positions
    orders = await rig.stack.pool.fetchval(
        "SELECT count(*) FROM orders WHERE account = $1", account
    )
    assert orders > 0


async def test_keepalive_listen_key_gone_reconnects_with_a_new_key(make_rig: RigFactory) -> None:
    rig = await make_rig(clock_speed=1800.0)
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(keepalive_interval_s=0.2))
    await rig.streaming(account)
    old_key = stream.listen_key
    gaps_before = len(rig.listeners[account].gaps)
    # Another process deletes the shared key: the socket stays open and silent; the next PUT
    # gets -1125.
    other = await rig.venue(account)
    try:
        await other.close_listen_key()
    finally:
        await other.aclose()
    await assert_recovered(rig, account, gaps_before=gaps_before, reason="key_changed")
    assert stream.listen_key != old_key
    assert (
        sample(
            "fillstream_listen_key_operations_total",
            account=account,
            market="usdm",
            op="keepalive",
            outcome="gone",
        )
        >= 1
    )


async def test_listen_key_expired_event(rig: Rig) -> None:
    account = account_of(rig)
    stream = await rig.add(account)
    await rig.streaming(account)
    await eventually(lambda: stream.fills > 0, what="a first fill")
    old_key = stream.listen_key
    gaps_before = len(rig.listeners[account].gaps)
    rig.sim.inject(account, "expire_listen_key")
    await assert_recovered(rig, account, gaps_before=gaps_before, reason="listen_key_expired")
    assert stream.listen_key != old_key


async def test_forced_disconnect(rig: Rig) -> None:
    account = account_of(rig)
    stream = await rig.add(account)
    await rig.streaming(account)
    await eventually(lambda: stream.fills > 0, what="a first fill")
    gaps_before = len(rig.listeners[account].gaps)
    rig.sim.inject(account, "disconnect")
    await assert_recovered(rig, account, gaps_before=gaps_before, reason="reconnect")
    assert (
        sample(
            "fillstream_stream_reconnects_total",
            account=account,
            market="usdm",
            reason="disconnect",
        )
        >= 1
    )


async def test_24h_cut(rig: Rig) -> None:
    account = account_of(rig)
    stream = await rig.add(account)
    await rig.streaming(account)
    await eventually(lambda: stream.fills > 0, what="a first fill")
    gaps_before = len(rig.listeners[account].gaps)
    rig.sim.inject(account, "cut")
    await assert_recovered(rig, account, gaps_before=gaps_before, reason="reconnect")


async def test_silent_socket_is_caught_by_the_watchdog(rig: Rig) -> None:
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(stale_after_s=1.0))
    await rig.streaming(account)
    await eventually(lambda: stream.fills > 0, what="a first fill")
    gaps_before = len(rig.listeners[account].gaps)
    rig.sim.inject(account, "silent", seconds=600)
    await assert_recovered(rig, account, gaps_before=gaps_before, reason="stale")
    assert (
        sample(
            "fillstream_stream_watchdog_checks_total",
            account=account,
            market="usdm",
            verdict="mismatch",
        )
        >= 1
    )


async def test_refused_reconnects_for_30s(rig: Rig) -> None:
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(backoff_max_s=2.0))
    await rig.streaming(account)
    await eventually(lambda: stream.fills > 0, what="a first fill")
    gaps_before = len(rig.listeners[account].gaps)
    rig.sim.inject(account, "refuse_ws", seconds=30)
    rig.sim.inject(account, "disconnect")
    await eventually(lambda: stream.state is StreamState.DEGRADED, timeout_s=30, what="degraded")
    await assert_recovered(rig, account, gaps_before=gaps_before, reason="reconnect")
    gap = next(g for g in rig.listeners[account].gaps[gaps_before:] if g.reason == "reconnect")
    assert gap.until_ms is not None and gap.until_ms - gap.since_ms >= 30_000
    states = rig.listeners[account].states
    assert states[-3:] == [StreamState.RECOVERING, StreamState.DEGRADED, StreamState.STREAMING]
    # ...and each transition is a fillstream.status.<account> event (published by the sink).
    assert await rig.published_count(f"status.{account}") == len(states)
    assert sample("fillstream_stream_connect_failures_total", account=account, market="usdm") > 3


async def test_make_before_break_rotation_at_500_events_per_s_loses_and_duplicates_nothing(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    settings = fast_settings(rotate_after_s=0.8, rotation_overlap_s=0.3)
    stream = await rig.add(account, settings, backfill=False)
    await rig.streaming(account)
    labels = {"account": account, "market": "usdm"}
    # 125 fills/s, four events each (NEW, TRADE_LITE, TRADE, ACCOUNT_UPDATE): 500 events/s.
    burst = asyncio.create_task(rig.sim.burst(account, "BTCUSDT", 600, rate=125))
    try:
        await eventually(
            lambda: sample("fillstream_stream_reconnects_total", **labels, reason="rotation") >= 3,
            timeout_s=60,
            what="three rotations under load",
        )
        made = await burst
    finally:
        burst.cancel()
    assert made == 600
    await rig.settle(account)
    stored = await rig.stored(account)
    assert len(stored) == len(rig.truth(account)) == 600
    assert set(stored.values()) == {"stream"}  # nothing lost: no backfill was needed
    ids = await rig.published_fill_ids(account)
    assert len(ids) == len(set(ids)) == 600  # nothing duplicated on JetStream
    # The overlaps really overlapped, and the stream dropped the twins before the sink.
    assert stream.duplicates > 0
    assert sample("fillstream_fills_duplicate_total", **labels, source="stream") == 0
    assert [g.reason for g in rig.listeners[account].gaps].count("rotation") >= 3


BAD_FRAMES = (
    "not json at all",
    "[1, 2, 3]",
    "{",
    '{"e":"NEW_EVENT_2027","E":1789478401234,"x":{"y":1}}',
    '{"result":null,"id":7}',
    '{"E":1789478401234,"o":{}}',
    '{"e":"ORDER_TRADE_UPDATE","E":"soon","T":1,"o":{}}',
    '{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"BTCUSDT"}}',
    '{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"BTCUSDT","c":"x","S":"HOLD","o":"LIMIT",'
    '"x":"TRADE","X":"FILLED","i":1,"T":1,"t":99,"l":"1","L":"1"}}',
    '{"e":"TRADE_LITE","E":1,"s":"BTCUSDT"}',
    '{"stream":"k","data":{"e":"SOMETHING_ELSE","E":1}}',
    '{"stream":"k","data":"oops"}',
    '{"e":"ALGO_UPDATE","E":1,"T":1,"o":{"aid":1,"s":"BTCUSDT","X":"TRIGGERED","ai":"x7"}}',
    '{"e":"ACCOUNT_UPDATE","E":1,"a":{"P":[{"s":"BTCUSDT","pa":"1","ps":"SIDEWAYS"}]}}',
)


async def test_10k_malformed_and_unknown_frames_mid_stream(make_rig: RigFactory) -> None:
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    stream = await rig.add(account, backfill=False)
    await rig.streaming(account)
    labels = {"account": account, "market": "usdm"}
    burst = asyncio.create_task(rig.sim.burst(account, "ETHUSDT", 300, rate=200))
    try:
        for n in range(10_000):
            rig.sim.inject(account, "inject_frame", raw=BAD_FRAMES[n % len(BAD_FRAMES)])
            if n % 50 == 0:
                await asyncio.sleep(0)  # interleave with the fills
        await burst
    finally:
        burst.cancel()

    def errors() -> float:
        return sum(
            sample("fillstream_stream_decode_errors_total", **labels, kind=kind)
            for kind in ("malformed", "unknown")
        )

    await eventually(lambda: errors() >= 10_000, what="every bad frame counted")
    assert errors() == 10_000
    assert sample("fillstream_stream_decode_errors_total", **labels, kind="unknown") > 0
    await rig.settle(account)
    stored = await rig.stored(account)
    assert len(stored) == 300 and set(stored.values()) == {"stream"}
    assert stream.state is StreamState.STREAMING
    assert [g.reason for g in rig.listeners[account].gaps] == ["start"]


async def test_auth_failure_on_one_account_leaves_the_others_streaming(
    make_rig: RigFactory,
) -> None:
    names = tuple(f"{tag}{uuid.uuid4().hex[:6]}" for tag in ("ok", "bad", "late"))
    rig = await make_rig(accounts=names, clock_speed=1800.0)
    good, bad, late = names
    settings = fast_settings(keepalive_interval_s=0.2)
    for name in names:
        # No backfill: the injected error must meet a keepalive, not a userTrades call.
        await rig.add(
            name, settings, backfill=False, api_key="not-a-real-key" if name == bad else None
        )
    await rig.streaming(good)
    await rig.streaming(late)
    await eventually(
        lambda: rig.streams[bad].state is StreamState.AUTH_FAILED, what="bad key → auth_failed"
    )
    # A key revoked while streaming: the next keepalive is refused with -2015.
    rig.sim.inject(late, "rest_error", status=401, code=-2015, count=1)
    await eventually(
        lambda: rig.streams[late].state is StreamState.AUTH_FAILED, what="revoked → auth_failed"
    )
    for name in (bad, late):
        assert sample("fillstream_stream_auth_failed", account=name, market="usdm") == 1
    await eventually(lambda: not rig.streams[bad].connected, what="bad: no socket")
    await eventually(lambda: not rig.streams[late].connected, what="late: socket closed")
    creates = sample(
        "fillstream_listen_key_operations_total",
        account=bad,
        market="usdm",
        op="create",
        outcome="auth_failed",
    )
    fills = rig.streams[good].fills
    await eventually(lambda: rig.streams[good].fills > fills + 20, what="good keeps streaming")
    assert rig.streams[good].state is StreamState.STREAMING
    # No retries: the bad account asked for a key exactly once.
    assert creates == 1
    assert (
        sample(
            "fillstream_listen_key_operations_total",
            account=bad,
            market="usdm",
            op="create",
            outcome="auth_failed",
        )
        == 1
    )
    assert sample("fillstream_stream_auth_failed", account=good, market="usdm") == 0
    await rig.settle(good)
    assert set((await rig.stored(good)).values()) == {"stream"}


@pytest.mark.parametrize("delete", [True, False])
async def test_aclose_flushes_and_deletes_the_key_unless_shared(
    make_rig: RigFactory, delete: bool
) -> None:
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(delete_key_on_shutdown=delete), backfill=False)
    await rig.streaming(account)
    key = stream.listen_key
    assert rig.sim.keys.active(account) == key
    await rig.sim.burst(account, "BTCUSDT", 200)
    await eventually(lambda: stream.frames >= 800, what="every frame received")
    await stream.aclose(10.0)
    await stream.aclose(10.0)  # idempotent
    assert stream.state is StreamState.STOPPED and not stream.connected
    assert set((await rig.stored(account)).values()) == {"stream"}
    assert len(await rig.stored(account)) == 200  # what was queued at close was flushed
    assert rig.sim.keys.active(account) == (None if delete else key)


@pytest.mark.parametrize("url_form", ["path", "query", "stream"])
async def test_every_url_form_streams_everything(make_rig: RigFactory, url_form: str) -> None:
    """``/private/ws/<key>``, ``/private/ws?listenKey=…&events=…`` and the combined
    ``/private/stream`` (envelopes) all deliver every fill."""
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(url_form=url_form), backfill=False)
    await rig.streaming(account)
    await rig.sim.burst(account, "ETHUSDT", 100, rate=500)
    await rig.settle(account)
    assert len(await rig.stored(account)) == 100
    assert stream.fills == 100
    labels = {"account": account, "market": "usdm"}
    assert sample("fillstream_stream_decode_errors_total", **labels, kind="malformed") == 0
    assert sample("fillstream_stream_events_total", **labels, type="TRADE_LITE") == 100


async def test_trade_lite_without_its_order_update_opens_a_gap(make_rig: RigFactory) -> None:
    """The venue drops events at random: a TRADE_LITE whose ORDER_TRADE_UPDATE never comes is
    the early signal of a missed fill, and its gap gets it backfilled at once."""
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(trade_lite_grace_s=0.3))
    await rig.streaming(account)
    rig.sim.inject(account, "drop_rate", p=0.25)
    await rig.sim.burst(account, "BTCUSDT", 200, rate=400)
    listener = rig.listeners[account]
    await eventually(
        lambda: any(g.reason == "trade_lite_unmatched" for g in listener.gaps),
        what="a trade_lite_unmatched gap",
    )
    await eventually(lambda: listener.idle and listener.backfilled > 0, what="a backfill")
    rig.sim.inject(account, "drop_rate", p=0)
    await rig.settle(account)  # the final sweep stands for the reconciler's periodic poll
    assert stream.state is StreamState.STREAMING
    gap = next(g for g in listener.gaps if g.reason == "trade_lite_unmatched")
    assert gap.symbols == {"BTCUSDT"}


async def test_closes_from_the_stream_are_classified_like_the_venue(make_rig: RigFactory) -> None:
    """The generator's TP/SL/trailing stops (ALGO_UPDATE linked to child fills that may arrive
    first), liquidations, ADL and settlements flow through the stream alone; the closes the
    ledger derives match the venue's, reason for reason."""
    rig = await make_rig(rate=60.0, seed=11)
    account = account_of(rig)
    stream = await rig.add(account, backfill=False)
    await rig.streaming(account)

    def reasons() -> set[str]:
        closes = rig.sim.ground_truth()["accounts"][account]["closes"]
        return {c["reason"] for c in closes}

    await eventually(
        lambda: {"take_profit", "stop_loss"} <= reasons() and len(reasons()) >= 4,
        timeout_s=90,
        what="closes of several kinds",
    )
    await rig.settle(account)
    truth = {
        (c["symbol"], c["positionSide"], int(c["closeTradeId"])): c["reason"]
        for c in rig.sim.ground_truth()["accounts"][account]["closes"]
    }
    rows = await rig.stack.pool.fetch(
        """SELECT DISTINCT ON (close_id) symbol, position_side, close_trade_id, reason, retracted_at
           FROM position_closes WHERE account = $1 ORDER BY close_id, revision DESC""",
        account,
    )
    ours = {
        (r["symbol"], r["position_side"], r["close_trade_id"]): r["reason"]
        for r in rows
        if r["retracted_at"] is None
    }
    assert ours == truth
    assert stream.state is StreamState.STREAMING


@pytest.mark.parametrize(
    ("fault", "outcome", "trouble"),
    [
        ({"status": 400, "code": -1125}, "gone", "listen_key_gone"),
        ({"status": 503, "count": 3}, "server_error", "keepalive_failed"),
        ({"status": 400, "code": -1100}, "error", "keepalive_failed"),
    ],
)
async def test_keepalive_failures_get_a_new_key_and_a_gap(
    make_rig: RigFactory, fault: dict[str, int], outcome: str, trouble: str
) -> None:
    """``-1125`` at once, retryable 5xx after its retries, anything else at once: a new key,
    a reconnect, and a gap."""
    # Keys live 6 s here: long enough for two 5xx retries (each at least 1 s after the last).
    rig = await make_rig(rate=0.0, clock_speed=600.0)
    account = account_of(rig)
    stream = await rig.add(account, fast_settings(keepalive_interval_s=0.2), backfill=False)
    await rig.streaming(account)
    labels = {"account": account, "market": "usdm"}
    rig.sim.inject(account, "rest_error", **fault)
    await eventually(
        lambda: sample("fillstream_stream_reconnects_total", **labels, reason=trouble) >= 1,
        what=f"a reconnect for {trouble}",
    )
    await rig.streaming(account)
    assert "key_changed" in [g.reason for g in rig.listeners[account].gaps]
    op = {**labels, "op": "keepalive", "outcome": outcome}
    assert sample("fillstream_listen_key_operations_total", **op) >= 1
    await rig.sim.burst(account, "BTCUSDT", 20)
    await rig.settle(account)
    assert stream.state is StreamState.STREAMING


@pytest.mark.parametrize(("status", "outcome"), [(429, "rate_limited"), (503, "server_error")])
async def test_listen_key_create_refused_backs_off_and_recovers(
    make_rig: RigFactory, status: int, outcome: str
) -> None:
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    stream = await rig.add(account, start=False)
    rig.sim.inject(account, "rest_error", status=status, count=2, retry_after=0.5)
    stream.start()
    await rig.streaming(account)
    labels = {"account": account, "market": "usdm"}
    op = {**labels, "op": "create", "outcome": outcome}
    assert sample("fillstream_listen_key_operations_total", **op) >= 1
    assert sample("fillstream_stream_connect_failures_total", **labels) >= 1
    assert sample("fillstream_stream_auth_failed", **labels) == 0


async def test_a_slow_sink_is_backpressure_never_a_dropped_socket(make_rig: RigFactory) -> None:
    """A tiny frame buffer and pending batch: the reader pauses (counted) while the sink
    commits; the socket stays, nothing is lost."""
    rig = await make_rig(rate=0.0)
    account = account_of(rig)
    settings = fast_settings(queue_max=5, max_batch=2)
    stream = await rig.add(account, settings, backfill=False)
    await rig.streaming(account)
    await rig.sim.burst(account, "BTCUSDT", 300)
    await rig.settle(account)
    labels = {"account": account, "market": "usdm"}
    assert sample("fillstream_stream_backpressure_total", **labels) > 0
    stored = await rig.stored(account)
    assert len(stored) == 300 and set(stored.values()) == {"stream"}
    assert [g.reason for g in rig.listeners[account].gaps] == ["start"]
    assert stream.state is StreamState.STREAMING and stream.connected
