"""The consumer example (docs/examples/close_consumer.py) run as users run it, against JetStream.

Close messages are built by fillstream's own payload code and published the way the outbox relay
publishes them (subject and ``Nats-Msg-Id`` from ``fillstream.ledger.subjects``). The example must
record each close once, keep the highest revision, resume from its durable consumer, and skip
messages it has already processed when JetStream delivers them again (here: re-published after
the stream's duplicate window, as ``fillstream republish`` would).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import nats
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext

from fillstream.ledger import (
    CloseReason,
    FillKey,
    FillSource,
    Market,
    PositionClose,
    PositionSide,
)
from fillstream.storage.payloads import OutboxMessage, close_message
from tests.conftest import NatsTarget
from tests.deploy.support import DOCS

EXAMPLE = DOCS / "examples" / "close_consumer.py"


def _close(symbol: str, trade_id: int, pnl: str, revision: int = 0) -> PositionClose:
    key = FillKey("alpha", Market.USDM, symbol, trade_id, trade_id + 1000)
    return PositionClose(
        account="alpha",
        market=Market.USDM,
        symbol=symbol,
        position_side=PositionSide.BOTH,
        reason=CloseReason.TAKE_PROFIT,
        close_trade_id=trade_id,
        close_order_id=trade_id + 1000,
        qty=Decimal("0.010"),
        entry_price=Decimal("76950.00"),
        exit_price=Decimal("77100.00"),
        realized_pnl=Decimal(pnl),
        fees={"USDT": Decimal("0.61")},
        funding=None,
        opened_at_ms=1789478401230,
        closed_at_ms=1789478501230 + trade_id,
        closing_fills=(key,),
        source=FillSource.STREAM,
        revision=revision,
    )


async def _publish(js: JetStreamContext, message: OutboxMessage) -> bool:
    """Publish like the relay does; True when JetStream stored it (not a duplicate)."""
    ack = await js.publish(
        message.subject, message.payload, headers={"Nats-Msg-Id": message.msg_id}
    )
    return not ack.duplicate


async def _publish_after_window(js: JetStreamContext, message: OutboxMessage) -> None:
    """Re-publish until JetStream's duplicate window has passed and it stores the copy."""
    for _ in range(200):
        if await _publish(js, message):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{message.msg_id} still deduplicated after 10 s")


async def _run_example(target: NatsTarget, db: Path) -> dict[str, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--nats",
        target.url,
        "--stream",
        target.stream,
        "--prefix",
        target.prefix,
        "--durable",
        "closes-test",
        "--db",
        str(db),
        "--idle-exit-s",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    stats: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
    return stats


async def test_close_consumer_records_each_close_once(
    nats_target: NatsTarget, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_target.url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=nats_target.stream,
                subjects=[f"{nats_target.prefix}.>"],
                duplicate_window=0.2,  # short, so the test can re-deliver like a late republish
            )
        )
        first = [
            close_message(nats_target.prefix, _close("BTCUSDT", 11, "1.50")),
            close_message(nats_target.prefix, _close("ETHUSDT", 12, "-0.25")),
            # A late fill revised the BTCUSDT close: same close key, new message id, revision 1.
            close_message(nats_target.prefix, _close("BTCUSDT", 11, "1.75", revision=1)),
        ]
        assert first[2].msg_id.endswith(":r1")
        for message in first:
            assert await _publish(js, message)

        db = tmp_path / "closes.sqlite3"
        assert await _run_example(nats_target, db) == {
            "processed": 3,
            "duplicates": 0,
            "closes": 2,
        }

        # The same messages again, after the duplicate window, plus one new close: the durable
        # consumer resumes after what it acked; the re-deliveries are skipped by message id.
        for message in first:
            await _publish_after_window(js, message)
        assert await _publish(js, close_message(nats_target.prefix, _close("SOLUSDT", 13, "2")))
        assert await _run_example(nats_target, db) == {
            "processed": 1,
            "duplicates": 3,
            "closes": 3,
        }
    finally:
        await nc.close()

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT symbol, revision, realized_pnl FROM position_closes ORDER BY symbol"
        ).fetchall()
    assert rows == [("BTCUSDT", 1, "1.75"), ("ETHUSDT", 0, "-0.25"), ("SOLUSDT", 0, "2")]
