"""REST-first fills split between "missed by the stream" and "before the stream": the line is
the start of the account's first stream session in this process (its first ``streaming``)."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from fillstream.ledger import FillSource, IngestBatch, Market, StatusChange, StreamState
from fillstream.sidecar.stack import IngestStack
from tests.storage.factories import T0, batch_of, make_fill


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts(account: str) -> tuple[float, float, float]:
    labels = {"account": account, "market": "usdm"}
    return (
        sample("fillstream_fills_before_stream_total", **labels),
        sample("fillstream_fills_missed_by_stream_total", **labels),
        sample("fillstream_fills_total", **labels, source="reconcile"),
    )


def streaming(account: str, time_ms: int) -> StatusChange:
    return StatusChange(
        account=account,
        market=Market.USDM,
        state=StreamState.STREAMING,
        previous=StreamState.CONNECTING,
        reason="connected",
        time_ms=time_ms,
    )


async def test_history_before_the_first_session_is_not_missed(stack: IngestStack) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    pipeline = stack.pipeline
    pipeline.expect_stream(account, Market.USDM)

    def polled(trade_id: int) -> IngestBatch:
        return batch_of(make_fill(trade_id, account=account, source=FillSource.RECONCILE))

    # The start-up backfill runs before the stream streams: everything it finds is history.
    await pipeline.submit(polled(1))
    await pipeline.submit(polled(5_000))
    assert counts(account) == (2, 0, 2)
    # The stream first streams at T0 + 10 000 ms: older REST-first fills are still history,
    # newer ones were the stream's to deliver.
    pipeline.on_status(streaming(account, T0 + 10_000))
    await pipeline.submit(polled(9_999))
    await pipeline.submit(polled(10_001))
    assert counts(account) == (3, 1, 4)
    # A later session (a reconnect, a restarted account) does not move the line.
    pipeline.expect_stream(account, Market.USDM)
    pipeline.on_status(streaming(account, T0 + 50_000))
    await pipeline.submit(polled(20_000))
    assert counts(account) == (3, 2, 5)
    # A stream-first fill is neither.
    await pipeline.submit(batch_of(make_fill(30_000, account=account)))
    assert counts(account) == (3, 2, 5)
    rows = await stack.pool.fetch("SELECT DISTINCT source FROM fills WHERE account = $1", account)
    assert sorted(r[0] for r in rows) == ["reconcile", "stream"]  # the column keeps the path


async def test_without_a_stream_every_rest_first_fill_is_missed(stack: IngestStack) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    fill = make_fill(1, account=account, source=FillSource.RECONCILE)
    await stack.pipeline.submit(batch_of(fill))
    assert counts(account) == (0, 1, 1)
