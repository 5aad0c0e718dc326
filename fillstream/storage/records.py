"""What the ledger keeps besides the ingest path: operators' records (stream sessions, gaps,
status transitions) and the facts rebuilt as messages for ``fillstream republish``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg

from fillstream.ledger import Gap, Market, StatusChange
from fillstream.storage import payloads, rows, sql
from fillstream.storage.payloads import OutboxMessage


async def insert_outbox(conn: asyncpg.Connection, messages: list[OutboxMessage]) -> None:
    """Insert outbox rows in order and set each message's ``id``."""
    if messages:
        ids = await conn.fetch(
            sql.INSERT_OUTBOX,
            [m.subject for m in messages],
            [m.msg_id for m in messages],
            [m.payload for m in messages],
        )
        assign_ids(messages, ids)


def assign_ids(messages: list[OutboxMessage], records: list[asyncpg.Record]) -> None:
    # nextval() runs in the ORDER BY order, so sorted ids line up with the messages.
    for message, new_id in zip(messages, sorted(r[0] for r in records), strict=True):
        message.id = new_id


# Every (account, market) with fills, one primary-key probe per account (a loose index scan):
# ``SELECT DISTINCT`` would read the whole table, and ``positions`` has no rows for spot.
_ACCOUNTS = """
WITH RECURSIVE a AS (
    (SELECT account, market FROM fills ORDER BY account, market LIMIT 1)
    UNION ALL
    SELECT n.account, n.market FROM a, LATERAL (
        SELECT f.account, f.market FROM fills f WHERE (f.account, f.market) > (a.account, a.market)
        ORDER BY f.account, f.market LIMIT 1) n
)
SELECT account, market FROM a
UNION
SELECT account, market FROM balances
"""

_FILLS = (
    sql.FILL_SELECT + " WHERE f.account = $1 AND f.market = $2 AND f.trade_time_ms >= $3"
    " ORDER BY f.trade_time_ms, f.trade_id, f.order_id"
)
_ORDERS = "SELECT * FROM orders WHERE update_time_ms >= $1 ORDER BY update_time_ms"
_CLOSES = (
    "SELECT close FROM position_closes WHERE closed_at_ms >= $1 ORDER BY closed_at_ms, revision"
)

# An account's balance facts from a time on: a range of the primary key (account, market, time_ms).
_BALANCES = """
SELECT account, market, time_ms, asset, kind, free, locked, delta, event_time_ms, source
FROM balance_changes WHERE account = $1 AND market = $2 AND time_ms >= $3
ORDER BY time_ms, asset, kind
"""


class Records:
    """Mixed into :class:`fillstream.storage.Ledger`."""

    pool: asyncpg.Pool
    prefix: str

    async def record_status(self, change: StatusChange) -> OutboxMessage:
        """Store a stream health transition and its ``status.<account>`` outbox row."""
        message = payloads.status_message(self.prefix, change)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO status_changes (account, market, state, previous, reason, time_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                change.account,
                change.market.value,
                change.state.value,
                change.previous.value if change.previous else None,
                change.reason,
                change.time_ms,
            )
            await insert_outbox(conn, [message])
        return message

    async def record_session(
        self,
        account: str,
        market: Market,
        *,
        connected_at_ms: int,
        disconnected_at_ms: int | None = None,
        end_reason: str | None = None,
        frames: int = 0,
        session_id: int | None = None,
    ) -> int:
        """Open (``session_id`` None) or update one user-stream connection; returns its id."""
        if session_id is None:
            new_id: int = await self.pool.fetchval(
                "INSERT INTO stream_sessions (account, market, connected_at_ms,"
                " disconnected_at_ms, end_reason, frames) VALUES ($1, $2, $3, $4, $5, $6)"
                " RETURNING id",
                account,
                market.value,
                connected_at_ms,
                disconnected_at_ms,
                end_reason,
                frames,
            )
            return new_id
        await self.pool.execute(
            "UPDATE stream_sessions SET disconnected_at_ms = $2, end_reason = $3, frames = $4"
            " WHERE id = $1",
            session_id,
            disconnected_at_ms,
            end_reason,
            frames,
        )
        return session_id

    async def record_gap(self, gap: Gap) -> None:
        """Store a gap window (idempotent on account, market, since, reason; closes it later)."""
        await self.pool.execute(
            "INSERT INTO gaps (account, market, since_ms, until_ms, reason, symbols)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (account, market, since_ms, reason)"
            " DO UPDATE SET until_ms = EXCLUDED.until_ms, symbols = EXCLUDED.symbols",
            gap.account,
            gap.market.value,
            gap.since_ms,
            gap.until_ms,
            gap.reason,
            sorted(gap.symbols),
        )

    # -- republish -----------------------------------------------------------------------------

    async def stored_messages(
        self, since_ms: int, *, chunk: int = 1000
    ) -> AsyncIterator[list[OutboxMessage]]:
        """Messages for the facts since ``since_ms`` (exchange time), rebuilt from the tables.

        Per account fills by trade time and balance facts (spot) by their time; then orders
        (their latest state) by update time, closes (every revision) by close time; each with
        the ``Nats-Msg-Id`` it was first published with.
        """
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            accounts = await conn.fetch(_ACCOUNTS)
            batch: list[OutboxMessage] = []
            for query, args, build in self._republish_reads(accounts, since_ms):
                async for r in conn.cursor(query, *args):
                    batch.append(build(r))
                    if len(batch) >= chunk:
                        yield batch
                        batch = []
            if batch:
                yield batch

    def _republish_reads(
        self, accounts: list[asyncpg.Record], since_ms: int
    ) -> list[tuple[str, tuple[object, ...], Callable[[asyncpg.Record], OutboxMessage]]]:
        """(query, arguments, row → message) of every read ``stored_messages`` makes, in order."""
        p = self.prefix

        def fill(r: asyncpg.Record) -> OutboxMessage:
            return payloads.fill_message(p, rows.fill_from_record(r))

        def balance(r: asyncpg.Record) -> OutboxMessage:
            return payloads.balance_message(p, rows.balance_from_record(r))

        def order(r: asyncpg.Record) -> OutboxMessage:
            return payloads.order_message(p, rows.order_from_record(r))

        def close(r: asyncpg.Record) -> OutboxMessage:
            return payloads.close_message(p, payloads.close_from_json(r["close"]))

        reads: list[tuple[str, tuple[object, ...], Callable[[asyncpg.Record], OutboxMessage]]] = []
        for a in sorted(accounts, key=lambda a: (a["account"], a["market"])):
            key = (a["account"], a["market"], since_ms)
            reads.append((_FILLS, key, fill))  # the (account, market, trade time) index
            reads.append((_BALANCES, key, balance))
        reads.append((_ORDERS, (since_ms,), order))
        reads.append((_CLOSES, (since_ms,), close))
        return reads
