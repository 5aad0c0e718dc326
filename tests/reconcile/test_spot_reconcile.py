"""The REST path of a spot account against the simulator, on real PostgreSQL and JetStream:
``myTrades`` backfills of fills the stream never delivered (symbols found from the balances),
gap windows longer than spot's 24-hour limit, archived orders (-2026) and the weight pool."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec

from fillstream.binance.rest import BinanceVenue
from fillstream.binance.spot import parse
from fillstream.binance.spot.rows import SpotOrder
from fillstream.ledger import FillSource, Gap, IngestBatch, Market
from fillstream.reconcile import Reconciler, ReconcileSettings, Trigger
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.simulator import SimConfig
from fillstream.storage.cursors import PgCursorStore
from fillstream.storage.orders import PgOrderView
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import Rig, metric
from tests.simulator.conftest import Rest

DAY_MS = 86_400_000
SETTINGS = ReconcileSettings(
    interval_s=1.0,
    degraded_interval_s=0.5,
    settle_delay_s=0.0,
    order_check_after_s=1.0,
    all_symbol_calls_min_interval_s=0.0,
)


@asynccontextmanager
async def spot_account(
    rig: Rig, account: str, settings: ReconcileSettings = SETTINGS
) -> AsyncIterator[Reconciler]:
    """A spot venue and reconciler for ``account``, wired like the service (no stream: every
    fill is one the stream missed)."""
    acct = rig.sim.account(account)
    venue = await BinanceVenue.create(
        account=account,
        market=Market.SPOT,
        api_key=acct.api_key,
        api_secret=acct.api_secret,
        rest_url=rig.sim.rest_url,
        budget=rig.budgets,
    )
    pool = rig.stack.pool
    rec = Reconciler(
        account=account,
        market=Market.SPOT,
        venue=venue,
        sink=rig.stack.pipeline,
        cursors=PgCursorStore(pool),
        orders=PgOrderView(pool),
        index=PgFillIndex(pool),
        settings=settings,
    )
    try:
        yield rec
    finally:
        await rec.aclose()
        await venue.aclose()


def truth_fills(rig: Rig, account: str) -> dict[tuple[str, int, int], dict[str, Any]]:
    fills = rig.sim.ground_truth(market="spot")["accounts"][account]["fills"]
    return {(f["symbol"], f["id"], f["orderId"]): f for f in fills}


async def pg_fills(rig: Rig, account: str) -> dict[tuple[str, int, int], Any]:
    rows = await rig.stack.pool.fetch(
        "SELECT symbol, trade_id, order_id, side, quote_qty, commission, commission_asset,"
        " maker, client_order_id, source FROM fills WHERE account = $1 AND market = 'spot'",
        account,
    )
    return {(r["symbol"], r["trade_id"], r["order_id"]): r for r in rows}


async def test_startup_backfills_every_fill_from_the_symbols_the_balances_name(
    rig_factory: RigFactory,
) -> None:
    config = SimConfig(
        accounts=(),
        spot_accounts=("s1",),
        spot_symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT", "ETHBTC", "SOLUSDT"),
        rate=0,
        seed=5,
    )
    async with rig_factory(config) as rig, spot_account(rig, "s1") as rec:
        rig.sim.step(40)
        truth = truth_fills(rig, "s1")
        assert len(truth) > 20
        report = await rec.run_once(Trigger.STARTUP)
        assert report.outcome == "ok", report.error
        stored = await pg_fills(rig, "s1")
        assert stored.keys() == truth.keys()
        orders = {
            o["orderId"]: o for o in rig.sim.ground_truth(market="spot")["accounts"]["s1"]["orders"]
        }
        for key, row in stored.items():
            fill = truth[key]
            assert row["side"] == ("BUY" if fill["isBuyer"] else "SELL")
            assert (row["maker"], str(row["quote_qty"])) == (fill["isMaker"], fill["quoteQty"])
            assert row["source"] == FillSource.RECONCILE
            assert row["client_order_id"] == orders[key[2]]["clientOrderId"]  # enriched
        assert rec.cursors.get("BTCUSDT") is not None

        # SOL was not held: its first trade is found because the balance read after it
        # names SOLUSDT (SOL and USDT changed), not because anything was configured.
        await rig.sim.spot_trade("s1", "SOLUSDT", "BUY", "1")
        report = await rec.run_once(Trigger.MANUAL)
        assert report.outcome == "ok", report.error
        assert (await pg_fills(rig, "s1")).keys() == truth_fills(rig, "s1").keys()
        assert rec.cursors.get("SOLUSDT") is not None

        # Nothing new: the cursors answer with one fromId page per symbol, nothing submitted.
        report = await rec.run_once(Trigger.PERIODIC)
        assert (report.outcome, report.new) == ("ok", 0)


async def test_a_gap_longer_than_24_hours_is_swept_in_windows(rig_factory: RigFactory) -> None:
    config = SimConfig(accounts=(), spot_accounts=("s1",), rate=0, seed=8)
    settings = msgspec.structs.replace(SETTINGS, spot_probe_max=0)  # only what the gap names
    async with rig_factory(config) as rig, spot_account(rig, "s1", settings) as rec:
        await rig.sim.spot_trade("s1", "ETHBTC", "BUY", "0.5", parts=3)
        now = int(time.time() * 1000)
        before = metric("fillstream_rest_requests_total", account="s1", endpoint="userTrades")
        refused = metric("fillstream_rest_requests_total", account="s1", status="400")
        rec.on_gap(
            Gap(
                account="s1",
                market=Market.SPOT,
                since_ms=now - 3 * DAY_MS,
                until_ms=now + 1000,
                reason="reconnect",
                symbols=frozenset({"ETHBTC"}),
            )
        )
        report = await rec.run_once(Trigger.MANUAL)
        assert report.outcome == "ok", report.error
        assert (await pg_fills(rig, "s1")).keys() == truth_fills(rig, "s1").keys()
        assert len(truth_fills(rig, "s1")) == 3
        # No cursor yet: 24-hour windows from three days ago (the venue refuses longer ones).
        windows = metric("fillstream_rest_requests_total", account="s1", endpoint="userTrades")
        assert windows - before >= 4
        assert metric("fillstream_rest_requests_total", account="s1", status="400") == refused


async def test_an_archived_order_is_marked_once_and_never_asked_again(
    rig_factory: RigFactory,
) -> None:
    config = SimConfig(accounts=(), spot_accounts=("s1",), rate=0, spot_archive_after_s=0)
    settings = msgspec.structs.replace(SETTINGS, spot_probe_max=0)
    async with rig_factory(config) as rig, spot_account(rig, "s1", settings) as rec:
        row = await rig.sim.spot_trade(
            "s1", "BTCUSDT", "BUY", "0.001", order_type="LIMIT", price="1000"
        )
        order = msgspec.convert(row, SpotOrder)
        # The stream saw it open; its cancel (no fills) was lost, and the venue archived it.
        seen = msgspec.structs.replace(
            parse.order_update_from_order(order, account="s1"),
            source=FillSource.STREAM,
            update_time_ms=int(time.time() * 1000) - 10_000,
        )
        await rig.stack.pipeline.submit(
            IngestBatch(account="s1", market=Market.SPOT, source=FillSource.STREAM, orders=(seen,))
        )
        async with aiohttp.ClientSession() as http:
            await Rest(http, rig.sim, "s1").ok(
                "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order.orderId}
            )
        labels = {"account": "s1", "market": "spot", "outcome": "archived"}
        archived = metric("fillstream_orders_checked_total", **labels)
        report = await rec.run_once(Trigger.MANUAL)
        assert report.outcome == "ok", report.error
        assert metric("fillstream_orders_checked_total", **labels) == archived + 1
        status = await rig.stack.pool.fetchval(
            "SELECT status FROM orders WHERE account = 's1' AND order_id = $1", order.orderId
        )
        assert status == "UNKNOWN"
        asked = metric("fillstream_rest_requests_total", account="s1", endpoint="order")
        assert asked >= 1
        report = await rec.run_once(Trigger.MANUAL)
        assert report.outcome == "ok", report.error
        assert metric("fillstream_rest_requests_total", account="s1", endpoint="order") == asked
        assert metric("fillstream_orders_checked_total", **labels) == archived + 1


async def test_the_reconciler_stays_inside_the_spot_weight_pool(rig_factory: RigFactory) -> None:
    config = SimConfig(accounts=(), spot_accounts=("s1", "s2"), rate=0, seed=2)
    async with rig_factory(config) as rig:
        rig.sim.step(20)
        limited = metric("fillstream_rest_requests_total", status="429")
        async with spot_account(rig, "s1") as one, spot_account(rig, "s2") as two:
            for rec in (one, two):
                report = await rec.run_once(Trigger.STARTUP)
                assert report.outcome == "ok", report.error
            budget = one.venue.budget  # type: ignore[attr-defined]
            assert budget is two.venue.budget  # type: ignore[attr-defined]  # one pool per IP
            assert budget.limit == 6000
            assert budget.used <= budget.usable
            assert metric("fillstream_rest_requests_total", status="429") == limited
            for account in ("s1", "s2"):
                assert (await pg_fills(rig, account)).keys() == truth_fills(rig, account).keys()


async def test_a_symbol_the_balances_name_but_never_traded_costs_one_call(
    rig_factory: RigFactory,
) -> None:
    config = SimConfig(
        accounts=(),
        spot_accounts=("s1",),
        spot_symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT", "ETHBTC", "BTCFDUSD"),
        rate=0,
    )
    async with rig_factory(config) as rig, spot_account(rig, "s1") as rec:
        calls = metric("fillstream_rest_requests_total", account="s1", endpoint="userTrades")
        report = await rec.run_once(Trigger.STARTUP)
        assert report.outcome == "ok", report.error
        # USDT, BTC, ETH, BNB and FDUSD are held: every listed symbol is a probe, none traded.
        assert report.symbols == 5 and report.found == 0
        after = metric("fillstream_rest_requests_total", account="s1", endpoint="userTrades")
        assert after - calls == 5  # the newest trade of each: none, no search by time
        report = await rec.run_once(Trigger.PERIODIC)  # balances unchanged: nothing to probe
        assert (report.outcome, report.symbols) == ("ok", 0)
