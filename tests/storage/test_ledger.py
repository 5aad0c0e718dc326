from __future__ import annotations

from decimal import Decimal

import asyncpg
import msgspec
import pytest

from fillstream.ledger import CloseReason, FillSource, Market, Side
from fillstream.storage import Ledger, OrderPublishing
from fillstream.storage.payloads import FillMessage
from tests.storage.factories import batch_of, make_fill, make_order


async def test_new_fills_are_stored_once_with_exact_amounts(ledger: Ledger) -> None:
    f1, f2 = make_fill(1), make_fill(2, price="0.00000123", qty="123456789.12345678")
    first = await ledger.ingest(batch_of(f1, f2))
    again = await ledger.ingest(batch_of(f2, make_fill(3), source=FillSource.RECONCILE))
    assert [f.trade_id for f in first.new_fills] == [1, 2]
    assert [f.trade_id for f in again.new_fills] == [3]
    assert [f.trade_id for f in again.duplicate_fills] == [2]
    row = await ledger.pool.fetchrow("SELECT * FROM fills WHERE trade_id = 2")
    assert row["price"] == Decimal("0.00000123")
    assert row["qty"] == Decimal("123456789.12345678")
    assert row["source"] == "stream"
    assert await ledger.pool.fetchval("SELECT count(*) FROM fills") == 3


async def test_a_copy_inside_one_batch_is_a_duplicate(ledger: Ledger) -> None:
    stream_copy = make_fill(7)
    poll_copy = make_fill(7, source=FillSource.RECONCILE)
    outcome = await ledger.ingest(batch_of(stream_copy, poll_copy))
    assert outcome.new_fills == [stream_copy]
    assert outcome.duplicate_fills == [poll_copy]


async def test_outbox_rows_carry_subject_msg_id_and_payload(ledger: Ledger) -> None:
    outcome = await ledger.ingest(batch_of(make_fill(11)))
    [message] = outcome.messages
    row = await ledger.pool.fetchrow("SELECT * FROM outbox")
    assert row["id"] == message.id
    assert row["subject"] == "fst.fill.alpha.usdm.BTCUSDT"
    assert row["msg_id"] == f"fill:alpha:usdm:BTCUSDT:11:{8_000_000_011}"
    assert row["published_at"] is None
    body = msgspec.json.decode(row["payload"], type=FillMessage)
    assert body.schema == "fill/v1"
    assert body.price == Decimal("94000.10")
    assert b'"price":"94000.10"' in row["payload"]


async def test_outbox_ids_follow_message_order(ledger: Ledger) -> None:
    outcome = await ledger.ingest(batch_of(*(make_fill(i) for i in range(1, 300))))
    ids = [m.id for m in outcome.messages]
    assert ids == sorted(ids)
    stored = await ledger.pool.fetch("SELECT id, msg_id FROM outbox ORDER BY id")
    assert [(r["id"], r["msg_id"]) for r in stored] == [(m.id, m.msg_id) for m in outcome.messages]


async def test_close_is_recorded_and_published_once(ledger: Ledger) -> None:
    await ledger.ingest(batch_of(make_fill(1, qty="0.02")))
    outcome = await ledger.ingest(
        batch_of(make_fill(2, side=Side.SELL, qty="0.02", rp="12.5", client_order_id="autoclose-1"))
    )
    [close] = outcome.closes
    assert close.reason is CloseReason.LIQUIDATION
    assert close.realized_pnl == Decimal("12.5")
    subjects = [m.subject for m in outcome.messages]
    assert subjects == ["fst.fill.alpha.usdm.BTCUSDT", "fst.position.closed.alpha.usdm.BTCUSDT"]
    row = await ledger.pool.fetchrow("SELECT * FROM position_closes")
    assert row["reason"] == "liquidation"
    assert row["realized_pnl"] == Decimal("12.5")
    [pos] = await ledger.positions("alpha", Market.USDM)
    assert pos.qty == 0
    # The same fills again: nothing new, no second close.
    again = await ledger.ingest(batch_of(make_fill(1, qty="0.02"), make_fill(2, side=Side.SELL)))
    assert again.new_fills == [] and again.closes == [] and again.messages == []


async def test_late_fill_revises_a_close_and_restart_keeps_the_book(ledger: Ledger) -> None:
    await ledger.ingest(batch_of(make_fill(1, qty="0.02")))
    await ledger.ingest(batch_of(make_fill(3, side=Side.SELL, qty="0.02", rp="2")))
    ledger.forget_book("alpha", Market.USDM)  # as after a restart: reload from the store
    # The poll finds a fill the stream missed, between the open and the close.
    late = make_fill(2, qty="0.01", source=FillSource.RECONCILE)
    outcome = await ledger.ingest(batch_of(late))
    assert outcome.new_fills == [late]
    kinds = {m.subject.split(".")[2] for m in outcome.messages if ".position." in m.subject}
    assert kinds  # the close changed: a revision or a retraction is published
    [pos] = await ledger.positions("alpha", Market.USDM)
    assert pos.qty == Decimal("0.01")
    ledger.forget_book("alpha", Market.USDM)
    nothing = await ledger.ingest(batch_of(make_fill(2, qty="0.01")))
    assert nothing.closes == [] and nothing.retracted == [] and nothing.messages == []


