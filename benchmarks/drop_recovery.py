"""Drop recovery: how soon a fill whose event the venue silently dropped is on JetStream.

    python -m benchmarks.drop_recovery [--rates 100,1000] [--drops 0,0.01,0.05,0.2]
                                       [--duration 60] [--seed 42]

Everything real, in this one process: embedded PostgreSQL (fsync on) and NATS JetStream
(``sync_interval: always``), per scenario a fresh simulator trading ``rate`` fills/s with its
realistic generator (multi-fill and partial orders, cancels, algo stops, liquidations, ADL) on
two symbols, the venue wrapper with its own weight budget, the pipeline and relay, the user stream
and the reconciler with default settings (60 s polls, 2 s settle delay, drop evidence judged
after 0.3 s, one evidence sweep per symbol per second at most).

Each scenario drops ``p`` of all user-data events (the simulator's ``drop_rate``, seeded) for
``duration`` seconds, then trades on without drops for 3 s (later events are what proves the last
drops) and stops. Reported:

- ``missed``: fills first stored by the REST path (the stream never delivered them), of the
  ground truth's ``dropped_fill_events``;
- ``recovery`` p50 / p99 / max: (JetStream ack of a missed fill) - (its trade time);
- ``false_alarms_per_min``: drop-evidence gaps whose symbol and window held no missed fill;
- ``weight_per_min``: REST weight the account used per minute (the endpoint weights of the
  requests sent), and ``extra_weight_per_min`` over the ``p = 0`` run of the same rate (the
  baseline: periodic polls only), with the room that leaves on one IP (2,400/min, 80% usable).

Writes ``benchmarks/results/drop_recovery.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from fillstream.binance.endpoints import USDM_ENDPOINTS
from fillstream.binance.rest import BinanceVenue, WeightBudgets
from fillstream.ledger import Gap, Market, StreamState
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

RESULTS = Path(__file__).parent / "results" / "drop_recovery.json"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
IP_USABLE_PER_MIN = 2400 * 0.8  # the budget's default headroom keeps 20% back
TAIL_S = 3.0


class Acks:
    """JetStream ack time of every fill message."""

    def __init__(self) -> None:
        self.acked_ns: dict[str, int] = {}

    def on_published(self, messages: Sequence[OutboxMessage], acked_ns: int) -> None:
        for m in messages:
            if m.msg_id.startswith("fill:"):
                self.acked_ns.setdefault(m.msg_id, acked_ns)


class GapTap:
    """The reconciler as the stream's gap listener, recording the narrow gaps on the way."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.narrow: list[Gap] = []

    def on_gap(self, gap: Gap) -> None:
        if gap.narrow:
            self.narrow.append(gap)
        self.reconciler.on_gap(gap)

    def on_stream_state(self, account: str, market: Market, state: StreamState) -> None:
        self.reconciler.on_stream_state(account, market, state)


def weight_by_endpoint(requests: dict[str, int]) -> dict[str, int]:
    """``endpoint/status`` counts as weight per endpoint (every status costs the weight).

    The metric does not tell the all-symbol form of ``openOrders`` (40) from the one-symbol form
    (1); here its only caller is symbol discovery, which reads all symbols: counted as 40.
    """
    out: dict[str, int] = {}
    for key, n in requests.items():
        name = key.split("/", 1)[0]
        endpoint = USDM_ENDPOINTS.get(name)
        weight = 1 if endpoint is None else endpoint.weight
        if endpoint is not None and name == "openOrders":
            weight = endpoint.heavy_weight or weight
        out[name] = out.get(name, 0) + n * weight
    return out


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in sorted(after.items()) if v != before.get(k, 0)}


def requests_by_endpoint(account: str) -> dict[str, int]:
    """REST requests ``account`` sent, as ``endpoint/status`` → count."""
    out: dict[str, int] = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == "fillstream_rest_requests_total" and s.labels.get("account") == account:
                out[f"{s.labels['endpoint']}/{s.labels['status']}"] = int(s.value)
    return out


