"""Acceptance: every close in the ground truth — TP, SL, trailing, liquidation, ADL, settlement,
manual, flip — appears exactly once as a close event with the right reason and a realized PnL
equal to the ground truth to the last decimal, including closes whose fills the stream dropped
(then the REST path's enrichment — the order's client id and type, the algo parent — decides).
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.simulator import SimConfig, Simulator
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import Rig, dec, truth_closes, until

QTY = "0.010"


def mark(sim: Simulator, symbol: str) -> Decimal:
    return Decimal(sim.engine.symbol(symbol).mark)


async def _scenario(rig: Rig) -> None:
    sim = rig.sim
    a = "alpha"
    # Manual close, its fills dropped.
    await sim.trade(a, "BTCUSDT", "BUY", QTY)
    sim.inject(a, "drop", count=4)
    await sim.trade(a, "BTCUSDT", "SELL", QTY)
    # A flip (close + open in one fill), dropped; then a manual close seen by the stream.
    await sim.trade(a, "ETHUSDT", "BUY", "0.100")
    sim.inject(a, "drop", count=4)
    await sim.trade(a, "ETHUSDT", "SELL", "0.200", parts=2)
    await sim.trade(a, "ETHUSDT", "BUY", "0.100")
    # Take-profit through the algo service, everything about the trigger dropped.
    await sim.trade(a, "BTCUSDT", "BUY", QTY)
    m = mark(sim, "BTCUSDT")
    await sim.algo(
        a,
        "BTCUSDT",
        "TAKE_PROFIT_MARKET",
        "SELL",
        trigger_price=m * Decimal("1.01"),
        close_position=True,
    )
    sim.inject(a, "drop", count=12)
    sim.set_mark("BTCUSDT", m * Decimal("1.02"))
    # Stop-loss seen by the stream; another one dropped.
    await sim.trade(a, "BTCUSDT", "BUY", QTY)
    m = mark(sim, "BTCUSDT")
    await sim.algo(
        a, "BTCUSDT", "STOP_MARKET", "SELL", trigger_price=m * Decimal("0.99"), close_position=True
    )
    sim.set_mark("BTCUSDT", m * Decimal("0.985"))
    await sim.trade(a, "ETHUSDT", "SELL", "0.100")
    m = mark(sim, "ETHUSDT")
    await sim.algo(
        a, "ETHUSDT", "STOP_MARKET", "BUY", trigger_price=m * Decimal("1.01"), quantity="0.100"
    )
    sim.inject(a, "drop", count=12)
    sim.set_mark("ETHUSDT", m * Decimal("1.015"))
    # Trailing stop, dropped.
    await sim.trade(a, "BTCUSDT", "BUY", QTY)
    m = mark(sim, "BTCUSDT")
    await sim.algo(
        a, "BTCUSDT", "TRAILING_STOP_MARKET", "SELL", callback_rate="1", close_position=True
    )
    sim.set_mark("BTCUSDT", m * Decimal("1.02"))
    sim.inject(a, "drop", count=12)
    sim.set_mark("BTCUSDT", m * Decimal("1.005"))
    # The exchange's own closes: liquidation (dropped), ADL, settlement (dropped).
    await sim.trade(a, "BTCUSDT", "BUY", QTY)
    sim.inject(a, "drop", count=4)
    assert sim.force_close(a, "BTCUSDT", "liquidation")
    await sim.trade(a, "ETHUSDT", "SELL", "0.100")
    assert sim.force_close(a, "ETHUSDT", "adl")
    await sim.trade(a, "ETHUSDT", "BUY", "0.100")
    sim.inject(a, "drop", count=4)
    assert sim.force_close(a, "ETHUSDT", "settlement")
    # Hedge mode: both sides, a dropped stop-loss on the long side.
    h = "hedgy"
    await sim.trade(h, "BTCUSDT", "BUY", QTY, position_side="LONG")
    await sim.trade(h, "BTCUSDT", "SELL", QTY, position_side="SHORT")
    m = mark(sim, "BTCUSDT")
    await sim.algo(
        h,
        "BTCUSDT",
        "STOP_MARKET",
        "SELL",
        trigger_price=m * Decimal("0.99"),
        close_position=True,
        position_side="LONG",
    )
    sim.inject(h, "drop", count=12)
    sim.set_mark("BTCUSDT", m * Decimal("0.985"))
    await sim.trade(h, "BTCUSDT", "BUY", QTY, position_side="SHORT")


async def test_every_close_once_with_reason_and_exact_pnl(rig_factory: RigFactory) -> None:
    config = SimConfig(accounts=("alpha", "hedgy"), hedge_accounts=("hedgy",), rate=0, seed=3)
    async with rig_factory(config) as rig:
        for account in ("alpha", "hedgy"):
            await rig.run(account)
        await until(rig.streaming, what="streams up")
        await _scenario(rig)
        truth = rig.truth()
        reasons = {c["reason"] for acct in truth["accounts"].values() for c in acct["closes"]}
        assert reasons >= {
            "take_profit",
            "stop_loss",
            "trailing_stop",
            "liquidation",
            "adl",
            "settlement",
            "manual",
        }
        for account in ("alpha", "hedgy"):
            expected = truth_closes(truth, account)

            async def closes_in(account: str = account, n: int = len(expected)) -> bool:
                return (
                    len(await rig.pg_closes(account)) >= n
                    and (await rig.pg_tally(account)).fills == rig.truth_tally(account).fills
                )

            await until(closes_in, timeout_s=90, what=f"{account} closes")
            stored = await rig.pg_closes(account)
            assert set(stored) == set(expected)
            for close_id, want in expected.items():
                got = stored[close_id]
                assert got["reason"] == want["reason"], close_id
                assert dec(got["realized_pnl"]) == dec(want["realizedPnl"]), close_id
                assert dec(got["qty"]) == dec(want["qty"]), close_id
            if account == "alpha":
                # The dropped ones were classified from what the REST path looked up.
                recovered = {c["reason"] for c in stored.values() if c["source"] == "reconcile"}
                assert recovered >= {
                    "manual",
                    "take_profit",
                    "stop_loss",
                    "trailing_stop",
                    "liquidation",
                    "settlement",
                }
            js = await rig.js_tally(account)
            assert js.closes == {k: v["reason"] for k, v in expected.items()}
        dropped = sum(a["dropped_fill_events"] for a in rig.truth()["accounts"].values())
        assert dropped >= 8