async def test_failed_transaction_leaves_no_trace_in_store_or_book(ledger: Ledger) -> None:
    bad_order = msgspec.structs.replace(make_order(5, "NEW", 1), client_order_id="bad\x00id")
    with pytest.raises(asyncpg.PostgresError):
        await ledger.ingest(batch_of(make_fill(1, qty="0.02"), orders=(bad_order,)))
    assert await ledger.pool.fetchval("SELECT count(*) FROM fills") == 0
    outcome = await ledger.ingest(batch_of(make_fill(2, qty="0.01")))
    assert outcome.closes == []
    [pos] = await ledger.positions("alpha", Market.USDM)
    assert pos.qty == Decimal("0.01")  # the failed batch's fill never moved the position


async def test_orders_only_move_forward_and_each_batch_publishes_the_latest_state(
    ledger: Ledger,
) -> None:
    new = make_order(9, "NEW", 100)
    partial = make_order(9, "PARTIALLY_FILLED", 200, filled="0.01")
    filled = make_order(9, "FILLED", 300, filled="0.03")
    first = await ledger.ingest(batch_of(orders=(new,)))
    assert [o.status for o in first.orders] == ["NEW"]
    outcome = await ledger.ingest(batch_of(orders=(filled, new, partial)))
    assert [o.status for o in outcome.orders] == ["FILLED"]  # coalesced: the latest state
    assert len(outcome.messages) == 1
    stale = await ledger.ingest(batch_of(orders=(partial, new), source=FillSource.RECONCILE))
    assert stale.orders == [] and stale.messages == []
    row = await ledger.pool.fetchrow("SELECT status, filled_qty FROM orders WHERE order_id = 9")
    assert (row["status"], row["filled_qty"]) == ("FILLED", Decimal("0.03"))


async def test_corrections_are_stored_published_and_close_vanished_positions(
    ledger: Ledger,
) -> None:
    from fillstream.ledger import IngestBatch, PositionCorrection, PositionSide

    await ledger.ingest(batch_of(make_fill(1, qty="0.02")))
    to_flat = PositionCorrection(
        account="alpha",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=PositionSide.BOTH,
        qty=Decimal(0),
        entry_price=Decimal(0),
        time_ms=1_767_225_700_000,
    )
    batch = IngestBatch(
        account="alpha", market=Market.USDM, source=FillSource.RECONCILE, corrections=(to_flat,)
    )
    outcome = await ledger.ingest(batch)
    assert outcome.corrections == [to_flat]
    [close] = outcome.closes
    assert close.reason is CloseReason.RECONCILED_UNKNOWN
    subjects = sorted(m.subject for m in outcome.messages)
    assert subjects == [
        "fst.position.closed.alpha.usdm.BTCUSDT",
        "fst.position.corrected.alpha.usdm.BTCUSDT",
    ]
    again = await ledger.ingest(batch)  # the same correction twice is one correction
    assert again.corrections == [] and again.messages == []
    assert await ledger.pool.fetchval("SELECT count(*) FROM position_corrections") == 1


async def test_an_algo_link_arriving_after_the_close_revises_its_reason(ledger: Ledger) -> None:
    from fillstream.ledger import AlgoLink, IngestBatch

    await ledger.ingest(batch_of(make_fill(1, qty="0.02")))
    closing = make_fill(2, side=Side.SELL, qty="0.02", rp="4", order_type="MARKET")
    [close] = (await ledger.ingest(batch_of(closing))).closes
    assert close.reason is CloseReason.MANUAL
    link = AlgoLink(
        account="alpha",
        market=Market.USDM,
        symbol="BTCUSDT",
        algo_id=77,
        client_algo_id="tp_1",
        algo_type="TAKE_PROFIT_MARKET",
        status="FINISHED",
        order_id=closing.order_id,
        update_time_ms=closing.trade_time_ms,
    )
    outcome = await ledger.ingest(
        IngestBatch(
            account="alpha", market=Market.USDM, source=FillSource.STREAM, algo_links=(link,)
        )
    )
    [revised] = outcome.closes
    assert (revised.reason, revised.revision) == (CloseReason.TAKE_PROFIT, 1)
    assert outcome.messages[0].msg_id.endswith(":r1")
    ledger.forget_book("alpha", Market.USDM)  # the link and the revision survive a restart
    assert (await ledger.ingest(batch_of(make_fill(3, qty="0.01")))).closes == []


