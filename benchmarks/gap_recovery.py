"""Gap recovery: from "socket back" to "last missed fill on JetStream", after stream outages.

    python -m benchmarks.gap_recovery [--outages 5,60] [--repeats 5,3] [--long] [--rate 100]

Everything real, in this one process: embedded PostgreSQL (fsync on) and NATS JetStream
(``sync_interval: always``, as ``deploy/`` ships), the simulator trading ``--rate`` fills/s, the
venue wrapper, the pipeline and relay, the user stream and the reconciler with its default
settings (60 s polls while streaming, 5 s while not, 2 s settle delay). Each run cuts the socket
and refuses reconnects for the outage length; the missed fills are the ground truth's fills of
the outage window. Reported per run: the outage as it happened, the missed fills, and
``recovery`` = ack time of the last of them minus the moment the stream was back (0 when all were
already published by the degraded-mode polls during the outage). ``--long`` adds a 10-minute
outage. Prints a table; writes ``benchmarks/results/gap_recovery.json``. Target (design.md §9):
≤ 1 s (p99) after a 60 s outage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fillstream.binance.rest import BinanceVenue, WeightBudgets
from fillstream.ledger import Market, StatusChange, StreamState
from fillstream.reconcile import Reconciler, ReconcileSettings
from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.sidecar.stack import IngestStack
from fillstream.simulator import SimConfig, Simulator
from fillstream.storage.cursors import PgCursorStore
from fillstream.storage.orders import PgOrderView
from fillstream.storage.payloads import OutboxMessage
from fillstream.stream.config import StreamSettings
from fillstream.stream.listener import UserStream

RESULTS = Path(__file__).parent / "results" / "gap_recovery.json"
ACCOUNT = "alpha"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


class Recorder:
    """Ack times of published fills, and the moments the stream came back."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.acked_ns: dict[str, int] = {}
        self.streaming_ns: list[int] = []

    def on_published(self, messages: Sequence[OutboxMessage], acked_ns: int) -> None:
        for m in messages:
            if m.msg_id.startswith("fill:"):
                self.acked_ns.setdefault(m.msg_id, acked_ns)

    def on_status(self, change: StatusChange) -> None:
        if change.state is StreamState.STREAMING:
            self.streaming_ns.append(time.time_ns())
        self.pipeline.on_status(change)


class TracedVenue:
    """``--trace``: the venue, logging every REST call's start, duration and row count."""

    def __init__(self, venue: Any) -> None:
        self._venue = venue

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._venue, name)
        if not callable(attr) or name.startswith("_") or name == "aclose":
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                result = await attr(*args, **kwargs)
            except Exception as exc:
                TRACE.info("%s%r %s failed in %.3fs: %s", name, args, kwargs, _since(started), exc)
                raise
            rows = len(result) if isinstance(result, list) else 1
            TRACE.info("%s%r %s: %d rows in %.3fs", name, args, kwargs, rows, _since(started))
            return result

        return call


TRACE = logging.getLogger("benchmarks.gap_recovery.trace")


def _since(started: float) -> float:
    return time.monotonic() - started


def _fill_id(f: dict[str, Any]) -> str:
    return f"fill:{ACCOUNT}:usdm:{f['symbol']}:{f['id']}:{f['orderId']}"


