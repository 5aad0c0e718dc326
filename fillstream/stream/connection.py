"""One user-data socket: a reader feeding the bounded frame buffer, and our own ping.

Transport: aiohttp's WebSocket client. design.md §3 names ``websockets``; §9 measured aiohttp's
receive path at 2.2 µs a frame against 5.2 µs, and on this machine the stream path spends half
its CPU in the socket library (``benchmarks/stream_decode.py``: ~5.5 vs ~11.5 µs a frame), so the
stream uses aiohttp (its reader parses frames in C). It gives us what we used websockets for:
ping/pong, close codes, frame size limits; text frames stay bytes (``decode_text=False``), as
the decoder wants them.

The reader does nothing but receive and enqueue ``(received_at_ns, connection id, payload)``;
the processor decodes elsewhere. When the buffer is full the reader waits for room: it stops
reading (aiohttp's flow control pauses the transport, TCP pushes back on the venue), counts the
episode, and never closes the socket for it. While the reader is paused, pong frames are not
read either, so a ping timeout during backpressure is not a dead socket and is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from aiohttp import WSMsgType

from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.metrics import StreamMetrics

log = logging.getLogger("fillstream.stream.connection")

Frame = tuple[int, int, bytes]
"""``(received_at_ns, connection id, payload)``; payload bytes as received (text frames too)."""

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024

CONNECT_ERRORS: Final = (OSError, TimeoutError, aiohttp.ClientError)
"""What opening a socket raises when the venue or the network refuses (handshake status
included: ``aiohttp.WSServerHandshakeError``)."""

_DATA: Final = (WSMsgType.TEXT, WSMsgType.BINARY)
_ENDED: Final = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class Socket:
    """An open WebSocket and the HTTP session that owns it (closed together)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse[Any]):
        self.session = session
        self.ws = ws

    async def aclose(self, timeout_s: float) -> None:
        """Close handshake bounded by ``timeout_s``, then release the session (aborting the
        transport if the handshake did not finish)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.ws.close()
        except (TimeoutError, OSError, aiohttp.ClientError):
            pass
        finally:
            await self.session.close()


async def open_socket(url: str, settings: StreamSettings) -> Socket:
    """Open a WebSocket with our timeouts; raises one of :data:`CONNECT_ERRORS`."""
    session = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(settings.open_timeout_s):
            ws = await session.ws_connect(
                url,
                autoping=False,  # pings and pongs are ours (see Connection)
                heartbeat=None,
                max_msg_size=MAX_FRAME_BYTES,
                compress=0,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=settings.close_timeout_s),
            )
    except BaseException:
        await session.close()
        raise
    return Socket(session, ws)


class Connection:
    """A live socket bound to one listenKey; :meth:`run` reads it until it closes.

    ``on_closed(connection, reason)`` is called once when reading stops; ``reason`` is what
    :meth:`close` was given, ``ping_timeout``, or ``disconnect`` (the venue or the network).
    """

    def __init__(
        self,
        conn_id: int,
        socket: Socket,
        queue: FrameBuffer[Frame | None],
        *,
        settings: StreamSettings,
        metrics: StreamMetrics,
        on_closed: Callable[[Connection, str], None],
    ) -> None:
        self.id = conn_id
        self.socket = socket
        self.opened_mono = time.monotonic()
        self.frames = 0
        self.backpressured = False
        self.close_reason: str | None = None
        self._queue = queue
        self._settings = settings
        self._metrics = metrics
        self._on_closed = on_closed
        self._pong = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def run(self) -> None:
        """Read until the socket closes; then report through ``on_closed``."""
        self._task = asyncio.current_task()
        pinger = asyncio.create_task(self._pinger(), name=f"stream-ping-{self.id}")
        try:
            await self._read()
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
            self._done.set()
            if self.close_reason is None:
                self.close_reason = "disconnect"
            await self.socket.aclose(self._settings.close_timeout_s)
            self._on_closed(self, self.close_reason)

    async def _read(self) -> None:
        queue = self._queue
        ws = self.socket.ws
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind in _DATA:
                item = (time.time_ns(), self.id, msg.data)
                self.frames += 1
                if queue.full():
                    # Backpressure: stop reading until the processor makes room.
                    self.backpressured = True
                    self._metrics.backpressure.inc()
                    await queue.put(item)
                    self.backpressured = False
                else:
                    queue.put_nowait(item)
            elif kind is WSMsgType.PING:
                with contextlib.suppress(OSError, aiohttp.ClientError):
                    await ws.pong(msg.data)
            elif kind is WSMsgType.PONG:
                self._pong.set()
            elif kind in _ENDED:
                log.info(
                    "stream %s/%s socket %d closed: %s (code %s) %s",
                    self._metrics.account,
                    self._metrics.market,
                    self.id,
                    kind.name,
                    ws.close_code,
                    ws.exception() or "",
                )
                return

    async def _pinger(self) -> None:
        interval = self._settings.ping_interval_s
        timeout = self._settings.ping_timeout_s
        ws = self.socket.ws
        while True:
            await asyncio.sleep(interval)
            self._pong.clear()
            try:
                await ws.ping()
            except (OSError, aiohttp.ClientError):
                return  # the reader sees the socket end
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that races the inner future's completion.
                async with asyncio.timeout(timeout):
                    await self._pong.wait()
            except TimeoutError:
                if self.backpressured:
                    continue  # we are not reading, so the pong is unread, not missing
                log.warning(
                    "stream %s/%s socket %d: no pong within %.1fs, closing",
                    self._metrics.account,
                    self._metrics.market,
                    self.id,
                    timeout,
                )
                self.close_reason = "ping_timeout"
                await self._abort()
                return

    async def close(self, reason: str = "closed_by_us") -> None:
        """Close the socket (handshake bounded by ``close_timeout_s``) and wait for the reader."""
        if self.close_reason is None:
            self.close_reason = reason
        await self._abort()
        await self._done.wait()

    def abandon(self) -> None:
        """Stop a reader stuck on a full buffer (shutdown past its deadline): frames still in the
        socket are dropped, which is why every shutdown is followed by a start-up gap."""
        if self._task is not None and not self._done.is_set():
            self._task.cancel()

    async def _abort(self) -> None:
        await self.socket.aclose(self._settings.close_timeout_s + 1)
