"""Acceptance: a symbol the venue refuses does not stop the account's reconcile.

A fill for a symbol the venue's REST answers ``-1121 Invalid symbol`` for (a delisted contract)
arrives on the stream: it is stored and its position puts the symbol in the poll set. Then 30%
of the events are dropped while both real symbols trade. Every reconcile run (start-up, gap,
periodic) sets the refused symbol aside and reconciles the others: for them, ground truth =
PostgreSQL = JetStream, closes included; the refused symbol is counted, listed with its reason
and next retry, and no run fails because of it.
"""

from __future__ import annotations

import time

from fillstream.sidecar.tally import Tally
from fillstream.simulator import SimConfig
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import metric, until

REFUSED = "DELISTUSDT"
PER_SYMBOL = 300


def delisted_fill_frame(now_ms: int) -> str:
    """An ORDER_TRADE_UPDATE fill (binance-facts.md §2 shape) for the refused symbol."""
    return (
        f'{{"e":"ORDER_TRADE_UPDATE","E":{now_ms},"T":{now_ms},'
        f'"o":{{"s":"{REFUSED}","c":"web_delisted1","S":"BUY","o":"MARKET","f":"GTC",'
        '"q":"5","p":"0","ap":"1.2340","sp":"0","x":"TRADE","X":"FILLED",'
        f'"i":7700001,"l":"5","z":"5","L":"1.2340","N":"USDT","n":"0.0030",'
        f'"T":{now_ms},"t":990001,"b":"0","a":"0","m":false,"R":false,'
        '"wt":"CONTRACT_PRICE","ot":"MARKET","ps":"BOTH","cp":false,"pP":false,"si":0,"ss":0,'
        '"rp":"0","V":"NONE","pm":"NONE","gtd":0,"er":"0"}}'
    )


def of_symbols(tally: Tally, symbols: set[str]) -> Tally:
    """The part of ``tally`` about ``symbols`` (ids are ``kind:account:market:symbol:...``)."""
    return Tally(
        fills=type(tally.fills)(
            {k: v for k, v in tally.fills.items() if k.split(":")[3] in symbols}
        ),
        closes={k: v for k, v in tally.closes.items() if k.split(":")[3] in symbols},
    )


async def test_refused_symbol_set_aside_others_fully_reconciled(rig_factory: RigFactory) -> None:
    real = {"BTCUSDT", "ETHUSDT"}
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=11)) as rig:
        failed_before = sum(
            metric("fillstream_reconcile_runs_total", account="alpha", outcome=o)
            for o in ("error", "rate_limited", "auth_failed")
        )
        rec = await rig.run("alpha")
        await until(rig.streaming, what="stream up")
        rig.sim.inject("alpha", "inject_frame", raw=delisted_fill_frame(int(time.time() * 1000)))

        async def refused_set_aside() -> bool:
            return REFUSED in rec.set_aside.symbols

        await until(refused_set_aside, what="the refused symbol set aside")
        stored = await rig.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE account = 'alpha' AND symbol = $1", REFUSED
        )
        assert stored == 1  # the stream's fill is kept: it happened

        rig.sim.inject("alpha", "drop_rate", p=0.3)
        made = 0
        for symbol in sorted(real):
            made += await rig.sim.burst("alpha", symbol, PER_SYMBOL, rate=300)
        rig.sim.inject("alpha", "drop_rate", p=0.0)
        assert made == 2 * PER_SYMBOL
        doc = rig.truth()["accounts"]["alpha"]
        assert doc["dropped_fill_events"] + doc["undelivered_fill_events"] > 0

        truth = of_symbols(rig.truth_tally("alpha"), real)
        assert len(truth.fills) == made

        async def pg_matches() -> bool:
            return of_symbols(await rig.pg_tally("alpha"), real) == truth

        await until(pg_matches, timeout_s=120, what="PostgreSQL = truth for the other symbols")

        async def js_matches() -> bool:
            return of_symbols(await rig.js_tally("alpha"), real) == truth

        await until(js_matches, timeout_s=60, what="JetStream = truth for the other symbols")
        assert truth.closes  # round trips: closes are part of what must match
        missed = await rig.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE account = 'alpha' AND source = 'reconcile'"
        )
        assert missed > 0  # the dropped fills were found by the runs that met the refused symbol

        failed = sum(
            metric("fillstream_reconcile_runs_total", account="alpha", outcome=o)
            for o in ("error", "rate_limited", "auth_failed")
        )
        assert failed == failed_before
        assert metric("fillstream_reconcile_symbols_set_aside", account="alpha") == 1
        assert metric("fillstream_reconcile_symbol_refusals_total", account="alpha") >= 1
        (entry,) = rec.set_aside.view()
        assert entry["symbol"] == REFUSED
        assert entry["code"] == -1121
        assert "Invalid symbol" in entry["reason"]
        # Retried rarely: the default is half an hour away, not the next run.
        assert entry["next_retry_ms"] - entry["since_ms"] >= 1800 * 1000 - 1000
        assert rec.last_run is not None and rec.last_run.outcome == "ok"

        # A repair (the CLI's) skips the refused symbol too, and never corrects it blind.
        repair = await rec.repair(int(time.time() * 1000) - 3_600_000)
        assert repair.refused == [REFUSED]
        assert repair.missing == []
        assert all(c.symbol != REFUSED for c in repair.corrections)
