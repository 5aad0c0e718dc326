"""The PostgreSQL ledger: one transaction per ingest batch, facts and outbox together.

``ingest`` is the heart of "no fill lost, none duplicated": the ``fills`` unique key decides
what is new (``ON CONFLICT DO NOTHING RETURNING``); only new fills reach the position book, and
the book's changes (positions, closes, revisions, retractions), the forward order transitions,
the algo links, the corrections and one outbox row per message are written in the same
transaction, and so are a spot batch's balance facts (``balance_changes``, new ones only, with
the latest state per asset in ``balances``). A spot batch never reaches the book
(:func:`fillstream.ledger.folds_positions`): no positions, no closes. If the transaction fails,
the account's in-memory book is dropped and reloaded from the store on the next batch, so the
book never holds a change the store does not.

A stream batch is usually all new, so it first takes a one-statement path (``_ingest_bet``): the
book folds its fills before the store has said they are new, and one autocommit statement
writes everything, checking in the same statement that every fill and close was indeed new
(migration 004). If not, nothing of it is stored, the book is reloaded and the batch takes the
transactional path above. Either way the commit precedes every publish of its messages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from fillstream.ledger import (
    AlgoLink,
    BalanceChange,
    Fill,
    FillSource,
    FundingFee,
    IngestBatch,
    Market,
    OrderUpdate,
    Position,
    PositionBook,
    PositionClose,
    PositionCorrection,
    subjects,
)
from fillstream.ledger.book import DEFAULT_MAX_ENTRIES
from fillstream.storage import fence, payloads, rows, sql
from fillstream.storage.books import load_book
from fillstream.storage.orders import OrderPublishing
from fillstream.storage.payloads import OutboxMessage
from fillstream.storage.records import Records, assign_ids

log = logging.getLogger(__name__)

# The one-statement ingest with the fence (replicas): built from sql.INGEST_STREAM as it is.
_INGEST_STREAM_FENCED, _FENCE_PARAM = fence.fenced_statement(sql.INGEST_STREAM)

DEFAULT_HORIZON_MS = 6 * 3600 * 1000


class IngestOutcome(msgspec.Struct, kw_only=True):
    """What one committed ingest changed. ``messages`` are the outbox rows, ids assigned."""

    new_fills: list[Fill]
    duplicate_fills: list[Fill]
    closes: list[PositionClose]  # new closes and revisions
    retracted: list[PositionClose]
    orders: list[OrderUpdate]  # the latest state of each order moved forward, by update time
    corrections: list[PositionCorrection]  # new ones
    funding: list[FundingFee]  # new ones (by tranId)
    messages: list[OutboxMessage]
    balances: list[BalanceChange] = msgspec.field(default_factory=list)  # new ones (spot)


def close_id(close: PositionClose) -> str:
    """The message id of a close's first revision: what groups its revisions."""
    return subjects.close_msg_id(msgspec.structs.replace(close, revision=0))


def _close_columns(closes: list[PositionClose]) -> list[list[Any]]:
    return [
        [subjects.close_msg_id(c) for c in closes],
        [close_id(c) for c in closes],
        [c.symbol for c in closes],
        [c.position_side.value for c in closes],
        [c.reason.value for c in closes],
        [c.revision for c in closes],
        [c.close_trade_id for c in closes],
        [c.close_order_id for c in closes],
        [str(c.realized_pnl) for c in closes],
        [c.opened_at_ms for c in closes],
        [c.closed_at_ms for c in closes],
        [c.source.value for c in closes],
        [payloads.encode(payloads.close_body(c)).decode() for c in closes],
    ]


_BET_LOST = "FS409"  # fillstream_ingest_check (migration 004): a fill or close was stored


def _bettable(batch: IngestBatch) -> bool:
    """Stream facts only: the REST path re-reads what is mostly stored already."""
    return (
        not batch.corrections
        and not batch.funding
        and all(f.source is FillSource.STREAM for f in batch.fills)
    )


