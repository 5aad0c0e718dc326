from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from fillstream.sidecar.embedded import EmbeddedNats
from fillstream.storage import JetStreamPublisher, Ledger, OutboxMessage, OutboxRelay, connect
from tests.conftest import NatsTarget
from tests.storage.factories import batch_of, eventually, make_fill, read_stream, stream_count


@pytest.fixture
async def nc(nats_target: NatsTarget) -> AsyncIterator[NATS]:
    conn = await connect(nats_target.url)
    yield conn
    await conn.close()


@pytest.fixture
async def publisher(nc: NATS, nats_target: NatsTarget) -> AsyncIterator[JetStreamPublisher]:
    p = JetStreamPublisher(nc, stream=nats_target.stream, prefix=nats_target.prefix)
    await p.ensure_stream()
    yield p
    await p.aclose()


async def unpublished(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


@contextlib.asynccontextmanager
async def relay_cut_off(
    pool: asyncpg.Pool, nats: EmbeddedNats, stream: str, prefix: str, **relay_options: Any
) -> AsyncIterator[tuple[OutboxRelay, Ledger]]:
    """A started relay and a ledger on ``nats``, which is then killed (the client has noticed);
    all closed on exit."""
    nc = await connect(nats.url, reconnect_time_wait_s=0.1)
    publisher = JetStreamPublisher(nc, stream=stream, prefix=prefix, ack_timeout_s=1)
    await publisher.ensure_stream()
    relay = OutboxRelay(pool, publisher, **relay_options)
    await relay.start()
    try:
        nats.kill()
        await eventually(lambda: _disconnected(nc), what="client noticed the outage")
        yield relay, Ledger(pool, prefix=prefix)
    finally:
        await relay.aclose()
        await publisher.aclose()
        await nc.close()


async def test_leftovers_are_drained_in_id_order_at_start(
    pool: asyncpg.Pool, publisher: JetStreamPublisher, nats_target: NatsTarget
) -> None:
    ledger = Ledger(pool, prefix=nats_target.prefix)
    for start in range(1, 1500, 300):
        await ledger.ingest(batch_of(*(make_fill(i) for i in range(start, start + 300))))
    relay = OutboxRelay(pool, publisher, chunk=400)
    await relay.start()
    try:
        assert await relay.wait_idle(60)
        assert await unpublished(pool) == 0
        assert relay.pending == 0
        stored = await read_stream(nats_target.url, nats_target.stream)
        assert [int(m.msg_id.split(":")[4]) for m in stored] == list(range(1, 1501))
    finally:
        await relay.aclose()


async def test_fast_path_publishes_offered_rows_and_reports_latency(
    pool: asyncpg.Pool, publisher: JetStreamPublisher, nats_target: NatsTarget
) -> None:
    seen: list[tuple[str, int]] = []

    def on_published(messages: Sequence[OutboxMessage], acked_ns: int) -> None:
        seen.extend((m.msg_id, acked_ns - (m.received_at_ns or acked_ns)) for m in messages)

    relay = OutboxRelay(pool, publisher, on_published=on_published)
    await relay.start()
    ledger = Ledger(pool, prefix=nats_target.prefix)
    try:
        await eventually(lambda: _accepting(relay), what="relay accepting offers")
        outcome = await ledger.ingest(batch_of(make_fill(1, received_at_ns=time.time_ns())))
        relay.offer(outcome.messages)
        assert await relay.wait_idle(30)
        assert [msg_id for msg_id, _ in seen] == [outcome.messages[0].msg_id]
        assert seen[0][1] >= 0
        assert await unpublished(pool) == 0
    finally:
        await relay.aclose()


async def _accepting(relay: OutboxRelay) -> bool:
    return not relay.draining


async def test_nats_outage_grows_the_outbox_and_it_drains_after(
    pool: asyncpg.Pool, private_nats: EmbeddedNats
) -> None:
    async with relay_cut_off(pool, private_nats, "RELAY", "rl", backoff_max_s=0.5) as (
        relay,
        ledger,
    ):
        for start in range(1, 200, 50):
            outcome = await ledger.ingest(
                batch_of(*(make_fill(i) for i in range(start, start + 50)))
            )
            relay.offer(outcome.messages)
        assert relay.pending == 200
        assert await unpublished(pool) == 200
        private_nats.start()
        assert await relay.wait_idle(60)
        assert await stream_count(private_nats.url, "RELAY") == 200
        ids = [m.msg_id for m in await read_stream(private_nats.url, "RELAY")]
        assert len(set(ids)) == 200
        # Republishing from the facts changes nothing on the stream.
        assert await relay.republish(ledger, since_ms=0) == 200
        assert await stream_count(private_nats.url, "RELAY") == 200


async def _disconnected(nc: NATS) -> bool:
    return not nc.is_connected


async def test_published_rows_are_pruned_after_the_retention(
    pool: asyncpg.Pool, publisher: JetStreamPublisher, nats_target: NatsTarget
) -> None:
    ledger = Ledger(pool, prefix=nats_target.prefix)
    await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 101))))
    relay = OutboxRelay(pool, publisher, retention_s=0.001, prune_interval_s=3600)
    await relay.start()
    try:
        assert await relay.wait_idle(30)
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 100  # kept, marked
        relay.prune_interval_s = 0
        for i in (101, 102):  # the marking rounds prune what is older than the retention
            outcome = await ledger.ingest(batch_of(make_fill(i)))
            relay.offer(outcome.messages)
            assert await relay.wait_idle(30)

        async def pruned() -> bool:
            return int(await pool.fetchval("SELECT count(*) FROM outbox")) <= 2

        await eventually(pruned, what="published rows pruned")
        assert await unpublished(pool) == 0
        assert await pool.fetchval("SELECT count(*) FROM fills") == 102  # facts stay
    finally:
        await relay.aclose()


