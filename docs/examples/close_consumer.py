"""Consume fillstream's position closes from JetStream, exactly once in effect.

A durable pull consumer on ``<prefix>.position.closed.>`` that records each close in SQLite.
Delivery is at-least-once (a redelivery after a crash, ``fillstream republish`` after the
stream's duplicate window), so the handler is idempotent on the ``Nats-Msg-Id`` header: the id is
stored in the same transaction as the effect, and a message whose id is already stored is only
acknowledged. The ack comes after the commit: a crash between the two redelivers the message,
which is then skipped.

A close can be revised (a late fill changed its evidence): the revision arrives as a new message
(id suffix ``:r<revision>``) with the same close key and a higher ``revision``; the row keeps the
highest revision. Retractions come on ``<prefix>.position.corrected.>`` (not consumed here).

    python close_consumer.py --nats nats://127.0.0.1:4222 --db closes.sqlite3
    python close_consumer.py ... --idle-exit-s 5     # stop after 5 s without messages

Needs only ``nats-py``. Payload: docs/schemas/close.v1.json; subjects: docs/subjects.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from decimal import Decimal
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_messages (
    msg_id TEXT PRIMARY KEY,
    processed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS position_closes (
    account TEXT NOT NULL,
    market TEXT NOT NULL,
    symbol TEXT NOT NULL,
    position_side TEXT NOT NULL,
    close_trade_id INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    reason TEXT NOT NULL,
    qty TEXT NOT NULL,
    realized_pnl TEXT NOT NULL,
    closed_at_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (account, market, symbol, position_side, close_trade_id)
);
"""


class CloseStore:
    """SQLite: the processed message ids and the closes, written in one transaction."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def apply(self, msg_id: str, close: dict[str, Any]) -> bool:
        """Record ``close`` once per ``msg_id``. False: this message was already processed."""
        with self.db:  # one transaction: the id and the effect commit (or roll back) together
            seen = self.db.execute(
                "INSERT OR IGNORE INTO processed_messages (msg_id, processed_at) VALUES (?, ?)",
                (msg_id, time.time()),
            )
            if seen.rowcount == 0:
                return False
            self.db.execute(
                """
                INSERT INTO position_closes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (account, market, symbol, position_side, close_trade_id) DO UPDATE
                SET revision = excluded.revision, reason = excluded.reason, qty = excluded.qty,
                    realized_pnl = excluded.realized_pnl, closed_at_ms = excluded.closed_at_ms,
                    payload = excluded.payload
                WHERE excluded.revision > position_closes.revision
                """,
                (
                    close["account"],
                    close["market"],
                    close["symbol"],
                    close["position_side"],
                    close["close_trade_id"],
                    close["revision"],
                    close["reason"],
                    close["qty"],
                    close["realized_pnl"],
                    close["closed_at_ms"],
                    json.dumps(close, sort_keys=True),
                ),
            )
            return True

    def realized_pnl(self) -> Decimal:
        rows = self.db.execute("SELECT realized_pnl FROM position_closes").fetchall()
        return sum((Decimal(r[0]) for r in rows), Decimal(0))

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM position_closes").fetchone()[0])

    def close(self) -> None:
        self.db.close()


async def consume(args: argparse.Namespace) -> dict[str, int]:
    store = CloseStore(args.db)
    nc = await nats.connect(args.nats, name="close-consumer-example")
    stats = {"processed": 0, "duplicates": 0}
    try:
        js = nc.jetstream()
        subject = f"{args.prefix}.position.closed.>"
        # Durable: the server remembers what was acked; a restart resumes where it stopped.
        sub = await js.pull_subscribe(
            subject,
            durable=args.durable,
            stream=args.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
                max_ack_pending=1000,
            ),
        )
        idle_since = time.monotonic()
        while True:
            try:
                messages = await sub.fetch(args.batch, timeout=1.0)
            except TimeoutError:  # nats-py raises its own subclass or asyncio's: both are this
                if args.idle_exit_s and time.monotonic() - idle_since >= args.idle_exit_s:
                    break
                continue
            idle_since = time.monotonic()
            for msg in messages:
                msg_id = (msg.headers or {}).get("Nats-Msg-Id")
                if not msg_id:
                    # fillstream always sets it; anything else is not ours: park it for a person.
                    await msg.term()
                    continue
                close = json.loads(msg.data)
                if close.get("schema") != "close/v1":
                    await msg.term()
                    continue
                if store.apply(msg_id, close):
                    stats["processed"] += 1
                else:
                    stats["duplicates"] += 1
                await msg.ack()  # after the commit: a crash before this line redelivers
    finally:
        # Not drain(): it waits for pull subscriptions to wind down; flush() delivers our acks.
        await nc.flush()
        await nc.close()
        stats["closes"] = store.count()
        store.close()
    return stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Record fillstream position closes in SQLite.")
    p.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server URL")
    p.add_argument("--stream", default="FILLSTREAM", help="fillstream's JetStream stream")
    p.add_argument("--prefix", default="fillstream", help="fillstream's subject prefix")
    p.add_argument("--durable", default="close-consumer-example", help="durable consumer name")
    p.add_argument("--db", default="closes.sqlite3", help="SQLite file")
    p.add_argument("--batch", type=int, default=100, help="messages per fetch")
    p.add_argument(
        "--idle-exit-s", type=float, default=0.0, help="exit after this long without messages"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    stats = asyncio.run(consume(parse_args(argv)))
    sys.stdout.write(json.dumps(stats) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
