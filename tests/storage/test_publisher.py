from __future__ import annotations

import dataclasses

import nats
import pytest

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
