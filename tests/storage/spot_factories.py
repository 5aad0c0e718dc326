"""Spot facts shaped like the venue's (binance-wave2.md §A.4), for the storage and pipeline tests.

A spot fill is an ``executionReport`` trade: no position side in Binance's sense (``BOTH``), no
realized PnL, commission in BNB or the traded asset; an ``outboundAccountPosition`` follows each
trade with the free and locked amounts of the assets it changed.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from fillstream.ledger import (
    BalanceChange,
    BalanceKind,
    Fill,
    FillSource,
    IngestBatch,
    Market,
    OrderUpdate,
    Side,
)
from tests.storage.factories import T0, make_fill, make_order

D = Decimal


def spot_fill(
    trade_id: int,
    *,
    account: str = "spotty",
    side: Side = Side.BUY,
    qty: str = "0.01000000",
    source: FillSource = FillSource.STREAM,
) -> Fill:
    fill = make_fill(
        trade_id, account=account, side=side, qty=qty, price="94000.10000000", source=source
    )
    return msgspec.structs.replace(
        fill,
        market=Market.SPOT,
        commission=D("0.00000712"),
        commission_asset="BNB",
        reduce_only=None,
        orig_type=None,
    )


def spot_order(
    order_id: int, status: str, update_time_ms: int, *, account: str = "spotty"
) -> OrderUpdate:
    order = make_order(order_id, status, update_time_ms, account=account)
    return msgspec.structs.replace(order, market=Market.SPOT)


def position(
    asset: str,
    free: str,
    locked: str,
    time_ms: int,
    *,
    account: str = "spotty",
    source: FillSource = FillSource.STREAM,
) -> BalanceChange:
    """An ``outboundAccountPosition`` entry (``u`` = ``time_ms``)."""
    return BalanceChange(
        account=account,
        market=Market.SPOT,
        asset=asset,
        kind=BalanceKind.POSITION,
        time_ms=time_ms,
        event_time_ms=time_ms + 1,
        source=source,
        free=D(free),
        locked=D(locked),
    )


def delta(
    asset: str,
    amount: str,
    time_ms: int,
    *,
    account: str = "spotty",
    kind: BalanceKind = BalanceKind.DELTA,
) -> BalanceChange:
    """A ``balanceUpdate`` (or, with ``kind``, an ``externalLockUpdate``): ``d`` at ``T``."""
    return BalanceChange(
        account=account,
        market=Market.SPOT,
        asset=asset,
        kind=kind,
        time_ms=time_ms,
        event_time_ms=time_ms + 2,
        source=FillSource.STREAM,
        delta=D(amount),
    )


def round_trip(account: str = "spotty") -> IngestBatch:
    """Buy 0.01 BTC and sell it again (a futures book would close a position here), the orders,
    and the balances each trade reported; plus a deposit and an external lock."""
    buy = spot_fill(1, account=account)
    sell = spot_fill(2, account=account, side=Side.SELL)
    return IngestBatch(
        account=account,
        market=Market.SPOT,
        source=FillSource.STREAM,
        fills=(buy, sell),
        orders=(
            spot_order(buy.order_id, "FILLED", buy.trade_time_ms, account=account),
            spot_order(sell.order_id, "FILLED", sell.trade_time_ms, account=account),
        ),
        balances=(
            position("BTC", "0.01000000", "0.00000000", T0 + 1, account=account),
            position("USDT", "59.99900000", "0.00000000", T0 + 1, account=account),
            position("BNB", "0.49999288", "0.00000000", T0 + 1, account=account),
            position("BTC", "0.00000000", "0.00000000", T0 + 2, account=account),
            position("USDT", "999.99900000", "0.00000000", T0 + 2, account=account),
            delta("USDT", "100.00000000", T0 + 3, account=account),
            delta("USDT", "-25.5", T0 + 4, account=account, kind=BalanceKind.EXTERNAL_LOCK),
        ),
    )
