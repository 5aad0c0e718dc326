"""Reading the facts back from the three places that must agree, field by field.

* the venue's ground truth (the simulator's ``/_sim/ledger`` document, design.md §5);
* PostgreSQL: every column of ``fills``; the latest revision of every close (retractions drop it);
* JetStream: every message on ``<prefix>.fill.>``, ``.position.closed.>`` and
  ``.position.corrected.>``, read with an ephemeral consumer (nothing acknowledged, nothing
  changed), closes replayed in stream order (a revision replaces, a retraction withdraws).

Fills are keyed by their ``Nats-Msg-Id`` (``fill:<account>:<market>:<symbol>:<trade>:<order>``),
closes by the id of their first revision (``close:<account>:<market>:<symbol>:<side>:<trade>``).
:mod:`fillstream.sidecar.tally` counts ids and reasons only; the soak needs every field, hence this
module (used by :mod:`benchmarks.soak_verify`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

MARKET = "usdm"

# FillMessage fields (fillstream.storage.payloads) that are amounts: compared as Decimal.
AMOUNTS = frozenset({"price", "qty", "quote_qty", "commission", "realized_pnl"})
FILL_FIELDS = (
    "account",
    "market",
    "symbol",
    "trade_id",
    "order_id",
    "side",
    "position_side",
    "price",
    "qty",
    "quote_qty",
    "commission",
    "commission_asset",
    "realized_pnl",
    "maker",
    "trade_time_ms",
    "client_order_id",
    "order_type",
    "orig_type",
    "reduce_only",
    "event_time_ms",
    "source",
)


def fill_id(account: str, symbol: str, trade_id: int, order_id: int) -> str:
    return f"fill:{account}:{MARKET}:{symbol}:{trade_id}:{order_id}"


def close_id(account: str, symbol: str, position_side: str, trade_id: int) -> str:
    return f"close:{account}:{MARKET}:{symbol}:{position_side}:{trade_id}"


# -- ground truth --------------------------------------------------------------------------------


def truth_fills(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ground-truth fill in FillMessage terms (the fields the venue knows)."""
    out: dict[str, dict[str, Any]] = {}
    for account, facts in doc["accounts"].items():
        orders = {(o["symbol"], o["orderId"]): o for o in facts["orders"]}
        for f in facts["fills"]:
            order = orders.get((f["symbol"], f["orderId"]), {})
            out[fill_id(account, f["symbol"], f["id"], f["orderId"])] = {
                "account": account,
                "market": MARKET,
                "symbol": f["symbol"],
                "trade_id": f["id"],
                "order_id": f["orderId"],
                "side": f["side"],
                "position_side": f["positionSide"],
                "price": Decimal(f["price"]),
                "qty": Decimal(f["qty"]),
                "quote_qty": Decimal(f["quoteQty"]),
                "commission": Decimal(f["commission"]),
                "commission_asset": f["commissionAsset"],
                "realized_pnl": Decimal(f["realizedPnl"]),
                "maker": f["maker"],
                "trade_time_ms": f["time"],
                "client_order_id": order.get("clientOrderId"),
                "order_type": order.get("type"),
                "orig_type": order.get("origType"),
                "reduce_only": order.get("reduceOnly"),
            }
    return out


def truth_closes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ground-truth close in CloseMessage terms."""
    out: dict[str, dict[str, Any]] = {}
    for account, facts in doc["accounts"].items():
        for c in facts["closes"]:
            out[close_id(account, c["symbol"], c["positionSide"], c["closeTradeId"])] = {
                "reason": c["reason"],
                "realized_pnl": Decimal(c["realizedPnl"]),
                "close_order_id": c["closeOrderId"],
                "qty": Decimal(c["qty"]),
                "entry_price": Decimal(c["entryPrice"]),
                "fees": Decimal(c["fees"]),
                "opened_at_ms": c["openedAt"],
                "closed_at_ms": c["closedAt"],
            }
    return out


def close_view(payload: dict[str, Any]) -> dict[str, Any]:
    """A close payload (PostgreSQL ``close`` jsonb or JetStream message) in truth terms."""
    fees = payload.get("fees") or {}
    return {
        "reason": payload.get("reason"),
        "realized_pnl": Decimal(str(payload.get("realized_pnl"))),
        "close_order_id": payload.get("close_order_id"),
        "qty": Decimal(str(payload.get("qty"))),
        "entry_price": Decimal(str(payload.get("entry_price"))),
        "fees": sum((Decimal(str(v)) for v in fees.values()), Decimal(0)),
        "opened_at_ms": payload.get("opened_at_ms"),
        "closed_at_ms": payload.get("closed_at_ms"),
    }


# -- PostgreSQL ----------------------------------------------------------------------------------


@dataclass
class PgFacts:
    fills: dict[str, dict[str, Any]] = field(default_factory=dict)
    received_at: dict[str, float] = field(default_factory=dict)  # fill id → epoch seconds
    closes: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest revision payload
    close_revisions: dict[str, int] = field(default_factory=dict)
    retracted: int = 0
    outbox_pending: int = 0
    # account → [(time_ms, state, reason)] from ``status_changes``: the stream's own account.
    states: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)


async def load_postgres(dsn: str, accounts: Iterable[str]) -> PgFacts:
    names = list(accounts)
    facts = PgFacts()
    conn = await asyncpg.connect(dsn)
    try:
        columns = ", ".join(c for c in FILL_FIELDS)
        rows = await conn.fetch(
            f"SELECT {columns}, extract(epoch from received_at) AS received"
            " FROM fills WHERE account = ANY($1)",
            names,
        )
        for r in rows:
            row = {c: r[c] for c in FILL_FIELDS}
            key = fill_id(row["account"], row["symbol"], row["trade_id"], row["order_id"])
            facts.fills[key] = row
            facts.received_at[key] = float(r["received"])
        closes = await conn.fetch(
            "SELECT DISTINCT ON (close_id) close_id, revision, retracted_at IS NOT NULL, close"
            " FROM position_closes WHERE account = ANY($1) ORDER BY close_id, revision DESC",
            names,
        )
        for cid, revision, retracted, payload in closes:
            if retracted:
                facts.retracted += 1
                continue
            facts.closes[cid] = json.loads(payload) if isinstance(payload, str) else payload
            facts.close_revisions[cid] = revision
        facts.outbox_pending = int(
            await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        )
        for account, state, reason, time_ms in await conn.fetch(
            "SELECT account, state, reason, time_ms FROM status_changes WHERE account = ANY($1)"
            " ORDER BY time_ms, id",
            names,
        ):
            facts.states.setdefault(account, []).append((int(time_ms), str(state), str(reason)))
    finally:
        await conn.close()
    return facts


async def pg_counts(dsn: str) -> tuple[dict[str, int], int]:
    """(fills per account, unpublished outbox rows): the cheap convergence probe."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT account, count(*) FROM fills GROUP BY account")
        pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}, int(pending)


