"""Ingest benchmark: fills/s and submit → JetStream-ack latency, batched vs one-by-one.

    python -m benchmarks.ingest [--quick] [--nats-sync default|always] [--only naive|batched]

Starts an embedded PostgreSQL (fsync on, synchronous_commit on) and an embedded NATS JetStream
(file store; JetStream's default sync interval, or ``sync_interval: always`` with
``--nats-sync always``: an fsync per message, what ``deploy/`` ships) on loopback, then measures
in this one process, everything sharing the machine's cores:

* **naive** — one fill at a time: one INSERT (autocommit) then one ``await js.publish`` with its
  ``Nats-Msg-Id``. A single worker drains a queue fed by the load generator.
* **batched** — the real :class:`fillstream.sidecar.pipeline.Pipeline`: ``submit_nowait`` per
  fill, micro-batched transactions (fills, book, positions, outbox) and the outbox relay's
  pipelined publish.

For each: maximum sustained throughput (a burst far above capacity; fills / time to the last
ack) and latency percentiles from submit to ack at offered loads of 1,000 and 10,000 fills/s
(open loop: the generator does not wait for acks). Prints a table; writes
``benchmarks/results/ingest.json``. Targets: design.md §9.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
from nats.js.api import StreamConfig

from fillstream.ledger import Fill, FillSource, IngestBatch, Market, PositionSide, Side, subjects
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
from fillstream.sidecar.pipeline import Pipeline
from fillstream.sidecar.stack import IngestStack
from fillstream.storage import OutboxMessage, migrate_dsn, payloads

RESULTS = Path(__file__).parent / "results" / "ingest.json"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
T0 = 1_767_225_600_000


def make_fills(account: str, n: int, seed: int, lifecycle: int = 20) -> list[Fill]:
    """Venue-like fills over a few symbols: each position opens over ``lifecycle / 2`` fills and
    closes over as many (so one fill in ``lifecycle`` closes a position), trade ids ascending."""
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    out = []
    for i in range(1, n + 1):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        j = seen[symbol] = seen.get(symbol, -1) + 1
        opening = (j // (lifecycle // 2)) % 2 == 0
        price = Decimal(rng.randint(9_000_000, 9_500_000)) / 100
        qty = Decimal("0.010")
        out.append(
            Fill(
                account=account,
                market=Market.USDM,
                symbol=symbol,
                trade_id=i,
                order_id=10_000_000 + i,
                side=Side.BUY if opening else Side.SELL,
                position_side=PositionSide.BOTH,
                price=price,
                qty=qty,
                quote_qty=price * qty,
                commission=(price * qty * Decimal("0.0004")).quantize(Decimal("0.00000001")),
                commission_asset="USDT",
                realized_pnl=Decimal(0) if opening else Decimal(rng.randint(-1000, 1000)) / 100,
                maker=rng.random() < 0.5,
                trade_time_ms=T0 + i,
                source=FillSource.STREAM,
                client_order_id=f"web_{i}",
                order_type="LIMIT",
                orig_type="LIMIT",
                reduce_only=not opening,
                event_time_ms=T0 + i,
            )
        )
    return out


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Run(msgspec.Struct):
    mode: str
    load: str  # "max" or the offered rate
    fills: int
    seconds: float
    fills_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_us_per_fill: float  # this process
    pg_cpu_us_per_fill: float  # the PostgreSQL server (postmaster and its backends)
    nats_cpu_us_per_fill: float  # nats-server


def summarize(
    mode: str,
    load: str,
    latencies_ns: list[int],
    elapsed_s: float,
    cpu_s: float,
    *,
    servers_s: tuple[float, float] = (0.0, 0.0),
) -> Run:
    ms = [x / 1e6 for x in latencies_ns]
    return Run(
        mode=mode,
        load=load,
        fills=len(ms),
        seconds=round(elapsed_s, 3),
        fills_per_s=round(len(ms) / elapsed_s, 1),
        p50_ms=round(percentile(ms, 0.50), 3),
        p99_ms=round(percentile(ms, 0.99), 3),
        max_ms=round(max(ms), 3),
        cpu_us_per_fill=round(cpu_s / len(ms) * 1e6, 1),
        pg_cpu_us_per_fill=round(servers_s[0] / len(ms) * 1e6, 1),
        nats_cpu_us_per_fill=round(servers_s[1] / len(ms) * 1e6, 1),
    )


_TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(root: int) -> float:
    """utime + stime of ``root`` and its live children, from /proc (Linux)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if root in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class ServerClock:
    """CPU seconds used by the two servers since the last reading."""

    def __init__(self, pg: EmbeddedPostgres, ns: EmbeddedNats) -> None:
        self.roots = [
            pg.proc.pid if pg.proc else 0,
            ns.proc.pid if ns.proc else 0,
        ]
        self.last = self._read()

    def _read(self) -> tuple[float, float]:
        if not Path("/proc/self/stat").exists():
            return (0.0, 0.0)
        return (_tree_cpu_s(self.roots[0]), _tree_cpu_s(self.roots[1]))

    def lap(self) -> tuple[float, float]:
        now = self._read()
        used = (now[0] - self.last[0], now[1] - self.last[1])
        self.last = now
        return used


