"""REST bodies are decoded once into their row types; a row that does not fit keeps its place."""

from __future__ import annotations

import pytest

from fillstream.binance import VenueError
from fillstream.binance.rest import decode_row, decode_rows
from fillstream.binance.usdm import parse
from fillstream.binance.usdm.rows import Order, UserTrade
from fillstream.binance.venue import BadRow

_TRADE = (
    b'{"symbol":"BTCUSDT","id":7,"orderId":9,"price":"100.5","qty":"0.01","commission":"0.01",'
    b'"commissionAsset":"USDT","time":1700000000000,"side":"BUY","realizedPnl":"0"}'
)


def test_a_page_of_good_rows_is_typed() -> None:
    rows = decode_rows(
        b"[" + _TRADE + b"," + _TRADE.replace(b'"id":7', b'"id":8') + b"]", UserTrade, "userTrades"
    )
    assert [r.id for r in rows if isinstance(r, UserTrade)] == [7, 8]


def test_a_bad_row_keeps_its_place_and_the_page_its_length() -> None:
    body = (
        b"["
        + _TRADE
        + b',{"symbol":"BTCUSDT","id":"x"},'
        + _TRADE.replace(b'"id":7', b'"id":8')
        + b"]"
    )
    rows = decode_rows(body, UserTrade, "userTrades")
    assert len(rows) == 3  # a full page stays a full page: pagination must not stop early
    bad = rows[1]
    assert isinstance(bad, BadRow) and bad.raw == {"symbol": "BTCUSDT", "id": "x"}
    good, rejected = parse.decode_rows(rows, UserTrade)
    assert [r.id for r in good] == [7, 8]
    assert rejected == [{"symbol": "BTCUSDT", "id": "x"}]


@pytest.mark.parametrize("body", [b'{"code":0}', b"[1,", b"not json"])
def test_a_body_that_is_no_array_is_a_venue_error(body: bytes) -> None:
    with pytest.raises(VenueError) as caught:
        decode_rows(body, UserTrade, "userTrades")
    assert caught.value.endpoint == "userTrades"


def test_one_row_or_a_bad_row() -> None:
    order = (
        b'{"symbol":"BTCUSDT","orderId":9,"clientOrderId":"c","side":"BUY","type":"LIMIT",'
        b'"status":"FILLED"}'
    )
    assert isinstance(decode_row(order, Order, "order"), Order)
    bad = decode_row(b'{"symbol":"BTCUSDT"}', Order, "order")
    assert isinstance(bad, BadRow)
    with pytest.raises(ValueError):
        parse.decode_row(bad, Order)
