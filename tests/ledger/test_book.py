from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fillstream.ledger import (
    AlgoLink,
    CloseReason,
    Fill,
    FillSource,
    Market,
    PositionBook,
    PositionCorrection,
    PositionSide,
    Side,
)

D = Decimal


def fill(
    trade_id: int,
    side: Side,
    qty: str,
    price: str = "100",
    rp: str = "0",
    *,
    order_id: int | None = None,
    cid: str = "web_1",
    order_type: str = "LIMIT",
    orig_type: str | None = None,
    ps: PositionSide = PositionSide.BOTH,
    source: FillSource = FillSource.STREAM,
) -> Fill:
    return Fill(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        trade_id=trade_id,
        order_id=order_id if order_id is not None else 1000 + trade_id,
        side=side,
        position_side=ps,
        price=D(price),
        qty=D(qty),
        quote_qty=D(price) * D(qty),
        commission=D("0.01"),
        commission_asset="USDT",
        realized_pnl=D(rp),
        maker=False,
        trade_time_ms=1_700_000_000_000 + trade_id,
        source=source,
        client_order_id=cid,
        order_type=order_type,
        orig_type=orig_type or order_type,
    )


def test_open_add_reduce_close_emits_one_close_with_sum_of_rp() -> None:
    book = PositionBook("a", Market.USDM)
    change = book.apply([fill(1, Side.BUY, "1", "100"), fill(2, Side.BUY, "1", "110")])
    assert change.closes == []
    assert book.position("BTCUSDT", PositionSide.BOTH).entry_price == D("105")
    change = book.apply(
        [fill(3, Side.SELL, "1.5", "120", "22.5"), fill(4, Side.SELL, "0.5", "90", "-7.5")]
    )
    (close,) = change.closes
    assert close.realized_pnl == D("15.0")
    assert close.qty == D("2")
    assert close.closing_fills == (fill(3, Side.SELL, "1").key, fill(4, Side.SELL, "1").key)
    assert close.fees == {"USDT": D("0.04")}
    assert close.reason is CloseReason.MANUAL
    assert close.exit_price == D("112.5")
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == 0


def test_flip_is_one_close_and_one_open() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1", "100")])
    change = book.apply([fill(2, Side.SELL, "3", "90", "-10")])
    (close,) = change.closes
    assert close.realized_pnl == D("-10")
    position = book.position("BTCUSDT", PositionSide.BOTH)
    assert position.qty == D("-2")
    assert position.entry_price == D("90")


def test_late_reducing_fill_turns_phantom_flip_into_the_true_close() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1"), fill(3, Side.SELL, "2", rp="5")])
    first = book.position("BTCUSDT", PositionSide.BOTH)
    assert first.qty == D("-1")  # the stream missed trade 2
    change = book.apply([fill(2, Side.BUY, "1", source=FillSource.RECONCILE)])
    (revised,) = change.closes
    assert revised.revision == 1
    assert revised.qty == D("2")
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == 0


def test_missed_close_found_late_is_emitted() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1"), fill(3, Side.BUY, "1")])
    change = book.apply([fill(2, Side.SELL, "1", rp="3", source=FillSource.RECONCILE)])
    (close,) = change.closes
    assert close.close_trade_id == 2
    assert close.revision == 0
    assert close.source is FillSource.RECONCILE
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == D("1")


def test_reasons() -> None:
    cases = [
        (dict(cid="autoclose-17", order_type="LIQUIDATION"), CloseReason.LIQUIDATION),
        (dict(cid="adl_autoclose"), CloseReason.ADL),
        (dict(cid="settlement_autoclose-BTC"), CloseReason.SETTLEMENT),
        (dict(order_type="MARKET", orig_type="TAKE_PROFIT_MARKET"), CloseReason.TAKE_PROFIT),
        (dict(order_type="MARKET", orig_type="STOP_MARKET"), CloseReason.STOP_LOSS),
        (dict(order_type="MARKET", orig_type="TRAILING_STOP_MARKET"), CloseReason.TRAILING_STOP),
        (dict(order_type="MARKET"), CloseReason.MANUAL),
    ]
    for kwargs, reason in cases:
        book = PositionBook("a", Market.USDM)
        book.apply([fill(1, Side.BUY, "1")])
        (close,) = book.apply([fill(2, Side.SELL, "1", **kwargs)]).closes  # type: ignore[arg-type]
        assert close.reason is reason, kwargs


