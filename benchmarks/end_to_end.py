"""End to end: frame in → PostgreSQL committed → JetStream acked, fillstream vs the naive baseline.

    python -m benchmarks.end_to_end [--quick] [--nats-sync always|default] [--skip-baseline]

Both consumers read the **same recorded frames** from the **same replay venue**, write to the
same embedded PostgreSQL (``fsync=on``, ``synchronous_commit=on``) and NATS JetStream (file
store, ``sync_interval: always`` as shipped; ``--nats-sync default`` for the 2-minute default),
in one run, so the ratios compare like with like on this machine:

* **fillstream**: the real stream path in this process — ``BinanceVenue`` (listenKey over
  python-binance) → ``UserStream`` (websockets reader, two-stage msgspec decode, parse, dedup)
  → ``Pipeline`` (micro-batched transactions with the outbox) → ``OutboxRelay`` (pipelined
  publish, 100 in flight). The reconcile path is not on this path and is not run (the gap
  listener only records gaps; the replay is complete, so there is nothing to backfill);
* **naive** (:mod:`benchmarks.baseline`): python-binance's ``futures_user_socket`` with, per
  fill event, one ``INSERT`` (autocommit) and one ``await js.publish`` with a ``Nats-Msg-Id``.

The frames are recorded once from the simulator's seeded generator (one one-way account, two
symbols: limit and market orders, partial fills, TP/SL/trailing stops, ADL, settlements; about
four events per fill) and cached in the temp directory. The replay venue (a child process, so its
CPU is not ours) serves listenKey/time REST and writes pre-framed frames straight into the socket
at the offered rate (a "max" run writes them as fast as the socket drains).

Latency, per fill: **receipt → ack** (fillstream stamps the frame when its reader gets it; the
naive consumer when python-binance's ``recv()`` hands it over, i.e. after the library's queue —
flattering the baseline under load) and **offered → ack** (from the moment the venue was due to
send the fill at the offered rate: the same clock for both, every queue included). Prints a table
and writes ``benchmarks/results/end_to_end.json``. Targets: design.md §9.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import websockets
from aiohttp import web

from benchmarks.wsframe import ws_frame
from fillstream.sidecar.runtime import THRESHOLDS, tune_gc

RESULTS = Path(__file__).parent / "results" / "end_to_end.json"
RECORDING_VERSION = 2
DEFAULT_GC_THRESHOLDS = gc.get_threshold()  # CPython's, before any tuning
EVENTS = 4  # roughly, per fill (order NEW, TRADE_LITE, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE)


# -- the recording -------------------------------------------------------------------------------


class Recording(msgspec.Struct):
    """Pre-framed server frames and, per frame, how many fills must be due before it is sent."""

    frames: list[bytes]
    need: list[int]
    fills: list[tuple[str, int, int]]  # (symbol, trade id, order id) in replay order

    def index(self) -> dict[tuple[str, int, int], int]:
        return {key: i for i, key in enumerate(self.fills)}

    def fill_frames_only(self) -> Recording:
        """Only the ORDER_TRADE_UPDATE executions: no order NEW, TRADE_LITE, ACCOUNT_UPDATE,
        ALGO_UPDATE (a diagnostic: what the other events cost)."""
        # A fill frame is the last one of its ``need`` group (its NEW/TRADE_LITE come first).
        last = len(self.need) - 1
        keep = [
            i
            for i, n in enumerate(self.need)
            if (i == last or self.need[i + 1] != n) and n <= len(self.fills)
        ]
        frames = [self.frames[i] for i in keep]
        return Recording(frames=frames, need=list(range(1, len(frames) + 1)), fills=self.fills)

    def upto(self, n: int) -> int:
        """Frames to send for the first ``n`` fills."""
        lo, hi = 0, len(self.need)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.need[mid] <= n:
                lo = mid + 1
            else:
                hi = mid
        return lo


class _Order(msgspec.Struct):
    s: str = ""
    x: str = ""
    t: int = 0
    i: int = 0
    l: str = "0"  # noqa: E741 - Binance's field name (last filled qty)


class _Head(msgspec.Struct):
    e: str = ""
    o: _Order | None = None


_head = msgspec.json.Decoder(_Head)


def _is_fill(head: _Head) -> bool:
    o = head.o
    return (
        head.e == "ORDER_TRADE_UPDATE"
        and o is not None
        and o.x in ("TRADE", "CALCULATED")
        and o.t != 0
        and o.l not in ("", "0")
    )


def recording_path(fills: int, seed: int) -> Path:
    return Path(tempfile.gettempdir()) / f"fillstream-e2e-v{RECORDING_VERSION}-{seed}-{fills}.bin"


async def record(fills: int, seed: int) -> Recording:
    """Run the simulator's generator until ``fills`` fills and keep every frame it sent (cached
    in :func:`recording_path`)."""
    from fillstream.simulator import SimConfig, Simulator

    path = recording_path(fills, seed)
    if path.exists():
        return msgspec.msgpack.decode(path.read_bytes(), type=Recording)
    print(f"recording {fills:,} fills from the simulator (cached in {path})...", flush=True)
    sim = Simulator(SimConfig(seed=seed, accounts=("bench",), rate=0))
    await sim.start()
    raw: list[bytes] = []
    try:
        account = sim.accounts[0]
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{sim.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": account.api_key}
            ) as resp,
        ):
            key = (await resp.json())["listenKey"]
        async with websockets.connect(f"{sim.ws_url}/private/ws/{key}", max_size=None) as ws:

            async def reader() -> None:
                async for message in ws:
                    raw.append(message if isinstance(message, bytes) else message.encode())

            task = asyncio.create_task(reader())
            while sim.fills_generated < fills + 5:
                sim.step(20)
                # Let the socket drain so the simulator's queue stays short.
                await poll_until(lambda: len(raw) >= sim.hub.events_emitted - 2000, 0.001)
            await poll_until(lambda: len(raw) >= sim.hub.events_emitted, 0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await sim.aclose()
    frames: list[bytes] = []
    need: list[int] = []
    keys: list[tuple[str, int, int]] = []
    for data in raw:
        head = _head.decode(data)
        if _is_fill(head):
            assert head.o is not None
            if len(keys) == fills:
                break
            keys.append((head.o.s, head.o.t, head.o.i))
            need.append(len(keys))
        else:  # sent with the next fill: a NEW/TRADE_LITE precedes its fill
            need.append(len(keys) + 1)
        frames.append(ws_frame(data))
    recording = Recording(frames=frames, need=need, fills=keys)
    path.write_bytes(msgspec.msgpack.encode(recording))
    return recording


# -- the replay venue (a child process) ------------------------------------------------------------


class _Start(msgspec.Struct):
    fills: int
    rate: float


class _ReplayServer:
    """The replay venue's handlers: listenKeys, time, the sockets and the paced writer."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.sockets: list[asyncio.Transport] = []
        self.progress: dict[str, int | bool] = {"sent_fills": 0, "done": True}
        self.tasks: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application()
        for method in ("POST", "PUT", "DELETE"):
            app.router.add_route(method, "/fapi/v1/listenKey", self.listen_key)
        app.router.add_get("/fapi/v1/time", self.server_time)
        app.router.add_get("/private/ws", self.stream)
        app.router.add_get("/private/ws/{key}", self.stream)
        app.router.add_post("/_replay/start", self.start)
        app.router.add_get("/_replay/status", self.status)
        return app

    async def listen_key(self, request: web.Request) -> web.Response:
        return web.json_response({"listenKey": secrets.token_hex(32)})

    async def server_time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": time.time_ns() // 1_000_000})

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True, max_msg_size=0)
        await ws.prepare(request)
        transport = request.transport
        assert isinstance(transport, asyncio.Transport)
        self.sockets.append(transport)
        try:
            async for _ in ws:
                pass
        finally:
            self.sockets.remove(transport)
        return ws

    async def write(self, fills: int, rate: float, t0: float) -> None:
        recording, sockets = self.recording, self.sockets
        end = recording.upto(fills)
        pos = 0
        while pos < end:
            due = fills if rate <= 0 else min(fills, int((time.perf_counter() - t0) * rate) + 1)
            stop = min(recording.upto(due), pos + 2000)
            if stop > pos and all(t.get_write_buffer_size() < 4 << 20 for t in sockets):
                blob = b"".join(recording.frames[pos:stop])
                for t in sockets:
                    t.write(blob)
                pos = stop
                self.progress["sent_fills"] = recording.need[pos - 1]
                if rate <= 0:
                    await asyncio.sleep(0)
                    continue
            await asyncio.sleep(0.0005)
        self.progress["done"] = True

    async def start(self, request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read(), type=_Start)
        if body.fills > len(self.recording.fills):
            return web.json_response({"error": "not that many fills recorded"}, status=400)
        self.progress.update(sent_fills=0, done=False)
        t0, t0_ns = time.perf_counter(), time.time_ns()
        task = asyncio.create_task(self.write(body.fills, body.rate, t0))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return web.json_response({"t0_ns": t0_ns, "sockets": len(self.sockets)})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({**self.progress, "sockets": len(self.sockets)})