def runs_by_trigger(account: str) -> dict[str, int]:
    """Reconcile runs of ``account`` as ``trigger/outcome`` → count."""
    out: dict[str, int] = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == "fillstream_reconcile_runs_total" and s.labels.get("account") == account:
                out[f"{s.labels['trigger']}/{s.labels['outcome']}"] = int(s.value)
    return out


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def scenario(
    stack: IngestStack, acks: Acks, *, rate: float, p: float, duration_s: float, seed: int
) -> dict[str, Any]:
    account = f"r{rate:g}p{p * 100:g}".replace(".", "_")
    sim = Simulator(SimConfig(accounts=(account,), rate=rate, seed=seed, symbols=SYMBOLS))
    await sim.start()
    acct = sim.account(account)
    venue = await BinanceVenue.create(
        account=account,
        api_key=acct.api_key,
        api_secret=acct.api_secret,
        rest_url=sim.rest_url,
        budget=WeightBudgets(),
    )
    pool = stack.pool
    reconciler = Reconciler(
        account=account,
        market=Market.USDM,
        venue=venue,
        sink=stack.pipeline,
        cursors=PgCursorStore(pool),
        orders=PgOrderView(pool),
        index=PgFillIndex(pool),
        settings=ReconcileSettings(symbols=SYMBOLS),
    )
    tap = GapTap(reconciler)
    stream = UserStream(
        account,
        venue,
        stack.pipeline,
        tap,
        StreamSettings(ws_url=sim.ws_url),
        status=stack.pipeline,
    )
    rec_task = asyncio.create_task(reconciler.run())
    stream.start()
    try:
        # The steady state: streaming, and the start-up run (cold backfill) over, so the weight
        # measured below is that of periodic polls and evidence sweeps only.
        up = await _until(
            lambda: stream.state is StreamState.STREAMING and reconciler.startup_done.is_set(), 60
        )
        assert up, "stream or start-up run did not come up"
        requests0, runs0 = requests_by_endpoint(account), runs_by_trigger(account)
        t0_ms = int(time.time() * 1000)
        sim.inject(account, "drop_rate", p=p)
        await asyncio.sleep(duration_s)
        sim.inject(account, "drop_rate", p=0)
        t1_ms = int(time.time() * 1000)
        await asyncio.sleep(TAIL_S)
        sim.pause()
        truth = sim.ground_truth()["accounts"][account]
        ids = {
            f"fill:{account}:usdm:{f['symbol']}:{f['id']}:{f['orderId']}" for f in truth["fills"]
        }
        settled = await _until(lambda: ids <= acks.acked_ns.keys(), 30)
        elapsed_min = (time.time() * 1000 - t0_ms) / 60_000
        requests = _delta(requests_by_endpoint(account), requests0)
        by_endpoint = weight_by_endpoint(requests)
        weight = sum(by_endpoint.values())
        rows = await pool.fetch(
            "SELECT symbol, trade_id, order_id, trade_time_ms FROM fills"
            " WHERE account = $1 AND source = 'reconcile' AND trade_time_ms >= $2",
            account,
            t0_ms,
        )
        lags: list[float] = []
        missed_at: dict[str, list[int]] = {}
        for r in rows:
            trade_ms = int(r["trade_time_ms"])
            missed_at.setdefault(r["symbol"], []).append(trade_ms)
            msg = f"fill:{account}:usdm:{r['symbol']}:{r['trade_id']}:{r['order_id']}"
            if msg in acks.acked_ns:
                lags.append(acks.acked_ns[msg] / 1e6 / 1000 - trade_ms / 1000)
        false_alarms = sum(
            1
            for g in tap.narrow
            if not any(
                g.since_ms - 1000 <= t <= (g.until_ms or g.since_ms)
                for s in g.symbols
                for t in missed_at.get(s, ())
            )
        )
        result = {
            "rate_fills_per_s": rate,
            "drop_p": p,
            "duration_s": duration_s,
            "fills": len(truth["fills"]),
            "dropped_fill_events": truth["dropped_fill_events"],
            "missed": len(rows),
            "all_on_jetstream": settled,
            "missing_after_wait": len(ids - acks.acked_ns.keys()),
            "recovery_p50_s": round(_quantile(lags, 0.5), 3),
            "recovery_p90_s": round(_quantile(lags, 0.9), 3),
            "recovery_p99_s": round(_quantile(lags, 0.99), 3),
            "recovered_over_2s": sum(1 for x in lags if x > 2.0),
            "recovered_over_5s": sum(1 for x in lags if x > 5.0),
            "runs": _delta(runs_by_trigger(account), runs0),
            "requests": requests,
            "weight_per_min_by_endpoint": {
                k: round(v / elapsed_min, 1) for k, v in by_endpoint.items()
            },
            "recovery_max_s": round(max(lags, default=0.0), 3),
            "evidence": {k: v for k, v in stream.evidence.counts.items() if v},
            "evidence_gaps": len(tap.narrow),
            "false_alarms_per_min": round(false_alarms / elapsed_min, 2),
            "weight_per_min": round(weight / elapsed_min, 1),
            "t_window_ms": [t0_ms, t1_ms],
        }
    finally:
        await stream.aclose()
        await reconciler.aclose()
        rec_task.cancel()
        await asyncio.gather(rec_task, return_exceptions=True)
        await venue.aclose()
        await sim.aclose()
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rates = [float(x) for x in args.rates.split(",")]
    drops = [float(x) for x in args.drops.split(",")]
    pg, ns = EmbeddedPostgres(), EmbeddedNats()
    dsn, nats_url = pg.start(), ns.start()
    acks = Acks()
    stack = await IngestStack.open(
        dsn, nats_url, stream="FILLSTREAM", prefix="fillstream", on_published=acks.on_published
    )
    runs: list[dict[str, Any]] = []
    try:
        for rate in rates:
            baseline: dict[str, float] | None = None
            for p in drops:
                r = await scenario(
                    stack, acks, rate=rate, p=p, duration_s=args.duration, seed=args.seed
                )
                r["loadavg_1m"] = os.getloadavg()[0]
                by_endpoint = r["weight_per_min_by_endpoint"]
                if p == 0:
                    baseline = by_endpoint
                if baseline is not None:
                    extra = {
                        k: round(by_endpoint.get(k, 0) - baseline.get(k, 0), 1)
                        for k in sorted(by_endpoint.keys() | baseline.keys())
                    }
                    r["extra_weight_per_min"] = round(sum(extra.values()), 1)
                    r["extra_weight_per_min_by_endpoint"] = {k: v for k, v in extra.items() if v}
                    r["accounts_per_ip"] = int(IP_USABLE_PER_MIN // max(r["weight_per_min"], 1))
                runs.append(r)
                print(_line(r), flush=True)
    finally:
        await stack.aclose()
        ns.close()
        pg.close()
    return {
        "benchmark": "drop_recovery",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count() or 0},
        "settings": "defaults: interval 60 s, settle 2 s, drop_evidence_wait 0.3 s, "
        "evidence_interval 1 s",
        "target": "5% dropped at 100 fills/s: p99 <= 2 s, max <= 5 s, all recovered",
        "runs": runs,
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['rate_fills_per_s']:>6.0f}/s p={r['drop_p']:<5g} {r['fills']:>7} fills"
        f" {r['missed']:>5} missed/{r['dropped_fill_events']:<5} dropped"
        f" p50 {r['recovery_p50_s']:.3f}s p99 {r['recovery_p99_s']:.3f}s"
        f" max {r['recovery_max_s']:.3f}s  false {r['false_alarms_per_min']:.2f}/min"
        f"  weight {r['weight_per_min']:.0f}/min (+{r.get('extra_weight_per_min', 0):.0f})"
        f"  all={r['all_on_jetstream']} load {r['loadavg_1m']:.2f}"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000", help="fills/s")
    parser.add_argument("--drops", default="0,0.01,0.05,0.2", help="drop probabilities")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of drops")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--log-level", default="ERROR")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level)
    report = asyncio.run(main(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    cli()
