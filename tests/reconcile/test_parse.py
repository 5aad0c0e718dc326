"""REST rows → ledger types, over rows shaped exactly like binance-facts.md §4; and the small
pure pieces of the reconciler (gap merging, settings validation)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from fillstream.binance.usdm.parse import (
    actual_order_id,
    algo_link_from_algo_order,
    correction_from_risk,
    decode_rows,
    fill_from_user_trade,
    order_info,
    order_update_from_order,
)
from fillstream.binance.usdm.rows import AlgoOrder, Order, PositionRisk, UserTrade
from fillstream.ledger import FillSource, Gap, Market, PositionSide, Side
from fillstream.reconcile import ReconcileSettings, merge_gaps

USER_TRADE = {
    "buyer": False,
    "commission": "-0.07819010",
    "commissionAsset": "USDT",
    "id": 698759,
    "maker": False,
    "orderId": 25851813,
    "price": "7819.01",
    "qty": "0.002",
    "quoteQty": "15.63802",
    "realizedPnl": "-0.91539999",
    "side": "SELL",
    "positionSide": "SHORT",
    "symbol": "BTCUSDT",
    "time": 1569514978020,
    "marginAsset": "USDT",  # 2026-08 additions are ignored
    "baseQty": "0.002",
    "pair": "BTCUSDT",
}
ORDER = {
    "avgPrice": "0.00000",
    "clientOrderId": "autoclose-1788372012345",
    "cumQuote": "0",
    "executedQty": "0.002",
    "orderId": 25851813,
    "origQty": "0.002",
    "origType": "LIQUIDATION",
    "price": "0",
    "reduceOnly": True,
    "side": "SELL",
    "positionSide": "SHORT",
    "status": "FILLED",
    "stopPrice": "0",
    "closePosition": False,
    "symbol": "BTCUSDT",
    "time": 1569514978000,
    "timeInForce": "IOC",
    "type": "LIQUIDATION",
    "updateTime": 1569514978020,
}
ALGO = {
    "algoId": 2148719,
    "clientAlgoId": "sl-7f3a91",
    "algoType": "CONDITIONAL",
    "orderType": "STOP_MARKET",
    "symbol": "ETHUSDT",
    "algoStatus": "FINISHED",
    "actualOrderId": "8389765543210",
    "createTime": 1789478400000,
    "updateTime": 1789478500105,
    "triggerTime": 1789478500099,
}


def test_user_trade_with_its_order_becomes_a_reconcile_fill() -> None:
    trade = msgspec.convert(USER_TRADE, UserTrade)
    info = order_info(msgspec.convert(ORDER, Order))
    fill = fill_from_user_trade(trade, account="a", market=Market.USDM, info=info)
    assert fill.key.trade_id == 698759
    assert fill.key.order_id == 25851813
    assert fill.side is Side.SELL
    assert fill.position_side is PositionSide.SHORT
    assert fill.price == Decimal("7819.01")
    assert fill.commission == Decimal("-0.07819010")  # the raw sign, as the venue sent it
    assert fill.realized_pnl == Decimal("-0.91539999")
    assert fill.source is FillSource.RECONCILE
    assert (fill.client_order_id, fill.order_type, fill.orig_type, fill.reduce_only) == (
        "autoclose-1788372012345",
        "LIQUIDATION",
        "LIQUIDATION",
        True,
    )
    bare = fill_from_user_trade(trade, account="a", market=Market.USDM, info=None)
    assert bare.client_order_id is None


def test_order_row_becomes_an_order_state() -> None:
    update = order_update_from_order(msgspec.convert(ORDER, Order), account="a", market=Market.USDM)
    assert update.status == "FILLED"
    assert update.terminal
    assert update.update_time_ms == 1569514978020
    assert update.filled_qty == Decimal("0.002")


def test_algo_row_links_its_triggered_child() -> None:
    algo = msgspec.convert(ALGO, AlgoOrder)
    link = algo_link_from_algo_order(algo, account="a", market=Market.USDM)
    assert link.order_id == 8389765543210
    assert link.algo_type == "STOP_MARKET"
    untriggered = msgspec.convert({**ALGO, "actualOrderId": "", "algoStatus": "NEW"}, AlgoOrder)
    assert actual_order_id(untriggered) is None


def test_vanished_position_corrects_to_zero() -> None:
    row = msgspec.convert(
        {
            "symbol": "BTCUSDT",
            "positionSide": "BOTH",
            "positionAmt": "-0.010",
            "entryPrice": "76950.0",
            "updateTime": 1,
        },
        PositionRisk,
    )
    c = correction_from_risk(
        row,
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=PositionSide.BOTH,
        time_ms=5,
    )
    assert (c.qty, c.entry_price) == (Decimal("-0.010"), Decimal("76950.0"))
    gone = correction_from_risk(
        None,
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=PositionSide.BOTH,
        time_ms=5,
    )
    assert (gone.qty, gone.entry_price) == (Decimal(0), Decimal(0))


def test_malformed_rows_are_set_aside_not_fatal() -> None:
    rows = [USER_TRADE, {"id": "x"}, {**USER_TRADE, "id": 698760}]
    good, bad = decode_rows(rows, UserTrade)
    assert [t.id for t in good] == [698759, 698760]
    assert bad == [{"id": "x"}]
    odd = msgspec.convert({**USER_TRADE, "price": "NaN"}, UserTrade)
    with pytest.raises(ValueError, match="price"):
        fill_from_user_trade(odd, account="a", market=Market.USDM, info=None)


def test_gaps_merge_into_one_window() -> None:
    def gap(since: int, until: int | None, symbols: frozenset[str]) -> Gap:
        return Gap(
            account="a",
            market=Market.USDM,
            since_ms=since,
            until_ms=until,
            reason="reconnect",
            symbols=symbols,
        )

    merged = merge_gaps([gap(10, 20, frozenset({"X"})), gap(5, 30, frozenset({"Y"}))])
    assert (merged.since_ms, merged.until_ms, merged.symbols) == (5, 30, frozenset({"X", "Y"}))
    assert merge_gaps([gap(10, 20, frozenset({"X"})), gap(5, None, frozenset())]).until_ms is None
    assert merge_gaps([gap(10, 20, frozenset({"X"})), gap(5, 8, frozenset())]).symbols == set()


def test_settings_are_validated_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        ReconcileSettings(horizon_days=91)
    with pytest.raises(ValueError, match="interval_s"):
        ReconcileSettings(interval_s=0)
    with pytest.raises(msgspec.ValidationError, match="settle_delay_s"):
        msgspec.convert({"settle_delay_s": -1}, ReconcileSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"nope": 1}, ReconcileSettings)
