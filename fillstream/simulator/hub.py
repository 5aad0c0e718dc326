"""Fan-out of user-data events to WebSocket connections, with the stream faults applied.

Each event is encoded once. Per account, the stream faults (drop, duplicate, reorder) act on the
event before fan-out, so every socket of the account sees the same fault. Each connection has its
own outgoing queue and writer task, so a slow consumer never stalls the engine or other sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections import deque
from collections.abc import Coroutine
from typing import Any

import msgspec
from aiohttp import web

from fillstream.simulator.clock import SimClock
from fillstream.simulator.events import Payload, listen_key_expired
from fillstream.simulator.faults import Frame, StreamFaults
from fillstream.simulator.state import AccountState

MAX_QUEUE = 2_000_000  # frames queued for one socket before it is dropped as hopelessly slow
_BATCH_BYTES = 256 * 1024
_HIGH_WATER = 4 * 1024 * 1024


def _text_frame_header(length: int) -> bytes:
    """RFC 6455 header of one unmasked, final text frame (server to client)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class Subscription:
    """One listenKey (of one account and product) on one connection."""

    __slots__ = ("account", "alive", "conn", "events", "listen_key", "prefix", "product")

    def __init__(
        self,
        conn: Connection,
        account: str | None,
        *,
        listen_key: str,
        events: frozenset[str] | None,
        combined: bool,
        alive: bool,
        product: str = "usdm",
    ) -> None:
        self.conn = conn
        self.account = account
        self.product = product  # a USDⓈ-M key gets USDⓈ-M events only, a COIN-M key COIN-M ones
        self.listen_key = listen_key
        self.events = events
        self.alive = alive  # False once the key expired or was deleted: silence from then on
        self.prefix = b'{"stream":"' + listen_key.encode() + b'","data":' if combined else None

    def wrap(self, data: bytes) -> bytes:
        return data if self.prefix is None else self.prefix + data + b"}"


