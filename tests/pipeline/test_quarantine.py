"""Acceptance: a fact PostgreSQL refuses for its data is quarantined; nothing else is held up.

The poison is a domain fill whose trade id is above ``bigint`` (what a trade id of
18446744073709551615 on the wire became before the parsers checked ranges): PostgreSQL refuses
its whole batch with ``NumericValueOutOfRangeError``. The pipeline splits the batch until the
fill is alone, quarantines it (with the error and the fact), stores and publishes everything
else of the batch and of every later batch, and never moves a position with it. A failure that
is not about the data is not quarantined: the submitters retry, and the account's ingest health
says it is failing, or stuck while a commit waits.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import msgspec
from prometheus_client import REGISTRY

from fillstream.ledger import FundingFee, IngestBatch, Market, PositionSide, Side
from fillstream.sidecar.stack import IngestStack
from tests.conftest import NatsTarget
from tests.storage.factories import T0, batch_of, eventually, make_fill, read_stream

BIGINT_MAX = 2**63 - 1
POISON_ID = 18446744073709551615


def quarantined(account: str, kind: str) -> float:
    labels = {"account": account, "market": "usdm", "kind": kind}
    return REGISTRY.get_sample_value("fillstream_quarantined_total", labels) or 0.0


async def test_poison_fill_quarantined_rest_of_batch_and_later_batches_stored(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    account = f"acc{uuid.uuid4().hex[:8]}"
    good = [
        make_fill(i, account=account, symbol="ETHUSDT" if i % 2 else "BTCUSDT", qty="0.001")
        for i in range(1, 301)
    ]
    poison = make_fill(POISON_ID, account=account, symbol="ETHUSDT", qty="7", order_id=42)
    assert poison.trade_id > BIGINT_MAX
    # Submitted without waiting, so the worker merges them into transactions: the poison's
    # transaction holds other submissions too, and all of them must be stored.
    chunks = [good[i : i + 10] for i in range(0, 200, 10)]
    chunks[7] = [*chunks[7][:5], poison, *chunks[7][5:]]
    futures = [stack.pipeline.submit_nowait(batch_of(*chunk)) for chunk in chunks]
    results = await asyncio.gather(*futures)
    assert sum(r.new_fills for r in results) == 200
    assert results[7].new_fills == 10 and results[7].duplicate_fills == 0
    # Every later batch is stored too (the account's ingest is not blocked).
    for i in range(200, 300, 25):
        result = await stack.pipeline.submit(batch_of(*good[i : i + 25]))
        assert result.new_fills == 25

    pool = stack.pool
    ids = {r["trade_id"] for r in await pool.fetch("SELECT trade_id FROM fills")}
    assert ids == set(range(1, 301))
    rows = await stack.pipeline.quarantine.rows(account)
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.source) == ("fill", "stream")
    assert row.fact_key == f"fill:{account}:usdm:ETHUSDT:{POISON_ID}:42"
    # Refused by the server (bigint: 22003) or by asyncpg's encoder (int64), as the SQL sends it.
    assert row.sqlstate in {"22003", None}
    assert "range" in row.error
    fact = msgspec.json.decode(row.fact)
    assert fact["trade_id"] == POISON_ID and fact["qty"] == "7"
    assert quarantined(account, "fill") == 1

    # The quarantined fill never moved the book: ETHUSDT holds the 150 good buys only.
    positions = {p.symbol: p.qty for p in await stack.pipeline.positions(account, Market.USDM)}
    assert positions == {"BTCUSDT": Decimal("0.150"), "ETHUSDT": Decimal("0.150")}

    # Every good fill is on JetStream, the poison is not.
    async def published() -> bool:
        msgs = await read_stream(
            nats_target.url, nats_target.stream, f"{nats_target.prefix}.fill.>"
        )
        return len(msgs) >= 300

    await eventually(published, what="300 fills on JetStream")
    msgs = await read_stream(nats_target.url, nats_target.stream, f"{nats_target.prefix}.fill.>")
    assert len(msgs) == 300
    assert not any(str(POISON_ID) in m.msg_id for m in msgs)

    # Delivered again (a resubmission, the other path): not retried, not counted twice.
    again = await stack.pipeline.submit(batch_of(poison, good[0]))
    assert (again.new_fills, again.duplicate_fills) == (0, 1)
    assert quarantined(account, "fill") == 1
    assert stack.pipeline.ingest_state(account, Market.USDM).state == "ok"
    assert stack.pipeline.ingest_state(account, Market.USDM).quarantined == 1


async def test_poison_that_asyncpg_cannot_encode_is_quarantined(stack: IngestStack) -> None:
    """A funding tranId above int64 fails in asyncpg's encoder (not the server): same path."""
    account = f"acc{uuid.uuid4().hex[:8]}"

    def fee(tran_id: int) -> FundingFee:
        return FundingFee(
            account=account,
            market=Market.USDM,
            symbol="BTCUSDT",
            position_side=PositionSide.BOTH,
            amount=Decimal("-0.25"),
            asset="USDT",
            time_ms=T0,
            tran_id=tran_id,
        )

    batch = IngestBatch(
        account=account,
        market=Market.USDM,
        source=make_fill(1).source,
        fills=(make_fill(1, account=account, side=Side.BUY),),
        funding=(fee(1001), fee(POISON_ID), fee(1002)),
    )
    result = await stack.pipeline.submit(batch)
    assert result.new_fills == 1
    stored = {r["tran_id"] for r in await stack.pool.fetch("SELECT tran_id FROM funding")}
    assert stored == {1001, 1002}
    (row,) = await stack.pipeline.quarantine.rows(account)
    assert row.kind == "funding"
    assert row.fact_key == f"funding:BTCUSDT:{POISON_ID}"
    assert quarantined(account, "funding") == 1


