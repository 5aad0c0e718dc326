"""Domain objects to and from PostgreSQL rows (the statements are in :mod:`.sql`).

Amounts travel as text (or JSON strings) and are cast to ``numeric`` by the server, so no float
ever touches money; asyncpg hands ``numeric`` back as ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from fillstream.ledger import (
    BalanceChange,
    BalanceKind,
    Fill,
    FillSource,
    FundingFee,
    Market,
    OrderUpdate,
    Position,
    PositionCorrection,
    PositionSide,
    Side,
)
from fillstream.ledger.book import SortKey

Record = Mapping[str, Any]


# Fills go over as one JSON array (msgspec encodes the Fill structs as they are; amounts as
# decimal strings): a fifth of the client CPU of one ``unnest`` array per column, because
# asyncpg inspects every array element, while PostgreSQL parses JSON on its own core.
_fills_encoder = msgspec.json.Encoder(decimal_format="string")


def fills_json(fills: Sequence[Fill]) -> str:
    """The ``$3`` of :data:`fillstream.storage.sql.INSERT_FILLS`."""
    return _fills_encoder.encode(fills).decode()


def fill_from_record(r: Record) -> Fill:
    return Fill(
        account=r["account"],
        market=Market(r["market"]),
        symbol=r["symbol"],
        trade_id=r["trade_id"],
        order_id=r["order_id"],
        side=Side(r["side"]),
        position_side=PositionSide(r["position_side"]),
        price=r["price"],
        qty=r["qty"],
        quote_qty=r["quote_qty"],
        commission=r["commission"],
        commission_asset=r["commission_asset"],
        realized_pnl=r["realized_pnl"],
        maker=r["maker"],
        trade_time_ms=r["trade_time_ms"],
        source=FillSource(r["source"]),
        client_order_id=r["client_order_id"],
        order_type=r["order_type"],
        orig_type=r["orig_type"],
        reduce_only=r["reduce_only"],
        event_time_ms=r["event_time_ms"],
        contract_size=r["contract_size"],
    )


ORDER_STATUS_RANK: Mapping[str, int] = {"NEW": 0, "PARTIALLY_FILLED": 1}
TERMINAL_RANK = 2


def status_rank(status: str) -> int:
    """Orders only move forward: NEW < PARTIALLY_FILLED < any terminal status."""
    return ORDER_STATUS_RANK.get(status, TERMINAL_RANK)


def order_progress(order: OrderUpdate) -> tuple[int, int, Any]:
    """What "forward" means for an order: later update time, then status, then filled qty."""
    return (order.update_time_ms, status_rank(order.status), order.filled_qty)


def order_columns(orders: Sequence[OrderUpdate]) -> list[list[Any]]:
    return [
        [o.symbol for o in orders],
        [o.order_id for o in orders],
        [o.client_order_id for o in orders],
        [o.side.value for o in orders],
        [o.position_side.value for o in orders],
        [o.order_type for o in orders],
        [o.orig_type for o in orders],
        [o.status for o in orders],
        [status_rank(o.status) for o in orders],
        [str(o.price) for o in orders],
        [str(o.avg_price) for o in orders],
        [str(o.orig_qty) for o in orders],
        [str(o.filled_qty) for o in orders],
        [str(o.stop_price) for o in orders],
        [o.reduce_only for o in orders],
        [o.close_position for o in orders],
        [o.update_time_ms for o in orders],
        [o.execution_type for o in orders],
        [o.expiry_reason for o in orders],
        [o.source.value for o in orders],
    ]


def order_from_record(r: Record) -> OrderUpdate:
    return OrderUpdate(
        account=r["account"],
        market=Market(r["market"]),
        symbol=r["symbol"],
        order_id=r["order_id"],
        client_order_id=r["client_order_id"],
        side=Side(r["side"]),
        position_side=PositionSide(r["position_side"]),
        order_type=r["order_type"],
        orig_type=r["orig_type"],
        status=r["status"],
        price=r["price"],
        avg_price=r["avg_price"],
        orig_qty=r["orig_qty"],
        filled_qty=r["filled_qty"],
        stop_price=r["stop_price"],
        reduce_only=r["reduce_only"],
        close_position=r["close_position"],
        update_time_ms=r["update_time_ms"],
        source=FillSource(r["source"]),
        execution_type=r["execution_type"],
        expiry_reason=r["expiry_reason"],
    )


def position_columns(
    positions: Sequence[Position], sealed: Sequence[SortKey | None]
) -> list[list[Any]]:
    return [
        [p.symbol for p in positions],
        [p.position_side.value for p in positions],
        [str(p.qty) for p in positions],
        [str(p.entry_price) for p in positions],
        [str(p.realized_pnl) for p in positions],
        [p.opened_at_ms for p in positions],
        [p.updated_at_ms for p in positions],
        [s[0] if s else None for s in sealed],
        [s[1] if s else None for s in sealed],
        [s[2] if s else None for s in sealed],
    ]


def position_from_record(r: Record) -> Position:
    return Position(
        account=r["account"],
        market=Market(r["market"]),
        symbol=r["symbol"],
        position_side=PositionSide(r["position_side"]),
        qty=r["qty"],
        entry_price=r["entry_price"],
        realized_pnl=r["realized_pnl"],
        opened_at_ms=r["opened_at_ms"],
        updated_at_ms=r["updated_at_ms"],
    )


def correction_from_record(r: Record) -> PositionCorrection:
    return PositionCorrection(
        account=r["account"],
        market=Market(r["market"]),
        symbol=r["symbol"],
        position_side=PositionSide(r["position_side"]),
        qty=r["qty"],
        entry_price=r["entry_price"],
        time_ms=r["time_ms"],
    )


def funding_from_record(r: Record) -> FundingFee:
    return FundingFee(
        account=r["account"],
        market=Market(r["market"]),
        symbol=r["symbol"],
        position_side=PositionSide(r["position_side"]),
        amount=r["amount"],
        asset=r["asset"],
        time_ms=r["time_ms"],
        tran_id=r["tran_id"],
    )


def _amount(value: Any) -> str | None:
    return None if value is None else str(value)


def balance_columns(balances: Sequence[BalanceChange]) -> list[list[Any]]:
    """The arrays of :func:`fillstream.storage.sql._balances`, in its order."""
    return [
        [b.asset for b in balances],
        [b.kind.value for b in balances],
        [b.time_ms for b in balances],
        [b.event_time_ms for b in balances],
        [_amount(b.free) for b in balances],
        [_amount(b.locked) for b in balances],
        [_amount(b.delta) for b in balances],
        [b.source.value for b in balances],
        [b.received_at_ns for b in balances],
    ]


def balance_from_record(r: Record) -> BalanceChange:
    return BalanceChange(
        account=r["account"],
        market=Market(r["market"]),
        asset=r["asset"],
        kind=BalanceKind(r["kind"]),
        time_ms=r["time_ms"],
        event_time_ms=r["event_time_ms"],
        source=FillSource(r["source"]),
        free=r["free"],
        locked=r["locked"],
        delta=r["delta"],
    )
