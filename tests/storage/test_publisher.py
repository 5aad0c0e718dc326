from __future__ import annotations

import dataclasses

import nats
import pytest
from nats.js.api import PersistMode, StreamConfig

from fillstream.storage import JetStreamPublisher, OutboxMessage, PublishOutcome, connect
from tests.conftest import NatsTarget
from tests.storage.factories import read_stream


def message(n: int, prefix: str) -> OutboxMessage:
    return OutboxMessage(
        subject=f"{prefix}.fill.alpha.usdm.BTCUSDT", msg_id=f"fill:{n}", payload=b'{"n":%d}' % n
    )


async def test_ensure_stream_is_idempotent_and_applies_the_config(
    nats_target: NatsTarget,
) -> None:
    nc = await connect(nats_target.url)
    try:
        publisher = JetStreamPublisher(
            nc, stream=nats_target.stream, prefix=nats_target.prefix, duplicate_window_s=600
        )
        await publisher.ensure_stream()
        await publisher.ensure_stream()
        info = await nc.jetstream().stream_info(nats_target.stream)
        assert info.config.subjects == [f"{nats_target.prefix}.>"]
        assert info.config.duplicate_window == 600
        # An operator's own limit survives; a changed setting of ours is applied on next start.
        await nc.jetstream().update_stream(
            dataclasses.replace(info.config, max_msgs_per_subject=1_000_000)
        )
        publisher.duplicate_window_s = 900
        await publisher.ensure_stream()
        info = await nc.jetstream().stream_info(nats_target.stream)
        assert info.config.duplicate_window == 900
        assert info.config.max_msgs_per_subject == 1_000_000
    finally:
        await nc.close()


async def test_publish_many_acks_in_order_and_reports_duplicates(
    nats_target: NatsTarget,
) -> None:
    nc = await connect(nats_target.url)
    try:
        publisher = JetStreamPublisher(
            nc, stream=nats_target.stream, prefix=nats_target.prefix, window=16
        )
        await publisher.ensure_stream()
        batch = [message(n, nats_target.prefix) for n in range(100)]
        assert await publisher.publish_many(batch) == [PublishOutcome.ACKED] * 100
        again = await publisher.publish_many([*batch[:10], message(100, nats_target.prefix)])
        assert again == [PublishOutcome.DUPLICATE] * 10 + [PublishOutcome.ACKED]
        stored = await read_stream(nats_target.url, nats_target.stream)
        assert [m.msg_id for m in stored] == [f"fill:{n}" for n in range(101)]
        await publisher.aclose()
    finally:
        await nc.close()


async def test_publish_without_a_stream_fails_instead_of_hanging(
    nats_target: NatsTarget,
) -> None:
    nc = await connect(nats_target.url)
    try:
        publisher = JetStreamPublisher(
            nc, stream=nats_target.stream, prefix=nats_target.prefix, ack_timeout_s=1
        )
        outcomes = await publisher.publish_many([message(1, nats_target.prefix)])
        assert outcomes == [PublishOutcome.FAILED]
        await publisher.aclose()
    finally:
        await nc.close()


async def test_max_age_must_cover_the_duplicate_window(nats_target: NatsTarget) -> None:
    nc = await nats.connect(nats_target.url)
    try:
        with pytest.raises(ValueError, match="duplicate window"):
            JetStreamPublisher(nc, duplicate_window_s=7200, max_age_s=60)
    finally:
        await nc.close()


async def batch_headers(url: str, stream: str, seq: int) -> dict[str, str]:
    nc = await nats.connect(url)
    try:
        stored = await nc.jetstream().get_msg(stream, seq)
        return dict(stored.headers or {})
    finally:
        await nc.close()


async def test_many_messages_go_as_atomic_batches_each_with_its_msg_id(
    nats_target: NatsTarget,
) -> None:
    nc = await connect(nats_target.url)
    try:
        publisher = JetStreamPublisher(
            nc, stream=nats_target.stream, prefix=nats_target.prefix, atomic_batch=40
        )
        await publisher.ensure_stream()
        info = await nc.jetstream().stream_info(nats_target.stream)
        assert info.config.allow_atomic is True
        batch = [message(n, nats_target.prefix) for n in range(100)]
        assert await publisher.publish_many(batch) == [PublishOutcome.ACKED] * 100
        stored = await read_stream(nats_target.url, nats_target.stream)
        assert [m.msg_id for m in stored] == [f"fill:{n}" for n in range(100)]
        # Three batches: 40, 40 and 20 messages, each committed by its last message.
        first = await batch_headers(nats_target.url, nats_target.stream, 1)
        commit = await batch_headers(nats_target.url, nats_target.stream, 40)
        tail = await batch_headers(nats_target.url, nats_target.stream, 100)
        assert first["Nats-Batch-Sequence"] == "1" and "Nats-Batch-Commit" not in first
        assert commit["Nats-Batch-Id"] == first["Nats-Batch-Id"]
        assert commit["Nats-Batch-Sequence"] == "40" and commit["Nats-Batch-Commit"] == "1"
        assert (
            tail["Nats-Batch-Sequence"] == "20" and tail["Nats-Batch-Id"] != first["Nats-Batch-Id"]
        )
        assert publisher.atomic
        await publisher.aclose()
    finally:
        await nc.close()


