"""A late entry refolds a position only from its last flat point before it.

The oracle is a book built with ``partial_refold=False``, which refolds everything held on every
late entry: both books get the same calls and must give the same changes and positions.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fillstream.ledger import (
    AlgoLink,
    Fill,
    Market,
    PositionBook,
    PositionCorrection,
    PositionSide,
    Side,
)
from fillstream.ledger.types import FundingFee
from tests.ledger.test_book import fill

D = Decimal
T0 = 1_700_000_000_000
ALGO_TYPES = ["TAKE_PROFIT_MARKET", "STOP_MARKET", "TRAILING_STOP_MARKET"]

Event = Fill | PositionCorrection | FundingFee | AlgoLink


def correction(t: int, qty: str, ps: PositionSide, price: str = "100") -> PositionCorrection:
    return PositionCorrection(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=ps,
        qty=D(qty),
        entry_price=D(price) if D(qty) else D(0),
        time_ms=T0 + t,
    )


def funding(t: int, tran_id: int, amount: str, ps: PositionSide) -> FundingFee:
    return FundingFee(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=ps,
        amount=D(amount),
        asset="USDT",
        time_ms=T0 + t,
        tran_id=tran_id,
    )


def link(order_id: int, algo_type: str) -> AlgoLink:
    return AlgoLink(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        algo_id=order_id,
        client_algo_id=f"algo-{order_id}",
        algo_type=algo_type,
        status="TRIGGERED",
        order_id=order_id,
        update_time_ms=1,
    )


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    hedge = draw(st.booleans())
    sides_of = [PositionSide.LONG, PositionSide.SHORT] if hedge else [PositionSide.BOTH]
    out: list[Event] = []
    for t in range(1, draw(st.integers(min_value=1, max_value=40)) + 1):
        ps = draw(st.sampled_from(sides_of))
        kind = draw(st.sampled_from(["fill"] * 8 + ["correction", "funding", "link"]))
        if kind == "fill":
            side = draw(st.sampled_from([Side.BUY, Side.SELL]))
            qty = draw(st.sampled_from(["1", "1", "2", "0.5"]))
            price = draw(st.sampled_from(["90", "100", "110"]))
            rp = draw(st.sampled_from(["0", "1", "-2"]))
            out.append(fill(t, side, qty, price, rp, ps=ps))
        elif kind == "correction":
            # sometimes in the millisecond of the event before: entries sharing a sort key
            at = t - draw(st.sampled_from([0, 1]))
            out.append(correction(at, draw(st.sampled_from(["0", "0", "1", "-1"])), ps))
        elif kind == "funding":
            out.append(funding(t, t, draw(st.sampled_from(["0.5", "-0.25"])), ps))
        else:
            order_id = 1000 + draw(st.integers(min_value=1, max_value=40))
            out.append(link(order_id, draw(st.sampled_from(ALGO_TYPES))))
    return out


def apply(book: PositionBook, batch: list[Event]) -> object:
    return book.apply(
        fills=[e for e in batch if isinstance(e, Fill)],
        corrections=[e for e in batch if isinstance(e, PositionCorrection)],
        algo_links=[e for e in batch if isinstance(e, AlgoLink)],
        funding=[e for e in batch if isinstance(e, FundingFee)],
    )


def batches(data: st.DataObject, history: list[Event]) -> list[list[Event]]:
    shuffled = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history)))))
    out: list[list[Event]] = []
    while shuffled:
        n = data.draw(st.integers(min_value=1, max_value=4))
        out.append(shuffled[:n])
        shuffled = shuffled[n:]
    return out


def emitted(book: PositionBook) -> dict[object, object]:
    return {key: dict(ledger.emitted) for key, ledger in book._ledgers.items()}


def flat_points(book: PositionBook) -> dict[object, object]:
    return {key: sorted(ledger.flat_at) for key, ledger in book._ledgers.items()}


@settings(max_examples=400, deadline=None)
@given(
    events(),
    st.data(),
    st.sampled_from([(6 * 3600 * 1000, 20_000), (10, 20_000), (6 * 3600 * 1000, 6), (15, 4)]),
)
def test_partial_refold_gives_exactly_what_a_full_refold_gives(
    history: list[Event], data: st.DataObject, bounds: tuple[int, int]
) -> None:
    horizon_ms, max_entries = bounds
    partial = PositionBook("a", Market.USDM, horizon_ms=horizon_ms, max_entries=max_entries)
    full = PositionBook(
        "a", Market.USDM, horizon_ms=horizon_ms, max_entries=max_entries, partial_refold=False
    )
    for batch in batches(data, history):
        assert apply(partial, batch) == apply(full, batch)
        assert emitted(partial) == emitted(full)
        assert flat_points(partial) == flat_points(full)
    assert partial.positions() == full.positions()
    for ledger in partial._ledgers.values():
        side = ledger.key.position_side
        assert partial.held("BTCUSDT", side) == full.held("BTCUSDT", side)
        assert partial.sealed_through("BTCUSDT", side) == full.sealed_through("BTCUSDT", side)


def test_a_late_fill_refolds_from_the_last_flat_point_before_it() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1"), fill(2, Side.SELL, "1", rp="1")])  # flat after 2
    book.apply([fill(3, Side.BUY, "1"), fill(4, Side.SELL, "1", rp="2")])  # flat after 4
    book.apply([fill(5, Side.BUY, "2"), fill(7, Side.SELL, "1")])
    ledger = next(iter(book._ledgers.values()))
    ledger.mark_dirty((T0 + 6, 6, 1006))
    assert ledger._restart_point() == (T0 + 4, 4, 1004)
    ledger.dirty_from = None
    # The late fill makes 7 the close; the closes at 2 and 4 are not revisited.
    change = book.apply([fill(6, Side.SELL, "1", rp="3")])
    assert [(c.close_trade_id, c.revision, c.realized_pnl) for c in change.closes] == [(7, 0, D(3))]
    assert change.retracted == []
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == 0


def test_without_a_flat_point_before_the_late_entry_it_is_the_full_refold() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1"), fill(3, Side.SELL, "1")])
    ledger = next(iter(book._ledgers.values()))
    ledger.mark_dirty((T0 + 2, 2, 1002))
    assert ledger._restart_point() is None  # the only flat point (3) is after the late entry
    ledger.dirty_from = None
    change = book.apply([fill(2, Side.SELL, "1")])
    assert [c.close_trade_id for c in change.closes] == [2]
    assert [c.close_trade_id for c in change.retracted] == [3]


def test_a_flat_point_carries_its_time_into_the_refold() -> None:
    book = PositionBook("a", Market.USDM)
    full = PositionBook("a", Market.USDM, partial_refold=False)
    for b in (book, full):
        b.apply([fill(1, Side.BUY, "1"), fill(2, Side.SELL, "1")])
        b.apply(funding=[funding(4, 4, "1", PositionSide.BOTH)])
    change = book.apply(funding=[funding(3, 3, "1", PositionSide.BOTH)])  # late, after flat 2
    assert change == full.apply(funding=[funding(3, 3, "1", PositionSide.BOTH)])
    assert book.position("BTCUSDT", PositionSide.BOTH).updated_at_ms == T0 + 2


def test_a_relink_and_a_late_fill_in_one_call_refold_from_before_the_relinked_close() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1"), fill(2, Side.SELL, "1", order_id=77)])  # flat at 2
    book.apply([fill(3, Side.BUY, "1"), fill(5, Side.SELL, "1")])  # flat at 5
    change = book.apply([fill(4, Side.BUY, "1")], algo_links=[link(77, "STOP_MARKET")])
    revised = {c.close_trade_id: c for c in change.closes}
    assert revised[2].reason.name == "STOP_LOSS"
    assert revised[2].revision == 1
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == 1


def test_a_flat_point_shared_with_a_reopening_correction_is_no_restart_point() -> None:
    book = PositionBook("a", Market.USDM)
    full = PositionBook("a", Market.USDM, partial_refold=False)
    same_ms = [correction(3, "0", PositionSide.BOTH), correction(3, "1", PositionSide.BOTH)]
    calls = [
        {"fills": [fill(1, Side.BUY, "1")]},
        {"corrections": same_ms},  # flat, then open again, in one millisecond
        {"fills": [fill(10, Side.SELL, "1")]},
        {"fills": [fill(6, Side.BUY, "1")]},  # late: 10 no longer closes
    ]
    for kwargs in calls:
        assert book.apply(**kwargs) == full.apply(**kwargs)  # type: ignore[arg-type]
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == 1
