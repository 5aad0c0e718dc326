"""Acceptance: a spot account's facts through the real pipeline, PostgreSQL and JetStream.

A spot batch (fills, order transitions, balance facts) lands once in PostgreSQL and once on
JetStream, however often it is submitted and by whichever path; no position and no close is ever
made for spot; a balance fact PostgreSQL refuses (a NaN amount) is quarantined without holding
up the account's fills; submissions merged into one transaction each get their own counts.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from decimal import Decimal

import msgspec
import nats
from prometheus_client import REGISTRY

from fillstream.ledger import BalanceKind, FillSource, IngestBatch, Market
from fillstream.sidecar.stack import IngestStack
from fillstream.sidecar.tally import Comparison, Tally, tally_jetstream, tally_postgres
from tests.conftest import NatsTarget
from tests.storage.factories import T0, eventually, read_stream
from tests.storage.spot_factories import delta, position, round_trip, spot_fill


def _balance_count(account: str, kind: str, source: str = "stream") -> float:
    labels = {"account": account, "market": "spot", "kind": kind, "source": source}
    return REGISTRY.get_sample_value("fillstream_balance_changes_total", labels) or 0.0


def _as_reconcile(batch: IngestBatch) -> IngestBatch:
    def rest(fact: msgspec.Struct) -> msgspec.Struct:
        return msgspec.structs.replace(fact, source=FillSource.RECONCILE)

    return IngestBatch(
        account=batch.account,
        market=batch.market,
        source=FillSource.RECONCILE,
        fills=tuple(rest(f) for f in batch.fills),  # type: ignore[misc]
        orders=tuple(rest(o) for o in batch.orders),  # type: ignore[misc]
        balances=tuple(rest(b) for b in batch.balances),  # type: ignore[misc]
    )


async def test_spot_batch_once_in_postgres_and_on_jetstream(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    account = f"spot{uuid.uuid4().hex[:8]}"
    batch = round_trip(account)
    first = await stack.pipeline.submit(batch)
    assert (first.new_fills, first.closes, first.orders, first.balances) == (2, 0, 2, 7)
    for again in (batch, _as_reconcile(batch), batch):
        result = await stack.pipeline.submit(again)
        assert (result.new_fills, result.duplicate_fills, result.balances) == (0, 2, 0)

    pool = stack.pool
    assert await pool.fetchval("SELECT count(*) FROM fills WHERE market = 'spot'") == 2
    assert await pool.fetchval("SELECT count(*) FROM balance_changes") == 7
    assert await pool.fetchval("SELECT count(*) FROM positions") == 0
    assert await pool.fetchval("SELECT count(*) FROM position_closes") == 0
    assert await stack.pipeline.positions(account, Market.SPOT) == []
    assert _balance_count(account, "position") == 5
    assert _balance_count(account, "delta") == 1
    assert _balance_count(account, "external_lock") == 1
    assert _balance_count(account, "position", "reconcile") == 0

    p = nats_target.prefix

    async def published() -> bool:
        return len(await read_stream(nats_target.url, nats_target.stream)) >= 11

    await eventually(published, what="11 spot messages on JetStream")
    await stack.drain(5.0)
    messages = await read_stream(nats_target.url, nats_target.stream)
    kinds = collections.Counter(m.subject.split(".")[1] for m in messages)
    assert kinds == {"fill": 2, "order": 2, "balance": 7}
    assert len({m.msg_id for m in messages}) == len(messages)
    balances = [m for m in messages if m.subject.startswith(f"{p}.balance.")]
    assert {m.subject for m in balances} == {
        f"{p}.balance.{account}.spot.{a}" for a in ("BTC", "USDT", "BNB")
    }
    deposit = next(m for m in balances if ":delta:" in m.msg_id)
    assert deposit.msg_id == f"balance:{account}:spot:USDT:delta:{T0 + 3}"
    assert msgspec.json.decode(deposit.data) == {
        "schema": "balance/v1",
        "account": account,
        "market": "spot",
        "asset": "USDT",
        "kind": "delta",
        "free": None,
        "locked": None,
        "delta": "100.00000000",
        "time_ms": T0 + 3,
        "event_time_ms": T0 + 5,
        "source": "stream",
    }
    # The stream the stack created holds every subject under the prefix, balances included; the
    # end-to-end tally sees the same balance facts in PostgreSQL and on JetStream.
    nc = await nats.connect(nats_target.url)
    try:
        info = await nc.jetstream().stream_info(nats_target.stream)
        js = await tally_jetstream(nc, nats_target.stream, p, [account])
    finally:
        await nc.close()
    assert info.config.subjects == [f"{p}.>"]
    async with pool.acquire() as conn:
        pg = await tally_postgres(conn, [account])
    assert len(pg.balances) == 7 and pg.balances == js.balances
    assert pg.fills == js.fills and pg.closes == js.closes == {}
    assert Comparison(truth=Tally(), postgres=pg, jetstream=js).balances_equal


async def test_a_refused_balance_is_quarantined_and_the_fills_are_stored(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    account = f"spot{uuid.uuid4().hex[:8]}"
    poison = msgspec.structs.replace(
        position("BTC", "1", "0", T0 + 7, account=account), free=Decimal("NaN")
    )
    batch = IngestBatch(
        account=account,
        market=Market.SPOT,
        source=FillSource.STREAM,
        fills=tuple(spot_fill(i, account=account) for i in range(1, 11)),
        balances=(
            position("USDT", "10", "0", T0 + 6, account=account),
            poison,
            delta("BNB", "0.5", T0 + 8, account=account),
        ),
    )
    result = await stack.pipeline.submit(batch)
    assert (result.new_fills, result.balances) == (10, 2)
    later = await stack.pipeline.submit(
        IngestBatch(
            account=account,
            market=Market.SPOT,
            source=FillSource.STREAM,
            fills=(spot_fill(11, account=account),),
            balances=(position("USDT", "11", "0", T0 + 11, account=account),),
        )
    )
    assert (later.new_fills, later.balances) == (1, 1)
    (row,) = await stack.pipeline.quarantine.rows(account)
    assert (row.kind, row.fact_key) == ("balance", f"balance:{account}:spot:BTC:position:{T0 + 7}")
    assert row.sqlstate == "23514"  # the finiteness check of migration 007
    labels = {"account": account, "market": "spot", "kind": "balance"}
    assert REGISTRY.get_sample_value("fillstream_quarantined_total", labels) == 1
    assert stack.pipeline.ingest_state(account, Market.SPOT).state == "ok"
    assert await stack.pool.fetchval("SELECT count(*) FROM fills") == 11
    assert await stack.pool.fetchval("SELECT free FROM balances WHERE asset = 'USDT'") == 11

    async def published() -> bool:
        messages = await read_stream(nats_target.url, nats_target.stream)
        return len(messages) >= 14

    await eventually(published, what="11 fills and 3 balances on JetStream")
    messages = await read_stream(nats_target.url, nats_target.stream)
    assert len(messages) == 14
    assert not any(":BTC:" in m.msg_id for m in messages)


async def test_merged_submissions_get_their_own_balance_counts(stack: IngestStack) -> None:
    account = f"spot{uuid.uuid4().hex[:8]}"

    def submission(n: int) -> IngestBatch:
        return IngestBatch(
            account=account,
            market=Market.SPOT,
            source=FillSource.STREAM,
            fills=(spot_fill(n, account=account),),
            balances=(
                position("BTC", str(n), "0", T0 + n, account=account),
                # Every submission repeats the first one's deposit: only the first stores it.
                delta("USDT", "5", T0, account=account, kind=BalanceKind.DELTA),
            ),
        )

    futures = [stack.pipeline.submit_nowait(submission(n)) for n in range(1, 21)]
    results = await asyncio.gather(*futures)
    assert [r.balances for r in results] == [2] + [1] * 19
    assert all(r.new_fills == 1 for r in results)
    assert await stack.pool.fetchval("SELECT free FROM balances WHERE asset = 'BTC'") == 20
    assert _balance_count(account, "delta") == 1
    assert _balance_count(account, "position") == 20


async def test_republish_sends_spot_facts_again_deduplicated(
    stack: IngestStack, nats_target: NatsTarget
) -> None:
    """``fillstream republish`` re-sends a spot account's fills and balance facts with their
    first message ids: JetStream (in its duplicate window) keeps one copy of each."""
    account = f"spot{uuid.uuid4().hex[:8]}"
    await stack.pipeline.submit(round_trip(account))
    await stack.drain(5.0)

    async def published() -> bool:
        return len(await read_stream(nats_target.url, nats_target.stream)) >= 11

    await eventually(published, what="11 spot messages on JetStream")
    sent = await stack.relay.republish(stack.ledger, T0)
    assert sent == 11  # 2 fills, 7 balance facts, 2 orders
    messages = await read_stream(nats_target.url, nats_target.stream)
    assert len(messages) == 11
    assert sum(1 for m in messages if m.msg_id.startswith("balance:")) == 7
