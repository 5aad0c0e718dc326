"""Receive + decode cost of one spot executionReport frame on the WS-API path
(``python -m benchmarks.wsapi_frame``).

A replay server in a child process (its CPU is not ours) answers the subscribe, then writes N
pre-framed ``{"subscriptionId":0,"event":{executionReport}}`` frames (a fill, shaped as
binance-facts.md §5.3) straight into the socket. Two clients, same frames, same run:

- ``session``: :class:`~fillstream.stream.wsapi_session.WsApiSession` receives, decodes the
  envelope and routes each event's bytes to its account's frame buffer (what every account on a
  shared connection costs the one reader);
- ``session + processor``: the same plus :class:`~fillstream.stream.spot_processor.SpotProcessor`
  (stage-two decode into the wire struct, fill dedup, parse to ``Fill``/``OrderUpdate`` with
  Decimal amounts, batching) into a sink that forgets: the whole per-frame stream path.

The python-binance comparison is ``benchmarks/stream_decode.py``'s. Prints µs per frame (median
of the repeats) and the CPU time per frame of the second client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from aiohttp import web

from benchmarks.wsframe import ws_frame
from fillstream.binance.products import EVENT_TYPES
from fillstream.binance.signing import Signer
from fillstream.binance.spot import wsapi
from fillstream.ledger import IngestBatch, IngestResult, Market, Position
from fillstream.stream.activity import AccountActivity
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import Frame, open_socket
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.metrics import StreamMetrics
from fillstream.stream.spot_processor import SpotProcessor
from fillstream.stream.wsapi_session import WsApiSession

_EVENT = (
    '{{"e":"executionReport","E":{E},"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY",'
    '"o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000",'
    '"F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":{i},'
    '"l":"0.00100000","z":"0.00100000","L":"0.10264410","n":"0.00000100","N":"ETH","T":{T},'
    '"t":{t},"I":8641984,"w":true,"m":true,"M":false,"O":{T},"Z":"0.00010264","Y":"0.00010264",'
    '"Q":"0.00000000","W":{T},"V":"EXPIRE_MAKER"}}'
)


def frame_payload(n: int) -> bytes:
    """The n-th frame: one fill in its WS-API envelope (~540 bytes), of one of 100 working
    orders (an account's open orders are few: the stream's order book-keeping stays small)."""
    now = 1789478401230 + n
    event = _EVENT.format(E=now + 2, T=now, i=4293153 + n % 100, t=12345 + n)
    return f'{{"subscriptionId":0,"event":{event}}}'.encode()


async def _replay_server(count: int) -> None:
    blob = b"".join(ws_frame(frame_payload(n)) for n in range(count))

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        async for msg in ws:
            request_id = json.loads(msg.data)["id"]
            await ws.send_str(
                json.dumps({"id": request_id, "status": 200, "result": {"subscriptionId": 0}})
            )
            transport.write(blob)  # straight into the socket: the server is not measured
        return ws

    app = web.Application()
    app.router.add_get("/ws-api/v3", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


class _Member:
    def __init__(self, buffer: FrameBuffer[Frame | None]) -> None:
        self.account = "bench"
        self.buffer = buffer

    def on_subscription_ended(self, session: WsApiSession, reason: str) -> None:
        return None


class _NullSink:
    def __init__(self, want: int) -> None:
        self.fills = 0
        self.want = want
        self.done = asyncio.Event()

    async def submit(self, batch: IngestBatch) -> IngestResult:
        self.fills += len(batch.fills)
        if self.fills >= self.want:
            self.done.set()
        return IngestResult(new_fills=len(batch.fills), duplicate_fills=0, closes=0, orders=0)

    async def positions(self, account: str, market: Market) -> list[Position]:
        return []


async def _run(count: int, *, process: bool) -> tuple[float, float]:
    """(µs per frame wall, µs per frame CPU) over ``count`` frames."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.wsapi_frame",
        "--replay-server",
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int((await proc.stdout.readline()).decode())
    url = f"ws://127.0.0.1:{port}/ws-api/v3"
    settings = StreamSettings(ws_url=url, queue_max=count + 10, max_batch=2000)
    sink = _NullSink(count)
    processor = SpotProcessor(
        "bench",
        Market.SPOT,
        sink,
        settings=settings,
        metrics=StreamMetrics("bench", "spot"),
        activity=AccountActivity(recent_fills=count + 10),
        decoder=FrameDecoder(EVENT_TYPES[Market.SPOT]),
    )
    member = _Member(processor.buffer)
    session = WsApiSession(
        1, await open_socket(url, settings), settings=settings, market="spot", on_closed=_noop
    )
    reader = asyncio.create_task(session.run())
    runner = asyncio.create_task(processor.run() if process else _drain(processor.buffer, count))
    try:
        params = wsapi.subscribe_params("k" * 64, Signer.from_secret("s"), timestamp_ms=0)
        start, cpu = time.perf_counter(), time.process_time()
        await session.subscribe(member, params)
        await (sink.done.wait() if process else runner)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await session.close("shutdown")
        reader.cancel()
        runner.cancel()
        proc.stdin.close()
        await proc.wait()
    return wall / count * 1e6, cpu / count * 1e6


async def _drain(buffer: FrameBuffer[Frame | None], count: int) -> None:
    taken = 0
    while taken < count:
        taken += len(await buffer.take(count))


def _noop(session: WsApiSession, reason: str) -> None:
    return None


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wsapi_frame")
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {"session": [], "session + processor": []}
    for _ in range(args.repeats):
        results["session"].append(await _run(args.frames, process=False))
        results["session + processor"].append(await _run(args.frames, process=True))
    print(f"WS-API executionReport frames ({len(frame_payload(0))} B), {args.frames:,} frames,")
    print(f"median of {args.repeats}:  {'client':24} {'µs/frame':>9} {'CPU µs/frame':>13}")
    report: dict[str, Any] = {"frames": args.frames, "frame_bytes": len(frame_payload(0))}
    for name, runs in results.items():
        wall = sorted(r[0] for r in runs)[len(runs) // 2]
        cpu = sorted(r[1] for r in runs)[len(runs) // 2]
        report[name] = {"us_per_frame": round(wall, 2), "cpu_us_per_frame": round(cpu, 2)}
        print(f"{'':22}{name:24} {wall:9.2f} {cpu:13.2f}")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replay-server":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_replay_server(int(sys.argv[2])))
    else:
        asyncio.run(main())
