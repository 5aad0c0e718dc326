"""The socket layer against a peer that misbehaves in ways the simulator does not: it never
answers our pings. (A plain aiohttp WebSocket server on loopback; nothing of ours is faked.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import Connection, Frame, open_socket
from fillstream.stream.metrics import StreamMetrics
from tests.stream.rig import eventually


@pytest.fixture
async def mute_peer() -> AsyncIterator[str]:
    """A WebSocket server that sends three frames, then ignores everything (pings included)."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        for n in range(3):
            await ws.send_str(f'{{"e":"TRADE_LITE","E":{n}}}')
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/private/ws/{key}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _connect(url: str, queue: FrameBuffer[Frame | None]) -> tuple[Connection, list[str]]:
    settings = StreamSettings(ws_url=url, url_form="path", ping_interval_s=0.1, ping_timeout_s=0.2)
    closed: list[str] = []
    socket = await open_socket(settings.url("k"), settings)
    conn = Connection(
        1,
        socket,
        queue,
        settings=settings,
        metrics=StreamMetrics("conn-test", "usdm"),
        on_closed=lambda _c, reason: closed.append(reason),
    )
    return conn, closed


async def test_unanswered_pings_close_the_socket(mute_peer: str) -> None:
    queue: FrameBuffer[Frame | None] = FrameBuffer(100)
    conn, closed = await _connect(mute_peer, queue)
    reader = asyncio.create_task(conn.run())
    await eventually(lambda: closed == ["ping_timeout"], timeout_s=10, what="ping timeout")
    await reader
    assert [payload for _, _, payload in (i for i in await queue.take(10) if i)] == [
        b'{"e":"TRADE_LITE","E":0}',
        b'{"e":"TRADE_LITE","E":1}',
        b'{"e":"TRADE_LITE","E":2}',
    ]


async def test_unanswered_pings_during_backpressure_keep_the_socket(mute_peer: str) -> None:
    queue: FrameBuffer[Frame | None] = FrameBuffer(1)
    conn, closed = await _connect(mute_peer, queue)
    reader = asyncio.create_task(conn.run())
    try:
        await eventually(lambda: conn.backpressured, what="the reader paused on a full buffer")
        await asyncio.sleep(1.0)  # five ping timeouts' worth, all while not reading
        assert closed == [] and not conn.done
    finally:
        # Room again, for good: the reader reads on, and the pongs are still missing.
        drain = asyncio.create_task(_drain(queue))
    await eventually(lambda: closed == ["ping_timeout"], timeout_s=10, what="ping timeout")
    await reader
    drain.cancel()


async def _drain(queue: FrameBuffer[Frame | None]) -> None:
    while True:
        await queue.take(10)