async def _serve_replay(path: str) -> None:
    data = await asyncio.to_thread(Path(path).read_bytes)
    server = _ReplayServer(msgspec.msgpack.decode(data, type=Recording))
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


class ReplayVenue:
    """The replay venue in a child process; ``start(fills, rate)`` returns the offer time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ReplayVenue:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.end_to_end", "--replay-venue", str(self.path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.port = int((await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode())
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.close()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, fills: int, rate: float) -> int:
        assert self._http is not None
        async with self._http.post(
            f"{self.rest_url}/_replay/start", json={"fills": fills, "rate": rate}
        ) as resp:
            body = await resp.json()
        if resp.status != 200 or body["sockets"] != 1:
            raise RuntimeError(f"replay start failed: {body}")
        return int(body["t0_ns"])

    def cpu_s(self) -> float:
        assert self.proc is not None
        return proc_cpu_s(self.proc.pid)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def cpu_snapshot(servers: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far: this process, and each of ``servers`` (name → pid) with its
    children (PostgreSQL's backends are children of the postmaster)."""
    snap = {"self": time.process_time()}
    for name, pid in servers.items():
        snap[name] = sum(proc_cpu_s(p) for p in [pid, *_children(pid)])
    return snap


def cpu_per_fill(before: dict[str, float], after: dict[str, float], fills: int) -> dict[str, float]:
    """µs of CPU per fill, per process (a backend that exited meanwhile is not counted)."""
    per = {k: round((after[k] - before.get(k, after[k])) / fills * 1e6, 1) for k in after}
    return {k: v for k, v in per.items() if v >= 0}  # < 0: a backend exited meanwhile


