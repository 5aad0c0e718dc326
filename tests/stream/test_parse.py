"""Wire → ledger conversion (Decimal happens here and only here)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from fillstream.binance.usdm.events import AccountUpdate, AlgoUpdate, OrderTradeUpdate
from fillstream.binance.usdm.parse import (
    algo_link_from,
    fill_from_order_update,
    is_fill,
    order_update_from,
    positions_from_account_update,
)
from fillstream.ledger import FillSource, Market, PositionSide, Side
from fillstream.stream.decode import FrameDecoder
from tests.stream import payloads as p

DECODER = FrameDecoder()


def _otu(frame: bytes, **order: object) -> OrderTradeUpdate:
    event = DECODER.decode(frame)
    assert isinstance(event, OrderTradeUpdate)
    if order:
        event = msgspec.structs.replace(event, o=msgspec.structs.replace(event.o, **order))
    return event


def test_fill_from_partial_fill() -> None:
    fill = fill_from_order_update(
        _otu(p.ORDER_TRADE_UPDATE_FILL), "alpha", Market.USDM, received_at_ns=123
    )
    assert fill is not None
    assert fill.key.trade_id == 6123456789 and fill.key.order_id == 812345678901
    assert (fill.symbol, fill.side, fill.position_side) == ("BTCUSDT", Side.SELL, PositionSide.BOTH)
    assert fill.price == Decimal("76950.00") and fill.qty == Decimal("0.004")
    assert fill.quote_qty == Decimal("307.80000")
    assert fill.commission == Decimal("0.12312000") and fill.commission_asset == "USDT"
    assert fill.realized_pnl == Decimal("1.84000000")
    assert fill.maker is True and fill.reduce_only is False
    assert (fill.client_order_id, fill.order_type, fill.orig_type) == (
        "sidecar-7f3a91",
        "LIMIT",
        "LIMIT",
    )
    assert fill.trade_time_ms == 1789478401230 and fill.event_time_ms == 1789478401234
    assert fill.received_at_ns == 123 and fill.source is FillSource.STREAM
    assert all(isinstance(v, Decimal) for v in (fill.price, fill.qty, fill.commission))


def test_liquidation_calculated_is_a_fill_without_commission() -> None:
    fill = fill_from_order_update(_otu(p.ORDER_TRADE_UPDATE_LIQUIDATION), "a", Market.USDM)
    assert fill is not None
    assert fill.commission == 0 and fill.commission_asset == ""
    assert fill.client_order_id == "autoclose-1789478401999" and fill.order_type == "LIQUIDATION"
    assert fill.realized_pnl == Decimal("-120.5")


@pytest.mark.parametrize(
    "change",
    [
        {"x": "NEW"},
        {"x": "CANCELED"},
        {"x": "AMENDMENT"},
        {"x": "EXPIRED"},
        {"t": 0},
        {"l": "0"},
        {"l": "0.000"},
    ],
)
def test_not_a_fill(change: dict[str, object]) -> None:
    event = _otu(p.ORDER_TRADE_UPDATE_FILL, **change)
    assert not is_fill(event)
    assert fill_from_order_update(event, "a", Market.USDM) is None
    # ...but every order event is an order transition.
    assert order_update_from(event, "a", Market.USDM).order_id == 812345678901


def test_order_update() -> None:
    update = order_update_from(_otu(p.ORDER_TRADE_UPDATE_NEW_TRAILING), "a", Market.USDM)
    assert update.status == "NEW" and update.execution_type == "NEW"
    assert (
        update.order_type == "TRAILING_STOP_MARKET" and update.orig_type == "TRAILING_STOP_MARKET"
    )
    assert update.stop_price == Decimal("7103.04") and update.filled_qty == 0
    assert update.position_side is PositionSide.LONG and update.side is Side.SELL
    assert update.update_time_ms == 1568879465650 and update.expiry_reason == "0"
    assert not update.terminal


def test_bad_enum_or_amount_raises_value_error() -> None:
    with pytest.raises(ValueError, match="side"):
        fill_from_order_update(_otu(p.ORDER_TRADE_UPDATE_FILL, S="HOLD"), "a", Market.USDM)
    with pytest.raises(ValueError, match="position side"):
        order_update_from(_otu(p.ORDER_TRADE_UPDATE_FILL, ps="UP"), "a", Market.USDM)
    with pytest.raises(ValueError, match="decimal"):
        fill_from_order_update(_otu(p.ORDER_TRADE_UPDATE_FILL, L="7e3x"), "a", Market.USDM)


def test_algo_links() -> None:
    triggered = DECODER.decode(p.ALGO_UPDATE_TRIGGERED)
    assert isinstance(triggered, AlgoUpdate)
    link = algo_link_from(triggered, "a", Market.USDM)
    assert link.order_id == 8389765543210 and link.algo_id == 1000000246753436
    assert (link.algo_type, link.status, link.client_algo_id) == (
        "STOP_MARKET",
        "TRIGGERED",
        "sl-7f3a91",
    )
    canceled = DECODER.decode(p.ALGO_UPDATE_CANCELED)
    assert isinstance(canceled, AlgoUpdate)
    assert algo_link_from(canceled, "a", Market.USDM).order_id is None
    bad = msgspec.structs.replace(triggered, o=msgspec.structs.replace(triggered.o, ai="x1"))
    with pytest.raises(ValueError, match="ai"):
        algo_link_from(bad, "a", Market.USDM)


def test_account_update_positions() -> None:
    event = DECODER.decode(p.ACCOUNT_UPDATE)
    assert isinstance(event, AccountUpdate)
    positions = positions_from_account_update(event, "a", Market.USDM)
    assert [(x.symbol, x.position_side, x.qty) for x in positions] == [
        ("BTCUSDT", PositionSide.BOTH, Decimal(0)),
        ("ETHUSDT", PositionSide.SHORT, Decimal("-1.5")),
    ]
    assert positions[1].entry_price == Decimal("2400.10")
