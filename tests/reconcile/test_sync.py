"""Order sync and position sync against the simulator, with the real pipeline and stores.

- An order that looks open locally (the stream missed its cancel) is read over REST and its
  terminal transition published; an order the venue does not know (-2013, also not an algo
  order) is marked UNKNOWN and published.
- A ghost position (the book holds what the exchange does not) survives a backfill, so the
  exchange wins: ``position.corrected`` and a ``reconciled_unknown`` close. A position the
  book never saw (fills beyond the horizon) seeds the book the same way.
"""

from __future__ import annotations

import time
from decimal import Decimal

import msgspec

from fillstream.ledger import (
    Fill,
    FillSource,
    IngestBatch,
    Market,
    OrderUpdate,
    PositionSide,
    Side,
)
from fillstream.simulator import SimConfig
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import FAST_RECONCILE, Rig, metric, read_subject, until

QTY = "0.010"


async def _order_status(rig: Rig, order_id: int) -> str | None:
    value = await rig.stack.pool.fetchval(
        "SELECT status FROM orders WHERE account = 'alpha' AND order_id = $1", order_id
    )
    return None if value is None else str(value)


async def test_stale_open_orders_are_checked_and_published(rig_factory: RigFactory) -> None:
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=21)) as rig:
        rec = await rig.run("alpha", settings=FAST_RECONCILE)
        await until(rig.streaming, what="stream up")
        mark = Decimal(rig.sim.engine.symbol("BTCUSDT").mark)
        placed = await rig.sim.trade(
            "alpha", "BTCUSDT", "BUY", QTY, order_type="LIMIT", price=mark / 2
        )
        order_id = int(str(placed["orderId"]))

        async def stored_open() -> bool:
            return await _order_status(rig, order_id) == "NEW"

        await until(stored_open, what="the open order stored")
        # The stream misses the cancel.
        rig.sim.inject("alpha", "drop", count=1)
        venue = await rig.venue("alpha")
        await venue._client.futures_cancel_order(symbol="BTCUSDT", orderId=order_id)
        # And an order the venue never had, as if stored from a bad frame.
        ghost = OrderUpdate(
            account="alpha",
            market=Market.USDM,
            symbol="BTCUSDT",
            order_id=4242,
            client_order_id="ghost",
            side=Side.BUY,
            position_side=PositionSide.BOTH,
            order_type="LIMIT",
            orig_type="LIMIT",
            status="NEW",
            price=Decimal(1),
            avg_price=Decimal(0),
            orig_qty=Decimal(1),
            filled_qty=Decimal(0),
            stop_price=Decimal(0),
            reduce_only=False,
            close_position=False,
            update_time_ms=int(time.time() * 1000) - 60_000,
            source=FillSource.STREAM,
        )
        await rig.stack.pipeline.submit(
            IngestBatch(
                account="alpha", market=Market.USDM, source=FillSource.STREAM, orders=(ghost,)
            )
        )

        async def settled() -> bool:
            return (
                await _order_status(rig, order_id) == "CANCELED"
                and await _order_status(rig, 4242) == "UNKNOWN"
            )

        await until(settled, what="order sync")
        published = {
            (p["order_id"], p["status"], p["source"])
            for _, p in await read_subject(rig, f"{rig.prefix}.order.>")
        }
        assert (order_id, "CANCELED", "reconcile") in published
        assert (4242, "UNKNOWN", "reconcile") in published
        assert metric("fillstream_orders_checked_total", account="alpha", outcome="unknown") >= 1
        assert rec.last_run is not None


async def test_ghost_position_is_corrected_and_closed_reconciled_unknown(
    rig_factory: RigFactory,
) -> None:
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=22)) as rig:
        await rig.sim.trade("alpha", "ETHUSDT", "BUY", "0.100")  # real, found by the startup run
        rec = await rig.reconciler("alpha", FAST_RECONCILE)
        await rec.run_once("startup")
        ghost = Fill(
            account="alpha",
            market=Market.USDM,
            symbol="BTCUSDT",
            trade_id=999_999_999_999,
            order_id=1,
            side=Side.BUY,
            position_side=PositionSide.BOTH,
            price=Decimal(70000),
            qty=Decimal("0.5"),
            quote_qty=Decimal(35000),
            commission=Decimal(0),
            commission_asset="USDT",
            realized_pnl=Decimal(0),
            maker=False,
            trade_time_ms=int(time.time() * 1000) - 120_000,
            source=FillSource.STREAM,
        )
        await rig.stack.pipeline.submit(
            IngestBatch(
                account="alpha", market=Market.USDM, source=FillSource.STREAM, fills=(ghost,)
            )
        )
        corrected = metric("fillstream_positions_corrected_total", account="alpha")
        report = await rec.run_once("manual")
        assert report.outcome == "ok"
        assert report.corrected == 1
        assert metric("fillstream_positions_corrected_total", account="alpha") == corrected + 1
        closes = await rig.pg_closes("alpha")
        ghost_closes = [c for c in closes.values() if c["symbol"] == "BTCUSDT"]
        assert [c["reason"] for c in ghost_closes] == ["reconciled_unknown"]
        positions = {
            p.symbol: p.qty for p in await rig.stack.pipeline.positions("alpha", Market.USDM)
        }
        assert positions["BTCUSDT"] == 0
        assert positions["ETHUSDT"] == Decimal("0.1")
        corrections = await read_subject(rig, f"{rig.prefix}.position.corrected.>")
        assert any(p.get("symbol") == "BTCUSDT" for _, p in corrections)
        again = await rec.run_once("manual")
        assert again.corrected == 0


async def test_position_older_than_the_horizon_seeds_the_book(rig_factory: RigFactory) -> None:
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=23)) as rig:
        await rig.sim.trade("alpha", "BTCUSDT", "SELL", QTY)
        truth_entry = Decimal(rig.truth()["accounts"]["alpha"]["positions"][0]["entryPrice"])
        # Nothing in the last ~1 ms is looked at: the fills are beyond the horizon.
        tiny = msgspec.structs.replace(FAST_RECONCILE, horizon_days=1e-8)
        rec = await rig.reconciler("alpha", tiny)
        report = await rec.run_once("startup")
        assert report.found == 0
        assert report.corrected == 1
        (btc,) = [p for p in await rig.stack.pipeline.positions("alpha", Market.USDM) if p.qty]
        assert (btc.symbol, btc.qty, btc.entry_price) == ("BTCUSDT", Decimal("-0.01"), truth_entry)


async def test_symbol_traded_flat_while_down_is_found_through_income(
    rig_factory: RigFactory,
) -> None:
    # Nothing names ETHUSDT: not configured, never streamed, no position, no open order, no
    # cursor. Only the account's income (commission, realized PnL) shows it was traded.
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=22)) as rig:
        await rig.sim.trade("alpha", "ETHUSDT", "BUY", QTY)
        await rig.sim.trade("alpha", "ETHUSDT", "SELL", QTY)
        settings = msgspec.structs.replace(FAST_RECONCILE, symbols=(), settle_delay_s=0.0)
        rec = await rig.reconciler("alpha", settings)
        await rec.run_once("startup")
        assert await rig.pg_fill_count("alpha") == len(rig.truth()["accounts"]["alpha"]["fills"])
        assert await rig.pg_fill_count("alpha") >= 2
        closes = await rig.pg_closes("alpha")
        assert len(closes) == 1