CLOCK: ServerClock | None = None


def server_lap() -> tuple[float, float]:
    return CLOCK.lap() if CLOCK else (0.0, 0.0)


async def generate(fills: list[Fill], rate: float | None, submit: Callable[[Fill], None]) -> None:
    """Offer fills at ``rate`` per second (open loop), or all at once when ``rate`` is None."""
    if rate is None:
        for f in fills:
            submit(msgspec.structs.replace(f, received_at_ns=time.time_ns()))
            if f.trade_id % 500 == 0:
                await asyncio.sleep(0)  # as a socket reader would yield between frames
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while sent < len(fills):
        due = min(len(fills), int((loop.time() - start) * rate) + 1)
        while sent < due:
            submit(msgspec.structs.replace(fills[sent], received_at_ns=time.time_ns()))
            sent += 1
        # Sleep until the next fill is due (at least a tick, as a socket read would).
        await asyncio.sleep(max(0.0002, start + sent / rate - loop.time()))


# -- batched: the real pipeline ---------------------------------------------------------------


async def run_batched(
    dsn: str, nats_url: str, fills_by_run: dict[str, tuple[list[Fill], float | None]]
) -> list[Run]:
    done: dict[str, list[int]] = {}
    finished: dict[str, asyncio.Event] = {}
    targets: dict[str, int] = {}
    last_ack: dict[str, int] = {}

    def on_published(messages: Sequence[OutboxMessage], acked_ns: int) -> None:
        for m in messages:
            if m.received_at_ns is None or m.account not in done:
                continue
            acc = m.account
            done[acc].append(acked_ns - m.received_at_ns)
            if len(done[acc]) >= targets[acc]:
                last_ack[acc] = acked_ns
                finished[acc].set()

    stack = await IngestStack.open(
        dsn, nats_url, stream="BENCH", prefix="bench", on_published=on_published, pool_size=4
    )
    results = []
    try:
        for label, (fills, rate) in fills_by_run.items():
            account = fills[0].account
            done[account], finished[account] = [], asyncio.Event()
            targets[account] = len(fills)
            pipeline = stack.pipeline

            def submit(f: Fill, pipeline: Pipeline = pipeline) -> None:
                pipeline.submit_nowait(
                    IngestBatch(account=f.account, market=f.market, source=f.source, fills=(f,))
                )

            server_lap()
            start_ns, cpu = time.time_ns(), time.process_time()
            await generate(fills, rate, submit)
            await asyncio.wait_for(finished[account].wait(), timeout=600)
            elapsed = (last_ack[account] - start_ns) / 1e9
            cpu = time.process_time() - cpu
            results.append(
                summarize("batched", label, done[account], elapsed, cpu, servers_s=server_lap())
            )
            print_run(results[-1])
    finally:
        await stack.aclose()
    return results


# -- naive: one INSERT and one publish per fill ----------------------------------------------

NAIVE_INSERT = """
INSERT INTO fills (account, market, symbol, trade_id, order_id, side, position_side, price, qty,
    quote_qty, commission, commission_asset, realized_pnl, maker, trade_time_ms, source,
    received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9::numeric, $10::numeric, $11::numeric, $12,
    $13::numeric, $14, $15, $16, now())
ON CONFLICT DO NOTHING
"""