async def test_store_failures_that_are_not_data_make_the_account_failing_then_ok(
    stack: IngestStack,
) -> None:
    """The store refusing for another reason (here a trigger raising P0001) is retried by the
    submitter, never quarantined; after ``failing_after`` failures in a row the account's
    ingest says ``failing``, and the first commit makes it ``ok`` again."""
    account = f"acc{uuid.uuid4().hex[:8]}"
    pool = stack.pool
    await pool.execute(
        f"""
        CREATE FUNCTION refuse_{account}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.account = '{account}' THEN RAISE EXCEPTION 'maintenance'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_{account} BEFORE INSERT ON fills
            FOR EACH ROW EXECUTE FUNCTION refuse_{account}();
        """
    )
    for n in range(1, 4):
        try:
            await stack.pipeline.submit(batch_of(make_fill(n, account=account)))
        except asyncpg.RaiseError:
            pass
        else:
            raise AssertionError("the store accepted a batch it should refuse")
    state = stack.pipeline.ingest_state(account, Market.USDM)
    assert state.state == "failing"
    assert state.consecutive_failures == 3
    assert state.last_error is not None and "maintenance" in state.last_error
    assert await stack.pipeline.quarantine.rows(account) == []
    await pool.execute(f"DROP TRIGGER refuse_{account} ON fills")
    result = await stack.pipeline.submit(batch_of(make_fill(1, account=account)))
    assert result.new_fills == 1
    assert stack.pipeline.ingest_state(account, Market.USDM).state == "ok"


async def test_a_commit_that_waits_makes_the_account_stuck(stack: IngestStack, pg_dsn: str) -> None:
    """A commit held up (here by a lock on ``fills``) ages the account's oldest submission past
    ``stuck_after_s``: ``stuck`` until it commits."""
    account = f"acc{uuid.uuid4().hex[:8]}"
    stack.pipeline.stuck_after_s = 0.2
    blocker = await asyncpg.connect(pg_dsn)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE fills IN ACCESS EXCLUSIVE MODE")
        future = stack.pipeline.submit_nowait(batch_of(make_fill(1, account=account)))

        async def stuck() -> bool:
            return stack.pipeline.ingest_state(account, Market.USDM).state == "stuck"

        await eventually(stuck, what="the account's ingest stuck")
        await tx.rollback()
        assert (await future).new_fills == 1
        assert stack.pipeline.ingest_state(account, Market.USDM).state == "ok"
    finally:
        await blocker.close()
