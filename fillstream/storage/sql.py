"""The SQL of the ledger, in one place.

Batches go to PostgreSQL as one JSON document (fills) or one array per column (``unnest``): one
round trip per statement whatever the batch size, and ``RETURNING`` tells which rows were new.
Amounts travel as text and are cast to ``numeric`` by the server.

The writes a batch can make (fills, algo links, orders, positions, closes, balances) are written
once each, as fragments that take the number of their first array parameter: the transactional
path runs them as statements of their own, the one-statement stream path as CTEs of one statement.
"""

from collections.abc import Sequence


def _arrays(first: int, types: Sequence[str]) -> str:
    """``$first::t0[], $first+1::t1[], ...``: the unnest arguments of a fragment."""
    return ", ".join(f"${first + n}::{t}[]" for n, t in enumerate(types))


_FILLS = """
INSERT INTO fills (
    account, market, symbol, trade_id, order_id, side, position_side, price, qty, quote_qty,
    commission, commission_asset, realized_pnl, maker, trade_time_ms, client_order_id,
    order_type, orig_type, reduce_only, event_time_ms, source, received_at, contract_size)
SELECT $1, $2, u.symbol, u.trade_id, u.order_id, u.side, u.position_side, u.price, u.qty,
    u.quote_qty, u.commission, u.commission_asset, u.realized_pnl, u.maker, u.trade_time_ms,
    u.client_order_id, u.order_type, u.orig_type, u.reduce_only, u.event_time_ms, u.source,
    coalesce(to_timestamp(u.received_at_ns / 1e9), now()), u.contract_size
FROM json_to_recordset($3::text::json) AS u(
    symbol text, trade_id bigint, order_id bigint, side text, position_side text,
    price numeric, qty numeric, quote_qty numeric, commission numeric, commission_asset text,
    realized_pnl numeric, maker boolean, trade_time_ms bigint, client_order_id text,
    order_type text, orig_type text, reduce_only boolean, event_time_ms bigint, source text,
    received_at_ns bigint, contract_size numeric)
ON CONFLICT DO NOTHING
"""

_ALGO_LINK_TYPES = ("text", "bigint", "text", "text", "text", "bigint", "bigint")


def _algo_links(first: int) -> str:
    return f"""
INSERT INTO algo_links AS a (
    account, market, symbol, algo_id, client_algo_id, algo_type, status, order_id, update_time_ms)
SELECT $1, $2, u.* FROM unnest({_arrays(first, _ALGO_LINK_TYPES)}) AS u
ON CONFLICT (account, market, algo_id) DO UPDATE SET
    client_algo_id = EXCLUDED.client_algo_id, algo_type = EXCLUDED.algo_type,
    status = EXCLUDED.status, order_id = coalesce(EXCLUDED.order_id, a.order_id),
    update_time_ms = EXCLUDED.update_time_ms, updated_at = now()
WHERE a.update_time_ms <= EXCLUDED.update_time_ms
"""


_ORDER_TYPES: tuple[str, ...] = (
    ("text", "bigint") + ("text",) * 6 + ("int2",) + ("text",) * 5 + ("bool", "bool")
) + ("bigint", "text", "text", "text")


def _orders(first: int) -> str:
    """One state per order (the batch's latest): RETURNING names the orders that moved forward,
    inserted or updated, so no read of the stored progress is needed first."""
    return f"""
INSERT INTO orders AS o (
    account, market, symbol, order_id, client_order_id, side, position_side, order_type,
    orig_type, status, status_rank, price, avg_price, orig_qty, filled_qty, stop_price,
    reduce_only, close_position, update_time_ms, execution_type, expiry_reason, source)
SELECT $1, $2, u.symbol, u.order_id, u.client_order_id, u.side, u.position_side, u.order_type,
    u.orig_type, u.status, u.status_rank, u.price::numeric, u.avg_price::numeric,
    u.orig_qty::numeric, u.filled_qty::numeric, u.stop_price::numeric, u.reduce_only,
    u.close_position, u.update_time_ms, u.execution_type, u.expiry_reason, u.source
FROM unnest({_arrays(first, _ORDER_TYPES)})
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
RETURNING symbol, order_id
"""


_POSITION_TYPES = ("text",) * 5 + ("bigint",) * 5


def _positions(first: int) -> str:
    return f"""
INSERT INTO positions AS p (
    account, market, symbol, position_side, qty, entry_price, realized_pnl, opened_at_ms,
    updated_at_ms, sealed_time_ms, sealed_trade_id, sealed_order_id)
SELECT $1, $2, u.symbol, u.position_side, u.qty::numeric, u.entry_price::numeric,
    u.realized_pnl::numeric, u.opened_at_ms, u.updated_at_ms, u.sealed_time_ms,
    u.sealed_trade_id, u.sealed_order_id
FROM unnest({_arrays(first, _POSITION_TYPES)})
    AS u(symbol, position_side, qty, entry_price, realized_pnl, opened_at_ms,
         updated_at_ms, sealed_time_ms, sealed_trade_id, sealed_order_id)
ON CONFLICT (account, market, symbol, position_side) DO UPDATE SET
    qty = EXCLUDED.qty, entry_price = EXCLUDED.entry_price,
    realized_pnl = EXCLUDED.realized_pnl, opened_at_ms = EXCLUDED.opened_at_ms,
    updated_at_ms = EXCLUDED.updated_at_ms,
    -- A book restored after a restart has not sealed yet: keep the stored boundary.
    sealed_time_ms = coalesce(EXCLUDED.sealed_time_ms, p.sealed_time_ms),
    sealed_trade_id = coalesce(EXCLUDED.sealed_trade_id, p.sealed_trade_id),
    sealed_order_id = coalesce(EXCLUDED.sealed_order_id, p.sealed_order_id),
    updated_at = now()
"""


