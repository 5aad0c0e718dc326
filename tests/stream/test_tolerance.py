"""Tolerant wire types: drift in fields a fill or an order transition does not need is accepted;
drift in fields they need is a malformed frame, never a silently different fill.

The property: an ORDER_TRADE_UPDATE with any subset of its optional fields nulled or retyped
decodes to the same fill, or is counted as malformed. Never an uncaught exception, never a silent
wrong value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fillstream.binance.usdm.events import AccountUpdate, OrderTradeUpdate
from fillstream.binance.usdm.parse import (
    fill_from_order_update,
    order_update_from,
    validate_account_update,
)
from fillstream.ledger import Fill, Market, OrderUpdate
from fillstream.stream.decode import FrameDecoder, FrameError
from tests.stream import payloads as p

DECODER = FrameDecoder()
MALFORMED = "malformed"

# Read by nothing: any JSON value is fine, and the fill and the transition stay exactly the same.
UNUSED = ("f", "b", "a", "wt", "AP", "cr", "pP", "si", "ss", "V", "pm", "gtd", "M")
# Part of the order transition, not of the fill: null is "absent" (a zero amount, ``ot`` → ``o``).
NULLABLE = ("q", "p", "ap", "sp", "z", "ot", "cp", "er")
# What a fill needs: null or another type is a malformed frame.
NEEDED = ("s", "c", "S", "o", "x", "X", "i", "T", "l", "L", "N", "n", "t", "m", "R", "ps", "rp")

FILL_FRAMES = {
    "partial": p.ORDER_TRADE_UPDATE_FILL,
    "liquidation": p.ORDER_TRADE_UPDATE_LIQUIDATION,
    "trailing_new": p.ORDER_TRADE_UPDATE_NEW_TRAILING,
}


def outcome(frame: bytes) -> tuple[Fill | None, OrderUpdate] | str:
    """What the processor would take from ``frame``: (fill, transition), or malformed."""
    try:
        event = DECODER.decode(frame)
        assert isinstance(event, OrderTradeUpdate)
        fill = fill_from_order_update(event, "a", Market.USDM)
        return fill, order_update_from(event, "a", Market.USDM)
    except FrameError as exc:
        assert exc.kind == MALFORMED
        return MALFORMED
    except ValueError:  # MalformedInput from parse
        return MALFORMED


def retyped(value: Any) -> list[Any]:
    """Other JSON types in place of ``value``: a number for a string and the other way round."""
    if isinstance(value, bool):
        return ["true" if value else "false", int(value), None]
    if isinstance(value, int):
        return [str(value), float(value), None]
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return [0, None, []]
        return [float(number), int(number) if number == number.to_integral() else 1, None]
    return [None]


def mutate(frame: bytes, changes: dict[str, Any]) -> bytes:
    obj = msgspec.json.decode(frame)
    obj["o"].update(changes)
    return msgspec.json.encode(obj)


def with_absent(frame: bytes, fields: list[str]) -> bytes:
    obj = msgspec.json.decode(frame)
    for name in fields:
        obj["o"].pop(name, None)
    return msgspec.json.encode(obj)


@st.composite
def changes(draw: st.DrawFn, frame: bytes, pool: tuple[str, ...]) -> dict[str, Any]:
    order = msgspec.json.decode(frame)["o"]
    names = draw(st.lists(st.sampled_from(pool), unique=True, min_size=1))
    out: dict[str, Any] = {}
    for name in names:
        original = order.get(name, "0")
        out[name] = draw(st.sampled_from([None, *retyped(original)]))
    return out


@pytest.mark.parametrize("name", sorted(FILL_FRAMES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_unused_fields_take_any_value(name: str, data: st.DataObject) -> None:
    frame = FILL_FRAMES[name]
    change = data.draw(changes(frame, UNUSED))
    assert outcome(mutate(frame, change)) == outcome(frame)


@pytest.mark.parametrize("name", sorted(FILL_FRAMES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_transition_fields_accept_null(name: str, data: st.DataObject) -> None:
    frame = FILL_FRAMES[name]
    nulled = data.draw(st.lists(st.sampled_from(NULLABLE), unique=True, min_size=1))
    got = outcome(mutate(frame, dict.fromkeys(nulled)))
    assert got != MALFORMED, "a null in a field the fill does not need rejected the frame"
    # null means absent: the same as a frame without those fields.
    assert got == outcome(with_absent(frame, nulled))
    original = outcome(frame)
    assert isinstance(got, tuple) and isinstance(original, tuple)
    fill, update = got
    if fill is not None:
        assert original[0] is not None
        expected = original[0]
        if "ot" in nulled:
            expected = msgspec.structs.replace(expected, orig_type=expected.order_type)
        assert fill == expected
    assert update.order_id == original[1].order_id and update.status == original[1].status


@pytest.mark.parametrize("name", sorted(FILL_FRAMES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_subset_nulled_or_retyped_is_the_same_fill_or_malformed(
    name: str, data: st.DataObject
) -> None:
    frame = FILL_FRAMES[name]
    change = data.draw(changes(frame, UNUSED + NULLABLE + NEEDED))
    got = outcome(mutate(frame, change))
    if got == MALFORMED:
        return
    original = outcome(frame)
    assert isinstance(got, tuple) and isinstance(original, tuple)
    fill, _ = got
    if fill is None:
        # No fill from an event that had one would be a fill silently lost.
        assert original[0] is None, f"{change} turned a fill into no fill"
        return
    expected = original[0]
    assert expected is not None, f"{change} made a fill out of a non-fill"
    if "ot" in change and change["ot"] is None:
        expected = msgspec.structs.replace(expected, orig_type=expected.order_type)
    assert fill == expected, f"{change} changed the fill"


@pytest.mark.parametrize("field", [f for f in NEEDED if f not in ("N", "n")])
def test_a_null_in_a_needed_field_of_a_fill_is_malformed(field: str) -> None:
    assert outcome(mutate(p.ORDER_TRADE_UPDATE_FILL, {field: None})) == MALFORMED


def test_the_issue_s_nulls_no_longer_reject_a_liquidation_fill() -> None:
    nulls = dict.fromkeys(("sp", "V", "si", "ss", "gtd", "pm", "wt", "ot"))
    got = outcome(mutate(p.ORDER_TRADE_UPDATE_LIQUIDATION, nulls))
    assert isinstance(got, tuple) and got[0] is not None
    assert got[0].realized_pnl == Decimal("-120.50000000")
    # rp is the fill's realized PnL: a null there is malformed, never a silent zero ...
    assert outcome(mutate(p.ORDER_TRADE_UPDATE_LIQUIDATION, {"rp": None})) == MALFORMED
    # ... while a transition that is no fill does not need it.
    got = outcome(mutate(p.ORDER_TRADE_UPDATE_NEW_TRAILING, {"rp": None, **nulls}))
    assert isinstance(got, tuple) and got[0] is None and got[1].status == "NEW"


def test_account_update_accepts_a_number_for_bep_but_not_for_pa() -> None:
    obj = msgspec.json.decode(p.ACCOUNT_UPDATE)
    obj["a"]["P"][0]["bep"] = 0.0
    obj["a"]["P"][1]["up"] = None
    event = DECODER.decode(msgspec.json.encode(obj))
    assert isinstance(event, AccountUpdate)
    validate_account_update(event)
    for bad in (1.5, None, "sNaN", "NaN", "Infinity", "1e400", ""):
        obj["a"]["P"][1]["pa"] = bad
        try:
            event = DECODER.decode(msgspec.json.encode(obj))
        except FrameError as exc:
            assert exc.kind == MALFORMED
            continue
        assert isinstance(event, AccountUpdate)
        with pytest.raises(ValueError, match="pa"):
            validate_account_update(event)
