"""Cursors, the open-orders view and the operators' records."""

from __future__ import annotations

import asyncpg
import msgspec

from fillstream.ledger import AlgoLink, Cursor, Gap, Market
from fillstream.storage import Ledger, PgCursorStore, PgOrderView
from tests.storage.factories import batch_of, make_order


def cursor(symbol: str, trade_id: int) -> Cursor:
    return Cursor(
        account="alpha",
        market=Market.USDM,
        symbol=symbol,
        trade_id=trade_id,
        trade_time_ms=1_767_225_600_000 + trade_id,
        updated_at_ms=1_767_225_700_000,
    )


async def test_cursors_round_trip_and_never_move_backwards(pool: asyncpg.Pool) -> None:
    store = PgCursorStore(pool)
    assert await store.load("alpha", Market.USDM) == {}
    await store.save([cursor("BTCUSDT", 10), cursor("ETHUSDT", 5), cursor("BTCUSDT", 12)])
    await store.save([cursor("BTCUSDT", 3)])  # an older view must not rewind
    loaded = await store.load("alpha", Market.USDM)
    assert loaded == {"BTCUSDT": cursor("BTCUSDT", 12), "ETHUSDT": cursor("ETHUSDT", 5)}
    assert await store.load("alpha", Market.COINM) == {}


async def test_open_orders_are_the_stale_unfinished_ones(ledger: Ledger) -> None:
    await ledger.ingest(
        batch_of(
            orders=(
                make_order(1, "NEW", 100),
                make_order(2, "PARTIALLY_FILLED", 200, filled="0.01"),
                make_order(3, "NEW", 900),
                make_order(4, "NEW", 100),
                make_order(4, "CANCELED", 150),
            )
        )
    )
    view = PgOrderView(ledger.pool)
    stale = await view.open_orders("alpha", Market.USDM, updated_before_ms=500)
    assert [(o.order_id, o.status) for o in stale] == [(1, "NEW"), (2, "PARTIALLY_FILLED")]
    one = await view.order("alpha", Market.USDM, "BTCUSDT", 4)
    assert one is not None and one.status == "CANCELED"
    assert await view.order("alpha", Market.USDM, "BTCUSDT", 99) is None


async def test_stored_orders_and_algo_links_by_order_id(ledger: Ledger) -> None:
    # What REST enrichment takes from the store instead of the venue (reconcile/enrich.py).
    link = AlgoLink(
        account="alpha",
        market=Market.USDM,
        symbol="BTCUSDT",
        algo_id=7000,
        client_algo_id="sl-1",
        algo_type="STOP_MARKET",
        status="TRIGGERED",
        order_id=5,
        update_time_ms=300,
    )
    other = msgspec.structs.replace(link, symbol="ETHUSDT", algo_id=7001, order_id=6)
    batch = batch_of(
        orders=(make_order(5, "NEW", 100), make_order(6, "NEW", 100, symbol="ETHUSDT"))
    )
    await ledger.ingest(msgspec.structs.replace(batch, algo_links=(link, other)))
    view = PgOrderView(ledger.pool)
    found = await view.orders_by_id("alpha", Market.USDM, "BTCUSDT", [5, 6, 99])
    assert [(o.order_id, o.client_order_id) for o in found] == [
        (5, make_order(5, "NEW", 1).client_order_id)
    ]
    assert await view.orders_by_id("beta", Market.USDM, "BTCUSDT", [5]) == []
    assert await view.linked_orders("alpha", Market.USDM, "BTCUSDT", [5, 6, 99]) == {5}
    assert await view.linked_orders("alpha", Market.COINM, "BTCUSDT", [5]) == set()


async def test_sessions_and_gaps_are_recorded_for_operators(ledger: Ledger) -> None:
    sid = await ledger.record_session("alpha", Market.USDM, connected_at_ms=1000)
    await ledger.record_session(
        "alpha",
        Market.USDM,
        connected_at_ms=1000,
        disconnected_at_ms=5000,
        end_reason="listen_key_expired",
        frames=42,
        session_id=sid,
    )
    row = await ledger.pool.fetchrow("SELECT * FROM stream_sessions WHERE id = $1", sid)
    assert (row["disconnected_at_ms"], row["end_reason"], row["frames"]) == (
        5000,
        "listen_key_expired",
        42,
    )
    gap = Gap(account="alpha", market=Market.USDM, since_ms=4000, until_ms=None, reason="stale")
    await ledger.record_gap(gap)
    closed = Gap(
        account="alpha",
        market=Market.USDM,
        since_ms=4000,
        until_ms=6000,
        reason="stale",
        symbols=frozenset({"ETHUSDT", "BTCUSDT"}),
    )
    await ledger.record_gap(closed)
    rows = await ledger.pool.fetch("SELECT until_ms, symbols FROM gaps")
    assert [(r["until_ms"], r["symbols"]) for r in rows] == [(6000, ["BTCUSDT", "ETHUSDT"])]