async def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def one_outage(
    sim: Simulator, stream: UserStream, rec: Recorder, outage_s: float
) -> dict[str, Any]:
    await _wait(lambda: stream.state is StreamState.STREAMING, 120, "stream up")
    await asyncio.sleep(2.0)  # steady state before the cut
    backs = len(rec.streaming_ns)
    cut_ms = int(time.time() * 1000)
    sim.inject(ACCOUNT, "refuse_ws", seconds=outage_s)
    sim.inject(ACCOUNT, "disconnect")
    await _wait(lambda: len(rec.streaming_ns) > backs, outage_s + 120, "stream back")
    back_ns = rec.streaming_ns[-1]
    TRACE.info("stream back")
    back_ms = back_ns // 1_000_000
    fills = sim.ground_truth()["accounts"][ACCOUNT]["fills"]
    missed = [_fill_id(f) for f in fills if cut_ms - 1000 <= int(f["time"]) <= back_ms]
    await _wait(lambda: all(m in rec.acked_ns for m in missed), 120, "missed fills published")
    lags = [(rec.acked_ns[m] - back_ns) / 1e9 for m in missed]
    return {
        "outage_nominal_s": outage_s,
        "outage_s": round((back_ms - cut_ms) / 1000, 3),
        "missed_fills": len(missed),
        "recovery_s": round(max([0.0, *lags]), 4),
        "recovered_after_back": sum(1 for x in lags if x > 0),
        "per_fill_after_back_p50_s": round(statistics.median([max(0.0, x) for x in lags]), 4)
        if lags
        else 0.0,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    outages = [float(x) for x in args.outages.split(",")]
    repeats = [int(x) for x in args.repeats.split(",")]
    if args.long:
        outages.append(600.0)
        repeats.append(1)
    pg, ns = EmbeddedPostgres(), EmbeddedNats()
    dsn, nats_url = pg.start(), ns.start()
    sim = Simulator(SimConfig(accounts=(ACCOUNT,), rate=0, seed=args.seed, symbols=SYMBOLS))
    await sim.start()
    holder: list[Recorder] = []
    stack = await IngestStack.open(
        dsn,
        nats_url,
        stream="FILLSTREAM",
        prefix="fillstream",
        on_published=lambda m, t: holder[0].on_published(m, t) if holder else None,
    )
    rec = Recorder(stack.pipeline)
    holder.append(rec)
    acct = sim.account(ACCOUNT)
    venue = await BinanceVenue.create(
        account=ACCOUNT,
        api_key=acct.api_key,
        api_secret=acct.api_secret,
        rest_url=sim.rest_url,
        budget=WeightBudgets(),
    )
    reconciler = Reconciler(
        account=ACCOUNT,
        market=Market.USDM,
        venue=TracedVenue(venue) if args.trace else venue,
        sink=stack.pipeline,
        cursors=PgCursorStore(stack.pool),
        orders=PgOrderView(stack.pool),
        index=PgFillIndex(stack.pool),
        settings=ReconcileSettings(symbols=SYMBOLS),
    )
    # Reconnect promptly once the venue accepts again: we time from "socket back" anyway.
    settings = StreamSettings(ws_url=sim.ws_url, backoff_initial_s=0.1, backoff_max_s=1.0)
    stream = UserStream(ACCOUNT, venue, stack.pipeline, reconciler, settings, status=rec)
    rec_task = asyncio.create_task(reconciler.run())
    stream.start()
    per_symbol = args.rate / len(SYMBOLS)
    trading = [asyncio.create_task(sim.burst(ACCOUNT, s, 10**9, rate=per_symbol)) for s in SYMBOLS]
    runs: list[dict[str, Any]] = []
    try:
        for outage_s, n in zip(outages, repeats, strict=True):
            for i in range(n):
                result = await one_outage(sim, stream, rec, outage_s)
                runs.append(result)
                print(
                    f"outage {outage_s:>5.0f}s run {i + 1}/{n}: actual {result['outage_s']:.1f}s,"
                    f" {result['missed_fills']} missed, {result['recovered_after_back']} after"
                    f" back, recovery {result['recovery_s']:.3f}s",
                    flush=True,
                )
    finally:
        for t in trading:
            t.cancel()
        await asyncio.gather(*trading, return_exceptions=True)
        await stream.aclose()
        await reconciler.aclose()
        rec_task.cancel()
        await asyncio.gather(rec_task, return_exceptions=True)
        await venue.aclose()
        await stack.aclose()
        await sim.aclose()
        ns.close()
        pg.close()
    summary = {}
    for outage_s in outages:
        rs = [r["recovery_s"] for r in runs if r["outage_nominal_s"] == outage_s]
        summary[f"{outage_s:g}s"] = {
            "runs": len(rs),
            "recovery_s_min": min(rs),
            "recovery_s_median": statistics.median(rs),
            "recovery_s_max": max(rs),
            "missed_fills_median": statistics.median(
                r["missed_fills"] for r in runs if r["outage_nominal_s"] == outage_s
            ),
        }
    return {
        "benchmark": "gap_recovery",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "rate_fills_per_s": args.rate,
        "reconcile_settings": "defaults (interval 60 s, degraded 5 s, settle 2 s)",
        "target": "last missed fill on JetStream <= 1 s p99 after the socket is back (60 s outage)",
        "summary": summary,
        "runs": runs,
    }


def _cpus() -> int:
    return os.cpu_count() or 0


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", default="5,60", help="outage lengths in seconds")
    parser.add_argument("--repeats", default="5,3", help="runs per outage length")
    parser.add_argument("--long", action="store_true", help="add one 10-minute outage")
    parser.add_argument("--rate", type=float, default=100.0, help="fills/s while trading")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--trace", action="store_true", help="log REST calls, gaps and runs with timestamps"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    if args.trace:
        for name in ("benchmarks.gap_recovery.trace", "fillstream.reconcile", "fillstream.stream"):
            logging.getLogger(name).setLevel(logging.INFO)
        # A stream batch that was not all new (a fill REST stored first): the book is reloaded.
        logging.getLogger("fillstream.storage.repository").setLevel(logging.DEBUG)
    report = asyncio.run(main(args))
    print()
    print(f"{'outage':>8} {'runs':>5} {'recovery min':>13} {'median':>8} {'max':>8} {'missed':>7}")
    for name, s in report["summary"].items():
        print(
            f"{name:>8} {s['runs']:>5} {s['recovery_s_min']:>12.3f}s"
            f" {s['recovery_s_median']:>7.3f}s {s['recovery_s_max']:>7.3f}s"
            f" {s['missed_fills_median']:>7.0f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    cli()