def fsync_ms(directory: Path, count: int = 200) -> float:
    """Mean latency of a 512-byte write + fsync here: with ``sync_interval: always`` JetStream
    pays about one per message, PostgreSQL one per commit."""
    path = directory / f".fsync-probe-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"x" * 512)
            os.fsync(fd)
        return (time.perf_counter() - start) / count * 1000
    finally:
        os.close(fd)
        path.unlink()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def poll_until(predicate: Callable[[], bool], period_s: float) -> None:
    """Poll a condition held by another library's object (no event to wait on)."""
    while True:
        if predicate():
            return
        await asyncio.sleep(period_s)


# -- measurements ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Run(msgspec.Struct, kw_only=True):
    consumer: str
    load: str
    offered_per_s: float | None
    fills: int
    seconds: float
    fills_per_s: float
    receipt_p50_ms: float
    receipt_p99_ms: float
    receipt_p999_ms: float
    receipt_max_ms: float
    offered_p50_ms: float | None
    offered_p99_ms: float | None
    offered_p999_ms: float | None
    cpu_us_per_fill: float  # this process only (PostgreSQL, NATS and the venue run elsewhere)
    # µs of CPU per fill in every process of the run: self, postgres, nats, venue.
    cpu_us_per_fill_by_process: dict[str, float] = {}
    messages_per_fill: float = 1.0  # JetStream messages published per fill
    # fillstream only, from its own metrics over the run: where the time goes.
    commit_mean_ms: float | None = None  # submit → PostgreSQL commit (fillstream_ingest_seconds)
    batch_mean_fills: float | None = None  # fills per transaction (fillstream_ingest_batch_size)
    # The collector's pauses over the run, in this process: per generation, count / total / max.
    gc_pauses: dict[str, dict[str, float]] = {}