async def test_funding_is_stored_once_and_carried_by_the_close_across_restarts(
    ledger: Ledger,
) -> None:
    from fillstream.ledger import FundingFee, IngestBatch, PositionSide

    def fee(tran_id: int, time_offset: int, amount: str) -> FundingFee:
        return FundingFee(
            account="alpha",
            market=Market.USDM,
            symbol="BTCUSDT",
            position_side=PositionSide.BOTH,
            amount=Decimal(amount),
            asset="USDT",
            time_ms=1_767_225_600_000 + time_offset,
            tran_id=tran_id,
        )

    def funding_batch(*fees: FundingFee) -> IngestBatch:
        return IngestBatch(
            account="alpha", market=Market.USDM, source=FillSource.RECONCILE, funding=fees
        )

    await ledger.ingest(batch_of(make_fill(1, qty="0.02")))
    first = await ledger.ingest(funding_batch(fee(501, 5, "-0.25")))
    assert [f.tran_id for f in first.funding] == [501]
    assert (await ledger.ingest(funding_batch(fee(501, 5, "-0.25")))).funding == []
    ledger.forget_book("alpha", Market.USDM)  # the payment must survive a restart
    [close] = (await ledger.ingest(batch_of(make_fill(10, side=Side.SELL, qty="0.02")))).closes
    assert close.funding == Decimal("-0.25")
    # A payment found late, inside the closed lifecycle, revises the close.
    [revised] = (await ledger.ingest(funding_batch(fee(502, 8, "0.05")))).closes
    assert (revised.funding, revised.revision) == (Decimal("-0.20"), 1)
    assert await ledger.pool.fetchval("SELECT count(*) FROM funding") == 2


@pytest.mark.parametrize(
    ("publishing", "published"),
    [
        (OrderPublishing.ALL, ["NEW", "CANCELED"]),
        (OrderPublishing.TERMINAL, ["CANCELED"]),
        (OrderPublishing.NONE, []),
    ],
)
async def test_publish_orders_selects_the_order_messages_and_stores_every_order(
    ledger: Ledger, publishing: OrderPublishing, published: list[str]
) -> None:
    ledger.publish_orders = publishing
    opened = make_order(7, "NEW", 100)
    cancelled = make_order(8, "CANCELED", 200)
    outcome = await ledger.ingest(batch_of(make_fill(1), orders=(opened, cancelled)))
    order_messages = [m for m in outcome.messages if ".order." in m.subject]
    assert [msgspec.json.decode(m.payload)["status"] for m in order_messages] == published
    assert len(outcome.messages) == 1 + len(published)  # the fill is always published
    stored = await ledger.pool.fetchval("SELECT count(*) FROM orders WHERE order_id IN (7, 8)")
    assert stored == 2


async def test_a_stream_batch_holding_a_stored_fill_is_stored_exactly_once(
    ledger: Ledger,
) -> None:
    # The one-statement path folds the book on the bet that a stream batch is new; a fill
    # already stored loses the bet: nothing of that statement may stick, and the batch must
    # come out exactly as the transactional path stores it.
    opened = make_fill(1, qty="0.02")
    await ledger.ingest(batch_of(opened))
    closing = make_fill(2, side=Side.SELL, qty="0.02", rp="3")
    order = make_order(1002, "FILLED", 1_700_000_000_500, filled="0.02")
    outcome = await ledger.ingest(batch_of(opened, closing, orders=(order,)))
    assert [f.trade_id for f in outcome.new_fills] == [2]
    assert [f.trade_id for f in outcome.duplicate_fills] == [1]
    (close,) = outcome.closes
    assert (close.qty, close.revision) == (Decimal("0.02"), 0)
    kinds = sorted(m.msg_id.split(":")[0] for m in outcome.messages)
    assert kinds == ["close", "fill", "order"]
    assert all(m.id is not None for m in outcome.messages)
    counts = await ledger.pool.fetchrow(
        "SELECT (SELECT count(*) FROM fills) AS fills,"
        " (SELECT count(*) FROM position_closes) AS closes,"
        " (SELECT count(*) FROM outbox WHERE msg_id LIKE 'fill:%') AS fill_rows"
    )
    assert tuple(counts) == (2, 1, 2)
    [pos] = await ledger.positions("alpha", Market.USDM)
    assert pos.qty == 0
    # And the next stream batch takes the one-statement path again, from the reloaded book.
    again = await ledger.ingest(batch_of(make_fill(3, qty="0.01")))
    assert [f.trade_id for f in again.new_fills] == [3]
    [pos] = await ledger.positions("alpha", Market.USDM)
    assert pos.qty == Decimal("0.01")


async def test_order_messages_follow_only_orders_that_moved_forward(ledger: Ledger) -> None:
    filled = make_order(5, "FILLED", 300, filled="0.03")
    await ledger.ingest(batch_of(orders=(filled,)))
    stale = make_order(5, "PARTIALLY_FILLED", 200, filled="0.01")
    fresh = make_order(6, "NEW", 400)
    outcome = await ledger.ingest(batch_of(make_fill(9), orders=(stale, fresh)))
    assert [o.order_id for o in outcome.orders] == [6]
    assert sorted(m.msg_id.split(":")[0] for m in outcome.messages) == ["fill", "order"]
    ids = [m.id for m in outcome.messages]
    pending = await ledger.pool.fetch("SELECT id FROM outbox ORDER BY id")
    assert set(ids) <= {r["id"] for r in pending}