def _unique_fills(batch: IngestBatch) -> tuple[list[Fill], list[Fill]]:
    """The batch's fills, first occurrence per key, and the later copies."""
    # (symbol, trade id, order id): the rest of the FillKey is the batch's, checked here.
    unique: dict[tuple[str, int, int], Fill] = {}
    duplicates: list[Fill] = []
    for f in batch.fills:
        if f.account != batch.account or f.market is not batch.market:
            raise ValueError(f"fill of {f.account}/{f.market} in a batch of {batch.account}")
        k = (f.symbol, f.trade_id, f.order_id)
        if k in unique:
            duplicates.append(f)
        else:
            unique[k] = f
    return list(unique.values()), duplicates


def _latest_links(links: Sequence[AlgoLink]) -> list[AlgoLink]:
    latest: dict[int, AlgoLink] = {}
    for link in links:
        prev = latest.get(link.algo_id)
        if prev is None or prev.update_time_ms <= link.update_time_ms:
            latest[link.algo_id] = link
    return list(latest.values())


def _link_columns(ls: Sequence[AlgoLink]) -> list[list[Any]]:
    return [
        [x.symbol for x in ls],
        [x.algo_id for x in ls],
        [x.client_algo_id for x in ls],
        [x.algo_type for x in ls],
        [x.status for x in ls],
        [x.order_id for x in ls],
        [x.update_time_ms for x in ls],
    ]


def _unique_balances(batch: IngestBatch) -> list[BalanceChange]:
    """The batch's balance facts, first occurrence per key (the store's key, sql._balances)."""
    unique: dict[tuple[str, str, int], BalanceChange] = {}
    for b in batch.balances:
        if b.account != batch.account or b.market is not batch.market:
            raise ValueError(f"balance of {b.account}/{b.market} in a batch of {batch.account}")
        unique.setdefault((b.asset, b.kind.value, b.time_ms), b)
    return list(unique.values())


def _latest_orders(orders: Sequence[OrderUpdate]) -> list[OrderUpdate]:
    """One state per order: the furthest forward of the batch's."""
    latest: dict[tuple[str, int], OrderUpdate] = {}
    for o in orders:
        k = (o.symbol, o.order_id)
        prev = latest.get(k)
        if prev is None or rows.order_progress(o) > rows.order_progress(prev):
            latest[k] = o
    return list(latest.values())


