"""Silently dropped events are noticed from the stream's own evidence and recovered over REST
long before any periodic poll (issue 16).

The periodic poll is set to an hour and the TRADE_LITE backstop of the listener to an hour too, so
the only way a dropped fill can reach PostgreSQL in this test is a ``drop_evidence`` gap served by
an ``evidence`` run: the assertions check exactly that, not how fast it was.
"""

from __future__ import annotations

import asyncio

import pytest

from fillstream.ledger import Market
from fillstream.reconcile import ReconcileSettings
from fillstream.reconcile.enrich import Enricher
from fillstream.simulator import SimConfig
from fillstream.storage.orders import PgOrderView
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import metric, stream_settings, until

pytestmark = pytest.mark.asyncio

ACCOUNT = "alpha"
HOUR = 3600.0
ONLY_EVIDENCE = ReconcileSettings(
    interval_s=HOUR,
    degraded_interval_s=HOUR,
    position_check_interval_s=HOUR,
    all_symbol_calls_min_interval_s=HOUR,
    order_check_after_s=HOUR,
    funding_interval_s=0,
    symbols=("BTCUSDT", "ETHUSDT"),
)
# Every kind the generator's mix produces at this seed (algo_child needs an algo's child to lose
# all its events; tests/stream/test_evidence.py covers it on venue-shaped frames).
SIGNALS = (
    "trade_lite_unmatched",
    "position_amount",
    "cumulative_qty",
    "order_transition",
    "trade_lite_missing",
)


def _runs(trigger: str) -> float:
    return metric("fillstream_reconcile_runs_total", account=ACCOUNT, trigger=trigger)


def _gaps(reason: str) -> float:
    return metric("fillstream_stream_gaps_total", account=ACCOUNT, reason=reason)


def _evidence(kind: str) -> float:
    return metric("fillstream_drop_evidence_total", account=ACCOUNT, kind=kind)


async def test_dropped_fills_are_recovered_through_drop_evidence(rig_factory: RigFactory) -> None:
    async with rig_factory(SimConfig(accounts=(ACCOUNT,), rate=0, seed=16)) as rig:
        stream = stream_settings(rig.sim, trade_lite_grace_s=HOUR, stale_after_s=HOUR)
        await rig.run(ACCOUNT, settings=ONLY_EVIDENCE, stream=stream)
        await until(rig.streaming, what="stream up")

        async def started() -> bool:
            return _runs("startup") >= 1 and rig.reconcilers[ACCOUNT].last_run is not None

        await until(started, what="start-up run")
        # Some trading first, so every position already has an ACCOUNT_UPDATE to compare with.
        rig.sim.step(20)

        async def warm() -> bool:
            return await rig.pg_fill_count(ACCOUNT) == len(
                rig.truth()["accounts"][ACCOUNT]["fills"]
            )

        await until(warm, what="warm-up fills stored")
        before = {t: _runs(t) for t in ("gap", "periodic", "manual")}
        kinds_before = {k: _evidence(k) for k in SIGNALS}

        rig.sim.inject(ACCOUNT, "drop_rate", p=0.15)
        for _ in range(150):  # the generator's realistic mix, paced so events spread over time
            rig.sim.step(2)
            await asyncio.sleep(0.01)
        rig.sim.inject(ACCOUNT, "drop_rate", p=0)
        # A little more trading without drops: later events are the evidence for the last drops.
        for _ in range(20):
            rig.sim.step(2)
            await asyncio.sleep(0.01)

        truth = rig.truth()["accounts"][ACCOUNT]
        dropped = int(truth["dropped_fill_events"])
        assert dropped > 0

        async def all_stored() -> bool:
            return await rig.pg_fill_count(ACCOUNT) == len(
                rig.truth()["accounts"][ACCOUNT]["fills"]
            )

        await until(all_stored, timeout_s=90, what="every fill stored")

        assert rig.truth_tally(ACCOUNT) == await rig.pg_tally(ACCOUNT)
        assert rig.truth_tally(ACCOUNT) == await rig.js_tally(ACCOUNT)
        # Recovered by evidence runs only: no periodic, manual or broad gap run since trading began.
        assert {t: _runs(t) for t in before} == before
        assert _runs("evidence") > 0
        assert _gaps("drop_evidence") > 0
        assert _gaps("trade_lite_unmatched") == 0
        for kind in SIGNALS:
            assert _evidence(kind) > kinds_before[kind], kind
        # Every dropped fill event is a fill the stream missed, attributed to the REST path.
        reconciled = await rig.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE account = $1 AND source = 'reconcile'", ACCOUNT
        )
        assert reconciled >= dropped
        assert metric("fillstream_fills_missed_by_stream_total", account=ACCOUNT) >= dropped


async def test_recovered_fills_take_their_order_details_from_the_stream(
    rig_factory: RigFactory,
) -> None:
    # The orders (and algo links) the stream stored enrich a REST fill without any REST lookup:
    # what makes an evidence sweep cost one userTrades call (reconcile/enrich.py).
    async with rig_factory(SimConfig(accounts=(ACCOUNT,), rate=0, seed=17)) as rig:
        stream = stream_settings(rig.sim, trade_lite_grace_s=HOUR, stale_after_s=HOUR)
        await rig.run(ACCOUNT, settings=ONLY_EVIDENCE, stream=stream)
        await until(rig.streaming, what="stream up")
        rig.sim.step(20)

        async def stored() -> bool:
            return await rig.pg_fill_count(ACCOUNT) == len(
                rig.truth()["accounts"][ACCOUNT]["fills"]
            )

        await until(stored, what="fills stored")
        pool = rig.stack.pool
        rows = await pool.fetch(
            "SELECT symbol, order_id, client_order_id, order_type, orig_type, reduce_only,"
            " update_time_ms FROM orders WHERE account = $1 AND source = 'stream'"
            " ORDER BY order_id",
            ACCOUNT,
        )
        assert rows
        symbol = rows[0]["symbol"]
        mine = {
            r["order_id"]: (r["client_order_id"], r["order_type"], r["orig_type"], r["reduce_only"])
            for r in rows
            if r["symbol"] == symbol
        }
        venue = await rig.venue(ACCOUNT)
        # Fills no younger than what the stream stored of their orders: the stored state stands.
        times = {r["order_id"]: r["update_time_ms"] for r in rows if r["order_id"] in mine}

        def lookups() -> float:
            return sum(
                metric("fillstream_rest_requests_total", account=ACCOUNT, endpoint=e)
                for e in ("order", "allOrders", "allAlgoOrders", "algoOrder")
            )

        before = lookups()
        enricher = Enricher(venue, account=ACCOUNT, market=Market.USDM, stored=PgOrderView(pool))
        found = await enricher.lookup(symbol, mine, times=times)
        assert lookups() == before
        assert {
            oid: (i.client_order_id, i.order_type, i.orig_type, i.reduce_only)
            for oid, i in found.info.items()
        } == mine
        assert found.orders == {}  # the stored state stands; nothing to re-submit
        # Without the store the same lookup goes to the venue, and learns the same details.
        plain = await Enricher(venue, account=ACCOUNT, market=Market.USDM).lookup(
            symbol, mine, times=times
        )
        assert lookups() > before
        assert plain.info == found.info
