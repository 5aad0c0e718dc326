"""Spot wire events and REST rows → ledger types, over frames and rows shaped exactly like
binance-facts.md §5.3/§5.4 and binance-wave2.md §A.4/§A.6: the stream and the REST path give the
same fill, and bad input is a ``MalformedInput``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from fillstream.binance.products import EVENT_TYPES
from fillstream.binance.spot import parse
from fillstream.binance.spot.events import (
    SPOT_EVENT_TYPES,
    AssetBalance,
    BalanceUpdate,
    EventStreamTerminated,
    ExecutionReport,
    ExternalLockUpdate,
    ListStatus,
    OutboundAccountPosition,
    ServerShutdown,
)
from fillstream.binance.spot.rows import AccountInfo, MyTrade, SpotOrder
from fillstream.ledger import BalanceKind, FillSource, Market, PositionSide, Side
from fillstream.ledger.errors import MalformedInput
from fillstream.stream.decode import FrameDecoder, FrameError

# binance-facts.md §5.3, verbatim.
FACTS_FRAME = (
    '{"subscriptionId":0,"event":{"e":"executionReport","E":1499405658658,"s":"ETHBTC",'
    '"c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000",'
    '"p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE",'
    '"X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.40000000","z":"0.40000000",'
    '"L":"0.10264410","n":"0.00040000","N":"ETH","T":1499405658657,"t":12345,"I":8641984,'
    '"w":true,"m":true,"M":false,"O":1499405658657,"Z":"0.04105764","Y":"0.04105764",'
    '"Q":"0.00000000","W":1499405658657,"V":"NONE"}}'
)

# The same trade as GET /api/v3/myTrades returns it (§5.4 row shape).
MY_TRADE = {
    "symbol": "ETHBTC",
    "id": 12345,
    "orderId": 4293153,
    "orderListId": -1,
    "price": "0.10264410",
    "qty": "0.40000000",
    "quoteQty": "0.04105764",
    "commission": "0.00040000",
    "commissionAsset": "ETH",
    "time": 1499405658657,
    "isBuyer": True,
    "isMaker": True,
    "isBestMatch": True,
}

# GET /api/v3/order for it (§A.6 row shape, with the 2026-05-08 expiryReason).
SPOT_ORDER = {
    "symbol": "ETHBTC",
    "orderId": 4293153,
    "orderListId": -1,
    "clientOrderId": "mUvoqJxFIILMdfAW5iGSOW",
    "price": "0.10264410",
    "origQty": "1.00000000",
    "executedQty": "0.40000000",
    "cummulativeQuoteQty": "0.04105764",
    "status": "PARTIALLY_FILLED",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "stopPrice": "0.00000000",
    "icebergQty": "0.00000000",
    "time": 1499405658657,
    "updateTime": 1499405658657,
    "isWorking": True,
    "workingTime": 1499405658657,
    "origQuoteOrderQty": "0.000000",
    "selfTradePreventionMode": "NONE",
}

DECODER = FrameDecoder(SPOT_EVENT_TYPES)


def report(**changes: Any) -> ExecutionReport:
    body = json.loads(FACTS_FRAME)["event"]
    body.update(changes)
    event = DECODER.decode(json.dumps({"subscriptionId": 3, "event": body}))
    assert isinstance(event, ExecutionReport)
    return event


def test_the_spot_product_decodes_its_own_events() -> None:
    assert EVENT_TYPES[Market.SPOT] is SPOT_EVENT_TYPES
    event = DECODER.decode(FACTS_FRAME.encode())
    assert isinstance(event, ExecutionReport)
    assert (event.s, event.t, event.i, event.N, event.m) == ("ETHBTC", 12345, 4293153, "ETH", True)


def test_the_facts_frame_is_a_fill() -> None:
    fill = parse.stream_fill(report(), "acct-1", received_at_ns=7)
    assert fill is not None
    assert fill.key.market is Market.SPOT
    assert (fill.symbol, fill.trade_id, fill.order_id) == ("ETHBTC", 12345, 4293153)
    assert fill.side is Side.BUY and fill.position_side is PositionSide.BOTH
    assert fill.price == Decimal("0.10264410") and fill.qty == Decimal("0.40000000")
    assert fill.quote_qty == Decimal("0.04105764")
    assert (fill.commission, fill.commission_asset) == (Decimal("0.00040000"), "ETH")
    assert fill.realized_pnl == 0 and fill.maker
    assert (fill.client_order_id, fill.order_type) == ("mUvoqJxFIILMdfAW5iGSOW", "LIMIT")
    assert (fill.trade_time_ms, fill.event_time_ms, fill.received_at_ns) == (
        1499405658657,
        1499405658658,
        7,
    )
    assert fill.source is FillSource.STREAM


def test_a_my_trades_row_is_the_same_fill_as_its_execution_report() -> None:
    streamed = parse.stream_fill(report(), "acct-1")
    info = parse.order_info(msgspec.convert(SPOT_ORDER, SpotOrder))
    polled = parse.trade_fill(msgspec.convert(MY_TRADE, MyTrade), account="acct-1", info=info)
    assert streamed is not None
    assert polled.source is FillSource.RECONCILE
    assert msgspec.structs.replace(
        polled, source=FillSource.STREAM, event_time_ms=1499405658658
    ) == (streamed)


def test_a_zero_fee_has_no_asset_on_either_path() -> None:
    streamed = parse.stream_fill(report(n="0", N=None), "a")
    row = msgspec.convert(
        {**MY_TRADE, "commission": "0.00000000", "commissionAsset": "BNB"}, MyTrade
    )
    polled = parse.trade_fill(row, account="a", info=None)
    assert streamed is not None
    assert (streamed.commission, streamed.commission_asset) == (Decimal(0), "")
    assert (polled.commission, polled.commission_asset) == (Decimal(0), "")


@pytest.mark.parametrize(
    ("x", "t"), [("NEW", -1), ("CANCELED", -1), ("TRADE", -1), ("EXPIRED", -1), ("REPLACED", -1)]
)
def test_reports_that_are_not_trades_are_no_fills(x: str, t: int) -> None:
    assert parse.stream_fill(report(x=x, t=t), "a") is None


@pytest.mark.parametrize(
    "changes",
    [
        {"n": "0.1", "N": None},  # a fee in no asset
        {"l": "0"},  # a trade of nothing
        {"L": "NaN"},
        {"Y": "-1"},
        {"n": "-0.1"},
        {"S": "HOLD"},
        {"t": -2},
        {"s": ""},
    ],
)
def test_malformed_fills_raise(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedInput):
        parse.stream_fill(report(**changes), "a")


@pytest.mark.parametrize(
    "body",
    [
        {"x": "TRADE"},  # no symbol, ids, times
        {**json.loads(FACTS_FRAME)["event"], "i": -5},  # an order id below 0
        {**json.loads(FACTS_FRAME)["event"], "l": 0.4},  # a number where a string belongs
    ],
)
def test_malformed_frames_do_not_decode(body: dict[str, Any]) -> None:
    body = {"e": "executionReport", **body}
    with pytest.raises(FrameError) as err:
        DECODER.decode(json.dumps({"subscriptionId": 0, "event": body}))
    assert err.value.kind == "malformed"


def test_every_report_is_an_order_transition() -> None:
    update = parse.order_update(report(), "acct-1", received_at_ns=9)
    assert (update.market, update.symbol, update.order_id) == (Market.SPOT, "ETHBTC", 4293153)
    assert (update.status, update.execution_type, update.expiry_reason) == (
        "PARTIALLY_FILLED",
        "TRADE",
        None,
    )
    assert update.filled_qty == Decimal("0.4") and update.orig_qty == 1
    assert update.avg_price == Decimal("0.04105764") / Decimal("0.4")
    assert update.update_time_ms == 1499405658657 and update.received_at_ns == 9


def test_an_expiry_reason_and_the_original_client_id_of_a_cancel() -> None:
    expired = parse.order_update(
        report(x="EXPIRED", X="EXPIRED", t=-1, eR="UNFILLED_IOC_QUANTITY_EXPIRED"), "a"
    )
    assert expired.terminal and expired.expiry_reason == "UNFILLED_IOC_QUANTITY_EXPIRED"
    cancel = parse.order_update(report(x="CANCELED", X="CANCELED", c="cancel-req", C="mine"), "a")
    assert cancel.client_order_id == "mine"
    assert parse.order_update(report(z="0", Z="0"), "a").avg_price == 0


def test_order_rows_are_order_states() -> None:
    row = msgspec.convert({**SPOT_ORDER, "expiryReason": "OCO_TRIGGER"}, SpotOrder)
    update = parse.order_update_from_order(row, account="a")
    assert (update.status, update.expiry_reason, update.source) == (
        "PARTIALLY_FILLED",
        "OCO_TRIGGER",
        FillSource.RECONCILE,
    )
    assert update.avg_price == parse.order_update(report(), "a").avg_price
    negative = msgspec.convert({**SPOT_ORDER, "cummulativeQuoteQty": "-1.0"}, SpotOrder)
    assert parse.order_update_from_order(negative, account="a").avg_price == 0


def test_balance_events_are_balance_facts() -> None:
    position = DECODER.decode(
        b'{"subscriptionId":1,"event":{"e":"outboundAccountPosition","E":1564034571105,'
        b'"u":1564034571073,"B":[{"a":"ETH","f":"10000.000000","l":"0.000000"},'
        b'{"a":"BTC","f":"0.5","l":"0.1"}]}}'
    )
    assert isinstance(position, OutboundAccountPosition)
    eth, btc = parse.balance_changes(position, "a", received_at_ns=5)
    assert (eth.asset, eth.kind, eth.free, eth.locked, eth.delta) == (
        "ETH",
        BalanceKind.POSITION,
        Decimal(10000),
        Decimal(0),
        None,
    )
    assert (btc.time_ms, btc.event_time_ms, btc.received_at_ns) == (1564034571073, 1564034571105, 5)
    update = DECODER.decode(
        b'{"subscriptionId":1,"event":{"e":"balanceUpdate","E":1573200697110,"a":"BTC",'
        b'"d":"100.00000000","T":1573200697068}}'
    )
    assert isinstance(update, BalanceUpdate)
    (delta,) = parse.balance_changes(update, "a")
    assert (delta.kind, delta.delta, delta.time_ms, delta.free) == (
        BalanceKind.DELTA,
        Decimal(100),
        1573200697068,
        None,
    )
    lock = DECODER.decode(
        b'{"subscriptionId":1,"event":{"e":"externalLockUpdate","E":1581557507324,"a":"NEO",'
        b'"d":"-10.00000000","T":1581557507268}}'
    )
    assert isinstance(lock, ExternalLockUpdate)
    (locked,) = parse.balance_changes(lock, "a")
    assert (locked.kind, locked.delta) == (BalanceKind.EXTERNAL_LOCK, Decimal(-10))


def test_malformed_balances_raise() -> None:
    bad = OutboundAccountPosition(E=1, u=1, B=(AssetBalance(a="ETH", f="x", l="0"),))
    with pytest.raises(MalformedInput):
        parse.balance_changes(bad, "a")
    with pytest.raises(MalformedInput):
        parse.balance_changes(BalanceUpdate(E=1, a="", d="1", T=1), "a")


def test_account_balances_are_reconcile_facts() -> None:
    info = msgspec.convert(
        {
            "makerCommission": 15,
            "canTrade": True,
            "updateTime": 123456789,
            "accountType": "SPOT",
            "balances": [{"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"}],
            "permissions": ["SPOT"],
            "uid": 354937868,
        },
        AccountInfo,
    )
    (btc,) = parse.account_balances(info, account="a")
    assert (btc.asset, btc.free, btc.locked, btc.source, btc.time_ms) == (
        "BTC",
        Decimal("4723846.89208129"),
        Decimal(0),
        FillSource.RECONCILE,
        123456789,
    )


def test_lifecycle_and_list_events_decode() -> None:
    terminated = DECODER.decode(
        b'{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}'
    )
    assert isinstance(terminated, EventStreamTerminated)
    assert isinstance(
        DECODER.decode(b'{"event":{"e":"serverShutdown","E":1728973001334}}'), ServerShutdown
    )
    listed = DECODER.decode(
        b'{"subscriptionId":0,"event":{"e":"listStatus","E":1564035303637,"s":"ETHBTC","g":2,'
        b'"c":"OCO","l":"EXEC_STARTED","L":"EXECUTING","r":"NONE","C":"F4QN4G8DlFATFlIUQ0cjdD",'
        b'"T":1564035303625,"O":[{"s":"ETHBTC","i":17,"c":"AJYsMjErWJesZvqlJCTUgL"},'
        b'{"s":"ETHBTC","i":18,"c":"bfYPSQdLoqAJeNrOr9adzq"}]}}'
    )
    assert isinstance(listed, ListStatus)
    assert [o.i for o in listed.O] == [17, 18]
