"""Issue 11's bad frames, injected mid-stream against the simulator with real PostgreSQL and NATS:
each is counted as malformed, tolerated drift is not, and the account keeps streaming with
ground truth = PostgreSQL = JetStream afterwards."""

from __future__ import annotations

import asyncio
import uuid

from fillstream.ledger import StreamState
from fillstream.simulator import SimConfig
from tests.conftest import NatsTarget
from tests.stream.rig import Rig, eventually, sample
from tests.stream.test_fuzz import ACCEPTED, BAD_FRAMES

# A text frame is UTF-8 by definition (the socket cannot carry the invalid-bytes case).
LIVE_BAD = {name: frame.decode() for name, frame in BAD_FRAMES.items() if name != "invalid utf-8"}
# Drift that must pass, minus the liquidation fill (the venue never made it: not in the truth).
LIVE_ACCEPTED = {n: f.decode() for n, f in ACCEPTED.items() if n != "the issue's nulls"}


async def test_bad_frames_are_counted_and_the_account_keeps_streaming(
    pg_dsn: str, nats_target: NatsTarget
) -> None:
    account = f"bf{uuid.uuid4().hex[:8]}"
    config = SimConfig(accounts=(account,), symbols=("BTCUSDT", "ETHUSDT"), seed=7, rate=0.0)
    rig = await Rig.open(config, pg_dsn, nats_target)
    try:
        stream = await rig.add(account, backfill=False)
        await rig.streaming(account)
        labels = {"account": account, "market": "usdm"}

        def malformed() -> float:
            return sample("fillstream_stream_decode_errors_total", **labels, kind="malformed")

        burst = asyncio.create_task(rig.sim.burst(account, "ETHUSDT", 200, rate=100))
        try:
            for _ in range(3):
                for raw in (*LIVE_BAD.values(), *LIVE_ACCEPTED.values()):
                    rig.sim.inject(account, "inject_frame", raw=raw)
                    await asyncio.sleep(0.01)  # interleave with the burst's fills
            await burst
        finally:
            burst.cancel()
        expected = 3 * len(LIVE_BAD)
        await eventually(lambda: malformed() >= expected, what="every bad frame counted")
        await rig.settle(account)
        assert malformed() == expected  # the tolerated drift was not counted
        assert stream.state is StreamState.STREAMING
        assert [g.reason for g in rig.listeners[account].gaps] == ["start"]  # never restarted
        stored = await rig.stored(account)
        truth = rig.truth(account)
        assert len(truth) >= 200 and set(stored) == set(truth)
        assert set(stored.values()) == {"stream"}
        ids = await rig.published_fill_ids(account)
        assert len(ids) == len(set(ids)) == len(truth)
    finally:
        await rig.aclose()