async def test_a_batch_with_a_stored_message_is_published_again_one_by_one(
    nats_target: NatsTarget,
) -> None:
    # After a crash the relay republishes rows JetStream may hold: the server refuses the whole
    # atomic batch for the duplicate id, and each message then goes alone (deduplicated).
    nc = await connect(nats_target.url)
    try:
        prefix = nats_target.prefix
        single = JetStreamPublisher(nc, stream=nats_target.stream, prefix=prefix, atomic_batch=0)
        await single.ensure_stream()
        assert (
            await single.publish_many([message(n, prefix) for n in (3, 7)])
            == [PublishOutcome.ACKED] * 2
        )
        publisher = JetStreamPublisher(nc, stream=nats_target.stream, prefix=prefix, atomic_batch=5)
        await publisher.ensure_stream()
        outcomes = await publisher.publish_many([message(n, prefix) for n in range(12)])
        duplicate, acked = PublishOutcome.DUPLICATE, PublishOutcome.ACKED
        assert outcomes == [acked] * 3 + [duplicate] + [acked] * 3 + [duplicate] + [acked] * 4
        stored = await read_stream(nats_target.url, nats_target.stream)
        assert sorted(m.msg_id for m in stored) == sorted(f"fill:{n}" for n in range(12))
        # The batch of 10..11 held no stored message: it went atomically (ahead of the two
        # refused batches, which went again one by one once their refusals came).
        seq = {m.msg_id: m.seq for m in stored}
        assert (await batch_headers(nats_target.url, nats_target.stream, seq["fill:11"]))[
            "Nats-Batch-Commit"
        ] == "1"
        assert "Nats-Batch-Id" not in await batch_headers(
            nats_target.url, nats_target.stream, seq["fill:0"]
        )
        assert publisher.atomic  # a duplicate is no reason to stop batching
        await single.aclose()
        await publisher.aclose()
    finally:
        await nc.close()


async def test_a_stream_refusing_atomic_batches_gets_each_message_alone(
    nats_target: NatsTarget,
) -> None:
    nc = await connect(nats_target.url)
    try:
        publisher = JetStreamPublisher(
            nc, stream=nats_target.stream, prefix=nats_target.prefix, atomic_batch=10
        )
        await publisher.ensure_stream()
        js = nc.jetstream()
        info = await js.stream_info(nats_target.stream)
        await js.update_stream(dataclasses.replace(info.config, allow_atomic=False))
        batch = [message(n, nats_target.prefix) for n in range(25)]
        assert await publisher.publish_many(batch) == [PublishOutcome.ACKED] * 25
        assert not publisher.atomic  # refused once: not tried again until the next ensure
        stored = await read_stream(nats_target.url, nats_target.stream)
        assert [m.msg_id for m in stored] == [f"fill:{n}" for n in range(25)]
        assert "Nats-Batch-Id" not in await batch_headers(nats_target.url, nats_target.stream, 1)
        await publisher.ensure_stream()  # turns allow_atomic on again, and batching with it
        assert publisher.atomic
        more = [message(n, nats_target.prefix) for n in range(25, 30)]
        assert await publisher.publish_many(more) == [PublishOutcome.ACKED] * 5
        assert "Nats-Batch-Id" in await batch_headers(nats_target.url, nats_target.stream, 30)
        await publisher.aclose()
    finally:
        await nc.close()


def test_an_atomic_batch_holds_at_most_what_the_server_takes() -> None:
    with pytest.raises(ValueError, match="atomic_batch"):
        JetStreamPublisher(None, atomic_batch=1001)  # type: ignore[arg-type]


async def test_a_stream_that_will_not_take_allow_atomic_is_kept_and_published_to(
    nats_target: NatsTarget,
) -> None:
    # nats-server refuses allow_atomic beside persist_mode: async (an operator's choice).
    nc = await connect(nats_target.url)
    try:
        await nc.jetstream().add_stream(
            StreamConfig(
                name=nats_target.stream,
                subjects=[f"{nats_target.prefix}.>"],
                persist_mode=PersistMode.ASYNC,
            )
        )
        publisher = JetStreamPublisher(nc, stream=nats_target.stream, prefix=nats_target.prefix)
        await publisher.ensure_stream()
        assert not publisher.atomic
        info = await nc.jetstream().stream_info(nats_target.stream)
        assert not info.config.allow_atomic
        assert info.config.duplicate_window == publisher.duplicate_window_s  # the rest applied
        batch = [message(n, nats_target.prefix) for n in range(5)]
        assert await publisher.publish_many(batch) == [PublishOutcome.ACKED] * 5
        await publisher.aclose()
    finally:
        await nc.close()


@pytest.mark.parametrize("atomic_batch", [0, 10])
async def test_without_nats_py_private_buffer_every_message_takes_its_publish(
    nats_target: NatsTarget, atomic_batch: int
) -> None:
    nc = await connect(nats_target.url)
    try:
        publisher = JetStreamPublisher(
            nc, stream=nats_target.stream, prefix=nats_target.prefix, atomic_batch=atomic_batch
        )
        assert publisher.raw_frames  # this nats-py still has it
        publisher.raw_frames = False  # as if a release dropped it
        await publisher.ensure_stream()
        batch = [message(n, nats_target.prefix) for n in range(25)]
        assert await publisher.publish_many(batch) == [PublishOutcome.ACKED] * 25
        assert await publisher.publish_many(batch[:3]) == [PublishOutcome.DUPLICATE] * 3
        stored = await read_stream(nats_target.url, nats_target.stream)
        assert [m.msg_id for m in stored] == [f"fill:{n}" for n in range(25)]
        headers = await batch_headers(nats_target.url, nats_target.stream, 10)
        assert ("Nats-Batch-Commit" in headers) is (atomic_batch == 10)
        await publisher.aclose()
    finally:
        await nc.close()