def test_algo_link_after_the_fill_revises_the_reason() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1")])
    (close,) = book.apply([fill(2, Side.SELL, "1", order_id=77, order_type="MARKET")]).closes
    assert close.reason is CloseReason.MANUAL
    link = AlgoLink(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        algo_id=5,
        client_algo_id="tp-1",
        algo_type="TAKE_PROFIT_MARKET",
        status="TRIGGERED",
        order_id=77,
        update_time_ms=1,
    )
    (revised,) = book.apply(algo_links=[link]).closes
    assert revised.reason is CloseReason.TAKE_PROFIT
    assert revised.revision == 1


def test_correction_to_flat_closes_with_reconciled_unknown() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply([fill(1, Side.BUY, "1")])
    correction = PositionCorrection(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=PositionSide.BOTH,
        qty=D(0),
        entry_price=D(0),
        time_ms=1_700_000_000_100,
    )
    (close,) = book.apply(corrections=[correction]).closes
    assert close.reason is CloseReason.RECONCILED_UNKNOWN
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == 0


def test_hedge_mode_keeps_long_and_short_apart() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply(
        [
            fill(1, Side.BUY, "1", ps=PositionSide.LONG),
            fill(2, Side.SELL, "2", ps=PositionSide.SHORT),
        ]
    )
    (close,) = book.apply([fill(3, Side.SELL, "1", rp="4", ps=PositionSide.LONG)]).closes
    assert close.position_side is PositionSide.LONG
    assert book.position("BTCUSDT", PositionSide.SHORT).qty == D("-2")


def test_sealing_forgets_old_lifecycles_but_keeps_the_position() -> None:
    book = PositionBook("a", Market.USDM, horizon_ms=10)
    book.apply([fill(1, Side.BUY, "1"), fill(2, Side.SELL, "1")])
    book.apply([fill(100, Side.BUY, "2")])
    assert book.sealed_through("BTCUSDT", PositionSide.BOTH) is not None
    # A new fill older than the sealed range is folded in last rather than lost.
    assert book.apply([fill(2, Side.SELL, "1", order_id=5)]).closes == []
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == D("1")


# -- properties --------------------------------------------------------------------------------

sides = st.sampled_from([Side.BUY, Side.SELL])
qtys = st.sampled_from(["0.5", "1", "1.5", "2"])
prices = st.sampled_from(["90", "100", "110"])


@st.composite
def histories(draw: st.DrawFn) -> list[Fill]:
    n = draw(st.integers(min_value=1, max_value=25))
    out = []
    for trade_id in range(1, n + 1):
        out.append(fill(trade_id, draw(sides), draw(qtys), draw(prices), draw(prices)))
    return out


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_any_interleaving_with_duplicates_yields_the_same_book_and_closes(
    fills: list[Fill], data: st.DataObject
) -> None:
    in_order = PositionBook("a", Market.USDM)
    expected = in_order.apply(fills).closes
    expected_positions = in_order.positions()

    shuffled = data.draw(st.permutations(fills + data.draw(st.lists(st.sampled_from(fills)))))
    book = PositionBook("a", Market.USDM)
    live: dict[tuple[int, int], object] = {}
    for f in shuffled:
        change = book.apply([f])
        for c in change.retracted:
            live.pop((c.close_trade_id, c.close_order_id), None)
        for c in change.closes:
            live[(c.close_trade_id, c.close_order_id)] = c
    assert book.positions() == expected_positions

    def strip(c: object) -> object:
        import msgspec

        return msgspec.structs.replace(c, revision=0, source=FillSource.STREAM)  # type: ignore[type-var]

    assert sorted(map(strip, live.values()), key=lambda c: c.close_trade_id) == [  # type: ignore[attr-defined]
        strip(c) for c in expected
    ]


