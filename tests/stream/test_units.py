"""Pure pieces: settings, backoff, activity bookkeeping."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fillstream.binance.usdm.events import AccountPosition, AccountUpdate, AccountUpdateData
from fillstream.ledger import (
    AlgoLink,
    ConfigError,
    FillSource,
    Market,
    OrderUpdate,
    PositionSide,
    Side,
)
from fillstream.stream.activity import TRACKED_MAX, AccountActivity, RecentSet
from fillstream.stream.backoff import Backoff
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings, mask_url


def test_urls_in_every_form() -> None:
    base = StreamSettings(ws_url="wss://fstream.binance.com/")
    assert base.url("k/1").startswith(
        "wss://fstream.binance.com/private/ws?listenKey=k%2F1&events=ORDER_TRADE_UPDATE/TRADE_LITE/"
    )
    path = StreamSettings(ws_url="ws://127.0.0.1:9", url_form="path")
    assert path.url("abc") == "ws://127.0.0.1:9/private/ws/abc"
    combined = StreamSettings(url_form="stream", events=("ORDER_TRADE_UPDATE",))
    assert combined.url("abc") == (
        "wss://fstream.binance.com/private/stream?listenKey=abc&events=ORDER_TRADE_UPDATE"
    )
    assert "abcdef" not in mask_url(path.url("abcdef"), "abcdef")


@pytest.mark.parametrize(
    "bad",
    [
        {"ws_url": "http://x"},
        {"ping_interval_s": 0},
        {"backoff_initial_s": 5, "backoff_max_s": 1},
        {"keepalive_interval_s": 3500, "keepalive_jitter_s": 200},
        {"queue_max": 0},
        {"events": ("ACCOUNT_UPDATE",)},
        {"gap_margin_ms": -1},
    ],
)
def test_settings_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        StreamSettings(**bad).validate()  # type: ignore[arg-type]  # fields vary per case


def test_backoff_jittered_capped_and_retry_after_floor() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    ceilings = []
    for _ in range(10):
        ceiling = backoff.ceiling()
        ceilings.append(ceiling)
        assert ceiling / 2 <= backoff.next_delay() <= ceiling  # never (almost) at once
    assert ceilings[:4] == [0.5, 1.0, 2.0, 4.0] and max(ceilings) == 4.0
    assert 30.0 <= backoff.next_delay(retry_after_s=30.0) <= 31.0  # spread past Retry-After
    backoff.reset()
    assert backoff.ceiling() == 0.5


@given(st.lists(st.integers(0, 50), max_size=400), st.integers(1, 20))
def test_recent_set_remembers_exactly_the_last_n_distinct(keys: list[int], size: int) -> None:
    recent: RecentSet[int] = RecentSet(size)
    window: list[int] = []
    for key in keys:
        added = recent.add(key)
        assert added == (key not in window)
        if added:
            window.append(key)
            window = window[-size:]
        assert set(window) == {k for k in range(51) if k in recent}
        assert len(recent) == len(window)


def _order(symbol: str, order_id: int, status: str) -> OrderUpdate:
    return OrderUpdate(
        account="a",
        market=Market.USDM,
        symbol=symbol,
        order_id=order_id,
        client_order_id="c",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        order_type="LIMIT",
        orig_type="LIMIT",
        status=status,
        price=Decimal(1),
        avg_price=Decimal(0),
        orig_qty=Decimal(1),
        filled_qty=Decimal(0),
        stop_price=Decimal(0),
        reduce_only=False,
        close_position=False,
        update_time_ms=1,
        source=FillSource.STREAM,
    )


def test_activity_dedup_trade_lite_and_exposure() -> None:
    activity = AccountActivity(recent_fills=100, symbol_horizon_s=60)
    # TRADE_LITE first, then its ORDER_TRADE_UPDATE: matched, not unmatched later.
    assert activity.trade_lite(("BTCUSDT", 10, 1), 1000, now=0.0)
    assert activity.fill(("BTCUSDT", 10, 1), now=0.5)
    assert not activity.fill(("BTCUSDT", 10, 1), now=0.6)  # duplicate
    assert not activity.trade_lite(("BTCUSDT", 10, 1), 1000, now=0.7)  # late twin
    assert activity.unmatched_lite(now=100.0, grace_s=5) == []
    # A TRADE_LITE never followed by its fill event.
    assert activity.trade_lite(("ETHUSDT", 7, 2), 2000, now=1.0)
    assert activity.unmatched_lite(now=3.0, grace_s=5) == []
    assert activity.unmatched_lite(now=7.0, grace_s=5) == [(("ETHUSDT", 7, 2), 2000)]
    assert activity.newest_trade_id == {"BTCUSDT": 10, "ETHUSDT": 7}
    # Exposure: open orders, working algos, non-zero positions.
    activity.order(_order("SOLUSDT", 5, "NEW"), now=1.0)
    activity.algo(
        AlgoLink(
            account="a",
            market=Market.USDM,
            symbol="BNBUSDT",
            algo_id=9,
            client_algo_id="x",
            algo_type="STOP_MARKET",
            status="NEW",
            order_id=None,
            update_time_ms=1,
        ),
        now=1.0,
    )
    activity.account_update(
        AccountUpdate(
            E=2,
            a=AccountUpdateData(
                P=(
                    AccountPosition(s="XRPUSDT", pa="-3"),
                    AccountPosition(s="DOGEUSDT", pa="0.000", ps="LONG"),
                )
            ),
        ),
        now=1.0,
    )
    assert activity.exposed_symbols() == {"SOLUSDT", "BNBUSDT", "XRPUSDT"}
    activity.order(_order("SOLUSDT", 5, "FILLED"), now=2.0)
    assert activity.exposed_symbols() == {"BNBUSDT", "XRPUSDT"}
    assert activity.active_symbols(now=30.0) >= {"BTCUSDT", "SOLUSDT", "XRPUSDT"}
    assert "BTCUSDT" not in activity.active_symbols(now=500.0)


async def test_frame_buffer_is_fifo_bounded_and_wakes_both_sides() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(3)
    for i in range(3):
        buffer.put_nowait(i)
    assert buffer.full()
    blocked = asyncio.create_task(buffer.put(3))
    await asyncio.sleep(0)
    assert not blocked.done()  # full: the writer waits (backpressure)
    assert await buffer.take(2) == [0, 1]
    await blocked
    assert await buffer.take(10) == [2, 3]
    reader = asyncio.create_task(buffer.take(10))
    await asyncio.sleep(0)
    assert not reader.done()  # empty: the reader waits
    buffer.put_nowait(4)
    assert await reader == [4]
    with pytest.raises(ValueError, match="maxsize"):
        FrameBuffer(0)


def test_activity_is_bounded_whatever_the_stream_announces() -> None:
    # A feed announcing orders that never end and symbols without number (broken, hostile or a
    # fuzzer) keeps every map at TRACKED_MAX, forgetting the oldest first.
    activity = AccountActivity(recent_fills=100, symbol_horizon_s=60)
    extra = 50
    for n in range(TRACKED_MAX + extra):
        symbol = f"S{n}USDT"
        activity.order(_order(symbol, n, "NEW"), now=1.0)
        activity.trade_lite((symbol, n, n), 1000, now=1.0)
    assert len(activity.open_orders) == TRACKED_MAX
    assert len(activity.symbol_seen) == TRACKED_MAX
    assert len(activity.newest_trade_id) == TRACKED_MAX
    assert len(activity.pending_lite) == TRACKED_MAX
    assert ("S0USDT", 0) not in activity.open_orders
    last = TRACKED_MAX + extra - 1
    assert (f"S{last}USDT", last) in activity.open_orders
    assert len(activity.exposed_symbols()) == TRACKED_MAX
