"""Issue 2's acceptance lines for the ingest pipeline, against real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from fillstream.ledger import Fill, FillSource, IngestBatch, Market, Side
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
from fillstream.sidecar.stack import IngestStack
from fillstream.storage import DB_ERRORS
from tests.conftest import NatsTarget
from tests.storage.factories import (
    batch_of,
    eventually,
    make_fill,
    read_stream,
    stream_count,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def venue_fills(account: str, n: int, rng: random.Random) -> list[Fill]:
    """Random buys and sells over many symbols (shuffled arrival makes the book refold each
    position it touches, so many small positions keep the test fast)."""
    fills = []
    for i in range(1, n + 1):
        side = rng.choice([Side.BUY, Side.SELL])
        fills.append(
            make_fill(
                i,
                account=account,
                symbol=f"S{i % 500}USDT",
                side=side,
                qty=str(Decimal(rng.randint(1, 5)) / 1000),
                rp=str(Decimal(rng.randint(-500, 500)) / 100),
            )
        )
    return fills


def as_source(f: Fill, source: FillSource) -> Fill:
    return Fill(**{**{k: getattr(f, k) for k in f.__struct_fields__}, "source": source})


async def fill_rows(pool: asyncpg.Pool, account: str) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT source FROM fills WHERE account = $1", account))


async def test_10k_fills_twice_from_each_source_shuffled_concurrent(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    rng = random.Random(20260101)
    account = f"acc{uuid.uuid4().hex[:8]}"
    fills = venue_fills(account, 10_000, rng)
    copies = [as_source(f, s) for f in fills for s in FillSource for _ in range(2)]
    rng.shuffle(copies)
    chunks: list[list[Fill]] = []
    while copies:
        size = rng.randint(1, 40)
        chunks.append(copies[:size])
        del copies[:size]

    async def path(mine: list[list[Fill]]) -> tuple[int, int]:
        new = dup = 0
        for chunk in mine:
            result = await stack.pipeline.submit(
                IngestBatch(
                    account=account,
                    market=Market.USDM,
                    source=chunk[0].source,
                    fills=tuple(chunk),
                )
            )
            new += result.new_fills
            dup += result.duplicate_fills
        return new, dup

    tasks = 8
    results = await asyncio.gather(*(path(chunks[i::tasks]) for i in range(tasks)))
    assert sum(r[0] for r in results) == 10_000
    assert sum(r[1] for r in results) == 30_000

    rows = await fill_rows(stack.pool, account)
    assert len(rows) == 10_000
    assert await stack.relay.wait_idle(120)
    prefix = nats_target.prefix
    messages = await read_stream(nats_target.url, nats_target.stream, f"{prefix}.fill.>")
    assert len(messages) == 10_000
    assert len({m.msg_id for m in messages}) == 10_000
    expected_ids = {f"fill:{account}:usdm:{f.symbol}:{f.trade_id}:{f.order_id}" for f in fills}
    assert {m.msg_id for m in messages} == expected_ids

    by_source = {
        s: sample("fillstream_fills_total", account=account, market="usdm", source=s.value)
        for s in FillSource
    }
    assert sum(by_source.values()) == 10_000
    reconcile_rows = sum(1 for r in rows if r["source"] == "reconcile")
    assert by_source[FillSource.RECONCILE] == reconcile_rows
    assert (
        sample("fillstream_fills_missed_by_stream_total", account=account, market="usdm")
        == reconcile_rows
    )
    dups = sum(
        sample("fillstream_fills_duplicate_total", account=account, market="usdm", source=s.value)
        for s in FillSource
    )
    assert dups == 30_000


async def test_nats_killed_during_ingest_loses_and_duplicates_nothing(
    pg_dsn: str, private_nats: EmbeddedNats
) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    stack = await IngestStack.open(pg_dsn, private_nats.url, stream="KILL", prefix="kill")
    total = 3_000
    fills = [make_fill(i, account=account, symbol=SYMBOLS[i % 5]) for i in range(1, total + 1)]
    submitted = 0

    async def produce() -> None:
        nonlocal submitted
        for start in range(0, total, 10):
            await stack.pipeline.submit(batch_of(*fills[start : start + 10]))
            submitted = start + 10

    async def stored_on_stream() -> bool:
        return await stream_count(private_nats.url, "KILL") >= 300

    async def ingested_while_down() -> bool:
        return submitted >= down_at + 300

    producer = asyncio.create_task(produce())
    try:
        await eventually(stored_on_stream, what="some fills published before the kill")
        private_nats.kill()  # mid-ingest: rows committed, some acked, some in flight
        down_at = submitted
        await eventually(ingested_while_down, what="ingest going on while NATS is down")
        assert stack.relay.pending > 0
        private_nats.start()
        await producer
        assert await stack.relay.wait_idle(120)
        messages = await read_stream(private_nats.url, "KILL", "kill.fill.>")
        assert len(messages) == total
        assert len({m.msg_id for m in messages}) == total
    finally:
        producer.cancel()
        await stack.aclose()


async def test_restarted_pipeline_drains_unpublished_outbox_rows(
    pg_dsn: str, private_nats: EmbeddedNats
) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    first = await IngestStack.open(pg_dsn, private_nats.url, stream="RESTART", prefix="rs")
    private_nats.kill()
    try:
        for start in range(1, 501, 50):
            await first.pipeline.submit(
                batch_of(*(make_fill(i, account=account) for i in range(start, start + 50)))
            )
    finally:
        await first.aclose(deadline_s=0.5)
    conn = await asyncpg.connect(pg_dsn)
    try:
        left = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert left == 500
    finally:
        await conn.close()

    private_nats.start()
    second = await IngestStack.open(pg_dsn, private_nats.url, stream="RESTART", prefix="rs")
    try:
        assert await second.relay.wait_idle(60)
        messages = await read_stream(private_nats.url, "RESTART", "rs.fill.>")
        assert sorted(int(m.msg_id.split(":")[4]) for m in messages) == list(range(1, 501))
    finally:
        await second.aclose()


async def test_a_fill_first_seen_by_the_poll_counts_as_missed(stack: IngestStack) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    polled = make_fill(1, account=account, source=FillSource.RECONCILE)
    streamed = make_fill(1, account=account)
    first = await stack.pipeline.submit(batch_of(polled))
    late = await stack.pipeline.submit(batch_of(streamed))
    assert (first.new_fills, first.duplicate_fills) == (1, 0)
    assert (late.new_fills, late.duplicate_fills) == (0, 1)
    labels = {"account": account, "market": "usdm"}
    assert sample("fillstream_fills_missed_by_stream_total", **labels) == 1
    assert sample("fillstream_fills_total", **labels, source="reconcile") == 1
    assert sample("fillstream_fills_duplicate_total", **labels, source="stream") == 1
    row = await stack.pool.fetchrow("SELECT source FROM fills WHERE account = $1", account)
    assert row["source"] == "reconcile"


async def test_closes_and_positions_flow_through(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    opened = make_fill(1, account=account, qty="0.02")
    flipped = make_fill(2, account=account, side=Side.SELL, qty="0.05", rp="3.25")
    results = await asyncio.gather(
        stack.pipeline.submit(batch_of(opened)), stack.pipeline.submit(batch_of(flipped))
    )
    assert sum(r.closes for r in results) == 1
    [position] = await stack.pipeline.positions(account, Market.USDM)
    assert position.qty == Decimal("-0.03")
    assert await stack.relay.wait_idle(30)
    closes = await read_stream(
        nats_target.url, nats_target.stream, f"{nats_target.prefix}.position.closed.>"
    )
    assert [m.msg_id for m in closes] == [f"close:{account}:usdm:BTCUSDT:BOTH:2"]
    assert b'"realized_pnl":"3.25"' in closes[0].data
    assert sample("fillstream_closes_total", account=account, market="usdm", reason="manual") == 1


async def test_concurrent_submissions_are_batched_and_a_lone_fill_is_not_held(
    stack: IngestStack,
) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    futures = [
        stack.pipeline.submit_nowait(batch_of(make_fill(i, account=account))) for i in range(1, 201)
    ]
    results = await asyncio.gather(*futures)
    assert sum(r.new_fills for r in results) == 200
    # Submitted before the worker ran: all 200 went into far fewer transactions.
    batches = await stack.pool.fetchval(
        "SELECT count(DISTINCT inserted_at) FROM fills WHERE account = $1", account
    )
    assert batches < 200
    lone = await asyncio.wait_for(
        stack.pipeline.submit(batch_of(make_fill(999, account=account))), timeout=30
    )
    assert lone.new_fills == 1


async def test_status_changes_are_published_on_the_status_subject(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    from fillstream.ledger import StatusChange, StreamState

    account = f"acc{uuid.uuid4().hex[:8]}"
    stack.pipeline.on_status(
        StatusChange(
            account=account,
            market=Market.USDM,
            state=StreamState.STREAMING,
            previous=StreamState.CONNECTING,
            reason="connected",
            time_ms=1_767_225_600_000,
        )
    )

    async def published() -> bool:
        subject = f"{nats_target.prefix}.status.{account}"
        return len(await read_stream(nats_target.url, nats_target.stream, subject)) == 1

    await eventually(published, what="status message on JetStream")


async def test_a_data_error_quarantines_the_fact_and_the_account_carries_on(
    stack: IngestStack,
) -> None:
    import msgspec

    from tests.storage.factories import make_order

    account = f"acc{uuid.uuid4().hex[:8]}"
    bad = msgspec.structs.replace(
        make_order(1, "NEW", 1, account=account), client_order_id="nul\x00"
    )
    # PostgreSQL refuses the NUL for its data: the order is isolated, the fill stored.
    first = await stack.pipeline.submit(batch_of(make_fill(1, account=account), orders=(bad,)))
    assert (first.new_fills, first.orders) == (1, 0)
    (row,) = await stack.pipeline.quarantine.rows(account)
    assert (row.kind, row.sqlstate) == ("order", "22021")
    assert "\\x00" in row.fact or "\\u0000" in row.fact
    again = await stack.pipeline.submit(batch_of(make_fill(1, account=account)))
    assert again.duplicate_fills == 1
    assert sample("fillstream_ingest_errors_total", account=account, market="usdm") == 1


async def test_aclose_commits_what_is_queued_then_refuses(stack: IngestStack) -> None:
    from fillstream.sidecar.pipeline import PipelineClosedError

    account = f"acc{uuid.uuid4().hex[:8]}"
    futures = [
        stack.pipeline.submit_nowait(batch_of(make_fill(i, account=account))) for i in range(1, 51)
    ]
    await stack.pipeline.aclose(deadline_s=30)
    assert sum(f.result().new_fills for f in futures) == 50
    with pytest.raises(PipelineClosedError):
        stack.pipeline.submit_nowait(batch_of(make_fill(99, account=account)))


async def test_postgres_restart_fails_submissions_then_ingest_resumes_losing_nothing(
    nats_target: NatsTarget, tmp_path: Path
) -> None:
    (tmp_path / "pg").mkdir()
    pg = EmbeddedPostgres(tmp_path / "pg")
    admin_dsn = await asyncio.to_thread(pg.start)
    try:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute("CREATE DATABASE ledger")
        await admin.close()
        stack = await IngestStack.open(
            pg.dsn("ledger"), nats_target.url, stream=nats_target.stream, prefix=nats_target.prefix
        )
        account = f"acc{uuid.uuid4().hex[:8]}"
        try:
            await stack.pipeline.submit(batch_of(*(make_fill(i, account=account) for i in (1, 2))))
            await asyncio.to_thread(pg.kill)
            later = batch_of(*(make_fill(i, account=account) for i in (3, 4)))
            with pytest.raises(DB_ERRORS):
                await stack.pipeline.submit(later)
            await asyncio.to_thread(pg.start)

            async def resubmitted() -> bool:  # what a path does: retry, idempotently
                try:
                    await stack.pipeline.submit(later)
                except DB_ERRORS:
                    return False
                return True

            await eventually(resubmitted, what="ingest after PostgreSQL came back")
            assert await stack.relay.wait_idle(60)
            messages = await read_stream(
                nats_target.url, nats_target.stream, f"{nats_target.prefix}.fill.>"
            )
            assert sorted(int(m.msg_id.split(":")[4]) for m in messages) == [1, 2, 3, 4]
        finally:
            await stack.aclose()
    finally:
        await asyncio.to_thread(pg.close)
