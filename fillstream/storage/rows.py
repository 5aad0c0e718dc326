"""Domain objects to and from PostgreSQL rows.

Batches go to PostgreSQL as one array per column through ``unnest`` (one round trip, and
``RETURNING`` tells which rows were new). Amounts travel as text and are cast to ``numeric`` by
the server, so no float ever touches money; asyncpg hands ``numeric`` back as ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from fillstream.ledger import (
    Fill,
    FillSource,
    Market,
    OrderUpdate,
    Position,
    PositionCorrection,
    PositionSide,
    Side,
)
from fillstream.ledger.book import SortKey

Record = Mapping[str, Any]

INSERT_FILLS = """
INSERT INTO fills (
    account, market, symbol, trade_id, order_id, side, position_side, price, qty, quote_qty,
    commission, commission_asset, realized_pnl, maker, trade_time_ms, client_order_id,
    order_type, orig_type, reduce_only, event_time_ms, source, received_at)
SELECT $1, $2, u.symbol, u.trade_id, u.order_id, u.side, u.position_side, u.price, u.qty,
    u.quote_qty, u.commission, u.commission_asset, u.realized_pnl, u.maker, u.trade_time_ms,
    u.client_order_id, u.order_type, u.orig_type, u.reduce_only, u.event_time_ms, u.source,
    coalesce(to_timestamp(u.received_at_ns / 1e9), now())
FROM json_to_recordset($3::text::json) AS u(
    symbol text, trade_id bigint, order_id bigint, side text, position_side text,
    price numeric, qty numeric, quote_qty numeric, commission numeric, commission_asset text,
    realized_pnl numeric, maker boolean, trade_time_ms bigint, client_order_id text,
    order_type text, orig_type text, reduce_only boolean, event_time_ms bigint, source text,
    received_at_ns bigint)
ON CONFLICT DO NOTHING
RETURNING symbol, trade_id, order_id
"""

# Fills go over as one JSON array (msgspec encodes the Fill structs as they are; amounts as
# decimal strings): a fifth of the client CPU of one ``unnest`` array per column, because
# asyncpg inspects every array element, while PostgreSQL parses JSON on its own core.
_fills_encoder = msgspec.json.Encoder(decimal_format="string")


def fills_json(fills: Sequence[Fill]) -> str:
    """The ``$3`` of :data:`INSERT_FILLS`."""
    return _fills_encoder.encode(fills).decode()


FILL_SELECT = """
SELECT f.account, f.market, f.symbol, f.trade_id, f.order_id, f.side, f.position_side, f.price,
    f.qty, f.quote_qty, f.commission, f.commission_asset, f.realized_pnl, f.maker,
    f.trade_time_ms, f.client_order_id, f.order_type, f.orig_type, f.reduce_only,
    f.event_time_ms, f.source
FROM fills f
"""


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
    )


ORDER_STATUS_RANK: Mapping[str, int] = {"NEW": 0, "PARTIALLY_FILLED": 1}
TERMINAL_RANK = 2


def status_rank(status: str) -> int:
    """Orders only move forward: NEW < PARTIALLY_FILLED < any terminal status."""
    return ORDER_STATUS_RANK.get(status, TERMINAL_RANK)


def order_progress(order: OrderUpdate) -> tuple[int, int, Any]:
    """What "forward" means for an order: later update time, then status, then filled qty."""
    return (order.update_time_ms, status_rank(order.status), order.filled_qty)


SELECT_ORDER_PROGRESS = """
SELECT symbol, order_id, update_time_ms, status_rank, filled_qty FROM orders
WHERE account = $1 AND market = $2
  AND (symbol, order_id) IN (SELECT * FROM unnest($3::text[], $4::bigint[]))
FOR UPDATE
"""

UPSERT_ORDERS = """
INSERT INTO orders AS o (
    account, market, symbol, order_id, client_order_id, side, position_side, order_type,
    orig_type, status, status_rank, price, avg_price, orig_qty, filled_qty, stop_price,
    reduce_only, close_position, update_time_ms, execution_type, expiry_reason, source)
SELECT $1, $2, u.symbol, u.order_id, u.client_order_id, u.side, u.position_side, u.order_type,
    u.orig_type, u.status, u.status_rank, u.price::numeric, u.avg_price::numeric,
    u.orig_qty::numeric, u.filled_qty::numeric, u.stop_price::numeric, u.reduce_only,
    u.close_position, u.update_time_ms, u.execution_type, u.expiry_reason, u.source
FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::int2[], $12::text[], $13::text[], $14::text[], $15::text[],
    $16::text[], $17::bool[], $18::bool[], $19::bigint[], $20::text[], $21::text[],
    $22::text[])
    AS u(symbol, order_id, client_order_id, side, position_side, order_type, orig_type, status,
         status_rank, price, avg_price, orig_qty, filled_qty, stop_price, reduce_only,
         close_position, update_time_ms, execution_type, expiry_reason, source)
ON CONFLICT (account, market, symbol, order_id) DO UPDATE SET
    client_order_id = EXCLUDED.client_order_id, order_type = EXCLUDED.order_type,
    orig_type = EXCLUDED.orig_type, status = EXCLUDED.status,
    status_rank = EXCLUDED.status_rank, price = EXCLUDED.price, avg_price = EXCLUDED.avg_price,
    orig_qty = EXCLUDED.orig_qty, filled_qty = EXCLUDED.filled_qty,
    stop_price = EXCLUDED.stop_price, reduce_only = EXCLUDED.reduce_only,
    close_position = EXCLUDED.close_position, update_time_ms = EXCLUDED.update_time_ms,
    execution_type = EXCLUDED.execution_type, expiry_reason = EXCLUDED.expiry_reason,
    updated_at = now()
WHERE (o.update_time_ms, o.status_rank, o.filled_qty)
    < (EXCLUDED.update_time_ms, EXCLUDED.status_rank, EXCLUDED.filled_qty)
"""


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