class Connection:
    """One accepted WebSocket with its outgoing queue and timers."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        opened_sim: float,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.subs: list[Subscription] = []
        self.queue: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.opened_sim = opened_sim
        self.last_ping_sim = opened_sim
        self.awaiting_pong_since: float | None = None
        self.silent_until = 0.0  # monotonic
        self.closing = False
        self.user_data = True  # False on the /market and /public bases: never any user data
        self.ws_api = False  # a spot WS API session (its own timers: :mod:`.spot_wsapi`)
        self.ping_payload = b""
        self.sent = 0

    def push(self, data: bytes) -> None:
        if self.closing:
            return
        self.queue.append(data)
        if len(self.queue) > MAX_QUEUE:
            self.queue.clear()
            self.closing = True
            self.abort()
            return
        self.wake.set()

    async def writer(self) -> None:
        """Drain the queue to the socket until the connection ends.

        Data frames are framed here and written in batches: one ``transport.write`` per batch
        instead of one syscall per frame is what lets one socket carry tens of thousands of
        events per second. Server frames are unmasked text frames, so the framing is a 2-10 byte
        header; control frames (ping, pong, close) still go through aiohttp, and every write
        is a whole frame, so the two never interleave inside a frame.
        """
        queue = self.queue
        transport = self.transport
        if not isinstance(transport, asyncio.WriteTransport):
            return
        while not self.closing:
            await self.wake.wait()
            self.wake.clear()
            while queue and not self.closing:
                if transport.is_closing():
                    self.closing = True
                    break
                batch: list[bytes] = []
                size = 0
                while queue and size < _BATCH_BYTES:
                    payload = queue.popleft()
                    batch.append(_text_frame_header(len(payload)))
                    batch.append(payload)
                    size += len(payload)
                transport.write(b"".join(batch))
                self.sent += len(batch) // 2
                # Backpressure: let a slow reader's socket drain rather than buffer without end.
                while transport.get_write_buffer_size() > _HIGH_WATER and not self.closing:
                    if transport.is_closing():
                        self.closing = True
                        break
                    await asyncio.sleep(0.001)

    def abort(self) -> None:
        """Cut the TCP connection without a close frame (what a network failure looks like)."""
        self.closing = True
        self.wake.set()
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()

    async def close(self, code: int, message: bytes = b"") -> None:
        self.closing = True
        self.wake.set()
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            await self.ws.close(code=code, message=message)


class Hub:
    """The :class:`~fillstream.simulator.engine.EventSink` that feeds WebSocket subscribers."""

    def __init__(self, clock: SimClock, accounts: dict[str, AccountState], seed: int) -> None:
        self._clock = clock
        self._accounts = accounts
        self._encode = msgspec.json.Encoder().encode
        self.connections: set[Connection] = set()
        self._subs: dict[str, list[Subscription]] = {name: [] for name in accounts}
        self.faults = {
            name: StreamFaults(random.Random(f"{seed}:faults:{name}")) for name in accounts
        }
        self.events_emitted = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the event sink ------------------------------------------------------------------------

    def emit(
        self, account: str, payload: Payload, *, fill: bool = False, product: str = "usdm"
    ) -> None:
        self.events_emitted += 1
        faults = self.faults[account]
        if not faults.active and not self._subs[account]:
            if fill:  # nobody listens: skip the encoding, just count the miss
                self._accounts[account].undelivered_fill_events += 1
            return
        frame = Frame(str(payload["e"]), self._encode(payload), fill, product)
        if faults.active:
            frames, dropped = faults.apply(frame, self._clock.mono())
            if dropped and fill:
                self._accounts[account].dropped_fill_events += 1
            seen: set[int] = set()
            for f in frames:  # a duplicated event is one miss at most, not two
                self.deliver(account, f, count_miss=id(f) not in seen)
                seen.add(id(f))
            return
        self.deliver(account, frame)

    def deliver(self, account: str, frame: Frame, *, count_miss: bool = True) -> None:
        """Push ``frame`` to every live, unfiltered socket of ``account``.

        A fill frame that reaches none is counted in ``undelivered_fill_events``.
        """
        delivered = False
        subs = self._subs[account]
        if subs:
            mono = 0.0
            etype = frame.etype
            for sub in subs:
                conn = sub.conn
                if not sub.alive or conn.closing or sub.product != frame.product:
                    continue
                if conn.silent_until:
                    mono = mono or self._clock.mono()
                    if conn.silent_until > mono:
                        continue
                if sub.events is not None and etype not in sub.events:
                    continue
                conn.push(sub.wrap(frame.data))
                delivered = True
        if frame.fill and not delivered and count_miss:
            self._accounts[account].undelivered_fill_events += 1

    def flush_reorders(self, older_than_s: float) -> None:
        """Release reorder buffers that have waited too long for their last event."""
        now = self._clock.mono()
        for account, faults in self.faults.items():
            if faults.held and now - faults.held_since >= older_than_s:
                for frame in faults.flush():
                    self.deliver(account, frame)

    # -- connections ---------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        self.connections.add(conn)
        for sub in conn.subs:
            if sub.account is not None:
                self._subs[sub.account].append(sub)

    def attach(self, sub: Subscription) -> None:
        """Add a subscription to an open connection (a WS API ``subscribe``)."""
        sub.conn.subs.append(sub)
        if sub.account is not None:
            self._subs[sub.account].append(sub)

    def detach(self, sub: Subscription) -> None:
        """End one subscription of a connection; the connection stays open."""
        with contextlib.suppress(ValueError):
            sub.conn.subs.remove(sub)
        if sub.account is not None:
            with contextlib.suppress(ValueError):
                self._subs[sub.account].remove(sub)

    def subscriptions(self, account: str) -> list[Subscription]:
        return list(self._subs[account])

    def unregister(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for sub in conn.subs:
            if sub.account is not None:
                with contextlib.suppress(ValueError):
                    self._subs[sub.account].remove(sub)

    def account_connections(self, account: str) -> list[Connection]:
        seen: dict[int, Connection] = {}
        for sub in self._subs[account]:
            seen[id(sub.conn)] = sub.conn
        return list(seen.values())

    def live_subscriptions(self, account: str) -> int:
        """Sockets that would receive the account's next event right now."""
        mono = self._clock.mono()
        return sum(
            1
            for s in self._subs[account]
            if s.alive and not s.conn.closing and s.conn.silent_until <= mono
        )

    def key_expired(self, listen_key: str, account: str) -> None:
        """Push ``listenKeyExpired`` on every socket bound to the key, then keep them silent."""
        data = self._encode(listen_key_expired(listen_key, self._clock.wall_ms()))
        for sub in self._subs[account]:
            if sub.listen_key == listen_key and sub.alive:
                if not sub.conn.closing:
                    sub.conn.push(sub.wrap(data))
                sub.alive = False

    def key_deleted(self, listen_key: str, account: str) -> None:
        for sub in self._subs[account]:
            if sub.listen_key == listen_key:
                sub.alive = False

    def inject_raw(self, account: str, raw: str) -> int:
        """Send ``raw`` verbatim on each of the account's open sockets; returns how many."""
        conns = [c for c in self.account_connections(account) if not c.closing]
        data = raw.encode()
        for conn in conns:
            conn.push(data)
        return len(conns)

    def silence(self, account: str, seconds: float) -> int:
        until = self._clock.mono() + seconds
        conns = self.account_connections(account)
        for conn in conns:
            conn.silent_until = until
        return len(conns)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a socket chore (close, ping) in the background; :meth:`aclose` waits for it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close_sockets(self, account: str, code: int, reason: bytes) -> int:
        """Close the account's sockets with a close frame (``cut``: code 1001); returns how many."""
        conns = self.account_connections(account)
        for conn in conns:
            self.spawn(conn.close(code, reason))
        return len(conns)

    async def aclose(self) -> None:
        """Close every socket (1001) and wait for the chores in flight."""
        for conn in list(self.connections):
            self.spawn(conn.close(1001, b"server shutting down"))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def disconnect(self, account: str) -> int:
        """Cut the account's sockets abruptly (no close frame); returns how many."""
        conns = self.account_connections(account)
        for conn in conns:
            conn.abort()
        return len(conns)
