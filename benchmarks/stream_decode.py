"""Stream-path benchmarks (``python -m benchmarks.stream_decode``).

1. **Receive + decode per frame** on loopback, same frames, same run: a replay server in a child
   process writes N pre-framed ORDER_TRADE_UPDATE frames straight into the socket (so the server
   is never the bottleneck) and each client receives and decodes all of them:
   - ``fillstream``: our socket (aiohttp, text frames kept as bytes) + the two-stage msgspec
     ``FrameDecoder`` (wire struct, amounts as str); and the same plus ``parse`` to
     ``Fill``/``OrderUpdate`` (Decimal), which is what the listener's processor does per frame;
   - ``websockets client + msgspec``: the same decoder on the ``websockets`` client (the
     transport design.md §3 named; why the stream uses aiohttp instead);
   - ``stdlib json``: the same socket + ``json.loads`` + dict access of the fill fields;
   - ``python-binance``: ``BinanceSocketManager(client).futures_user_socket()`` (its own
     listenKey POST, read loop, queue and ``recv``) pointed at the replay server.
2. **Receipt → JetStream ack** through ``BinanceVenue`` + ``UserStream`` + the real ``Pipeline``
   (embedded PostgreSQL with ``synchronous_commit=on``, NATS JetStream with
   ``sync_interval: always`` as shipped): p50/p99 at 1,000 and 10,000 fills/s offered, and the
   maximum sustained rate. The frames are the simulator's own (its seeded generator, recorded
   once), replayed by a child process at the offered rate: an in-process simulator would spend
   more CPU making 10,000 fills/s than the path under test spends taking them. This reuses
   :mod:`benchmarks.end_to_end`'s recording, replay venue and instrumented client (receipt =
   the reader's ``time.time_ns()`` stamp on the frame, ack = the relay's ``on_published``).

3. **Spot** (``--spot``, alone): receive + decode per ``executionReport`` frame in its WS-API
   envelope, after a ``userDataStream.subscribe.signature`` the replay server answers:
   - ``fillstream``: our ``WsApiSession`` (its reader decodes the envelope once and routes the
     event's bytes to the account's buffer) and the spot processor's side (batches taken from
     the buffer, the two-stage decode; and the same plus ``parse`` to ``Fill``/``OrderUpdate``);
   - ``stdlib json``: our socket + ``json.loads`` + dict access of the fill fields;
   - ``python-binance``: its spot ``user_socket()`` (its WS-API client routes each envelope to
     the socket's queue by ``subscriptionId``).
   Written to ``benchmarks/results/stream_spot.json``.

Prints a table and writes ``benchmarks/results/stream.json``. ``--quick`` shrinks every run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from benchmarks.wsframe import ws_frame
from fillstream.binance.products import EVENT_TYPES
from fillstream.binance.spot import parse as spot_parse
from fillstream.binance.spot.events import ExecutionReport
from fillstream.binance.usdm.events import OrderTradeUpdate
from fillstream.binance.usdm.parse import fill_from_order_update, order_update_from
from fillstream.ledger import Gap, IngestBatch, IngestResult, Market, Position, StreamState
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import Frame as QueuedFrame
from fillstream.stream.connection import Socket, open_socket
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.wsapi_session import WsApiSession

RESULTS = Path(__file__).parent / "results" / "stream.json"
SPOT_RESULTS = Path(__file__).parent / "results" / "stream_spot.json"
LISTEN_KEY = "benchListenKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"

_TEMPLATE = (
    '{{"e":"ORDER_TRADE_UPDATE","E":{E},"T":{T},"o":{{"s":"BTCUSDT","c":"sidecar-7f3a91",'
    '"S":"SELL","o":"LIMIT","f":"GTC","q":"0.010","p":"76950.00","ap":"76950.00","sp":"0",'
    '"x":"TRADE","X":"PARTIALLY_FILLED","i":{i},"l":"0.004","z":"0.004","L":"76950.00",'
    '"N":"USDT","n":"0.12312000","T":{T},"t":{t},"b":"0","a":"461.70000","m":true,"R":false,'
    '"wt":"CONTRACT_PRICE","ot":"LIMIT","ps":"BOTH","cp":false,"pP":false,"si":0,"ss":0,'
    '"rp":"1.84000000","V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"0"}}}}'
)


def frame_payload(n: int) -> bytes:
    """The n-th benchmark ORDER_TRADE_UPDATE (a fill), about 520 bytes like binance-facts §2.1."""
    now = 1789478401230 + n
    return _TEMPLATE.format(E=now + 4, T=now, i=812345678901 + n, t=6123456789 + n).encode()


# A spot fill in its WS-API envelope, as binance-facts §5.3 shows it (trade ids per symbol).
_SPOT_TEMPLATE = (
    '{{"subscriptionId":0,"event":{{"e":"executionReport","E":{E},"s":"ETHBTC",'
    '"c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000",'
    '"p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE",'
    '"X":"PARTIALLY_FILLED","r":"NONE","i":{i},"l":"0.40000000","z":"0.40000000",'
    '"L":"0.10264410","n":"0.00040000","N":"ETH","T":{T},"t":{t},"I":{I},"w":true,"m":true,'
    '"M":false,"O":{T},"Z":"0.04105764","Y":"0.04105764","Q":"0.00000000","W":{T},"V":"NONE"}}}}'
)
SPOT_SUBSCRIBE = "userDataStream.subscribe.signature"


def spot_frame_payload(n: int) -> bytes:
    """The n-th spot executionReport (a fill) in its WS-API envelope, about 530 bytes."""
    now = 1789478401230 + n
    fields = {"E": now + 1, "T": now, "i": 4293153 + n, "t": 12345 + n, "I": 8641984 + 2 * n}
    return _SPOT_TEMPLATE.format(**fields).encode()


# --------------------------------------------------------------------------- replay server


async def _replay_server(count: int) -> None:
    blob = b"".join(ws_frame(frame_payload(n)) for n in range(count))

    async def listen_key(_: web.Request) -> web.Response:
        return web.json_response({"listenKey": LISTEN_KEY})

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        # Straight into the socket: the server must not be what is measured.
        transport.write(blob)
        async for _ in ws:
            pass
        return ws

    spot_blob = b"".join(ws_frame(spot_frame_payload(n)) for n in range(count))

    async def ws_api(request: web.Request) -> web.WebSocketResponse:
        """The spot WS API: the first request (the subscribe) is answered, then every frame is
        written at once; later requests (an unsubscribe) get an empty result."""
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        first = True
        async for msg in ws:
            req = json.loads(msg.data)
            result = {"subscriptionId": 0} if req.get("method") == SPOT_SUBSCRIBE else {}
            await ws.send_str(json.dumps({"id": req.get("id"), "status": 200, "result": result}))
            if first:
                transport.write(spot_blob)
                first = False
        return ws

    app = web.Application()
    app.router.add_get("/ws-api/v3", ws_api)
    for method in ("POST", "PUT", "DELETE"):
        app.router.add_route(method, "/fapi/v1/listenKey", listen_key)
    app.router.add_get("/private/ws", stream)
    app.router.add_get("/private/ws/{key}", stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


class ReplayServer:
    """The replay server in a child process (its CPU is not ours)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> ReplayServer:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.stream_decode",
            "--replay-server",
            str(self.count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.port = int((await self.proc.stdout.readline()).decode())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --------------------------------------------------------------------------- clients


async def _time_frames(count: int, receive: Callable[[], Awaitable[None]]) -> float:
    """Seconds per frame over frames 2..count (the first one carries the connection setup)."""
    await receive()
    start = time.perf_counter()
    for _ in range(count - 1):
        await receive()
    return (time.perf_counter() - start) / (count - 1)


async def client_fillstream(server: ReplayServer, *, parse: bool) -> float:
    """Our socket (aiohttp, text frames as bytes) + the two-stage decoder (+ parse)."""
    settings = StreamSettings(ws_url=server.ws_url, url_form="path")
    socket = await open_socket(settings.url(LISTEN_KEY), settings)
    ws = socket.ws
    decoder = FrameDecoder()
    sink: list[object] = []

    async def receive() -> None:
        msg = await ws.receive()
        received = time.time_ns()
        event = decoder.decode(msg.data)
        if parse:
            assert isinstance(event, OrderTradeUpdate)
            sink.append(
                fill_from_order_update(event, "bench", Market.USDM, received_at_ns=received)
            )
            sink.append(order_update_from(event, "bench", Market.USDM, received_at_ns=received))
            if len(sink) > 1000:
                sink.clear()

    try:
        return await _time_frames(server.count, receive)
    finally:
        await socket.aclose(2.0)


async def client_websockets_msgspec(server: ReplayServer) -> float:
    """The transport design.md §3 named (websockets) + the same decoder: why we use aiohttp."""
    import websockets

    url = f"{server.ws_url}/private/ws/{LISTEN_KEY}"
    decoder = FrameDecoder()
    async with websockets.connect(url, compression=None, proxy=None, max_size=None) as ws:

        async def receive() -> None:
            decoder.decode(await ws.recv(decode=False))

        return await _time_frames(server.count, receive)


async def client_stdlib_json(server: ReplayServer) -> float:
    """aiohttp + stdlib json + dict access of the fill fields."""
    settings = StreamSettings(ws_url=server.ws_url, url_form="path")
    socket = await open_socket(settings.url(LISTEN_KEY), settings)
    ws = socket.ws
    sink: list[object] = []

    async def receive() -> None:
        event = json.loads((await ws.receive()).data)
        o = event["o"]
        sink.append((o["s"], o["t"], o["i"], o["L"], o["l"], o["n"], o["N"], o["rp"], event["E"]))
        if len(sink) > 1000:
            sink.clear()

    try:
        return await _time_frames(server.count, receive)
    finally:
        await socket.aclose(2.0)


async def client_python_binance(server: ReplayServer) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from binance import AsyncClient, BinanceSocketManager

    client = AsyncClient("bench-key", "bench-secret")
    client.FUTURES_URL = f"{server.rest_url}/fapi"
    manager = BinanceSocketManager(client, max_queue_size=server.count + 10)
    manager.FSTREAM_URL = f"{server.ws_url}/"
    socket = manager.futures_user_socket()
    sink: list[object] = []
    try:
        async with socket as stream:

            async def receive() -> None:
                event = await stream.recv()
                o = event["o"]
                sink.append((o["s"], o["t"], o["i"], o["L"], o["l"], o["n"], o["N"], o["rp"]))
                if len(sink) > 1000:
                    sink.clear()

            return await _time_frames(server.count, receive)
    finally:
        await client.close_connection()


async def _spot_subscribed(server: ReplayServer) -> Socket:
    """Our socket on the replay WS API, subscribed (its answer read): the frames follow."""
    settings = StreamSettings(ws_url=server.ws_url)
    socket = await open_socket(f"{server.ws_url}/ws-api/v3", settings)
    request = {"id": "1", "method": SPOT_SUBSCRIBE, "params": {"apiKey": "bench-key"}}
    await socket.ws.send_str(json.dumps(request))
    await socket.ws.receive()
    return socket


class _SpotMember:
    """The benchmark's one account on its WS-API session: its buffer holds every frame."""

    def __init__(self, size: int) -> None:
        self.account = "bench"
        self.buffer: FrameBuffer[QueuedFrame | None] = FrameBuffer(size)

    def on_subscription_ended(self, session: WsApiSession, reason: str) -> None:
        return None


async def client_spot_fillstream(server: ReplayServer, *, parse: bool) -> float:
    """Our WS-API session (aiohttp, the envelope decoded once, each event's bytes routed to its
    account's buffer) + the processor's side: batches of ``max_batch`` frames taken from the
    buffer, the two-stage msgspec decode of the spot event (+ parse to Fill/OrderUpdate)."""
    url = f"{server.ws_url}/ws-api/v3"
    settings = StreamSettings(ws_url=url)
    socket = await open_socket(url, settings)
    session = WsApiSession(1, socket, settings=settings, market="spot",
                           on_closed=lambda _session, _reason: None)  # fmt: skip
    reader = asyncio.create_task(session.run())
    member = _SpotMember(server.count + 10)
    decoder = FrameDecoder(EVENT_TYPES[Market.SPOT])
    taken: collections.deque[QueuedFrame | None] = collections.deque()
    sink: list[object] = []

    async def receive() -> None:
        if not taken:
            taken.extend(await member.buffer.take(settings.max_batch))
        item = taken.popleft()
        assert item is not None
        received, _, raw = item
        event = decoder.decode(raw)
        if parse:
            assert isinstance(event, ExecutionReport)
            sink.append(spot_parse.stream_fill(event, "bench", received_at_ns=received))
            sink.append(spot_parse.order_update(event, "bench", received_at_ns=received))
            if len(sink) > 1000:
                sink.clear()

    try:
        await session.subscribe(member, {"apiKey": "bench-key"})
        return await _time_frames(server.count, receive)
    finally:
        await session.close("bench")
        await reader


async def client_spot_stdlib_json(server: ReplayServer) -> float:
    """aiohttp + stdlib json + dict access of the spot fill fields (envelope unwrapped)."""
    socket = await _spot_subscribed(server)
    ws = socket.ws
    sink: list[object] = []

    async def receive() -> None:
        e = json.loads((await ws.receive()).data)["event"]
        sink.append((e["s"], e["t"], e["i"], e["L"], e["l"], e["n"], e["N"], e["Y"], e["m"]))
        if len(sink) > 1000:
            sink.clear()

    try:
        return await _time_frames(server.count, receive)
    finally:
        await socket.aclose(2.0)


async def client_spot_python_binance(server: ReplayServer) -> float:
    """python-binance's spot ``user_socket()``: ``userDataStream.subscribe.signature`` over its
    WS-API client (signing, request/response, envelope routing to the socket's queue)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from binance import AsyncClient, BinanceSocketManager
        from binance.ws.websocket_api import WebsocketAPI

    client = AsyncClient("bench-key", "bench-secret")
    client.ws_api = WebsocketAPI(url=f"{server.ws_url}/ws-api/v3")
    manager = BinanceSocketManager(client, max_queue_size=server.count + 10)
    socket = manager.user_socket()
    sink: list[object] = []
    try:
        async with socket as stream:

            async def receive() -> None:
                e = await stream.recv()
                sink.append(
                    (e["s"], e["t"], e["i"], e["L"], e["l"], e["n"], e["N"], e["Y"], e["m"])
                )
                if len(sink) > 1000:
                    sink.clear()

            return await _time_frames(server.count, receive)
    finally:
        await client.close_connection()


SPOT_BASELINE = "python-binance spot user_socket (WS API)"


async def bench_spot_receive_decode(count: int, repeats: int) -> dict[str, Any]:
    """Median µs per spot executionReport frame for each client, each on a fresh replay."""
    clients: dict[str, Callable[[ReplayServer], Awaitable[float]]] = {
        "fillstream (WS-API session + msgspec)": lambda s: client_spot_fillstream(s, parse=False),
        "fillstream (+ parse to Fill/OrderUpdate)": lambda s: client_spot_fillstream(s, parse=True),
        "stdlib json + dict access": client_spot_stdlib_json,
        SPOT_BASELINE: client_spot_python_binance,
    }
    results: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(repeats):
        for name, client in clients.items():
            async with ReplayServer(count) as server:
                results[name].append(await client(server) * 1e6)
    medians = {name: sorted(v)[len(v) // 2] for name, v in results.items()}
    baseline = medians[SPOT_BASELINE]
    return {
        "frames": count,
        "repeats": repeats,
        "frame_bytes": len(spot_frame_payload(0)),
        "us_per_frame": medians,
        "runs_us_per_frame": results,
        "speedup_vs_python_binance": {name: baseline / us for name, us in medians.items()},
    }


async def bench_receive_decode(count: int, repeats: int) -> dict[str, Any]:
    """Median µs per frame for each client, each on a fresh replay of ``count`` frames."""
    clients: dict[str, Callable[[ReplayServer], Awaitable[float]]] = {
        "fillstream (msgspec wire struct)": lambda s: client_fillstream(s, parse=False),
        "fillstream (+ parse to Fill/OrderUpdate)": lambda s: client_fillstream(s, parse=True),
        "websockets client + msgspec": client_websockets_msgspec,
        "stdlib json + dict access": client_stdlib_json,
        "python-binance futures_user_socket": client_python_binance,
    }
    results: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(repeats):
        for name, client in clients.items():
            async with ReplayServer(count) as server:
                results[name].append(await client(server) * 1e6)
    medians = {name: sorted(v)[len(v) // 2] for name, v in results.items()}
    baseline = medians["python-binance futures_user_socket"]
    return {
        "frames": count,
        "repeats": repeats,
        "frame_bytes": len(frame_payload(0)),
        "us_per_frame": medians,
        "runs_us_per_frame": results,
        "speedup_vs_python_binance": {name: baseline / us for name, us in medians.items()},
    }


def _print_receive_decode(result: dict[str, Any], what: str = "frame") -> None:
    print(
        f"\nReceive + decode per {what}, loopback, {result['frames']:,} frames of "
        f"{result['frame_bytes']} B, median of {result['repeats']}"
    )
    print(f"  {'client':44} {'µs/frame':>9} {'x vs python-binance':>20}")
    for name, us in result["us_per_frame"].items():
        ratio = result["speedup_vs_python_binance"][name]
        print(f"  {name:44} {us:9.2f} {ratio:20.1f}")


# --------------------------------------------------------------------------- main


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        **{lib: metadata.version(lib) for lib in ("msgspec", "websockets", "python-binance")},
    }


# --------------------------------------------------------------------------- end to end

E2E_TARGETS = {
    "receipt_p99_ms_at_1k": 1.5,
    "receipt_p99_ms_at_10k": 10.0,
    "max_fills_per_s": 20_000,
}


async def bench_end_to_end(*, quick: bool, seed: int = 42) -> dict[str, Any]:
    """Receipt → JetStream ack at 1k/s and 10k/s offered, and the max sustained rate."""
    import asyncpg

    from benchmarks import end_to_end as e2e
    from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres
    from fillstream.storage import migrate_dsn

    scale = 0.2 if quick else 1.0
    plan = [
        ("1k/s", int(10_000 * scale), 1_000.0),
        ("10k/s", int(20_000 * scale), 10_000.0),
        ("max", int(30_000 * scale), None),
    ]
    need = max(n for _, n, _ in plan)
    recording = await e2e.record(need, seed=seed)
    path = e2e.recording_path(need, seed)
    pg, ns = EmbeddedPostgres(), EmbeddedNats(sync_always=True)
    runs: list[dict[str, Any]] = []
    try:
        admin = await asyncpg.connect(await asyncio.to_thread(pg.start))
        await admin.execute("CREATE DATABASE stream_bench")
        await admin.close()
        dsn = pg.dsn("stream_bench")
        await migrate_dsn(dsn)
        nats_url = await asyncio.to_thread(ns.start)
        assert pg.proc is not None and ns.proc is not None
        servers = {"postgres": pg.proc.pid, "nats": ns.proc.pid}
        async with e2e.ReplayVenue(path) as venue:
            assert venue.proc is not None
            servers["venue"] = venue.proc.pid
            async with e2e.FillstreamClient(
                dsn, nats_url, venue, recording.index(), servers
            ) as client:
                for label, fills, rate in plan:
                    run = await client.run(label, fills, rate)
                    runs.append(msgspec.to_builtins(run))
    finally:
        await asyncio.to_thread(ns.close)
        await asyncio.to_thread(pg.close)
    return {
        "events_per_fill": round(len(recording.frames) / len(recording.fills), 2),
        "nats_sync_interval": "always",
        "runs": runs,
        "targets": E2E_TARGETS,
    }


class _NullSink:
    """Takes batches and forgets them: the stream path measured alone (no PostgreSQL, no NATS)."""

    def __init__(self) -> None:
        self.fills = 0
        self.last_ns = 0

    async def submit(self, batch: IngestBatch) -> IngestResult:
        self.fills += len(batch.fills)
        self.last_ns = time.perf_counter_ns()
        return IngestResult(new_fills=len(batch.fills), duplicate_fills=0, closes=0, orders=0)

    async def positions(self, account: str, market: Market) -> list[Position]:
        return []


class _NoGaps:
    def on_gap(self, gap: Gap) -> None:
        return None

    def on_stream_state(self, account: str, market: Market, state: StreamState) -> None:
        return None


async def bench_stream_alone(*, quick: bool, seed: int = 42) -> dict[str, Any]:
    """Max rate of BinanceVenue + UserStream (reader, decode, dedup, parse, batching) into a sink
    that does nothing, on the same replayed simulator frames."""
    import secrets

    from benchmarks import end_to_end as e2e
    from fillstream.binance.rest import BinanceVenue, WeightBudgets
    from fillstream.stream import UserStream

    fills = 6_000 if quick else 30_000
    recording = await e2e.record(fills, seed=seed)
    path = e2e.recording_path(fills, seed)
    async with e2e.ReplayVenue(path) as replay:
        venue = await BinanceVenue.create(
            account="alone",
            api_key=secrets.token_hex(32),
            api_secret=secrets.token_hex(32),
            rest_url=replay.rest_url,
            budget=WeightBudgets(),
            fetch_limits=False,
        )
        sink = _NullSink()
        settings = StreamSettings(ws_url=replay.ws_url, stale_after_s=3600)
        stream = UserStream("alone", venue, sink, _NoGaps(), settings, market=Market.USDM)
        stream.start()
        try:
            await e2e.poll_until(lambda: stream.connected, 0.01)
            start_ns, cpu = time.perf_counter_ns(), time.process_time()
            await replay.start(fills, 0)
            await e2e.poll_until(lambda: sink.fills >= fills, 0.005)
            cpu = time.process_time() - cpu
            seconds = (sink.last_ns - start_ns) / 1e9
            frames = stream.frames
        finally:
            await stream.aclose(5)
            await venue.aclose()
    return {
        "fills": fills,
        "frames": frames,
        "events_per_fill": round(len(recording.frames) / len(recording.fills), 2),
        "fills_per_s": round(fills / seconds),
        "frames_per_s": round(frames / seconds),
        "cpu_us_per_frame": round(cpu / frames * 1e6, 2),
        "cpu_us_per_fill": round(cpu / fills * 1e6, 1),
    }


def print_stream_alone(result: dict[str, Any]) -> None:
    print(
        f"\nStream path alone (BinanceVenue + UserStream into a no-op sink), max rate: "
        f"{result['fills_per_s']:,} fills/s = {result['frames_per_s']:,} frames/s "
        f"({result['events_per_fill']} events per fill); "
        f"CPU {result['cpu_us_per_frame']} µs/frame, {result['cpu_us_per_fill']} µs/fill"
    )


def print_end_to_end(result: dict[str, Any]) -> None:
    print(
        f"\nReceipt → JetStream ack (UserStream + Pipeline, PostgreSQL synchronous_commit=on, "
        f"JetStream sync always; {result['events_per_fill']} events per fill)"
    )
    print(f"  {'load':>6} {'fills':>7} {'fills/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}")
    for r in result["runs"]:
        print(
            f"  {r['load']:>6} {r['fills']:>7,} {r['fills_per_s']:>9,.0f} "
            f"{r['receipt_p50_ms']:>8.2f} {r['receipt_p99_ms']:>8.2f} {r['receipt_p999_ms']:>9.2f}"
        )


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_decode")
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-e2e", action="store_true", help="only the receive+decode part")
    parser.add_argument(
        "--spot", action="store_true", help="only the spot executionReport receive+decode part"
    )
    parser.add_argument("--output", type=Path, default=None, help="default results/stream.json")
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = SPOT_RESULTS if args.spot else RESULTS
    frames = 5_000 if args.quick else args.frames
    repeats = 1 if args.quick else args.repeats
    logging.basicConfig(level=logging.WARNING)
    report: dict[str, Any] = {"environment": _environment(), "command": " ".join(sys.argv)}
    if args.spot:
        report["spot_receive_decode"] = await bench_spot_receive_decode(frames, repeats)
        _print_receive_decode(report["spot_receive_decode"], "spot executionReport frame")
        _write(args.output, report)
        return report
    report["receive_decode"] = await bench_receive_decode(frames, repeats)
    _print_receive_decode(report["receive_decode"])
    if not args.skip_e2e:
        report["stream_alone"] = await bench_stream_alone(quick=args.quick)
        print_stream_alone(report["stream_alone"])
        report["end_to_end"] = await bench_end_to_end(quick=args.quick)
        print_end_to_end(report["end_to_end"])
    _write(args.output, report)
    return report


def _write(output: Path, report: dict[str, Any]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten: {output}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replay-server":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_replay_server(int(sys.argv[2])))
    else:
        asyncio.run(main())