_CLOSE_TYPES: tuple[str, ...] = ("text",) * 5 + ("int", "bigint", "bigint", "text", "bigint")
_CLOSE_TYPES += ("bigint", "text", "text")


def _closes(first: int) -> str:
    return f"""
INSERT INTO position_closes (
    msg_id, close_id, account, market, symbol, position_side, reason, revision,
    close_trade_id, close_order_id, realized_pnl, opened_at_ms, closed_at_ms, source, close)
SELECT u.msg_id, u.close_id, $1, $2, u.symbol, u.position_side, u.reason, u.revision,
    u.close_trade_id, u.close_order_id, u.realized_pnl::numeric, u.opened_at_ms,
    u.closed_at_ms, u.source, u.close::jsonb
FROM unnest({_arrays(first, _CLOSE_TYPES)})
    AS u(msg_id, close_id, symbol, position_side, reason, revision, close_trade_id,
         close_order_id, realized_pnl, opened_at_ms, closed_at_ms, source, close)
ON CONFLICT (msg_id) DO NOTHING
"""


_BALANCE_TYPES = ("text", "text", "bigint", "bigint", "text", "text", "text", "text", "bigint")


def _balances(first: int) -> str:
    """Two CTEs: ``balances_written``, the batch's balance facts not stored before (RETURNING
    names them), and ``balances_latest``, the latest state per asset those new facts advance.

    Only new ``position`` facts reach ``balances``, the newest per asset of the batch (one
    ``ON CONFLICT DO UPDATE`` may not touch a row twice), and only over an older stored time:
    a replayed or late fact never rolls the state back. Both are primary-key probes.
    """
    return f"""balances_written AS (
INSERT INTO balance_changes (
    account, market, time_ms, asset, kind, free, locked, delta, event_time_ms, source,
    received_at)
SELECT $1, $2, u.time_ms, u.asset, u.kind, u.free::numeric, u.locked::numeric,
    u.delta::numeric, u.event_time_ms, u.source,
    coalesce(to_timestamp(u.received_at_ns / 1e9), now())
FROM unnest({_arrays(first, _BALANCE_TYPES)})
    AS u(asset, kind, time_ms, event_time_ms, free, locked, delta, source, received_at_ns)
ON CONFLICT DO NOTHING
RETURNING asset, kind, time_ms, free, locked, event_time_ms, source
), balances_latest AS (
INSERT INTO balances AS b (account, market, asset, free, locked, time_ms, event_time_ms, source)
SELECT DISTINCT ON (w.asset) $1, $2, w.asset, w.free, w.locked, w.time_ms, w.event_time_ms,
    w.source
FROM balances_written w WHERE w.kind = 'position'
ORDER BY w.asset, w.time_ms DESC
ON CONFLICT (account, market, asset) DO UPDATE SET
    free = EXCLUDED.free, locked = EXCLUDED.locked, time_ms = EXCLUDED.time_ms,
    event_time_ms = EXCLUDED.event_time_ms, source = EXCLUDED.source, updated_at = now()
WHERE b.time_ms < EXCLUDED.time_ms
)"""


INSERT_FILLS = _FILLS + "RETURNING symbol, trade_id, order_id\n"

FILL_SELECT = """
SELECT f.account, f.market, f.symbol, f.trade_id, f.order_id, f.side, f.position_side, f.price,
    f.qty, f.quote_qty, f.commission, f.commission_asset, f.realized_pnl, f.maker,
    f.trade_time_ms, f.client_order_id, f.order_type, f.orig_type, f.reduce_only,
    f.event_time_ms, f.source, f.contract_size
FROM fills f
"""

UPSERT_ORDERS = _orders(3)

INSERT_OUTBOX = """
INSERT INTO outbox (subject, msg_id, payload)
SELECT u.subject, u.msg_id, u.payload
FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS u(subject, msg_id, payload, n)
ORDER BY u.n
RETURNING id
"""

UPSERT_ALGO_LINKS = _algo_links(3)

INSERT_CORRECTIONS = """
INSERT INTO position_corrections (
    account, market, symbol, position_side, qty, entry_price, time_ms)
SELECT $1, $2, u.symbol, u.position_side, u.qty::numeric, u.entry_price::numeric, u.time_ms
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
    AS u(symbol, position_side, qty, entry_price, time_ms)
ON CONFLICT DO NOTHING
RETURNING symbol, position_side, time_ms, qty
"""