@settings(max_examples=200, deadline=None)
@given(histories())
def test_close_pnl_is_the_sum_of_rp_of_its_closing_fills(fills: list[Fill]) -> None:
    by_key = {f.key: f for f in fills}
    for close in PositionBook("a", Market.USDM).apply(fills).closes:
        assert close.realized_pnl == sum(
            (by_key[k].realized_pnl for k in close.closing_fills), D(0)
        )


@settings(max_examples=100, deadline=None)
@given(histories())
def test_a_flip_is_one_close_plus_one_open(fills: list[Fill]) -> None:
    book = PositionBook("a", Market.USDM)
    for f in fills:
        before = book.position("BTCUSDT", PositionSide.BOTH).qty
        change = book.apply([f])
        after = book.position("BTCUSDT", PositionSide.BOTH).qty
        flipped = before != 0 and after != 0 and (before > 0) != (after > 0)
        if flipped:
            assert len(change.closes) == 1
            assert after == before + f.signed_qty
            assert book.position("BTCUSDT", PositionSide.BOTH).entry_price == f.price
        elif before != 0 and after == 0:
            assert len(change.closes) == 1
        else:
            assert change.closes == []


def test_size_cap_seals_at_a_flat_point_and_folds_an_older_fill_in_last() -> None:
    book = PositionBook("a", Market.USDM, max_entries=4)
    for t in range(1, 9, 2):  # four round trips: open, close
        book.apply([fill(t, Side.BUY, "1"), fill(t + 1, Side.SELL, "1")])
    assert book.held("BTCUSDT", PositionSide.BOTH) <= 4
    sealed = book.sealed_through("BTCUSDT", PositionSide.BOTH)
    assert sealed is not None
    # Far younger than the six-hour horizon, so only the cap sealed it.
    assert book.apply([fill(2, Side.BUY, "1", order_id=7)]).closes == []
    assert book.position("BTCUSDT", PositionSide.BOTH).qty == D("1")


def test_a_lifecycle_longer_than_the_cap_is_held_whole() -> None:
    book = PositionBook("a", Market.USDM, max_entries=4)
    book.apply([fill(t, Side.BUY, "1") for t in range(1, 11)])
    assert book.held("BTCUSDT", PositionSide.BOTH) == 10
    assert book.sealed_through("BTCUSDT", PositionSide.BOTH) is None
    (close,) = book.apply([fill(11, Side.SELL, "10")]).closes
    assert close.qty == D("10")


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(min_value=2, max_value=8), st.integers(min_value=1, max_value=5))
def test_the_size_cap_changes_no_close_of_in_order_fills_and_bounds_what_is_held(
    fills: list[Fill], cap: int, per_call: int
) -> None:
    unbounded = PositionBook("a", Market.USDM)
    capped = PositionBook("a", Market.USDM, max_entries=cap)
    expected, got = [], []
    for i in range(0, len(fills), per_call):
        expected += unbounded.apply(fills[i : i + per_call]).closes
        change = capped.apply(fills[i : i + per_call])
        assert change.retracted == []
        got += change.closes
        # Never more than the cap, unless the open lifecycle alone is longer.
        since_flat = _entries_since_flat(fills[: i + per_call])
        assert capped.held("BTCUSDT", PositionSide.BOTH) <= max(cap, since_flat)
    assert got == expected
    assert capped.positions() == unbounded.positions()


def _entries_since_flat(fills: list[Fill]) -> int:
    qty, since = D(0), 0
    for f in fills:
        qty += f.signed_qty
        since = 0 if qty == 0 else since + 1
    return since
