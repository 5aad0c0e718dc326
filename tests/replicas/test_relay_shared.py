"""The outbox shared by replicas: rows a dead process committed and never published are swept
up by a live relay on its timer (no takeover needed), and each relay's gauge counts only the
accounts its process owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from fillstream.sidecar.embedded import EmbeddedNats
from fillstream.storage import JetStreamPublisher, Ledger, OutboxRelay, connect, migrate
from tests.conftest import NatsTarget
from tests.storage.factories import batch_of, eventually, make_fill, stream_count
from tests.storage.test_relay import relay_cut_off, unpublished


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p: asyncpg.Pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with p.acquire() as conn:
        await migrate(conn)
    yield p
    await p.close()


@pytest.fixture
async def publisher(nats_target: NatsTarget) -> AsyncIterator[JetStreamPublisher]:
    nc: NATS = await connect(nats_target.url)
    p = JetStreamPublisher(nc, stream=nats_target.stream, prefix=nats_target.prefix)
    await p.ensure_stream()
    yield p
    await p.aclose()
    await nc.close()


@pytest.mark.parametrize("sweep_interval_s", [0.2, 0.0])
async def test_rows_nobody_offered_are_swept_up_on_the_timer(
    pool: asyncpg.Pool,
    publisher: JetStreamPublisher,
    nats_target: NatsTarget,
    sweep_interval_s: float,
) -> None:
    relay = OutboxRelay(pool, publisher, sweep_interval_s=sweep_interval_s, stale_after_s=0.5)
    await relay.start()
    try:
        await eventually(lambda: _accepting(relay), what="the start-up drain done")
        # Committed by "another process" that died before its relay published them: this
        # relay is never offered them, and nobody takes an account over.
        await Ledger(pool, prefix=nats_target.prefix).ingest(
            batch_of(*(make_fill(i, account="beta") for i in range(1, 6)))
        )
        if sweep_interval_s == 0:  # the sweep off: they wait, for five of its periods here
            await asyncio.sleep(1.0)  # an absence over time: nothing to await
            assert await unpublished(pool) == 5
            return
        await eventually(lambda: _none_left(pool), timeout_s=10, what="swept and published")
        assert await stream_count(nats_target.url, nats_target.stream) == 5
        assert not relay.draining  # back on the fast path
    finally:
        await relay.aclose()


async def test_the_gauge_counts_only_the_accounts_this_process_owns(
    pool: asyncpg.Pool, private_nats: EmbeddedNats
) -> None:
    owned = {"alpha"}
    async with relay_cut_off(
        pool, private_nats, "SHARED", "sh", backoff_max_s=0.5, resync_interval_s=0.05
    ) as (relay, ledger):
        relay.count_only(lambda: owned)
        await ledger.ingest(batch_of(*(make_fill(i, account="alpha") for i in range(1, 4))))
        await ledger.ingest(batch_of(*(make_fill(i, account="beta") for i in range(4, 9))))

        async def gauge_is(n: int) -> bool:
            return relay.pending == n and await unpublished(pool) == 8

        await eventually(lambda: gauge_is(3), what="the gauge counts alpha's rows")
        owned.add("beta")  # took beta over: its leftovers are this process's to count now
        await eventually(lambda: gauge_is(8), what="the gauge counts beta's too")


async def _accepting(relay: OutboxRelay) -> bool:
    return not relay.draining


async def _none_left(pool: asyncpg.Pool) -> bool:
    return await unpublished(pool) == 0
