"""One user-data socket: a reader feeding a bounded frame queue, and our own ping.

The reader does nothing but receive and enqueue ``(received_at_ns, connection id, frame)``; the
processor decodes elsewhere, so a slow sink never stalls the socket's protocol handling. When the
queue is full the reader waits for room: it stops reading (the kernel buffer and TCP flow control
push back on the venue), counts the episode, and never closes the socket for it. While the
reader is paused, pong frames are not read either, so a ping timeout during backpressure is not a
dead socket and is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.metrics import StreamMetrics

log = logging.getLogger("fillstream.stream.connection")

Frame = tuple[int, int, bytes]
"""``(received_at_ns, connection id, payload)``; payload bytes as received (text frames too)."""

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024


async def open_socket(url: str, settings: StreamSettings) -> ClientConnection:
    """Open a websocket with our timeouts; raises ``OSError``, ``TimeoutError`` or a websockets
    ``InvalidHandshake``/``InvalidURI`` when the venue refuses."""
    return await connect(
        url,
        open_timeout=settings.open_timeout_s,
        # Pings are ours (see Connection._pinger), so backpressure cannot trigger a timeout.
        ping_interval=None,
        ping_timeout=None,
        close_timeout=settings.close_timeout_s,
        max_size=MAX_FRAME_BYTES,
        max_queue=64,
        compression=None,
        proxy=None,
        user_agent_header="fillstream",
    )


class Connection:
    """A live socket bound to one listenKey; :meth:`run` reads it until it closes.

    ``on_closed(connection, reason)`` is called once when reading stops; ``reason`` is
    ``closed_by_us``, ``ping_timeout`` or ``disconnect`` (the venue or the network ended it).
    """

    def __init__(
        self,
        conn_id: int,
        ws: ClientConnection,
        queue: FrameBuffer[Frame | None],
        *,
        settings: StreamSettings,
        metrics: StreamMetrics,
        on_closed: Callable[[Connection, str], None],
    ) -> None:
        self.id = conn_id
        self.ws = ws
        self.opened_mono = time.monotonic()
        self.frames = 0
        self.backpressured = False
        self.close_reason: str | None = None
        self._queue = queue
        self._settings = settings
        self._metrics = metrics
        self._on_closed = on_closed
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
            self._on_closed(self, self.close_reason)

    async def _read(self) -> None:
        queue = self._queue
        ws = self.ws
        try:
            while True:
                payload = await ws.recv(decode=False)
                item = (time.time_ns(), self.id, payload)
                self.frames += 1
                if queue.full():
                    # Backpressure: stop reading until the processor makes room.
                    self.backpressured = True
                    self._metrics.backpressure.inc()
                    await queue.put(item)
                    self.backpressured = False
                else:
                    queue.put_nowait(item)
        except ConnectionClosed as exc:
            log.info(
                "stream %s/%s socket %d closed: %s",
                self._metrics.account,
                self._metrics.market,
                self.id,
                exc,
            )

    async def _pinger(self) -> None:
        interval = self._settings.ping_interval_s
        timeout = self._settings.ping_timeout_s
        while True:
            await asyncio.sleep(interval)
            try:
                waiter = await self.ws.ping()
            except ConnectionClosed:
                return
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that races the inner future's completion.
                async with asyncio.timeout(timeout):
                    await waiter
            except ConnectionClosed:
                return
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
        """Stop a reader stuck on a full queue (shutdown past its deadline): frames still in the
        socket are dropped, which is why every shutdown is followed by a start-up gap."""
        if self._task is not None and not self._done.is_set():
            self._task.cancel()

    async def _abort(self) -> None:
        try:
            async with asyncio.timeout(self._settings.close_timeout_s + 1):
                await self.ws.close()
        except (TimeoutError, OSError):
            transport = self.ws.transport
            if transport is not None:
                transport.abort()
