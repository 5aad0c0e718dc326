"""Acceptance: a fill on the stream that PostgreSQL refuses does not block the account's ingest.

The frame is one the parser accepts and PostgreSQL cannot store (a NUL character in the client
order id: ``text`` refuses it with SQLSTATE 22021). It arrives between real fills: the fill and its
order transition are quarantined, every other fill of its batch and of every later batch is
stored and published (ground truth = PostgreSQL = JetStream for the whole account), the position
book never sees it, and the account's ingest stays ``ok``.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from fillstream.binance.usdm.rows import PositionRisk
from fillstream.ledger import Market
from fillstream.simulator import SimConfig
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import metric, until

POISON_TRADE_ID = 880000001


def poison_frame(now_ms: int) -> str:
    return (
        f'{{"e":"ORDER_TRADE_UPDATE","E":{now_ms},"T":{now_ms},'
        '"o":{"s":"BTCUSDT","c":"web_\\u0000nul","S":"BUY","o":"MARKET","f":"GTC",'
        '"q":"5","p":"0","ap":"90000.00","sp":"0","x":"TRADE","X":"FILLED",'
        f'"i":770000001,"l":"5","z":"5","L":"90000.00","N":"USDT","n":"0.0030",'
        f'"T":{now_ms},"t":{POISON_TRADE_ID},"b":"0","a":"0","m":false,"R":false,'
        '"wt":"CONTRACT_PRICE","ot":"MARKET","ps":"BOTH","cp":false,"pP":false,"si":0,"ss":0,'
        '"rp":"0","V":"NONE","pm":"NONE","gtd":0,"er":"0"}}'
    )


async def test_poison_fill_on_the_stream_quarantined_everything_else_stored(
    rig_factory: RigFactory,
) -> None:
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=13)) as rig:
        await rig.run("alpha")
        await until(rig.streaming, what="stream up")
        burst = asyncio.create_task(rig.sim.burst("alpha", "BTCUSDT", 200, rate=200))

        async def under_way() -> bool:
            return await rig.pg_fill_count("alpha") >= 20

        await until(under_way, what="the burst under way before the poison")
        rig.sim.inject("alpha", "inject_frame", raw=poison_frame(int(time.time() * 1000)))
        made = await burst
        made += await rig.sim.burst("alpha", "ETHUSDT", 100, rate=200)  # later batches
        assert made == 300

        truth = rig.truth_tally("alpha")

        async def pg_matches() -> bool:
            return await rig.pg_tally("alpha") == truth

        await until(pg_matches, timeout_s=120, what="PostgreSQL = truth")

        async def js_matches() -> bool:
            return await rig.js_tally("alpha") == truth

        await until(js_matches, timeout_s=60, what="JetStream = truth")

        # ... and by the stream: the poison did not block its path (the REST poll would have
        # stored them too, as misses, while the stream retried a refused batch forever).
        polled = await rig.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE account = 'alpha' AND source = 'reconcile'"
        )
        assert polled == 0
        assert rig.stack.pipeline.ingest_state("alpha", Market.USDM).state == "ok"
        rows = await rig.stack.pipeline.quarantine.rows("alpha")
        kinds = {r.kind: r for r in rows}
        assert set(kinds) == {"fill", "order"}
        assert kinds["fill"].fact_key.endswith(f":{POISON_TRADE_ID}:770000001")
        assert kinds["fill"].sqlstate in {"22P05", "22021"}  # via JSON / a text parameter
        assert kinds["fill"].source == "stream"
        assert metric("fillstream_quarantined_total", account="alpha", kind="fill") == 1
        stored = await rig.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE trade_id = $1", POISON_TRADE_ID
        )
        assert stored == 0
        # The book holds what the venue holds: the poison's 5 BTC never moved it.
        risk = await (await rig.venue("alpha")).position_risk(None)
        venue = {r.symbol: Decimal(r.positionAmt) for r in risk if isinstance(r, PositionRisk)}
        book = {p.symbol: p.qty for p in await rig.stack.pipeline.positions("alpha", Market.USDM)}
        assert {s: q for s, q in book.items() if q} == {s: q for s, q in venue.items() if q}
        assert rig.stack.pipeline.ingest_state("alpha", Market.USDM).state == "ok"