class GcPauses:
    """Every collection of this process while active (``gc.callbacks``): how many per generation,
    and how long each paused the loop, the tail's usual suspect."""

    def __init__(self) -> None:
        self._start = 0
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.pauses[info["generation"]].append((time.perf_counter_ns() - self._start) / 1e6)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            f"gen{g}": {
                "count": len(ms),
                "total_ms": round(sum(ms), 2),
                "max_ms": round(max(ms, default=0.0), 2),
            }
            for g, ms in self.pauses.items()
        }


class Sample(msgspec.Struct):
    """One acked fill: its replay index, receipt and ack times (epoch ns)."""

    index: int
    received_ns: int
    acked_ns: int


def summarize(
    *,
    consumer: str,
    load: str,
    rate: float | None,
    samples: list[Sample],
    t0_ns: int,
    cpu_s: float,
) -> Run:
    receipt = [(s.acked_ns - s.received_ns) / 1e6 for s in samples]
    offered: list[float] = []
    if rate:
        offered = [(s.acked_ns - (t0_ns + s.index / rate * 1e9)) / 1e6 for s in samples]
    first = min(s.received_ns for s in samples)
    last = max(s.acked_ns for s in samples)
    seconds = (last - (t0_ns if rate else first)) / 1e9
    return Run(
        consumer=consumer,
        load=load,
        offered_per_s=rate,
        fills=len(samples),
        seconds=round(seconds, 3),
        fills_per_s=round(len(samples) / seconds, 1),
        receipt_p50_ms=round(percentile(receipt, 0.5), 3),
        receipt_p99_ms=round(percentile(receipt, 0.99), 3),
        receipt_p999_ms=round(percentile(receipt, 0.999), 3),
        receipt_max_ms=round(max(receipt), 3),
        offered_p50_ms=round(percentile(offered, 0.5), 3) if offered else None,
        offered_p99_ms=round(percentile(offered, 0.99), 3) if offered else None,
        offered_p999_ms=round(percentile(offered, 0.999), 3) if offered else None,
        cpu_us_per_fill=round(cpu_s / len(samples) * 1e6, 1),
    )


def print_run(r: Run) -> None:
    offered = (
        f"offered→ack p50 {r.offered_p50_ms:8.2f} p99 {r.offered_p99_ms:8.2f}"
        if r.offered_p50_ms is not None and r.offered_p99_ms is not None
        else " " * 37
    )
    print(
        f"{r.consumer:10} {r.load:>6} {r.fills:>7,} fills {r.fills_per_s:>9,.0f}/s  receipt→ack "
        f"p50 {r.receipt_p50_ms:7.2f} p99 {r.receipt_p99_ms:7.2f} p999 {r.receipt_p999_ms:7.2f} ms"
        f"  {offered}  cpu {r.cpu_us_per_fill:6.1f} µs/fill"
        + "  ("
        + " ".join(f"{k} {v:.0f}" for k, v in r.cpu_us_per_fill_by_process.items() if k != "self")
        + ")"
        + (
            f"  commit {r.commit_mean_ms:.1f} ms x {r.batch_mean_fills:.0f} fills,"
            f" {r.messages_per_fill:.2f} msgs/fill"
            if r.commit_mean_ms is not None and r.batch_mean_fills is not None
            else ""
        )
        + "".join(
            f"  {g} {p['count']:.0f}x max {p['max_ms']:.1f} ms" for g, p in r.gc_pauses.items()
        ),
        flush=True,
    )


# -- fillstream ------------------------------------------------------------------------------------