async def run_naive(
    dsn: str, nats_url: str, fills_by_run: dict[str, tuple[list[Fill], float | None]]
) -> list[Run]:
    conn = await asyncpg.connect(dsn)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="NAIVE", subjects=["naive.>"], duplicate_window=7200))
    results = []
    try:
        for label, (fills, rate) in fills_by_run.items():
            queue: asyncio.Queue[Fill | None] = asyncio.Queue()
            latencies: list[int] = []
            last = 0

            async def worker(
                queue: asyncio.Queue[Fill | None] = queue, latencies: list[int] = latencies
            ) -> None:
                nonlocal last
                while (f := await queue.get()) is not None:
                    await conn.execute(
                        NAIVE_INSERT,
                        f.account,
                        f.market.value,
                        f.symbol,
                        f.trade_id,
                        f.order_id,
                        f.side.value,
                        f.position_side.value,
                        str(f.price),
                        str(f.qty),
                        str(f.quote_qty),
                        str(f.commission),
                        f.commission_asset,
                        str(f.realized_pnl),
                        f.maker,
                        f.trade_time_ms,
                        f.source.value,
                    )
                    m = payloads.fill_message("naive", f)
                    await js.publish(
                        m.subject, m.payload, headers={"Nats-Msg-Id": subjects.fill_msg_id(f.key)}
                    )
                    last = time.time_ns()
                    latencies.append(last - (f.received_at_ns or last))

            task = asyncio.create_task(worker())
            server_lap()
            start_ns, cpu = time.time_ns(), time.process_time()
            await generate(fills, rate, queue.put_nowait)
            queue.put_nowait(None)
            await task
            cpu = time.process_time() - cpu
            elapsed = (last - start_ns) / 1e9
            results.append(
                summarize("naive", label, latencies, elapsed, cpu, servers_s=server_lap())
            )
            print_run(results[-1])
    finally:
        await nc.close()
        await conn.close()
    return results


def print_run(r: Run) -> None:
    print(
        f"{r.mode:8} {r.load:>10} {r.fills:>7} fills {r.seconds:>7.2f} s "
        f"{r.fills_per_s:>9.0f} fills/s  p50 {r.p50_ms:>8.2f} ms  p99 {r.p99_ms:>8.2f} ms"
        f"  max {r.max_ms:>8.2f} ms  cpu us/fill: ours {r.cpu_us_per_fill:>5.1f}"
        f" pg {r.pg_cpu_us_per_fill:>5.1f} nats {r.nats_cpu_us_per_fill:>5.1f}",
        flush=True,
    )


def plan(mode: str, quick: bool) -> dict[str, tuple[list[Fill], float | None]]:
    """Runs per mode: each its own account (a fresh book) and its own fills."""
    scale = 0.2 if quick else 1.0
    if mode == "naive":
        spec: list[tuple[str, int, float | None]] = [
            ("max", int(6_000 * scale), None),
            ("1k/s", int(5_000 * scale), 1_000.0),
            ("10k/s", int(10_000 * scale), 10_000.0),
        ]
    else:
        spec = [
            ("max", int(100_000 * scale), None),
            ("1k/s", int(5_000 * scale), 1_000.0),
            ("10k/s", int(50_000 * scale), 10_000.0),
        ]
    out: dict[str, tuple[list[Fill], float | None]] = {}
    for n, (label, count, rate) in enumerate(spec):
        account = f"{mode}{n}_{uuid.uuid4().hex[:6]}"
        out[label] = (make_fills(account, count, seed=n), rate)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pg = EmbeddedPostgres()
    ns = EmbeddedNats(sync_always=args.nats_sync == "always")
    admin_dsn = pg.start()
    nats_url = ns.start()
    load_before = os.getloadavg()
    naive: list[Run] = []
    batched: list[Run] = []
    try:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        dsn = pg.dsn("bench")
        await migrate_dsn(dsn)
        global CLOCK  # noqa: PLW0603 - one benchmark run per process
        CLOCK = ServerClock(pg, ns)
        print(
            f"nats sync_interval: {args.nats_sync}; cores: {os.cpu_count()}; "
            f"load average before: {load_before[0]:.2f}",
            flush=True,
        )
        if args.only in (None, "naive"):
            naive = await run_naive(dsn, nats_url, plan("naive", args.quick))
        if args.only in (None, "batched"):
            batched = await run_batched(dsn, nats_url, plan("batched", args.quick))
    finally:
        ns.close()
        pg.close()
    report: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.ingest", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": round(load_before[0], 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        },
        "nats_sync_interval": args.nats_sync,
        "runs": [msgspec.to_builtins(r) for r in naive + batched],
        "targets": {
            "max_fills_per_s": 20_000,
            "ratio_over_naive": 12,
            "p99_ms_at_1k": 1.5,
            "p99_ms_at_10k": 10,
        },
    }
    if naive and batched:
        naive_max = next(r for r in naive if r.load == "max").fills_per_s
        batched_max = next(r for r in batched if r.load == "max").fills_per_s
        report["batched_over_naive_max"] = round(batched_max / naive_max, 2)
        print(f"batched / naive max throughput: {report['batched_over_naive_max']}x")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the fills (smoke run)")
    parser.add_argument(
        "--nats-sync",
        choices=["always", "default"],
        default="default",
        help="JetStream sync_interval: 'always' fsyncs every message (what deploy/ ships)",
    )
    parser.add_argument("--only", choices=["naive", "batched"], help="run one mode only")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    out = RESULTS if args.nats_sync == "default" else RESULTS.with_name("ingest-sync-always.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
