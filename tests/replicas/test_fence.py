"""The fence against a real PostgreSQL: a stale owner's ingest is refused as a whole, on both
ingest paths, and counted; the claim only moves forward (or onto a recreated bucket)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from fillstream.ledger import FillSource, IngestBatch, Market
from fillstream.storage import Ledger, fence, migrate
from fillstream.storage.fence import Fences
from tests.storage.factories import make_fill

BUCKET = "2026-12-01 00:00:00+00:00"


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p: asyncpg.Pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with p.acquire() as conn:
        await migrate(conn)
    yield p
    await p.close()


def _batch(*trade_ids: int, source: FillSource = FillSource.STREAM) -> IngestBatch:
    return IngestBatch(
        account="alpha",
        market=Market.USDM,
        source=source,
        fills=tuple(make_fill(t, source=source) for t in trade_ids),
    )


async def _fills(pool: asyncpg.Pool) -> list[int]:
    return [r[0] for r in await pool.fetch("SELECT trade_id FROM fills ORDER BY trade_id")]


async def _claim(pool: asyncpg.Pool, revision: int, owner: str, bucket: str = BUCKET) -> int | None:
    return await fence.claim(
        pool, "alpha", Market.USDM, revision=revision, bucket=bucket, owner=owner
    )


@pytest.mark.parametrize("source", [FillSource.STREAM, FillSource.RECONCILE])
async def test_a_stale_owner_is_refused_and_counted(pool: asyncpg.Pool, source: FillSource) -> None:
    """STREAM batches take the one-statement path, RECONCILE ones the transactional path."""
    a_fences, b_fences = Fences(enabled=True), Fences(enabled=True)
    refused: list[tuple[str, Market]] = []
    a_fences.listen(lambda account, market: refused.append((account, market)))
    a, b = Ledger(pool, fences=a_fences), Ledger(pool, fences=b_fences)

    epoch_a = await _claim(pool, 10, "a")
    assert epoch_a == 1
    a_fences.hold("alpha", Market.USDM, epoch_a)
    assert (await a.ingest(_batch(1, source=source))).new_fills

    epoch_b = await _claim(pool, 12, "b")  # b took the lease after a's expired
    assert epoch_b == 2
    b_fences.hold("alpha", Market.USDM, epoch_b)

    with pytest.raises(asyncpg.PostgresError) as caught:
        await a.ingest(_batch(2, 3, source=source))
    assert fence.is_refusal(caught.value)
    assert refused == [("alpha", Market.USDM)]
    assert a_fences.refusals == {("alpha", Market.USDM): 1}
    assert await _fills(pool) == [1]  # nothing of the refused batch

    outcome = await b.ingest(_batch(2, 3, source=source))
    assert len(outcome.new_fills) == 2
    assert await _fills(pool) == [1, 2, 3]


async def test_an_account_not_claimed_is_refused(pool: asyncpg.Pool) -> None:
    fences = Fences(enabled=True)
    ledger = Ledger(pool, fences=fences)
    assert fences.epoch("alpha", Market.USDM) == fence.NOT_OWNED
    with pytest.raises(asyncpg.PostgresError) as caught:
        await ledger.ingest(_batch(1))
    assert fence.is_refusal(caught.value)
    epoch = await _claim(pool, 5, "a")
    assert epoch is not None
    fences.hold("alpha", Market.USDM, epoch)
    await ledger.ingest(_batch(1))
    fences.release("alpha", Market.USDM)  # given up: refused again
    with pytest.raises(asyncpg.PostgresError):
        await ledger.ingest(_batch(2))
    assert await _fills(pool) == [1]


async def test_claims_only_move_forward_unless_the_bucket_was_recreated(
    pool: asyncpg.Pool,
) -> None:
    assert await _claim(pool, 20, "a") == 1
    assert await _claim(pool, 20, "b") is None  # the same lease twice
    assert await _claim(pool, 15, "b") is None  # an older lease (a delayed claim)
    assert await _claim(pool, 21, "b") == 2
    # NATS lost the bucket: revisions start again, on a bucket created at another time.
    assert await _claim(pool, 3, "c", bucket="2026-12-02 00:00:00+00:00") == 3
    row = await pool.fetchrow("SELECT epoch, owner, lease_revision FROM account_owners")
    assert tuple(row) == (3, "c", 3)


async def test_replicas_off_writes_unfenced(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)  # Fences() disabled: no claim, no check
    assert ledger.fences.epoch("alpha", Market.USDM) is None
    await ledger.ingest(_batch(1))
    await ledger.ingest(_batch(2, source=FillSource.RECONCILE))
    assert await _fills(pool) == [1, 2]


async def test_a_claim_waits_for_the_ingest_in_flight(pool: asyncpg.Pool) -> None:
    """The fence holds the owner row until the ingest commits: a claim cannot slip in
    between the check and the commit (and the new owner then sees what was committed)."""
    epoch = await _claim(pool, 1, "a")
    assert epoch == 1
    async with pool.acquire() as conn, conn.transaction():
        await fence.check(conn, "alpha", Market.USDM, epoch)
        async with pool.acquire() as other:
            await other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.execute(fence.CLAIM, "alpha", "usdm", 2, BUCKET, "b")
            await other.execute("RESET lock_timeout")
    assert await _claim(pool, 2, "b") == 2