# Everything the book changed and every message, in one statement (one round trip): at low
# rate an ingest is BEGIN, the fills, this, COMMIT. Data-modifying CTEs all run, whatever the
# outer query reads; empty arrays cost nothing.
WRITE_CHANGES = f"""
WITH positions_written AS ({_positions(3)}), closes_written AS ({_closes(13)}
), closes_retracted AS (
    -- cardinality() first: a one-time filter, so an empty array (nearly every batch) reads
    -- nothing; otherwise one probe of position_closes_by_close per id.
    UPDATE position_closes SET retracted_at = now()
    WHERE cardinality($26::text[]) > 0 AND close_id = ANY($26::text[]) AND retracted_at IS NULL
)
INSERT INTO outbox (subject, msg_id, payload)
SELECT u.subject, u.msg_id, u.payload
FROM unnest($27::text[], $28::text[], $29::bytea[]) WITH ORDINALITY
    AS u(subject, msg_id, payload, n)
ORDER BY u.n
RETURNING id
"""

# A batch's balance facts (transactional path): rows out are the new facts.
INSERT_BALANCES = f"""
WITH {_balances(3)}
SELECT asset, kind, time_ms FROM balances_written
"""

INSERT_FUNDING = """
INSERT INTO funding (account, market, symbol, position_side, amount, asset, time_ms, tran_id)
SELECT $1, $2, u.symbol, u.position_side, u.amount::numeric, u.asset, u.time_ms, u.tran_id
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
    AS u(symbol, position_side, amount, asset, time_ms, tran_id)
ON CONFLICT DO NOTHING
RETURNING tran_id
"""

# The stored revisions of the closes a batch changes: position_closes_by_close, one probe per id.
SELECT_CLOSE_REVISIONS = """
SELECT close_id, max(revision) AS revision FROM position_closes
WHERE close_id = ANY($1::text[]) GROUP BY close_id
"""


# A whole stream batch in one autocommit statement (one round trip, no BEGIN/COMMIT): fills,
# algo links, orders, positions, closes, balances ($61-$69) and the outbox. The book was folded on
# the bet that every fill and close is new; fillstream_ingest_check (migration 004) aborts the
# statement if not; the closes are revision 0 only (the bet): its msg_id is the close id, so a
# close stored before, in any revision, conflicts and fails the check. Balance facts are not
# part of the bet: like orders, a stored one just sends no message. An order's message ($57/$58
# name its order) enters the outbox only if its upsert moved the order forward; a balance's
# ($70-$72 name its fact) only if the fact is new. Rows out: outbox (id, msg_id), moved orders
# (NULL, NULL, order_id, symbol), the check.
INGEST_STREAM = f"""
WITH fills_written AS ({_FILLS}RETURNING 1
), links_written AS ({_algo_links(4)}), orders_written AS ({_orders(11)}
), positions_written AS ({_positions(31)}), closes_written AS ({_closes(41)}RETURNING 1
), {_balances(61)}, outbox_written AS (
    INSERT INTO outbox (subject, msg_id, payload)
    SELECT u.subject, u.msg_id, u.payload
    FROM unnest($54::text[], $55::text[], $56::bytea[], $57::text[], $58::bigint[],
                $70::text[], $71::text[], $72::bigint[])
        WITH ORDINALITY AS u(subject, msg_id, payload, order_symbol, order_id,
                             balance_asset, balance_kind, balance_time_ms, n)
    -- A join (the planner merges or hashes it), never a scan of balances_written per message:
    -- a batch carries thousands of balance facts. Its rows are unique on the join key.
    LEFT JOIN balances_written b ON b.asset = u.balance_asset AND b.kind = u.balance_kind
        AND b.time_ms = u.balance_time_ms
    WHERE (u.balance_kind IS NULL OR b.asset IS NOT NULL) AND (u.order_id IS NULL OR EXISTS (
        SELECT 1 FROM orders_written w WHERE w.symbol = u.order_symbol AND w.order_id = u.order_id))
    ORDER BY u.n
    RETURNING id, msg_id
)
SELECT id, msg_id, NULL::bigint AS order_id, NULL::text AS symbol FROM outbox_written
UNION ALL
SELECT NULL, NULL, order_id, symbol FROM orders_written
UNION ALL
SELECT fillstream_ingest_check(
    (SELECT count(*) FROM fills_written), $59, (SELECT count(*) FROM closes_written), $60),
    NULL, NULL, NULL
"""

# Every statement an ingest may run per batch, by name: ``benchmarks.preload_ledger --explain``
# checks that each is index lookups only against a big ledger.
PER_BATCH: dict[str, str] = {
    "insert_fills": INSERT_FILLS,
    "upsert_algo_links": UPSERT_ALGO_LINKS,
    "insert_corrections": INSERT_CORRECTIONS,
    "insert_funding": INSERT_FUNDING,
    "insert_balances": INSERT_BALANCES,
    "select_close_revisions": SELECT_CLOSE_REVISIONS,
    "upsert_orders": UPSERT_ORDERS,
    "write_changes": WRITE_CHANGES,
    "ingest_stream": INGEST_STREAM,
}
