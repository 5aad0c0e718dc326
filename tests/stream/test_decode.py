"""Two-stage decode over frames shaped like binance-facts.md §2."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from fillstream.binance.usdm.events import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    ConditionalOrderTriggerReject,
    ListenKeyExpired,
    OrderTradeUpdate,
    TradeLite,
)
from fillstream.stream.decode import FrameDecoder, FrameError
from tests.stream import payloads as p

DECODER = FrameDecoder()


@pytest.mark.parametrize("name", sorted(p.ALL_EVENTS))
def test_every_usdm_event_decodes_bare_combined_and_reordered(name: str) -> None:
    frame = p.ALL_EVENTS[name]
    bare = DECODER.decode(frame)
    assert bare.e == name
    assert DECODER.decode(p.combined(frame)) == bare
    assert DECODER.decode(p.reordered(frame)) == bare
    assert DECODER.decode(frame.decode()) == bare  # text frames as str work too


def test_order_trade_update_fields_keep_exchange_strings() -> None:
    event = DECODER.decode(p.ORDER_TRADE_UPDATE_FILL)
    assert isinstance(event, OrderTradeUpdate)
    o = event.o
    assert (o.s, o.x, o.X, o.i, o.t) == (
        "BTCUSDT",
        "TRADE",
        "PARTIALLY_FILLED",
        812345678901,
        6123456789,
    )
    assert (o.l, o.L, o.n, o.N, o.rp, o.er) == (
        "0.004",
        "76950.00",
        "0.12312000",
        "USDT",
        "1.84000000",
        "0",
    )
    assert event.E == 1789478401234


def test_optional_and_recent_fields() -> None:
    trailing = DECODER.decode(p.ORDER_TRADE_UPDATE_NEW_TRAILING)
    assert isinstance(trailing, OrderTradeUpdate)
    assert (trailing.o.AP, trailing.o.cr, trailing.o.t) == ("7476.89", "5.0", 0)
    liquidation = DECODER.decode(p.ORDER_TRADE_UPDATE_LIQUIDATION)
    assert isinstance(liquidation, OrderTradeUpdate)
    assert liquidation.o.N is UNSET and liquidation.o.n is UNSET  # no commission fields
    expired = DECODER.decode(p.LISTEN_KEY_EXPIRED_STRING_E)
    assert isinstance(expired, ListenKeyExpired) and expired.E == "1736996475556"
    funding = DECODER.decode(p.ACCOUNT_UPDATE_FUNDING)
    assert isinstance(funding, AccountUpdate) and funding.a.S == "BTCUSDT" and funding.a.P == ()
    multi = DECODER.decode(p.ACCOUNT_CONFIG_MULTI_ASSETS)
    assert isinstance(multi, AccountConfigUpdate) and multi.ai == {"j": True}  # never read
    reject = DECODER.decode(p.CONDITIONAL_ORDER_TRIGGER_REJECT)
    assert isinstance(reject, ConditionalOrderTriggerReject) and reject.or_ is not None
    assert reject.or_["i"] == 155618472834
    algo = DECODER.decode(p.ALGO_UPDATE_CANCELED)
    assert isinstance(algo, AlgoUpdate) and algo.o.ai == "" and algo.o.ia is None
    lite = DECODER.decode(p.TRADE_LITE)
    assert isinstance(lite, TradeLite) and lite.T > lite.E  # the docs' example: T > E


def test_unknown_fields_are_ignored() -> None:
    frame = p.TRADE_LITE[:-1] + b',"zz":{"nested":[1,2,3]},"newField":"x"}'
    assert isinstance(DECODER.decode(frame), TradeLite)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b"", "malformed"),
        (b"not json", "malformed"),
        (b"[1,2,3]", "malformed"),
        (b'{"e":"ORDER_TRADE_UPDATE","E":"soon","o":{}}', "malformed"),
        (b'{"e":"ORDER_TRADE_UPDATE","E":1,"o":{"s":"X"}}', "malformed"),
        (p.ORDER_TRADE_UPDATE_FILL[:-20], "malformed"),
        (b'{"e":"SOMETHING_NEW","E":1}', "unknown"),
        (b'{"E":1,"x":2}', "unknown"),
        (b'{"result":null,"id":1}', "unknown"),
        (b'{"stream":"k","data":{"e":"SOMETHING_NEW"}}', "unknown"),
        (b'{"stream":"k","data":[1]}', "malformed"),
        (b'{"stream":"k","data":{"e":"TRADE_LITE","E":1}}', "malformed"),
        (b'{"e":42}', "malformed"),
    ],
)
def test_bad_frames_raise_frame_error_with_kind(frame: bytes, kind: str) -> None:
    with pytest.raises(FrameError) as info:
        DECODER.decode(frame)
    assert info.value.kind == kind


def test_frame_error_excerpt_is_truncated() -> None:
    with pytest.raises(FrameError) as info:
        DECODER.decode(b'{"e":"NOPE","pad":"' + b"x" * 10_000 + b'"}')
    assert len(info.value.excerpt) < 300
    assert info.value.event_type == "NOPE"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_never_raises_anything_but_frame_error(frame: bytes | str) -> None:
    with contextlib.suppress(FrameError):
        DECODER.decode(frame)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(p.ALL_EVENTS)), st.data())
def test_truncated_or_mutated_events_never_crash(name: str, data: st.DataObject) -> None:
    frame = p.ALL_EVENTS[name]
    cut = data.draw(st.integers(0, len(frame)))
    pos = data.draw(st.integers(0, len(frame) - 1))
    byte = data.draw(st.integers(0, 255))
    for candidate in (frame[:cut], frame[:pos] + bytes([byte]) + frame[pos + 1 :]):
        with contextlib.suppress(FrameError):
            DECODER.decode(candidate)
