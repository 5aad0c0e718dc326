"""Funding over a position's life: read from ``income`` FUNDING_FEE by the REST path, folded
into the lifecycle it was paid in, carried by the close (``funding``); a late payment revises
the close rather than being lost."""

from __future__ import annotations

import time
from decimal import Decimal

from fillstream.binance.usdm.rows import Income
from fillstream.ledger import (
    Fill,
    FillSource,
    FundingFee,
    Market,
    PositionBook,
    PositionSide,
    Side,
)
from fillstream.simulator import SimConfig
from tests.reconcile.conftest import RigFactory
from tests.reconcile.rig import FAST_RECONCILE, dec, until


async def _next_ms() -> None:
    start = time.time_ns() // 1_000_000

    async def moved() -> bool:
        return time.time_ns() // 1_000_000 > start + 1

    await until(moved)


def _fill(trade_id: int, side: Side, time_ms: int, rp: str = "0") -> Fill:
    return Fill(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        trade_id=trade_id,
        order_id=trade_id,
        side=side,
        position_side=PositionSide.BOTH,
        price=Decimal(100),
        qty=Decimal(1),
        quote_qty=Decimal(100),
        commission=Decimal("0.1"),
        commission_asset="USDT",
        realized_pnl=Decimal(rp),
        maker=False,
        trade_time_ms=time_ms,
        source=FillSource.STREAM,
    )


def _fee(tran_id: int, time_ms: int, amount: str) -> FundingFee:
    return FundingFee(
        account="a",
        market=Market.USDM,
        symbol="BTCUSDT",
        position_side=PositionSide.BOTH,
        amount=Decimal(amount),
        asset="USDT",
        time_ms=time_ms,
        tran_id=tran_id,
    )


def test_book_folds_funding_into_the_lifecycle_and_revises_on_late_payments() -> None:
    book = PositionBook("a", Market.USDM)
    book.apply(fills=[_fill(1, Side.BUY, 1000)], funding=[_fee(7, 2000, "-0.5")])
    (close,) = book.apply(fills=[_fill(2, Side.SELL, 3000, "1")]).closes
    assert close.funding == Decimal("-0.5")
    # A payment found later, inside the same lifecycle: the close is revised.
    change = book.apply(funding=[_fee(8, 2500, "0.2"), _fee(7, 2000, "-0.5")])
    (revised,) = change.closes
    assert (revised.revision, revised.funding) == (1, Decimal("-0.3"))
    # Funding while flat belongs to no position; nothing changes.
    assert book.apply(funding=[_fee(9, 4000, "-1")]).closes == []
    (plain,) = (
        PositionBook("a", Market.USDM)
        .apply(fills=[_fill(1, Side.BUY, 1000), _fill(2, Side.SELL, 3000)])
        .closes
    )
    assert plain.funding is None  # unknown, not zero


async def test_close_carries_the_funding_paid_while_it_was_open(rig_factory: RigFactory) -> None:
    async with rig_factory(SimConfig(accounts=("alpha",), rate=0, seed=31)) as rig:
        rec = await rig.reconciler("alpha", FAST_RECONCILE)
        # Distinct milliseconds: a payment stamped with the closing fill's millisecond sorts
        # after it (the position was already flat).
        await rig.sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
        await _next_ms()
        assert rig.sim.funding("alpha") >= 1
        await _next_ms()
        assert rig.sim.funding("alpha") >= 1
        await _next_ms()
        await rig.sim.trade("alpha", "BTCUSDT", "SELL", "0.010")
        report = await rec.run_once("manual")
        assert report.funding == 2
        venue = await rig.venue("alpha")
        paid = sum(
            (
                dec(r.income)
                for r in await venue.income(income_type="FUNDING_FEE")
                if isinstance(r, Income)
            ),
            Decimal(0),
        )
        (close,) = (await rig.pg_closes("alpha")).values()
        assert close["funding"] is not None
        assert dec(close["funding"]) == paid
        assert (await rec.run_once("manual")).funding == 0  # read once
