"""Venue-shaped domain objects and JetStream read-back for the storage and pipeline tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import msgspec
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fillstream.ledger import (
    Fill,
    FillSource,
    IngestBatch,
    Market,
    OrderUpdate,
    PositionSide,
    Side,
)

D = Decimal
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def make_fill(
    trade_id: int,
    *,
    account: str = "alpha",
    symbol: str = "BTCUSDT",
    side: Side = Side.BUY,
    qty: str = "0.010",
    price: str = "94000.10",
    rp: str = "0",
    order_id: int | None = None,
    source: FillSource = FillSource.STREAM,
    position_side: PositionSide = PositionSide.BOTH,
    client_order_id: str = "web_abc",
    order_type: str = "LIMIT",
    received_at_ns: int | None = None,
) -> Fill:
    return Fill(
        account=account,
        market=Market.USDM,
        symbol=symbol,
        trade_id=trade_id,
        order_id=order_id if order_id is not None else 8_000_000_000 + trade_id,
        side=side,
        position_side=position_side,
        price=D(price),
        qty=D(qty),
        quote_qty=D(price) * D(qty),
        commission=D("0.37600040"),
        commission_asset="USDT",
        realized_pnl=D(rp),
        maker=False,
        trade_time_ms=T0 + trade_id,
        source=source,
        client_order_id=client_order_id,
        order_type=order_type,
        orig_type=order_type,
        reduce_only=False,
        event_time_ms=T0 + trade_id + 1,
        received_at_ns=received_at_ns,
    )


def make_order(
    order_id: int,
    status: str,
    update_time_ms: int,
    *,
    account: str = "alpha",
    symbol: str = "BTCUSDT",
    filled: str = "0",
    source: FillSource = FillSource.STREAM,
) -> OrderUpdate:
    return OrderUpdate(
        account=account,
        market=Market.USDM,
        symbol=symbol,
        order_id=order_id,
        client_order_id=f"web_{order_id}",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        order_type="LIMIT",
        orig_type="LIMIT",
        status=status,
        price=D("94000.10"),
        avg_price=D("94000.10") if filled != "0" else D(0),
        orig_qty=D("0.030"),
        filled_qty=D(filled),
        stop_price=D(0),
        reduce_only=False,
        close_position=False,
        update_time_ms=update_time_ms,
        source=source,
        execution_type="TRADE" if filled != "0" else "NEW",
    )


def batch_of(
    *fills: Fill, orders: tuple[OrderUpdate, ...] = (), source: FillSource | None = None
) -> IngestBatch:
    first = fills[0] if fills else orders[0]
    return IngestBatch(
        account=first.account,
        market=first.market,
        source=source or first.source,
        fills=fills,
        orders=orders,
    )


class StreamMessage(msgspec.Struct, frozen=True):
    seq: int
    subject: str
    msg_id: str
    data: bytes


async def read_stream(url: str, stream: str, subject: str = ">") -> list[StreamMessage]:
    """Every message currently in ``stream`` (optionally filtered), in stream order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        if total == 0:
            return []
        filter_subject = subject if subject != ">" else (info.config.subjects or [">"])[0]
        sub = await js.pull_subscribe(
            filter_subject,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        wanted = (await sub.consumer_info()).num_pending or 0
        out: list[StreamMessage] = []
        while len(out) < wanted:
            try:
                msgs = await sub.fetch(batch=min(1000, wanted - len(out)), timeout=5.0)
            except TimeoutError:  # nats raises both its own and the builtin one
                continue
            for m in msgs:
                out.append(
                    StreamMessage(
                        seq=m.metadata.sequence.stream,
                        subject=m.subject,
                        msg_id=(m.headers or {}).get("Nats-Msg-Id", ""),
                        data=m.data,
                    )
                )
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def stream_count(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0, what: str = "condition"
) -> None:
    """Poll until ``check()`` is true (no fixed sleeps in assertions)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from None