def _ingest_sums() -> tuple[float, float, float, float]:
    from prometheus_client import REGISTRY

    def get(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    return (
        get("fillstream_ingest_seconds_sum"),
        get("fillstream_ingest_seconds_count"),
        get("fillstream_ingest_batch_size_sum"),
        get("fillstream_ingest_batch_size_count"),
    )


class _NoBackfill:
    """The stream path's ``GapListener`` here: the replay is complete, nothing to backfill."""

    def __init__(self) -> None:
        self.gaps = 0

    def on_gap(self, gap: object) -> None:
        self.gaps += 1

    def on_stream_state(self, account: str, market: object, state: object) -> None:
        return None


class FillstreamClient:
    """The real stream path + ingest stack, one fresh account per run."""

    def __init__(
        self,
        dsn: str,
        nats_url: str,
        venue: ReplayVenue,
        index: dict[Any, int],
        servers: dict[str, int],
        *,
        publish_orders: str = "all",
    ) -> None:
        self.dsn = dsn
        self.publish_orders = publish_orders
        self.nats_url = nats_url
        self.venue = venue
        self.index = index
        self.servers = servers
        self.messages = 0
        self.samples: list[Sample] = []
        self.account = ""
        self.target = 0
        self.done = asyncio.Event()
        self.stack: Any = None

    def _on_published(self, messages: Sequence[Any], acked_ns: int) -> None:
        account = self.account
        for m in messages:
            if m.account != account:
                continue
            self.messages += 1
            if not m.msg_id.startswith("fill:"):
                continue
            _, _, _, symbol, trade, order = m.msg_id.split(":")
            self.samples.append(
                Sample(self.index[(symbol, int(trade), int(order))], m.received_at_ns, acked_ns)
            )
        if len(self.samples) >= self.target:
            self.done.set()

    async def __aenter__(self) -> FillstreamClient:
        from fillstream.sidecar.stack import IngestStack
        from fillstream.storage import OrderPublishing

        self.stack = await IngestStack.open(
            self.dsn,
            self.nats_url,
            stream="E2E",
            prefix="e2e",
            on_published=self._on_published,
            window=100,  # [nats] publish_window's default
            publish_orders=OrderPublishing(self.publish_orders),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stack.aclose()

    async def run(self, label: str, fills: int, rate: float | None) -> Run:
        from fillstream.binance.rest import BinanceVenue, WeightBudgets
        from fillstream.ledger import Market
        from fillstream.stream import StreamSettings, UserStream

        self.account = f"e2e-{label.replace('/', '')}-{secrets.token_hex(3)}"
        self.samples, self.target, self.done = [], fills, asyncio.Event()
        self.messages = 0
        venue = await BinanceVenue.create(
            account=self.account,
            api_key=secrets.token_hex(32),
            api_secret=secrets.token_hex(32),  # the replay venue checks no signature
            rest_url=self.venue.rest_url,
            budget=WeightBudgets(),
            fetch_limits=False,
        )
        settings = StreamSettings(ws_url=self.venue.ws_url, stale_after_s=3600, tick_s=1.0)
        stream = UserStream(
            self.account,
            venue,
            self.stack.pipeline,
            _NoBackfill(),
            settings,
            status=self.stack.pipeline,
            market=Market.USDM,
        )
        before = _ingest_sums()
        task = asyncio.create_task(stream.run())
        try:
            await poll_until(lambda: stream.connected, 0.01)
            cpu = time.process_time()
            snap = cpu_snapshot(self.servers)
            with GcPauses() as pauses:
                t0_ns = await self.venue.start(fills, rate or 0)
                await asyncio.wait_for(self.done.wait(), 600)
            cpu = time.process_time() - cpu
            by_process = cpu_per_fill(snap, cpu_snapshot(self.servers), fills)
        finally:
            await stream.aclose(5)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await venue.aclose()
        await self.stack.relay.wait_idle(30)
        after = _ingest_sums()
        run = summarize(
            consumer="fillstream",
            load=label,
            rate=rate,
            samples=self.samples,
            t0_ns=t0_ns,
            cpu_s=cpu,
        )
        run.cpu_us_per_fill_by_process = by_process
        run.messages_per_fill = round(self.messages / fills, 2)
        run.gc_pauses = pauses.summary()
        d = [b - a for a, b in zip(before, after, strict=True)]
        run.commit_mean_ms = round(d[0] / d[1] * 1000, 3) if d[1] else None
        run.batch_mean_fills = round(d[2] / d[3], 1) if d[3] else None
        return run


# -- main ------------------------------------------------------------------------------------------


def plan(quick: bool) -> dict[str, list[tuple[str, int, float | None]]]:
    """(label, fills, offered rate or None for max) per consumer. The naive consumer's runs are
    shorter: it drains at well under 1,000 fills/s, so a longer offer only lengthens its queue."""
    s = 0.2 if quick else 1.0
    return {
        "fillstream": [
            ("100/s", int(2_000 * s), 100.0),
            ("1k/s", int(10_000 * s), 1_000.0),
            ("5k/s", int(20_000 * s), 5_000.0),
            ("max", int(30_000 * s), None),
        ],
        "naive": [
            ("100/s", int(1_000 * s), 100.0),
            ("1k/s", int(2_000 * s), 1_000.0),
            ("5k/s", int(2_000 * s), 5_000.0),
            ("max", int(2_000 * s), None),
        ],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    # The replayed account has margin calls and the last TRADE_LITE of a prefix has no fill: the
    # stream logs both at WARNING; only errors belong on the benchmark's screen.
    logging.basicConfig(level=logging.ERROR)
    from benchmarks.baseline import NaiveClient
    from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
    from fillstream.storage import migrate_dsn

    runs = plan(args.quick)
    need = max(n for spec in runs.values() for _, n, _ in spec)
    recording = await record(need, seed=args.seed)
    path = recording_path(need, args.seed)
    if args.events == "fills":
        recording = recording.fill_frames_only()
        path = path.with_suffix(".fills.bin")
        path.write_bytes(msgspec.msgpack.encode(recording))
    index = recording.index()
    events_per_fill = len(recording.frames) / len(recording.fills)
    pg = EmbeddedPostgres()
    ns = EmbeddedNats(sync_always=args.nats_sync == "always")
    results: list[Run] = []
    statements: list[dict[str, Any]] = []
    try:
        admin = await asyncpg.connect(await asyncio.to_thread(pg.start))
        await admin.execute("CREATE DATABASE bench")
        if args.pg_statements:
            await admin.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            await admin.close()
            await asyncio.to_thread(pg.stop)
            admin = await asyncpg.connect(await asyncio.to_thread(pg.start))
        await admin.close()
        dsn = pg.dsn("bench")
        await migrate_dsn(dsn)
        if args.preload:
            from benchmarks.preload_ledger import preload

            n = args.preload
            await preload(dsn, fills=int(1e7 * n), closes=int(1e6 * n), orders=int(2e6 * n))
        if args.pg_statements:
            conn = await asyncpg.connect(dsn)
            await conn.execute("CREATE EXTENSION pg_stat_statements")
            await conn.close()
        nats_url = await asyncio.to_thread(ns.start)
        print(
            f"frames: {len(recording.frames):,} for {len(recording.fills):,} fills "
            f"({events_per_fill:.2f} events per fill); nats sync_interval {args.nats_sync}; "
            f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        assert pg.proc is not None and ns.proc is not None
        servers = {"postgres": pg.proc.pid, "nats": ns.proc.pid}
        async with ReplayVenue(path) as venue:
            assert venue.proc is not None
            servers["venue"] = venue.proc.pid
            ours = FillstreamClient(
                dsn, nats_url, venue, index, servers, publish_orders=args.publish_orders
            )
            results += await run_fillstream(ours, runs["fillstream"], args)
            if args.pg_statements:
                statements = await top_statements(dsn, sum(n for _, n, _ in runs["fillstream"]))
            if not args.skip_baseline:
                naive = NaiveClient(dsn, nats_url, venue, index, servers)
                for label, fills, rate in runs["naive"]:
                    results.append(await naive.run(label, fills, rate))
                    print_run(results[-1])
    finally:
        await asyncio.to_thread(ns.close)
        await asyncio.to_thread(pg.close)
    report = build_report(args, results, events_per_fill)
    if args.pg_statements:
        report["postgres_statements_fillstream"] = statements
    return report


async def run_fillstream(
    ours: FillstreamClient, spec: list[tuple[str, int, float | None]], args: argparse.Namespace
) -> list[Run]:
    """The fillstream runs, the collector tuned as the service tunes it (unless ``--gc
    default``); CPython's defaults again afterwards, for the naive consumer."""
    results = []
    async with ours:
        if args.gc == "tuned":
            tune_gc(args.gc_thresholds)  # as the service does once it has started
        tracked, frozen = len(gc.get_objects()), gc.get_freeze_count()
        print(f"collector: {tracked:,} objects tracked, {frozen:,} frozen", flush=True)
        for label, fills, rate in spec:
            results.append(await ours.run(label, fills, rate))
            print_run(results[-1])
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
    return results


async def top_statements(dsn: str, fills: int) -> list[dict[str, Any]]:
    """PostgreSQL's own account of the fillstream runs (``pg_stat_statements``): per statement,
    calls and execution time per fill, heaviest first."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT query, calls, total_exec_time, rows FROM pg_stat_statements"
            " ORDER BY total_exec_time DESC LIMIT 12"
        )
    finally:
        await conn.close()
    out = []
    print(f"PostgreSQL statements over the fillstream runs ({fills:,} fills):")
    for r in rows:
        text = " ".join(r["query"].split())[:110]
        per_fill = r["total_exec_time"] * 1000 / fills
        print(f"  {per_fill:8.1f} µs/fill {r['calls']:>8,} calls  {text}")
        out.append(
            {
                "query": text,
                "calls": r["calls"],
                "exec_us_per_fill": round(per_fill, 1),
                "rows": r["rows"],
            }
        )
    return out


def command_line(args: argparse.Namespace) -> str:
    command = "python -m benchmarks.end_to_end" + (" --quick" if args.quick else "")
    if args.nats_sync != "always":
        command += f" --nats-sync {args.nats_sync}"
    if args.events != "all":
        command += f" --events {args.events}"
    if args.preload:
        command += f" --preload {args.preload:g}"
    if args.publish_orders != "all":
        command += f" --publish-orders {args.publish_orders}"
    if args.gc != "tuned":
        command += f" --gc {args.gc}"
    elif args.gc_thresholds != THRESHOLDS:
        command += " --gc-thresholds " + ",".join(map(str, args.gc_thresholds))
    return command


def build_report(
    args: argparse.Namespace, results: list[Run], events_per_fill: float
) -> dict[str, Any]:
    def find(consumer: str, load: str) -> Run | None:
        return next((r for r in results if r.consumer == consumer and r.load == load), None)

    ratios: dict[str, float] = {}
    ours_max, naive_max = find("fillstream", "max"), find("naive", "max")
    if ours_max and naive_max:
        ratios["max_fills_per_s"] = round(ours_max.fills_per_s / naive_max.fills_per_s, 2)
    for load in ("100/s", "1k/s", "5k/s"):
        a, b = find("fillstream", load), find("naive", load)
        if a and b and a.offered_p99_ms and b.offered_p99_ms:
            ratios[f"offered_p99_at_{load}"] = round(b.offered_p99_ms / a.offered_p99_ms, 2)
    report = {
        "benchmark": "end_to_end",
        "command": command_line(args),
        "nats_sync_interval": args.nats_sync,
        "events": args.events,
        "events_per_fill": round(events_per_fill, 2),
        "preloaded_fills": int(1e7 * args.preload),
        "publish_orders": args.publish_orders,
        "gc": args.gc,
        "gc_thresholds": list(args.gc_thresholds) if args.gc == "tuned" else None,
        "fsync_ms": round(fsync_ms(Path(tempfile.gettempdir())), 3),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        },
        "runs": [msgspec.to_builtins(r) for r in results],
        "ratios_fillstream_over_naive": ratios,
        "targets": {
            "max_fills_per_s": 6_000 if args.nats_sync == "default" else 5_000,
            "max_ratio_over_naive": 10,
            "receipt_p99_ms_at_1k": 5,
        },
    }
    for key, value in ratios.items():
        print(f"fillstream / naive {key}: {value}x")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fifth of the fills (smoke run)")
    parser.add_argument("--nats-sync", choices=["always", "default"], default="always")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--pg-statements",
        action="store_true",
        help="load pg_stat_statements and report where PostgreSQL spent its time",
    )
    parser.add_argument(
        "--events",
        choices=["all", "fills"],
        default="all",
        help="fills: replay only the execution frames (a diagnostic of the other events' cost)",
    )
    parser.add_argument(
        "--preload",
        type=float,
        default=0.0,
        help="first load a ledger of this many times 10^7 fills, 10^6 closes, 2x10^6 orders",
    )
    parser.add_argument(
        "--publish-orders",
        choices=["all", "terminal", "none"],
        default="all",
        help="[nats] publish_orders of the fillstream runs (the default: all)",
    )
    parser.add_argument(
        "--gc",
        choices=["tuned", "default"],
        default="tuned",
        help="tuned: the service's collector settings (sidecar/runtime.py); default: CPython's",
    )
    parser.add_argument(
        "--gc-thresholds",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        default=THRESHOLDS,
        help="with --gc tuned: the thresholds to try (default: the service's, %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replay-venue":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_replay(sys.argv[2]))
    else:
        main()
