"""Issue 15: a listenKey deleted behind our back (by another client of the same account).

Binance keeps one key per account; a DELETE from anyone kills it for every socket bound to it,
and those sockets stay open and silent (binance-facts.md §1.1). The keepalive PUT is half an hour
away and the REST watchdog an hour here, so only the silence probe can notice: the account must
stream again on a new key, the fills of the silent period must be recovered (ground truth =
PostgreSQL = JetStream), and the state (what ``/status`` shows) must never say ``streaming`` on
the dead key once the silence was suspected. Simulator, real PostgreSQL and NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from fillstream.ledger import StreamState
from fillstream.simulator import SimConfig
from fillstream.stream import StreamSettings, UserStream
from fillstream.stream.activity import AccountActivity
from fillstream.stream.watchdog import SilenceProbe
from tests.conftest import NatsTarget
from tests.stream.rig import Rig, eventually, fast_settings, sample

log = logging.getLogger(__name__)

HOUR = 3600.0


@pytest.fixture
async def rig(pg_dsn: str, nats_target: NatsTarget) -> AsyncIterator[Rig]:
    config = SimConfig(
        accounts=(f"a{uuid.uuid4().hex[:8]}",),
        symbols=("BTCUSDT", "ETHUSDT"),
        seed=11,
        rate=20.0,
    )
    r = await Rig.open(config, pg_dsn, nats_target)
    try:
        yield r
    finally:
        await r.aclose()


Sample = tuple[float, StreamState, str | None]


async def _sample_states(stream: UserStream, into: list[Sample]) -> None:
    """What /status would show (the supervisor reads ``stream.state``), and the key in use."""
    while True:
        into.append((time.monotonic(), stream.state, stream.listen_key))
        await asyncio.sleep(0.005)


async def test_a_key_deleted_by_another_client_is_replaced_and_its_silence_backfilled(
    rig: Rig,
) -> None:
    account = rig.sim.config.accounts[0]
    # Neither the keepalive (50 min) nor the watchdog (1 h) fires during the test: the probe
    # (default threshold) is what must notice.
    settings = fast_settings(keepalive_interval_s=3000.0, stale_after_s=HOUR)
    stream = await rig.add(account, settings)
    await rig.streaming(account)
    listener = rig.listeners[account]
    await eventually(lambda: stream.fills >= 20, what="trading on the stream")
    old_key = stream.listen_key
    fills_before = stream.fills
    gaps_before = len(listener.gaps)
    samples: list[Sample] = []
    sampler = asyncio.create_task(_sample_states(stream, samples))
    other = await rig.venue(account)
    try:
        await other.close_listen_key()
        deleted = time.monotonic()
        await eventually(
            lambda: (
                stream.listen_key not in (None, old_key)
                and stream.state is StreamState.STREAMING
                and stream.connected
            ),
            timeout_s=60,
            what="streaming again on a new key",
        )
        replaced = time.monotonic()
        log.warning("listenKey deleted → streaming on a new key: %.2fs", replaced - deleted)
        await eventually(lambda: stream.fills > fills_before + 5, what="fills on the new key")
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await other.aclose()

    # The status: once the silence was suspected (the first sample out of streaming), it never
    # said streaming again until the new key was in use.
    after = [s for s in samples if s[0] >= deleted]
    suspected = next(
        i for i, (_, state, _) in enumerate(after) if state is not StreamState.STREAMING
    )
    blind = [s for s in after[suspected:] if s[1] is StreamState.STREAMING and s[2] == old_key]
    assert not blind, f"said streaming on the deleted key: {blind[:3]}"
    assert any(s[1] is StreamState.STREAMING and s[2] != old_key for s in after[suspected:])
    # Noticed by one probe answered -1125, not by the keepalive schedule or the watchdog.
    gone = sample(
        "fillstream_listen_key_operations_total",
        account=account,
        market="usdm",
        op="keepalive",
        outcome="gone",
    )
    assert gone == 1
    # The silent period is a gap, and once backfilled PostgreSQL == JetStream == the venue.
    new_gaps = listener.gaps[gaps_before:]
    assert [g.reason for g in new_gaps if g.reason == "key_changed"] == ["key_changed"]
    await rig.settle(account)
    stored = await rig.stored(account)
    truth = rig.truth(account)
    assert set(stored) == set(truth)
    recovered = {ref: truth[ref] for ref, source in stored.items() if source == "reconcile"}
    assert recovered, "the silent period's fills came from the reconciler"
    uncovered = {ref: t for ref, t in recovered.items() if listener.covering(t) is None}
    assert not uncovered, f"fills missed outside every gap: {uncovered}"
    ids = await rig.published_fill_ids(account)
    assert len(ids) == len(set(ids)) == len(truth)


def test_the_probe_is_bounded_one_per_threshold_and_backs_off_while_the_key_answers() -> None:
    activity = AccountActivity()
    probe = SilenceProbe(
        activity, StreamSettings(silence_probe_after_s=5.0, silence_probe_max_s=20.0)
    )
    fresh = 100.0  # the last data event (monotonic s)
    assert not probe.due(104.9, fresh)
    assert probe.due(105.0, fresh)
    probe.probed(105.0)
    # The same silence, nothing working: no second probe, however long it lasts.
    assert not probe.due(1000.0, fresh)
    # Orders working: again, at 5, 10, 20, 20 s intervals (never more than one per threshold).
    activity.open_orders[("BTCUSDT", 1)] = None
    assert not probe.due(109.9, fresh)
    due_at = [110.0]
    for _ in range(4):
        assert probe.due(due_at[-1], fresh)
        probe.probed(due_at[-1])
        assert not probe.due(due_at[-1] + 4.9, fresh)
        ticks = range(int(due_at[-1] * 10), 10**5)
        due_at.append(next(t / 10 for t in ticks if probe.due(t / 10, fresh)))
    assert [round(b - a, 1) for a, b in itertools.pairwise(due_at)] == [10, 20, 20, 20]
    # Data flowed: start over from the threshold.
    assert not probe.due(due_at[-1] + 1.0, due_at[-1])
    assert probe.due(due_at[-1] + 5.0, due_at[-1])


def test_the_probe_can_be_turned_off() -> None:
    probe = SilenceProbe(AccountActivity(), StreamSettings(silence_probe_after_s=0.0))
    assert not probe.enabled
    assert not probe.due(1e9, 0.0)