async def pg_fill_ids(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT account, symbol, trade_id, order_id FROM fills")
    finally:
        await conn.close()
    return {fill_id(*r) for r in rows}


# -- JetStream -----------------------------------------------------------------------------------


@dataclass
class JsFacts:
    fills: dict[str, dict[str, Any]] = field(default_factory=dict)  # first copy of each
    copies: dict[str, int] = field(default_factory=dict)
    closes: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest revision
    close_revisions: dict[str, int] = field(default_factory=dict)
    retracted: int = 0
    id_mismatches: list[str] = field(default_factory=list)  # Nats-Msg-Id ≠ payload key
    messages: int = 0


_decode = msgspec.json.Decoder(dict[str, Any]).decode


async def load_jetstream(url: str, stream: str, prefix: str, accounts: Iterable[str]) -> JsFacts:
    wanted = set(accounts)
    facts = JsFacts()
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        ordered: list[tuple[int, str, bytes]] = []
        await _read(nc, stream, f"{prefix}.fill.>", lambda _s, i, d: _on_fill(facts, wanted, i, d))
        for subject in ("position.closed", "position.corrected"):
            await _read(
                nc, stream, f"{prefix}.{subject}.>", lambda s, i, d: ordered.append((s, i, d))
            )
    finally:
        await nc.close()
    for _, msg_id, data in sorted(ordered):
        payload = _decode(data)
        if payload.get("account") in wanted:
            _on_close_message(facts, msg_id, payload)
    return facts


def _on_fill(facts: JsFacts, wanted: set[str], msg_id: str, data: bytes) -> None:
    facts.messages += 1
    payload = _decode(data)
    if payload.get("account") not in wanted:
        return
    key = fill_id(payload["account"], payload["symbol"], payload["trade_id"], payload["order_id"])
    if msg_id != key:
        facts.id_mismatches.append(f"{msg_id} carries {key}")
    facts.copies[key] = facts.copies.get(key, 0) + 1
    facts.fills.setdefault(key, payload)


def _on_close_message(facts: JsFacts, msg_id: str, payload: dict[str, Any]) -> None:
    """A close (its latest revision wins) or a retraction, in stream order."""
    if msg_id.startswith("close:"):
        facts.messages += 1
        base = _close_base(msg_id)
        revision = int(payload.get("revision", 0))
        if revision >= facts.close_revisions.get(base, -1):
            facts.closes[base] = payload
            facts.close_revisions[base] = revision
    elif msg_id.startswith("retracted:"):
        facts.messages += 1
        base = _close_base(msg_id.removeprefix("retracted:"))
        if facts.closes.pop(base, None) is not None:
            facts.retracted += 1
            facts.close_revisions.pop(base, None)


def _close_base(msg_id: str) -> str:
    """``close:…:<trade>:r2`` → ``close:…:<trade>`` (revisions carry ``:r<n>``)."""
    head, _, last = msg_id.rpartition(":")
    if last.startswith("r") and last[1:].isdigit() and head.count(":") >= 5:
        return head
    return msg_id


async def _read(
    nc: NatsClient, stream: str, subject: str, on_msg: Callable[[int, str, bytes], None]
) -> None:
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    try:
        while True:
            try:
                msgs = await sub.fetch(batch=2000, timeout=3.0)
            except TimeoutError:  # nats-py raises its own subclass of asyncio.TimeoutError
                break
            for m in msgs:
                on_msg(m.metadata.sequence.stream, (m.headers or {}).get("Nats-Msg-Id", ""), m.data)
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
