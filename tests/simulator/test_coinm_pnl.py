"""Inverse (COIN-M) PnL, worked by hand from binance-wave2 §B.3: per contract,
``contractSize * (1/entry - 1/exit)`` in the base coin, times the contracts, +1 long / -1 short;
rounded to 8 decimals. BTCUSD contracts are USD 100."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fillstream.simulator import Simulator
from fillstream.simulator.positions import PositionState
from tests.simulator.conftest import SimFactory

D = Decimal
BTC = D(100)  # BTCUSD_PERP contractSize


def _pos() -> PositionState:
    return PositionState("BTCUSD_PERP", "BOTH", contract_size=BTC)


@pytest.mark.parametrize(
    ("delta", "entry", "exit_", "expected"),
    [
        # long 10 contracts (USD 1000) 50000 → 60000: 1000/50000 - 1000/60000 BTC
        (D(10), D(50000), D(60000), D("0.00333333")),
        # long, price falls: the same loss as a short's gain below
        (D(10), D(50000), D(40000), D("-0.00500000")),
        # short 10 contracts 50000 → 40000: gains 1000/40000 - 1000/50000 = 0.005 BTC
        (D(-10), D(50000), D(40000), D("0.00500000")),
        (D(-10), D(50000), D(60000), D("-0.00333333")),
    ],
)
def test_inverse_realized_pnl_by_side(
    delta: Decimal, entry: Decimal, exit_: Decimal, expected: Decimal
) -> None:
    pos = _pos()
    pos.apply(delta, entry, D(0), 1)
    rp, closed = pos.apply(-delta, exit_, D(0), 2)
    assert rp == expected
    assert closed is not None and closed.realized_pnl == expected


def test_inverse_entry_is_the_harmonic_mean() -> None:
    pos = _pos()
    pos.apply(D(10), D(50000), D(0), 1)
    pos.apply(D(10), D(40000), D(0), 2)
    # 20 contracts / (10/50000 + 10/40000) = 44444.44...; the coin value is exact
    assert pos.entry == D(20) / (D(10) / D(50000) + D(10) / D(40000))
    assert f"{pos.entry:.2f}" == "44444.44"
    # Closing at 50000: the first lot breaks even, the second makes 1000/40000 - 1000/50000.
    rp, _ = pos.apply(D(-20), D(50000), D(0), 3)
    assert rp == D("0.00500000")
    assert pos.unrealized(D(1)) == D(0)  # flat


def test_inverse_partial_close_and_unrealized() -> None:
    pos = _pos()
    pos.apply(D(-30), D(60000), D(0), 1)  # short USD 3000
    assert pos.unrealized(D(50000)) == D("0.01000000")  # 3000/50000 - 3000/60000
    rp, closed = pos.apply(D(10), D(50000), D(0), 2)
    assert (rp, closed, pos.qty) == (D("0.00333333"), None, D(-20))


async def test_fills_book_pnl_and_fees_in_the_coin(make_sim: SimFactory) -> None:
    sim: Simulator = await make_sim(
        accounts=("cm",), coinm_accounts=("cm",), coinm_symbols=("BTCUSD_PERP",)
    )
    sim.set_mark("BTCUSD_PERP", "50000")
    await sim.trade("cm", "BTCUSD_PERP", "BUY", "10")
    sim.set_mark("BTCUSD_PERP", "60000")
    await sim.trade("cm", "BTCUSD_PERP", "SELL", "10")
    truth = sim.ground_truth()["accounts"]["cm"]
    opened, closed = truth["fills"]
    # taker 0.05 % of the coin traded: 10 x 100 / 50000 = 0.02 BTC → 0.00001 BTC
    assert (opened["qty"], opened["baseQty"], opened["commission"]) == (
        "10",
        "0.02000000",
        "0.00001000",
    )
    assert (opened["commissionAsset"], opened["marginAsset"], opened["pair"]) == (
        "BTC",
        "BTC",
        "BTCUSD",
    )
    # 1000 / 60000 = 0.01666666... BTC → fee 0.00000833333... → 0.00000833
    assert (closed["baseQty"], closed["commission"]) == ("0.01666667", "0.00000833")
    assert closed["realizedPnl"] == "0.00333333"
    (close,) = truth["closes"]
    assert (close["reason"], close["realizedPnl"], close["fees"]) == (
        "manual",
        "0.00333333",
        "0.00001833",
    )
    assert (close["marginAsset"], close["contractSize"], close["qty"]) == ("BTC", 100, "10")
    wallet = sim.states["cm"].wallet("BTC")
    assert wallet == D(10) + D("0.00333333") - D("0.00001833")
