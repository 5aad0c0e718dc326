"""The private WebSocket endpoints, as Binance routes them since 2026 (binance-facts §1.2).

* ``/private/ws/<listenKey>``: bare events of one key;
* ``/private/ws?listenKey=<k>&events=A/B``: bare events, filtered by event type;
* ``/private/stream?listenKey=k1[&events=..]&listenKey=k2…``: several keys (accounts) on one
  socket, each event wrapped as ``{"stream": <listenKey>, "data": {...}}``.

The other two routed bases, ``/market`` and ``/public`` (market data), take the same three forms:
the handshake succeeds, pings and ``SUBSCRIBE`` are answered, but no user data ever flows there
(the simulator has no market streams). The legacy unrouted forms ``/ws/<listenKey>``, ``/ws`` and
``/stream`` carry user data as ``/private`` does; they are COIN-M's (dstream) only forms.

Like Binance, the handshake succeeds even for an unknown or expired key; such a socket just never
gets data. A JSON ``SUBSCRIBE`` with listenKeys as params is accepted too. The server pings every
``ping_interval_s`` (sim clock) and drops sockets that have not answered within ``pong_timeout_s``;
every socket is closed (code 1001) 24 sim-hours after it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import msgspec
from aiohttp import WSMsgType, web

from fillstream.simulator.clock import SimClock
from fillstream.simulator.hub import Connection, Hub, Subscription
from fillstream.simulator.listenkeys import ListenKeys

CUT_AFTER_S = 24 * 3600.0
_ENDED = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})

KeySpec = tuple[str, frozenset[str] | None]


class _Control(msgspec.Struct, frozen=True):
    method: str
    params: list[str] = []
    id: int | str | None = None


class WsEndpoint:
    """aiohttp handlers for the three private routes, plus the per-connection timers."""

    def __init__(
        self,
        hub: Hub,
        keys: ListenKeys,
        clock: SimClock,
        *,
        ping_interval_s: float,
        pong_timeout_s: float,
        refused: Callable[[list[str | None]], bool],
    ) -> None:
        self._hub = hub
        self._keys = keys
        self._clock = clock
        self._ping_interval_s = ping_interval_s
        self._pong_timeout_s = pong_timeout_s
        self._refused = refused
        self._control = msgspec.json.Decoder(_Control)
        self.accepted = 0
        self.refused = 0

    def routes(self) -> list[web.RouteDef]:
        routes: list[web.RouteDef] = []
        for base in ("/private", "/market", "/public", ""):
            routes += [
                web.get(f"{base}/ws/{{key}}", self.handle_path),
                web.get(f"{base}/ws", self.handle_query),
                web.get(f"{base}/stream", self.handle_stream),
            ]
        return routes

    async def handle_path(self, request: web.Request) -> web.StreamResponse:
        specs: list[KeySpec] = [(request.match_info["key"], None)]
        return await self._serve(request, specs, combined=False)

    async def handle_query(self, request: web.Request) -> web.StreamResponse:
        specs = _parse_keys(request)
        if len(specs) > 1:
            return web.json_response(
                {"code": -1100, "msg": "ws mode takes one listenKey; use /private/stream"},
                status=400,
            )
        return await self._serve(request, specs, combined=False)

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, _parse_keys(request), combined=True)

    async def _serve(
        self, request: web.Request, specs: list[KeySpec], *, combined: bool
    ) -> web.StreamResponse:
        user_data = not request.path.startswith(("/market/", "/public/"))
        owners = [self._keys.owner(key) for key, _ in specs]
        if self._refused(owners):
            self.refused += 1
            return web.json_response(
                {"code": -1001, "msg": "Service unavailable (refuse_ws fault)"}, status=503
            )
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0)
        transport = request.transport
        await ws.prepare(request)
        conn = Connection(ws, transport, self._clock.sim_s())
        conn.user_data = user_data
        for key, events in specs:
            conn.subs.append(self._subscription(conn, key, events, combined))
        self._hub.register(conn)
        self.accepted += 1
        writer = asyncio.ensure_future(conn.writer())
        try:
            await self._read(conn, combined)
        finally:
            conn.closing = True
            conn.wake.set()
            self._hub.unregister(conn)
            await writer
        return ws

    def _subscription(
        self, conn: Connection, key: str, events: frozenset[str] | None, combined: bool
    ) -> Subscription:
        owner = self._keys.owner(key) if conn.user_data else None
        return Subscription(
            conn,
            owner,
            listen_key=key,
            events=events,
            combined=combined,
            alive=self._keys.is_valid(key),
            product=self._keys.product(key),
        )

    async def _read(self, conn: Connection, combined: bool) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.PING:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.awaiting_pong_since = None
            elif msg.type == WSMsgType.TEXT:
                await self._on_control(conn, msg.data, combined)
            elif msg.type in _ENDED:
                return

    async def _on_control(self, conn: Connection, text: str, combined: bool) -> None:
        try:
            control = self._control.decode(text)
        except msgspec.DecodeError:
            conn.push(b'{"error":{"code":2,"msg":"Invalid request"}}')
            return
        result: object = None
        if control.method == "SUBSCRIBE":
            new = [self._subscription(conn, k, None, combined) for k in control.params]
            self._hub.unregister(conn)
            conn.subs.extend(new)
            self._hub.register(conn)
        elif control.method == "UNSUBSCRIBE":
            self._hub.unregister(conn)
            conn.subs = [s for s in conn.subs if s.listen_key not in control.params]
            self._hub.register(conn)
        elif control.method == "LIST_SUBSCRIPTIONS":
            result = [s.listen_key for s in conn.subs]
        else:
            conn.push(b'{"error":{"code":2,"msg":"Invalid request"}}')
            return
        conn.push(msgspec.json.encode({"result": result, "id": control.id}))

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Server pings, pong timeouts and the 24 h cut; called by the server's timer loop."""
        now = self._clock.sim_s()
        for conn in list(self._hub.connections):
            if conn.closing or conn.ws_api:
                continue
            if now - conn.opened_sim >= CUT_AFTER_S:
                self._hub.spawn(conn.close(1001, b"24h connection limit"))
                continue
            waiting = conn.awaiting_pong_since
            if waiting is not None and now - waiting >= self._pong_timeout_s:
                conn.abort()
                continue
            if now - conn.last_ping_sim >= self._ping_interval_s:
                conn.last_ping_sim = now
                if waiting is None:
                    conn.awaiting_pong_since = now
                self._hub.spawn(_ping(conn))


async def _ping(conn: Connection) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await conn.ws.ping()


def _parse_keys(request: web.Request) -> list[KeySpec]:
    """listenKey parameters in order; an ``events`` parameter applies to the key before it."""
    specs: list[KeySpec] = []
    for name, value in request.rel_url.query.items():
        if name == "listenKey":
            specs.append((value, None))
        elif name == "events" and specs:
            key, _ = specs[-1]
            specs[-1] = (key, frozenset(e for e in value.split("/") if e))
    return specs
