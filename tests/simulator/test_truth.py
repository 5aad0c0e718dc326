"""The ground truth: consistent with the ledger's own fold, and byte-identical for one seed."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import aiohttp

from fillstream.ledger import (
    AlgoLink,
    Fill,
    FillSource,
    Market,
    PositionBook,
    PositionSide,
    Side,
)
from fillstream.simulator import SimConfig, Simulator
from tests.simulator.conftest import SimFactory, wait_until


def _ledger_fills(account: str, truth: dict[str, Any]) -> tuple[list[Fill], list[AlgoLink]]:
    orders = {(o["symbol"], o["orderId"]): o for o in truth["orders"]}
    fills = []
    for f in truth["fills"]:
        order = orders[(f["symbol"], f["orderId"])]
        fills.append(
            Fill(
                account=account,
                market=Market.USDM,
                symbol=f["symbol"],
                trade_id=f["id"],
                order_id=f["orderId"],
                side=Side(f["side"]),
                position_side=PositionSide(f["positionSide"]),
                price=Decimal(f["price"]),
                qty=Decimal(f["qty"]),
                quote_qty=Decimal(f["quoteQty"]),
                commission=Decimal(f["commission"]),
                commission_asset=f["commissionAsset"],
                realized_pnl=Decimal(f["realizedPnl"]),
                maker=f["maker"],
                trade_time_ms=f["time"],
                source=FillSource.STREAM,
                client_order_id=order["clientOrderId"],
                order_type=order["type"],
                orig_type=order["origType"],
            )
        )
    links = [
        AlgoLink(
            account=account,
            market=Market.USDM,
            symbol=a["symbol"],
            algo_id=a["algoId"],
            client_algo_id=a["clientAlgoId"],
            algo_type=a["orderType"],
            status=a["algoStatus"],
            order_id=int(a["actualOrderId"]),
            update_time_ms=a["updateTime"],
        )
        for a in truth["algo_orders"]
        if a["actualOrderId"]
    ]
    return fills, links


def _check_against_ledger(sim: Simulator) -> Counter[str]:
    reasons: Counter[str] = Counter()
    doc = sim.ground_truth()
    for account, truth in doc["accounts"].items():
        fills, links = _ledger_fills(account, truth)
        book = PositionBook(account, Market.USDM)
        change = book.apply(fills, algo_links=links)
        assert not change.retracted
        expected = [
            (c["symbol"], c["positionSide"], c["closeTradeId"], c["reason"], c["realizedPnl"])
            for c in truth["closes"]
        ]
        got = [
            (c.symbol, c.position_side.value, c.close_trade_id, c.reason.value, c.realized_pnl)
            for c in change.closes
        ]
        assert sorted(g[:4] for g in got) == sorted(e[:4] for e in expected)
        pnl = {g[2]: g[4] for g in got}
        for e in expected:
            assert pnl[e[2]] == Decimal(e[4])
        positions = {
            (p.symbol, p.position_side.value): (p.qty, p.entry_price)
            for p in book.positions()
            if p.qty
        }
        assert positions == {
            (p["symbol"], p["positionSide"]): (Decimal(p["positionAmt"]), Decimal(p["entryPrice"]))
            for p in truth["positions"]
        }
        reasons.update(c["reason"] for c in truth["closes"])
    return reasons


async def test_truth_folds_like_the_ledger_one_way_and_hedge(make_sim: SimFactory) -> None:
    sim = await make_sim(accounts=("alpha", "beta"), hedge_accounts=("beta",), seed=3)
    sim.step(2500)
    reasons = _check_against_ledger(sim)
    every = {"manual", "take_profit", "stop_loss", "trailing_stop", "liquidation", "adl"}
    assert every | {"settlement"} == set(reasons), reasons
    truth = sim.ground_truth()["accounts"]
    running: dict[str, Decimal] = {}
    flips = 0
    for f in truth["alpha"]["fills"]:
        before = running.get(f["symbol"], Decimal(0))
        delta = Decimal(f["qty"]) * (1 if f["side"] == "BUY" else -1)
        after = running[f["symbol"]] = before + delta
        flips += before * after < 0  # crossed zero in one fill
    assert flips > 10
    assert {f["positionSide"] for f in truth["beta"]["fills"]} == {"LONG", "SHORT"}
    assert _ever_both_sides(truth["beta"]["fills"])


async def test_same_seed_gives_byte_identical_truth(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    config = {"accounts": ("alpha", "beta"), "seed": 11, "rate": 500.0, "max_rounds": 400}
    first = await make_sim(**config)
    second = await make_sim(**config)
    other = await make_sim(**{**config, "seed": 12})
    for sim in (first, second, other):
        await wait_until(sim.finished.is_set, within=60)
    docs = []
    for sim in (first, second, other):
        async with http.get(f"{sim.admin_url}/_sim/ledger?stable=1") as resp:
            docs.append(await resp.read())
    assert docs[0] == docs[1]
    assert docs[0] != docs[2]
    assert first.ground_truth_bytes(stable=True) == docs[0]
    assert first.generator.rounds == second.generator.rounds == 400
    assert len(docs[0]) > 10_000


def _ever_both_sides(fills: list[dict[str, Any]]) -> bool:
    """Whether a symbol ever held a LONG and a SHORT position at once (hedge mode)."""
    held: dict[tuple[str, str], Decimal] = {}
    for f in fills:
        key = (f["symbol"], f["positionSide"])
        sign = 1 if (f["side"] == "BUY") == (f["positionSide"] == "LONG") else -1
        held[key] = held.get(key, Decimal(0)) + sign * Decimal(f["qty"])
        if held.get((f["symbol"], "LONG"), 0) > 0 and held.get((f["symbol"], "SHORT"), 0) > 0:
            return True
    return False


def test_config_is_validated() -> None:
    for bad in (
        {"accounts": ()},
        {"accounts": ("a b",)},
        {"accounts": ("a", "a")},
        {"hedge_accounts": ("nobody",)},
        {"symbols": ("btc",)},
        {"rate": -1.0},
        {"clock_speed": 0.0},
    ):
        try:
            SimConfig(**bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