class Ledger(Records):
    """Fills, orders, positions, closes and the outbox in PostgreSQL.

    Calls for one (account, market) must be serialized by the caller (the pipeline does);
    different accounts may ingest concurrently. The position books are held here, one per
    (account, market), loaded from the store on first use.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        prefix: str = "fillstream",
        horizon_ms: int = DEFAULT_HORIZON_MS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        publish_orders: OrderPublishing = OrderPublishing.ALL,
        fences: fence.Fences | None = None,
    ) -> None:
        self.pool = pool
        self.fences = fences or fence.Fences()
        self.publish_orders = publish_orders
        self.prefix = prefix
        self.horizon_ms = horizon_ms
        self.max_entries = max_entries
        self._books: dict[tuple[str, Market], PositionBook] = {}

    # -- ingest -------------------------------------------------------------------------------

    async def ingest(self, batch: IngestBatch) -> IngestOutcome:
        """Store one batch in one transaction; idempotent on every fact's key.

        Fills are deduplicated by :class:`FillKey` (the first occurrence in the batch wins, then
        the store: a fill already stored is a duplicate whatever its source). Raises whatever
        asyncpg raises; nothing of the batch is then stored and the book is reloaded next time.
        """
        key = (batch.account, batch.market)
        try:
            async with self.pool.acquire() as conn:
                if _bettable(batch):
                    outcome = await self._ingest_bet(conn, batch)
                    if outcome is not None:
                        return outcome
                async with conn.transaction():
                    epoch = self.fences.epoch(*key)
                    if epoch is not None:  # first: holds the owner row until the commit
                        await fence.check(conn, batch.account, batch.market, epoch)
                    return await self._ingest(conn, batch)
        except BaseException as exc:
            self._books.pop(key, None)
            if fence.is_refusal(exc):
                self.fences.refused(batch.account, batch.market, exc)
            raise

    async def _ingest_bet(
        self, conn: asyncpg.Connection, batch: IngestBatch
    ) -> IngestOutcome | None:
        """A stream batch in one statement (:data:`sql.INGEST_STREAM`), or None if the bet lost.

        The bet: every fill of a stream batch is new, so the book folds them before PostgreSQL
        has said so, and everything is written in one autocommit statement (one round trip
        instead of five to eight). If some fill or close turns out to be stored already, the
        statement aborts as a whole, the book (which folded them) is reloaded, and the caller
        takes the transactional path.
        """
        book = await self._book(conn, batch.account, batch.market)
        fills, duplicates = _unique_fills(batch)
        links = _latest_links(batch.algo_links)
        change = book.apply(fills, (), links, ())
        if change.retracted or any(c.revision for c in change.closes):
            self._bet_lost(batch)  # a refold revised history: ask first
            return None
        orders = _latest_orders(batch.orders)
        balances = _unique_balances(batch)
        p = self.prefix
        order_messages = {
            (o.symbol, o.order_id): payloads.order_message(p, o)
            for o in orders
            if self.publish_orders.selects(o)
        }
        messages = [payloads.fill_message(p, f) for f in fills]
        messages += order_messages.values()
        messages += [payloads.close_message(p, c) for c in change.closes]
        messages += [payloads.balance_message(p, b) for b in balances]
        tags = [(None, None)] * len(fills) + list(order_messages)
        tags += [(None, None)] * len(change.closes + balances)
        balance_tags: list[tuple[str | None, str | None, int | None]]
        balance_tags = [(None, None, None)] * (len(messages) - len(balances))
        balance_tags += [(b.asset, b.kind.value, b.time_ms) for b in balances]
        sealed = [book.sealed_through(x.symbol, x.position_side) for x in change.positions]
        epoch = self.fences.epoch(batch.account, batch.market)
        fenced = () if epoch is None else (epoch,)
        try:
            records = await conn.fetch(
                sql.INGEST_STREAM if epoch is None else _INGEST_STREAM_FENCED,
                batch.account,
                batch.market.value,
                rows.fills_json(fills),
                *_link_columns(links),
                *rows.order_columns(orders),
                *rows.position_columns(change.positions, sealed),
                *_close_columns(change.closes),
                [m.subject for m in messages],
                [m.msg_id for m in messages],
                [m.payload for m in messages],
                [t[0] for t in tags],
                [t[1] for t in tags],
                len(fills),
                len(change.closes),
                *rows.balance_columns(balances),
                [t[0] for t in balance_tags],
                [t[1] for t in balance_tags],
                [t[2] for t in balance_tags],
                *fenced,
            )
        except asyncpg.PostgresError as exc:
            # A refused value (class 22, also asyncpg's own encoding errors; or 23) is retried on
            # the transactional path too: nothing of this statement is stored, and that path
            # raises it from the statement that owns the fact, as the quarantine expects.
            if exc.sqlstate != _BET_LOST and (exc.sqlstate or "")[:2] not in {"22", "23"}:
                raise
            self._bet_lost(batch)
            return None
        ids = {r["msg_id"]: r["id"] for r in records if r["msg_id"] is not None}
        moved = {(r["symbol"], r["order_id"]) for r in records if r["order_id"] is not None}
        stored = [m for m in messages if m.msg_id in ids]
        for m in stored:
            m.id = ids[m.msg_id]
        forward = sorted(
            (o for o in orders if (o.symbol, o.order_id) in moved), key=lambda o: o.update_time_ms
        )
        new_balances = [b for b in balances if subjects.balance_msg_id(b) in ids]
        return IngestOutcome(
            new_fills=fills,
            duplicate_fills=duplicates,
            closes=change.closes,
            retracted=[],
            orders=forward,
            corrections=[],
            funding=[],
            messages=stored,
            balances=new_balances,
        )

    def _bet_lost(self, batch: IngestBatch) -> None:
        self._books.pop((batch.account, batch.market), None)  # it folded what may be old
        log.debug("stream batch of %s/%s: not all new, asking first", batch.account, batch.market)

    async def _ingest(self, conn: asyncpg.Connection, batch: IngestBatch) -> IngestOutcome:
        account, market = batch.account, batch.market.value
        # Before this batch's inserts: a reload must not see the fills it is about to apply.
        book = await self._book(conn, batch.account, batch.market)
        new_fills, duplicates = await self._insert_fills(conn, batch)
        links = await self._upsert_algo_links(conn, batch.algo_links)
        corrections = await self._insert_corrections(conn, batch.corrections)
        funding = await self._insert_funding(conn, batch.funding)
        change = book.apply(new_fills, corrections, links, funding)
        closes, retracted = await self._number_closes(conn, change.closes, change.retracted)
        orders = await self._upsert_orders(conn, batch) if batch.orders else []
        balances = await self._insert_balances(conn, batch)
        p = self.prefix
        messages = [payloads.fill_message(p, f) for f in new_fills]
        messages += [payloads.order_message(p, o) for o in orders if self.publish_orders.selects(o)]
        messages += [payloads.close_message(p, c) for c in closes]
        messages += [payloads.retraction_message(p, c, batch.source) for c in retracted]
        messages += [payloads.correction_message(p, c) for c in corrections]
        messages += [payloads.balance_message(p, b) for b in balances]
        if change.positions or messages or retracted:
            sealed = [book.sealed_through(x.symbol, x.position_side) for x in change.positions]
            ids = await conn.fetch(
                sql.WRITE_CHANGES,
                account,
                market,
                *rows.position_columns(change.positions, sealed),
                *_close_columns(closes),
                [close_id(c) for c in retracted],
                [m.subject for m in messages],
                [m.msg_id for m in messages],
                [m.payload for m in messages],
            )
            assign_ids(messages, ids)
        return IngestOutcome(
            new_fills=new_fills,
            duplicate_fills=duplicates,
            closes=closes,
            retracted=retracted,
            orders=orders,
            corrections=corrections,
            funding=funding,
            messages=messages,
            balances=balances,
        )

    async def _insert_balances(
        self, conn: asyncpg.Connection, batch: IngestBatch
    ) -> list[BalanceChange]:
        """Store the batch's balance facts (and the latest state); return the new ones."""
        if not batch.balances:
            return []
        candidates = _unique_balances(batch)
        inserted = await conn.fetch(
            sql.INSERT_BALANCES,
            batch.account,
            batch.market.value,
            *rows.balance_columns(candidates),
        )
        fresh = {(r["asset"], r["kind"], r["time_ms"]) for r in inserted}
        return [b for b in candidates if (b.asset, b.kind.value, b.time_ms) in fresh]

    async def _insert_funding(
        self, conn: asyncpg.Connection, funding: Sequence[FundingFee]
    ) -> list[FundingFee]:
        if not funding:
            return []
        fs = list({f.tran_id: f for f in funding}.values())
        inserted = await conn.fetch(
            sql.INSERT_FUNDING,
            fs[0].account,
            fs[0].market.value,
            [f.symbol for f in fs],
            [f.position_side.value for f in fs],
            [str(f.amount) for f in fs],
            [f.asset for f in fs],
            [f.time_ms for f in fs],
            [f.tran_id for f in fs],
        )
        fresh = {r["tran_id"] for r in inserted}
        return [f for f in fs if f.tran_id in fresh]

    async def _number_closes(
        self,
        conn: asyncpg.Connection,
        closes: list[PositionClose],
        retracted: list[PositionClose],
    ) -> tuple[list[PositionClose], list[PositionClose]]:
        """Give every stored close revision a message id never used before.

        The book numbers revisions from what it holds; the store may hold more: a close retracted
        earlier and now back (a second late fill undid the first) is revision 0 to the book again.
        Each such close is renumbered past the stored revisions, and a retraction names the latest
        stored revision, so neither is deduplicated away on JetStream. A close emitted and
        retracted within this one change never happened as far as the world knows: both go.
        """
        if not closes and not retracted:
            return closes, retracted
        both = {close_id(c) for c in closes} & {close_id(r) for r in retracted}
        if both:
            closes = [c for c in closes if close_id(c) not in both]
            retracted = [r for r in retracted if close_id(r) not in both]
        ids = [close_id(c) for c in (*closes, *retracted)]
        if not ids:
            return closes, retracted
        stored: dict[str, int] = {
            r["close_id"]: r["revision"] for r in await conn.fetch(sql.SELECT_CLOSE_REVISIONS, ids)
        }
        renumbered = []
        for close in closes:
            cid = close_id(close)
            last = stored.get(cid)
            if last is not None and close.revision <= last:
                close = msgspec.structs.replace(close, revision=last + 1)  # noqa: PLW2901
            stored[cid] = close.revision
            renumbered.append(close)
        named = [
            msgspec.structs.replace(r, revision=stored.get(close_id(r), r.revision))
            for r in retracted
        ]
        return renumbered, named

    async def _insert_fills(
        self, conn: asyncpg.Connection, batch: IngestBatch
    ) -> tuple[list[Fill], list[Fill]]:
        if not batch.fills:
            return [], []
        candidates, duplicates = _unique_fills(batch)
        inserted = await conn.fetch(
            sql.INSERT_FILLS,
            batch.account,
            batch.market.value,
            rows.fills_json(candidates),
        )
        fresh = {(r[0], r[1], r[2]) for r in inserted}
        new: list[Fill] = []
        for f in candidates:
            if (f.symbol, f.trade_id, f.order_id) in fresh:
                new.append(f)
            else:
                duplicates.append(f)
        return new, duplicates

    async def _upsert_algo_links(
        self, conn: asyncpg.Connection, links: Sequence[AlgoLink]
    ) -> list[AlgoLink]:
        if not links:
            return []
        ls = _latest_links(links)
        await conn.execute(
            sql.UPSERT_ALGO_LINKS, ls[0].account, ls[0].market.value, *_link_columns(ls)
        )
        return ls

    async def _insert_corrections(
        self, conn: asyncpg.Connection, corrections: Sequence[PositionCorrection]
    ) -> list[PositionCorrection]:
        if not corrections:
            return []
        cs = list({(c.symbol, c.position_side, c.time_ms, c.qty): c for c in corrections}.values())
        inserted = await conn.fetch(
            sql.INSERT_CORRECTIONS,
            cs[0].account,
            cs[0].market.value,
            [c.symbol for c in cs],
            [c.position_side.value for c in cs],
            [str(c.qty) for c in cs],
            [str(c.entry_price) for c in cs],
            [c.time_ms for c in cs],
        )
        fresh = {(r["symbol"], r["position_side"], r["time_ms"], r["qty"]) for r in inserted}
        return [c for c in cs if (c.symbol, c.position_side.value, c.time_ms, c.qty) in fresh]

    async def _upsert_orders(
        self, conn: asyncpg.Connection, batch: IngestBatch
    ) -> list[OrderUpdate]:
        """Store the latest state per order; return those past the stored one, in time order."""
        candidates = _latest_orders(batch.orders)
        moved = {
            (r[0], r[1])
            for r in await conn.fetch(
                sql.UPSERT_ORDERS,
                batch.account,
                batch.market.value,
                *rows.order_columns(candidates),
            )
        }
        forward = [o for o in candidates if (o.symbol, o.order_id) in moved]
        forward.sort(key=lambda o: o.update_time_ms)
        return forward

    # -- books and positions -------------------------------------------------------------------

    async def _book(self, conn: asyncpg.Connection, account: str, market: Market) -> PositionBook:
        book = self._books.get((account, market))
        if book is None:
            book = await load_book(
                conn, account, market, horizon_ms=self.horizon_ms, max_entries=self.max_entries
            )
            self._books[(account, market)] = book
        return book

    def forget_book(self, account: str, market: Market) -> None:
        """Drop the in-memory book; the next ingest reloads it from the store."""
        self._books.pop((account, market), None)

    async def positions(self, account: str, market: Market) -> list[Position]:
        """Every position row of the account as committed (flat ones included, ``qty`` 0)."""
        records = await self.pool.fetch(
            "SELECT * FROM positions WHERE account = $1 AND market = $2 "
            "ORDER BY symbol, position_side",
            account,
            market.value,
        )
        return [rows.position_from_record(r) for r in records]