async def test_by_default_published_rows_are_deleted(
    pool: asyncpg.Pool, publisher: JetStreamPublisher, nats_target: NatsTarget
) -> None:
    ledger = Ledger(pool, prefix=nats_target.prefix)
    await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 51))))
    relay = OutboxRelay(pool, publisher)
    await relay.start()
    try:
        assert await relay.wait_idle(30)
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
        assert await stream_count(nats_target.url, nats_target.stream) == 50
    finally:
        await relay.aclose()


async def test_a_deleted_stream_is_recreated_and_the_outbox_drains(
    pool: asyncpg.Pool, publisher: JetStreamPublisher, nats_target: NatsTarget, nc: NATS
) -> None:
    await nc.jetstream().delete_stream(nats_target.stream)
    publisher.ack_timeout_s = 1
    ledger = Ledger(pool, prefix=nats_target.prefix)
    await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 21))))
    relay = OutboxRelay(pool, publisher, backoff_max_s=0.2)
    await relay.start()
    try:
        assert await relay.wait_idle(60)
        assert await stream_count(nats_target.url, nats_target.stream) == 20
    finally:
        await relay.aclose()


async def test_the_pending_gauge_comes_down_to_the_table_after_a_drain(
    pool: asyncpg.Pool, private_nats: EmbeddedNats
) -> None:
    async with relay_cut_off(pool, private_nats, "GAUGE", "ga", backoff_max_s=0.5) as (
        relay,
        ledger,
    ):
        outcome = await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 21))))
        relay.offer(outcome.messages)
        assert relay.pending == 20
        # Rows the gauge counts leave the table by another hand (an operator's cleanup).
        await pool.execute("DELETE FROM outbox WHERE msg_id LIKE 'fill:%:1_:%'")
        left = await unpublished(pool)
        assert left < 20
        private_nats.start()

        async def gauge_is_the_table() -> bool:
            return relay.pending == await unpublished(pool) == 0

        await eventually(gauge_is_the_table, what="the gauge resynchronised with the table")
        assert await stream_count(private_nats.url, "GAUGE") == left


async def test_a_relay_falling_behind_drains_from_the_table_instead_of_queueing(
    pool: asyncpg.Pool, publisher: JetStreamPublisher, nats_target: NatsTarget
) -> None:
    ledger = Ledger(pool, prefix=nats_target.prefix)
    relay = OutboxRelay(pool, publisher, max_queued=50)
    await relay.start()
    try:

        async def accepting() -> bool:
            return not relay.draining

        await eventually(accepting, what="the start-up drain done")
        outcome = await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 61))))
        relay.offer(outcome.messages)  # more than the queue holds
        assert relay.draining
        assert await relay.wait_idle(60)
        assert await unpublished(pool) == 0
        stored = await read_stream(nats_target.url, nats_target.stream)
        ids = [m.msg_id for m in stored if m.msg_id.startswith("fill:")]
        assert sorted(ids) == sorted(m.msg_id for m in outcome.messages)
    finally:
        await relay.aclose()


async def test_the_pending_gauge_rises_to_rows_it_was_not_told_of_and_counts_offers_once(
    pool: asyncpg.Pool, private_nats: EmbeddedNats
) -> None:
    async with relay_cut_off(
        pool, private_nats, "GAUGE", "gr", backoff_max_s=0.5, resync_interval_s=0.05
    ) as (relay, ledger):
        # Committed and never offered (a writer the relay is not told of): the table has them.
        await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 21))))

        async def gauge_is(n: int) -> bool:
            return relay.pending == await unpublished(pool) == n

        await eventually(lambda: gauge_is(20), what="the gauge rose to the table")
        # Rows committed and offered inside committing(): counted once, whatever the resyncs.
        with relay.committing():
            outcome = await ledger.ingest(batch_of(*(make_fill(i) for i in range(21, 31))))
            assert await unpublished(pool) == 30
            await relay._resync_pending()  # the count has rows not offered yet: skipped
            assert relay.pending == 20
            relay.offer(outcome.messages)
        assert relay.pending == 30
        await eventually(lambda: gauge_is(30), what="the gauge still equals the table")
        private_nats.start()
        await eventually(lambda: gauge_is(0), what="everything published")
        assert await stream_count(private_nats.url, "GAUGE") == 30
