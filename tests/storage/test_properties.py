"""Hypothesis over the real store: any interleaving of the same fills, with copies from both
paths, in any batches, with restarts in between, ends with the same positions and closes."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fillstream.ledger import (
    Fill,
    FillSource,
    IngestBatch,
    Market,
    PositionBook,
    PositionClose,
    Side,
)
from fillstream.storage import Ledger
from fillstream.storage.payloads import close_from_json
from tests.storage.factories import make_fill

sides = st.sampled_from([Side.BUY, Side.SELL])
qtys = st.sampled_from(["0.5", "1", "1.5", "2"])
rps = st.sampled_from(["-3", "0", "2.5"])


@st.composite
def histories(draw: st.DrawFn) -> list[Fill]:
    n = draw(st.integers(min_value=1, max_value=16))
    return [
        make_fill(
            i,
            account="x",
            symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT"])),
            side=draw(sides),
            qty=draw(qtys),
            price=draw(st.sampled_from(["90", "100", "110"])),
            rp=draw(rps),
        )
        for i in range(1, n + 1)
    ]


def strip(c: PositionClose) -> PositionClose:
    """What must agree whatever the arrival: not the revision count, not who saw it first."""
    return msgspec.structs.replace(
        c,
        revision=0,
        source=FillSource.STREAM,
        account="x",
        closing_fills=tuple(msgspec.structs.replace(k, account="x") for k in c.closing_fills),
    )


def relabel(f: Fill, account: str, source: FillSource) -> Fill:
    return msgspec.structs.replace(f, account=account, source=source)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories(), st.data())
async def test_store_converges_whatever_the_arrival(
    pool: asyncpg.Pool, fills: list[Fill], data: st.DataObject
) -> None:
    reference = PositionBook("x", Market.USDM)
    expected_closes = sorted(map(strip, reference.apply(fills).closes), key=_order)
    expected_positions = {(p.symbol, p.qty, p.entry_price) for p in reference.positions()}

    account = f"p{uuid.uuid4().hex[:10]}"
    copies = fills + data.draw(st.lists(st.sampled_from(fills), max_size=10))
    arrivals = [
        relabel(f, account, data.draw(st.sampled_from(list(FillSource))))
        for f in data.draw(st.permutations(copies))
    ]
    ledger = Ledger(pool, prefix="prop")
    while arrivals:
        size = data.draw(st.integers(min_value=1, max_value=5))
        chunk, arrivals = arrivals[:size], arrivals[size:]
        await ledger.ingest(
            IngestBatch(
                account=account, market=Market.USDM, source=chunk[0].source, fills=tuple(chunk)
            )
        )
        if data.draw(st.booleans()):
            ledger.forget_book(account, Market.USDM)  # a restart between two batches

    positions = {
        (p.symbol, p.qty, p.entry_price) for p in await ledger.positions(account, Market.USDM)
    }
    assert {p for p in positions if p[1] != 0} == {p for p in expected_positions if p[1] != 0}
    stored = [
        close_from_json(r["close"])
        for r in await pool.fetch(
            "SELECT DISTINCT ON (close_id) close FROM position_closes"
            " WHERE account = $1 AND retracted_at IS NULL ORDER BY close_id, revision DESC",
            account,
        )
    ]
    assert sorted(map(strip, stored), key=_order) == expected_closes
    fills_published = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE msg_id LIKE $1", f"fill:{account}:%"
    )
    assert fills_published == len(fills)
    total = await pool.fetchval("SELECT count(*) FROM fills WHERE account = $1", account)
    assert total == len(fills)


def _order(c: PositionClose) -> tuple[str, int]:
    return (c.symbol, c.close_trade_id)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories(), st.data())
async def test_in_order_ingest_with_sealing_and_restarts_matches_the_fold(
    pool: asyncpg.Pool, fills: list[Fill], data: st.DataObject
) -> None:
    """A book that forgets old lifecycles (a 3 ms horizon here) and is rebuilt from the store
    after restarts still agrees with one uninterrupted fold."""
    reference = PositionBook("x", Market.USDM)
    expected_closes = sorted(map(strip, reference.apply(fills).closes), key=_order)
    expected_positions = {(p.symbol, p.qty, p.entry_price) for p in reference.positions()}

    account = f"s{uuid.uuid4().hex[:10]}"
    ledger = Ledger(pool, prefix="prop", horizon_ms=3)
    for f in fills:
        await ledger.ingest(
            IngestBatch(
                account=account,
                market=Market.USDM,
                source=FillSource.STREAM,
                fills=(relabel(f, account, FillSource.STREAM),),
            )
        )
        if data.draw(st.booleans()):
            ledger.forget_book(account, Market.USDM)

    positions = {
        (p.symbol, p.qty, p.entry_price) for p in await ledger.positions(account, Market.USDM)
    }
    assert {p for p in positions if p[1] != 0} == {p for p in expected_positions if p[1] != 0}
    stored = [
        close_from_json(r["close"])
        for r in await pool.fetch(
            "SELECT DISTINCT ON (close_id) close FROM position_closes"
            " WHERE account = $1 AND retracted_at IS NULL ORDER BY close_id, revision DESC",
            account,
        )
    ]
    assert sorted(map(strip, stored), key=_order) == expected_closes
