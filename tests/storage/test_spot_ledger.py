"""Spot in the ledger: fills, orders and balance facts stored once, no positions, newest balance.

Against a real PostgreSQL, through both ingest paths: the one-statement stream path (a stream
batch, all new) and the transactional one (a reconcile batch, or a stream batch that is not all
new). The last test checks the statements stay index probes on a ledger of a few 10^5 rows.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fillstream.ledger import (
    BalanceChange,
    BalanceKind,
    Fill,
    FillSource,
    IngestBatch,
    Market,
    PositionBook,
    folds_positions,
)
from fillstream.storage import Ledger, sql
from fillstream.storage.records import _ACCOUNTS, _BALANCES
from tests.storage.factories import T0
from tests.storage.spot_factories import delta, position, round_trip, spot_fill

D = Decimal


def test_spot_book_folds_nothing() -> None:
    batch = round_trip()
    book = PositionBook("spotty", Market.SPOT)
    change = book.apply(batch.fills)
    assert (change.closes, change.positions, book.positions()) == ([], [], [])
    assert not book.restore(batch.fills, ()).closes
    assert not folds_positions(Market.SPOT)
    assert folds_positions(Market.USDM) and folds_positions(Market.COINM)


async def _counts(pool: asyncpg.Pool) -> dict[str, int]:
    tables = ("fills", "orders", "balance_changes", "positions", "position_closes", "outbox")
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


async def test_spot_batch_stored_once_without_positions(ledger: Ledger, pool: asyncpg.Pool) -> None:
    batch = round_trip()
    first = await ledger.ingest(batch)  # a stream batch: the one-statement path
    assert len(first.new_fills) == 2 and len(first.orders) == 2
    assert len(first.balances) == 7
    assert first.closes == [] and first.retracted == []
    subjects = sorted(m.subject for m in first.messages)
    assert subjects.count("fst.balance.spotty.spot.USDT") == 4
    assert {s for s in subjects if ".balance." in s} == {
        f"fst.balance.spotty.spot.{a}" for a in ("BTC", "USDT", "BNB")
    }
    ids = {m.msg_id for m in first.messages}
    assert f"balance:spotty:spot:USDT:delta:{T0 + 3}" in ids
    assert f"balance:spotty:spot:USDT:external_lock:{T0 + 4}" in ids
    assert f"balance:spotty:spot:BTC:position:{T0 + 2}" in ids
    assert all(m.id > 0 for m in first.messages)
    expected = {
        "fills": 2,
        "orders": 2,
        "balance_changes": 7,
        "positions": 0,
        "position_closes": 0,
        "outbox": 11,
    }
    assert await _counts(pool) == expected

    # Again from the stream (the bet loses: the transactional path), and from the REST path.
    again = await ledger.ingest(batch)
    rest = await ledger.ingest(
        IngestBatch(
            account="spotty",
            market=Market.SPOT,
            source=FillSource.RECONCILE,
            fills=tuple(
                msgspec.structs.replace(f, source=FillSource.RECONCILE) for f in batch.fills
            ),
            balances=tuple(
                msgspec.structs.replace(b, source=FillSource.RECONCILE) for b in batch.balances
            ),
        )
    )
    for outcome in (again, rest):
        assert (outcome.new_fills, outcome.balances, outcome.messages) == ([], [], [])
        assert len(outcome.duplicate_fills) == 2
    assert await _counts(pool) == expected

    stored = await pool.fetch(
        "SELECT asset, kind, free, locked, delta, source FROM balance_changes"
        " WHERE asset = 'USDT' ORDER BY time_ms"
    )
    assert [tuple(r) for r in stored] == [
        ("USDT", "position", D("59.99900000"), D("0E-8"), None, "stream"),
        ("USDT", "position", D("999.99900000"), D("0E-8"), None, "stream"),
        ("USDT", "delta", None, None, D("100.00000000"), "stream"),
        ("USDT", "external_lock", None, None, D("-25.5"), "stream"),
    ]
    latest = {
        r["asset"]: (r["free"], r["time_ms"])
        for r in await pool.fetch("SELECT asset, free, time_ms FROM balances")
    }
    assert latest == {
        "BTC": (D("0E-8"), T0 + 2),
        "USDT": (D("999.99900000"), T0 + 2),
        "BNB": (D("0.49999288"), T0 + 1),
    }


async def test_newer_balance_wins_older_does_not_overwrite(
    ledger: Ledger, pool: asyncpg.Pool
) -> None:
    def batch(*balances: object, source: FillSource = FillSource.STREAM) -> IngestBatch:
        return IngestBatch(
            account="spotty",
            market=Market.SPOT,
            source=source,
            balances=balances,  # type: ignore[arg-type]
        )

    async def latest() -> tuple[Decimal, Decimal, int, str]:
        r = await pool.fetchrow("SELECT free, locked, time_ms, source FROM balances")
        return (r["free"], r["locked"], r["time_ms"], r["source"])

    # One batch, the older fact after the newer one: the newer wins.
    outcome = await ledger.ingest(
        batch(position("ETH", "2", "1", T0 + 20), position("ETH", "3", "0", T0 + 10))
    )
    assert len(outcome.balances) == 2
    assert await latest() == (D(2), D(1), T0 + 20, "stream")
    # A late older fact from the REST path (the transactional path): stored as a fact, published,
    # but the state stays.
    late = position("ETH", "9", "9", T0 + 15, source=FillSource.RECONCILE)
    outcome = await ledger.ingest(batch(late, source=FillSource.RECONCILE))
    assert outcome.balances == [late]
    assert [m.msg_id for m in outcome.messages] == [f"balance:spotty:spot:ETH:position:{T0 + 15}"]
    assert await latest() == (D(2), D(1), T0 + 20, "stream")
    # A delta never changes the state; a newer position fact does, on either path.
    await ledger.ingest(batch(delta("ETH", "5", T0 + 30)))
    assert await latest() == (D(2), D(1), T0 + 20, "stream")
    await ledger.ingest(batch(position("ETH", "7", "0", T0 + 40, source=FillSource.RECONCILE)))
    assert await latest() == (D(7), D(0), T0 + 40, "reconcile")
    # The same fact twice in one batch: one row, one message.
    dup = position("SOL", "1", "0", T0 + 50)
    outcome = await ledger.ingest(batch(dup, dup))
    assert outcome.balances == [dup] and len(outcome.messages) == 1
    assert await pool.fetchval("SELECT count(*) FROM balance_changes") == 6


async def test_republish_rebuilds_spot_fills_and_balances(ledger: Ledger) -> None:
    first = await ledger.ingest(round_trip())
    rebuilt = [m async for chunk in ledger.stored_messages(T0) for m in chunk]
    original = {m.msg_id: m.payload for m in first.messages}
    # Fills and balance facts as first published (orders are rebuilt from their latest state).
    facts = {m.msg_id: m.payload for m in rebuilt if not m.msg_id.startswith("order:")}
    assert facts == {k: v for k, v in original.items() if not k.startswith("order:")}
    assert len(facts) == 9
    later = [m async for chunk in ledger.stored_messages(T0 + 3) for m in chunk]
    assert sorted(m.msg_id for m in later) == [
        f"balance:spotty:spot:USDT:delta:{T0 + 3}",
        f"balance:spotty:spot:USDT:external_lock:{T0 + 4}",
    ]


async def _plan(conn: asyncpg.Connection, statement: str) -> str:
    rows = await conn.fetch("SELECT * FROM pg_temp.generic_plan($1)", statement)
    return "\n".join(r[0] for r in rows)


async def test_balance_statements_are_index_probes_on_a_big_ledger(
    ledger: Ledger, pool: asyncpg.Pool
) -> None:
    """Cost must not grow with the tables: with 3·10^5 balance facts and 10^5 fills stored, the
    planner (generic plans, as asyncpg's cached statements run) reads them only by key."""
    spot = IngestBatch(
        account="spotty", market=Market.SPOT, source=FillSource.STREAM, fills=(spot_fill(1),)
    )
    await ledger.ingest(spot)
    async with pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO balance_changes (account, market, time_ms, asset, kind, free, locked,
                event_time_ms, source, received_at)
            SELECT 'big-' || (n % 50), 'spot', $1::bigint + n, 'A' || (n % 40), 'position',
                n, 0, $1::bigint + n, 'stream', now()
            FROM generate_series(1, 300000) AS n;
            INSERT INTO balances (account, market, asset, free, locked, time_ms, event_time_ms,
                source)
            SELECT 'big-' || (n % 50), 'spot', 'A' || (n / 50), 1, 0, 1, 1, 'stream'
            FROM generate_series(0, 1999) AS n;
            INSERT INTO fills (account, market, symbol, trade_id, order_id, side, position_side,
                price, qty, quote_qty, commission, commission_asset, realized_pnl, maker,
                trade_time_ms, source, received_at)
            SELECT 'big-' || (n % 50), 'spot', 'BTCUSDT', n, n, 'BUY', 'BOTH', 1, 1, 1, 0,
                'BNB', 0, false, $1::bigint + n, 'stream', now()
            FROM generate_series(1, 100000) AS n;
            ANALYZE balance_changes; ANALYZE balances; ANALYZE fills;
            """.replace("$1::bigint", str(T0))
        )
        await conn.execute(
            "CREATE FUNCTION pg_temp.generic_plan(q text) RETURNS SETOF text LANGUAGE plpgsql"
            " AS $$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (GENERIC_PLAN) ' || q; END $$"
        )
        for name in ("ingest_stream", "insert_balances"):
            plan = await _plan(conn, sql.PER_BATCH[name])
            assert "Seq Scan on balance" not in plan, plan
            # Inserted through the primary key (ON CONFLICT DO NOTHING probes every unique one).
            assert "Insert on balance_changes" in plan, plan
            assert "Conflict Arbiter Indexes: balances_pkey" in plan, plan
        plan = await _plan(conn, _BALANCES)
        assert "Seq Scan" not in plan and "balance_changes_pkey" in plan, plan
        plan = await _plan(conn, _ACCOUNTS)
        # One probe per account; ``balances`` (one row per account and asset) is read whole.
        assert "Seq Scan on fills" not in plan and "Index Only Scan" in plan, plan
    rebuilt = [m async for chunk in ledger.stored_messages(T0 + 299_990) for m in chunk]
    assert len(rebuilt) == 11  # n = 299,990 … 300,000


async def test_a_balance_of_another_account_is_refused(ledger: Ledger) -> None:
    batch = IngestBatch(
        account="spotty",
        market=Market.SPOT,
        source=FillSource.STREAM,
        balances=(position("BTC", "1", "0", T0, account="other"),),
    )
    with pytest.raises(ValueError, match="balance of other/spot in a batch of spotty"):
        await ledger.ingest(batch)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
async def test_any_arrival_stores_each_fact_once_and_the_newest_state(
    pool: asyncpg.Pool, data: st.DataObject
) -> None:
    """Balance facts and fills, with copies from both paths, in any order and any batches (so
    through both ingest paths): one row and one message per fact, and per asset the state of
    its newest position fact, whatever arrived last."""
    account = f"s{uuid.uuid4().hex[:10]}"
    times = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True))
    facts: list[BalanceChange | Fill] = [
        position(
            data.draw(st.sampled_from(["BTC", "USDT"])),
            str(data.draw(st.integers(0, 9))),
            "0",
            T0 + t,
            account=account,
        )
        for t in times
    ]
    facts += [delta("USDT", "1", T0 + t, account=account) for t in times[:3]]
    facts += [spot_fill(i, account=account) for i in range(1, data.draw(st.integers(0, 4)) + 1)]
    copies = facts + data.draw(st.lists(st.sampled_from(facts), max_size=8))
    arrivals = [
        msgspec.structs.replace(f, source=data.draw(st.sampled_from(list(FillSource))))
        for f in data.draw(st.permutations(copies))
    ]
    ledger = Ledger(pool, prefix="prop")
    while arrivals:
        size = data.draw(st.integers(min_value=1, max_value=5))
        chunk, arrivals = arrivals[:size], arrivals[size:]
        await ledger.ingest(
            IngestBatch(
                account=account,
                market=Market.SPOT,
                source=chunk[0].source,
                fills=tuple(f for f in chunk if isinstance(f, Fill)),
                balances=tuple(b for b in chunk if isinstance(b, BalanceChange)),
            )
        )

    balances = [f for f in facts if isinstance(f, BalanceChange)]
    stored = await pool.fetch(
        "SELECT asset, kind, time_ms FROM balance_changes WHERE account = $1", account
    )
    assert sorted(tuple(r) for r in stored) == sorted(
        (b.asset, b.kind.value, b.time_ms) for b in balances
    )
    sent = await pool.fetch(
        "SELECT msg_id FROM outbox WHERE msg_id LIKE 'balance:' || $1 || ':%'", account
    )
    assert sorted(r[0] for r in sent) == sorted(
        f"balance:{account}:spot:{b.asset}:{b.kind}:{b.time_ms}" for b in balances
    )
    newest: dict[str, BalanceChange] = {}
    for b in balances:
        if b.kind is BalanceKind.POSITION and (
            b.asset not in newest or newest[b.asset].time_ms < b.time_ms
        ):
            newest[b.asset] = b
    latest = await pool.fetch(
        "SELECT asset, free, time_ms FROM balances WHERE account = $1", account
    )
    assert {r["asset"]: (r["free"], r["time_ms"]) for r in latest} == {
        a: (b.free, b.time_ms) for a, b in newest.items()
    }
    assert await pool.fetchval("SELECT count(*) FROM positions WHERE account = $1", account) == 0
