"""The baseline a user writes today: python-binance's futures user socket, and per fill event one
``INSERT`` and one JetStream publish.

    python -m benchmarks.baseline [--quick]      # the baseline alone (benchmarks.end_to_end runs
                                                 # it next to fillstream, in the same run)

What the consumer does, per message from ``BinanceSocketManager.futures_user_socket().recv()``:
if it is an ``ORDER_TRADE_UPDATE`` execution, ``INSERT … ON CONFLICT DO NOTHING`` one row into the
same ``fills`` table (amounts as text → numeric, autocommit) and ``await js.publish(...)`` the event
as JSON with a ``Nats-Msg-Id`` of account, symbol and trade id, then take the next message. Other
events are ignored (this baseline does strictly less work than fillstream: no order transitions,
no positions, no closes, no outbox).

Generous settings, all in the baseline's favour: python-binance's queue is made effectively
unbounded (its default of 100 closes the socket on overflow, python-binance #1016/#1559), and its
"receipt" is stamped when ``recv()`` returns, after the library's own queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
import warnings
from decimal import Decimal
from typing import Any

import asyncpg
import nats
from nats.js.api import StreamConfig

from benchmarks.end_to_end import (
    ReplayVenue,
    Run,
    Sample,
    cpu_per_fill,
    cpu_snapshot,
    print_run,
    summarize,
)

INSERT = """
INSERT INTO fills (account, market, symbol, trade_id, order_id, side, position_side, price, qty,
    quote_qty, commission, commission_asset, realized_pnl, maker, trade_time_ms, client_order_id,
    order_type, orig_type, reduce_only, event_time_ms, source, received_at)
VALUES ($1, 'usdm', $2, $3, $4, $5, $6, $7::numeric, $8::numeric, $9::numeric, $10::numeric, $11,
    $12::numeric, $13, $14, $15, $16, $17, $18, $19, 'stream', now())
ON CONFLICT DO NOTHING
"""


class NaiveClient:
    """One fresh account per run; connections opened per run, as a small script would."""

    def __init__(
        self,
        dsn: str,
        nats_url: str,
        venue: ReplayVenue,
        index: dict[Any, int],
        servers: dict[str, int] | None = None,
    ) -> None:
        self.servers = servers or {}
        self.dsn = dsn
        self.nats_url = nats_url
        self.venue = venue
        self.index = index

    async def run(self, label: str, fills: int, rate: float | None) -> Run:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from binance import AsyncClient, BinanceSocketManager

        account = f"naive-{label.replace('/', '')}-{secrets.token_hex(3)}"
        conn = await asyncpg.connect(self.dsn)
        nc = await nats.connect(self.nats_url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="NAIVE", subjects=["naive.>"], duplicate_window=7200))
        client = AsyncClient("bench-key", "bench-secret")
        client.FUTURES_URL = f"{self.venue.rest_url}/fapi"
        manager = BinanceSocketManager(client, max_queue_size=1_000_000)
        manager.FSTREAM_URL = f"{self.venue.ws_url}/"
        samples: list[Sample] = []
        try:
            async with manager.futures_user_socket() as socket:
                cpu = time.process_time()
                snap = cpu_snapshot(self.servers)
                t0_ns = await self.venue.start(fills, rate or 0)
                while len(samples) < fills:
                    msg = await socket.recv()
                    received = time.time_ns()
                    if msg.get("e") != "ORDER_TRADE_UPDATE":
                        continue
                    o = msg["o"]
                    if o["x"] not in ("TRADE", "CALCULATED") or not o["t"]:
                        continue
                    price, qty = Decimal(o["L"]), Decimal(o["l"])
                    await conn.execute(
                        INSERT,
                        account,
                        o["s"],
                        o["t"],
                        o["i"],
                        o["S"],
                        o["ps"],
                        o["L"],
                        o["l"],
                        str(price * qty),
                        o.get("n") or "0",
                        o.get("N") or "",
                        o["rp"],
                        o["m"],
                        o["T"],
                        o["c"],
                        o["o"],
                        o["ot"],
                        o["R"],
                        msg["E"],
                    )
                    await js.publish(
                        f"naive.fill.{account}.{o['s']}",
                        json.dumps(msg).encode(),
                        headers={"Nats-Msg-Id": f"{account}:{o['s']}:{o['t']}:{o['i']}"},
                    )
                    samples.append(
                        Sample(self.index[(o["s"], o["t"], o["i"])], received, time.time_ns())
                    )
                cpu = time.process_time() - cpu
                by_process = cpu_per_fill(snap, cpu_snapshot(self.servers), fills)
        finally:
            await client.close_connection()
            await nc.close()
            await conn.close()
        run = summarize(
            consumer="naive", load=label, rate=rate, samples=samples, t0_ns=t0_ns, cpu_s=cpu
        )
        run.cpu_us_per_fill_by_process = by_process
        return run


async def _main(quick: bool) -> None:
    from benchmarks.end_to_end import plan, record, recording_path
    from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
    from fillstream.storage import migrate_dsn

    runs = plan(quick)["naive"]
    need = max(n for _, n, _ in runs)
    recording = await record(need, seed=42)
    path = recording_path(need, 42)
    pg, ns = EmbeddedPostgres(), EmbeddedNats()
    try:
        admin = await asyncpg.connect(await asyncio.to_thread(pg.start))
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        dsn = pg.dsn("bench")
        await migrate_dsn(dsn)
        nats_url = await asyncio.to_thread(ns.start)
        async with ReplayVenue(path) as venue:
            naive = NaiveClient(dsn, nats_url, venue, recording.index())
            for label, fills, rate in runs:
                print_run(await naive.run(label, fills, rate))
    finally:
        await asyncio.to_thread(ns.close)
        await asyncio.to_thread(pg.close)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(_main(parser.parse_args().quick))


if __name__ == "__main__":
    main()
