"""The same trade through both parsers: the stream's ORDER_TRADE_UPDATE and REST's userTrades row.

Either both yield the same fill (the path-specific fields aside: source, event time, receipt
time) or both reject the trade as malformed. Never one accepting what the other refuses, never
two different fills for one trade.
"""

from __future__ import annotations

import json
from decimal import Context, Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_frames import NOT_AMOUNTS
from fillstream.binance.usdm.parse import (
    OrderInfo,
    decode_rows,
    fill_from_order_update,
    fill_from_user_trade,
)
from fillstream.binance.usdm.rows import UserTrade
from fillstream.ledger import Fill, FillSource, Market
from fillstream.stream.decode import FrameDecoder, FrameError

DECODER = FrameDecoder()
MALFORMED = "malformed"

BASE: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "id": 698759,
    "orderId": 25851813,
    "side": "SELL",
    "positionSide": "SHORT",
    "price": "7819.01",
    "qty": "0.002",
    "commission": "0.07819010",
    "commissionAsset": "USDT",
    "realizedPnl": "-0.91539999",
    "maker": False,
    "time": 1569514978020,
}


def stream_frame(t: dict[str, Any]) -> bytes:
    order = {
        "s": t["symbol"],
        "c": "cid-1",
        "S": t["side"],
        "o": "LIMIT",
        "f": "GTC",
        "q": "1",
        "p": "0",
        "ap": "0",
        "sp": "0",
        "x": "TRADE",
        "X": "PARTIALLY_FILLED",
        "i": t["orderId"],
        "l": t["qty"],
        "z": t["qty"],
        "L": t["price"],
        "N": t["commissionAsset"],
        "n": t["commission"],
        "T": t["time"],
        "t": t["id"],
        "b": "0",
        "a": "0",
        "m": t["maker"],
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": "LIMIT",
        "ps": t["positionSide"],
        "cp": False,
        "pP": False,
        "si": 0,
        "ss": 0,
        "rp": t["realizedPnl"],
        "V": "NONE",
        "pm": "NONE",
        "gtd": 0,
        "er": "0",
    }
    event = {"e": "ORDER_TRADE_UPDATE", "E": 1569514978030, "T": t["time"], "o": order}
    return json.dumps(event).encode()


def via_stream(t: dict[str, Any]) -> Fill | str | None:
    try:
        event = DECODER.decode(stream_frame(t))
        fill = fill_from_order_update(event, "acct", Market.USDM)  # type: ignore[arg-type]
    except FrameError as exc:
        assert exc.kind == MALFORMED
        return MALFORMED
    except ValueError:
        return MALFORMED
    return None if fill is None else msgspec.structs.replace(fill, event_time_ms=None)


INFO = OrderInfo(client_order_id="cid-1", order_type="LIMIT", orig_type="LIMIT", reduce_only=False)


def via_rest(t: dict[str, Any]) -> Fill | str:
    # REST bodies reach the parser as stdlib-decoded JSON, like python-binance's.
    rows, bad = decode_rows(json.loads(json.dumps([t])), UserTrade)
    if bad:
        return MALFORMED
    try:
        fill = fill_from_user_trade(rows[0], account="acct", market=Market.USDM, info=INFO)
    except ValueError:
        return MALFORMED
    return msgspec.structs.replace(fill, source=FillSource.STREAM)


def both(t: dict[str, Any]) -> tuple[Fill | str | None, Fill | str]:
    return via_stream(t), via_rest(t)


AMOUNT_FIELDS = ("price", "qty", "commission", "realizedPnl")
BAD_AMOUNTS = NOT_AMOUNTS


@pytest.mark.parametrize("field", AMOUNT_FIELDS)
@pytest.mark.parametrize("text", BAD_AMOUNTS)
def test_bad_amounts_are_malformed_on_both_paths(field: str, text: str) -> None:
    assert both({**BASE, field: text}) == (MALFORMED, MALFORMED)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"price": "76950.123456789012345678", "qty": "0.000000000000000001"},  # 18 decimals
        {"price": "0.000000000000000001", "qty": "99999999999999999999"},
        {"commission": "-0.00391000"},  # a maker rebate: negative commission
        {"commission": "0", "commissionAsset": "BNB"},
        {"realizedPnl": "0"},
        {"price": "7.819E+3", "qty": "2E-3"},  # exponent notation, in range
        {"side": "BUY", "positionSide": "LONG", "maker": True},
        {"id": 2**63 - 1, "orderId": 2**63 - 1},
    ],
)
def test_good_trades_are_the_same_fill_on_both_paths(change: dict[str, Any]) -> None:
    stream, rest = both({**BASE, **change})
    assert isinstance(stream, Fill), stream
    assert stream == rest
    assert stream.quote_qty == Context(prec=200).multiply(stream.price, stream.qty)  # exact


@pytest.mark.parametrize(
    "change",
    [
        {"id": 18446744073709551615},  # reached PostgreSQL and blocked the batch
        {"id": 2**63},
        {"id": -1},
        {"orderId": -1},
        {"time": 10**20},
        {"price": "0"},
        {"qty": "-0.002"},
        {"side": "HOLD"},
        {"positionSide": "UP"},
        {"commissionAsset": ""},  # a fee in no asset
    ],
)
def test_bad_trades_are_malformed_on_both_paths(change: dict[str, Any]) -> None:
    assert both({**BASE, **change}) == (MALFORMED, MALFORMED)


def test_zero_quantity_is_no_fill() -> None:
    # An execution of 0 is no fill on the stream (binance-facts §3); a REST row of one is wrong.
    event = DECODER.decode(stream_frame({**BASE, "qty": "0"}))
    assert fill_from_order_update(event, "acct", Market.USDM) is None  # type: ignore[arg-type]
    assert via_rest({**BASE, "qty": "0"}) == MALFORMED


_numbers = st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str)
_texts = _numbers | st.sampled_from(BAD_AMOUNTS) | st.text(max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries({f: _texts for f in AMOUNT_FIELDS}),
    st.integers(-(2**65), 2**65),
)
def test_any_amounts_agree_across_paths(amounts: dict[str, str], trade_id: int) -> None:
    stream, rest = both({**BASE, **amounts, "id": trade_id})
    if stream is None:  # a trade id or a quantity of 0: no fill on the stream
        assert trade_id == 0 or Decimal(amounts["qty"]).is_zero()
        assert rest == MALFORMED
        return
    assert stream == rest
    if isinstance(stream, Fill):
        for value in (stream.price, stream.qty, stream.commission, stream.realized_pnl):
            assert value.is_finite()
        assert stream.price > 0 and stream.qty > 0
