"""The position book on inverse (COIN-M) contracts: the simulator's Binance arithmetic, exactly.

The simulator's ``PositionState`` implements Binance's formulas (harmonic entry, coin PnL); the
book folds the fills the simulator would emit and must agree to the last decimal; a delivery
close is its own reason.
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.ledger import (
    CloseReason,
    Fill,
    FillSource,
    Market,
    PositionBook,
    PositionSide,
    Side,
    units,
)
from fillstream.simulator.positions import PositionState

D = Decimal
BTC = D(100)


def _fill(n: int, side: Side, qty: str, price: str, rp: Decimal, *, cid: str = "x") -> Fill:
    return Fill(
        account="cm",
        market=Market.COINM,
        symbol="BTCUSD_250926",
        trade_id=n,
        order_id=100 + n,
        side=side,
        position_side=PositionSide.BOTH,
        price=D(price),
        qty=D(qty),
        quote_qty=D(price) * D(qty),
        commission=D("0.00000100"),
        commission_asset="BTC",
        realized_pnl=rp,
        maker=False,
        trade_time_ms=1_000 * n,
        source=FillSource.STREAM,
        client_order_id=cid,
    )


def test_inverse_entry_pnl_and_delivery_match_the_simulator() -> None:
    sim = PositionState("BTCUSD_250926", "BOTH", contract_size=BTC)
    book = PositionBook("cm", Market.COINM)
    steps = [
        (Side.BUY, "10", "50000", "x"),
        (Side.BUY, "7", "43210.7", "x"),
        (Side.BUY, "3", "61000.1", "x"),
        (Side.SELL, "8", "55555.5", "x"),
        (Side.SELL, "12", "48000.3", "delivery_autoclose-7"),
    ]
    closes = []
    for n, (side, qty, price, cid) in enumerate(steps, start=1):
        signed = D(qty) if side is Side.BUY else -D(qty)
        rp, closed = sim.apply(signed, D(price), D(0), n * 1000)
        change = book.apply([_fill(n, side, qty, price, rp, cid=cid)])
        closes += change.closes
        if n <= 3:
            assert book.position("BTCUSD_250926", PositionSide.BOTH).entry_price == sim.entry
    assert closed is not None and len(closes) == 1
    close = closes[0]
    assert close.reason is CloseReason.DELIVERY
    assert close.realized_pnl == closed.realized_pnl  # Σ rp, in BTC, to the last decimal
    assert close.entry_price == closed.entry_price
    assert close.qty == D(20)
    # The exit is the contract-weighted harmonic mean of the reducing fills' prices.
    assert close.exit_price == D(20) / (D(8) / D("55555.5") + D(12) / D("48000.3"))


def test_linear_entry_is_still_volume_weighted() -> None:
    assert units.average_entry(Market.USDM, D(1), D(100), D(3), D(200)) == D(175)
    assert units.average_entry(Market.COINM, D(1), D(100), D(3), D(200)) == D(4) / (
        D(1) / D(100) + D(3) / D(200)
    )


def test_units_per_product() -> None:
    assert units.qty_unit(Market.COINM) == "contracts"
    assert units.qty_unit(Market.USDM) == "base"
    assert units.margin_asset(Market.COINM, "ETHUSD_PERP") == "ETH"
    assert units.margin_asset(Market.COINM, "BTCUSD_261225") == "BTC"
    assert units.margin_asset(Market.USDM, "BTCUSDT") is None
    assert units.pair_of("BTCUSD_261225") == "BTCUSD"
    # 10 contracts of USD 100 at 50000: 0.02 BTC (the simulator's baseQty example)
    assert units.base_qty(D(10), D(50000), BTC) == D("0.02")
