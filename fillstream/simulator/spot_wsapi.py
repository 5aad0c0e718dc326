"""The spot WebSocket API (``<ws_url>/ws-api/v3``): user-data subscriptions, several accounts on
one connection (binance-wave2 §A.2 to §A.5, binance-facts §5.2).

Requests are JSON text frames ``{"id", "method", "params"}``; every answer is
``{"id", "status", "result" | "error": {"code", "msg"[, "data"]}, "rateLimits": [...]}``.
Methods: ``userDataStream.subscribe.signature`` (any key type; the signature covers every
parameter but ``signature``, sorted by name, as ``k=v&...``), ``userDataStream.unsubscribe``
(one ``subscriptionId``, or all), ``session.subscriptions``, ``session.status``, ``ping``,
``time``, and the logon flow (``session.logon`` with an Ed25519 key, ``userDataStream.subscribe``,
``session.logout``); anything else is ``-1020``. Events go out one per text frame as
``{"subscriptionId": N, "event": {...}}``; ``serverShutdown`` without ``subscriptionId``.

Every answer carries ``rateLimits`` (not with ``?returnRateLimits=false`` on the URL). Every
request and the handshake cost weight 2 in the spot ``REQUEST_WEIGHT`` pool (per IP,
shared with spot REST): past the limit a request is answered 429 with ``retryAfter`` (epoch ms)
in ``error.data``; an IP that keeps going is banned (418) and its connections are closed.

Checks of ``subscribe.signature``, in order: mandatory parameters (``-1102``), ``recvWindow``
≤ 60000 (``-1131``), API-key format (``-2014``) and existence (``-2015``, also what the
``refuse_subscribe`` fault answers), ``timestamp`` (``-1021``: accepted iff
``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``), the signature
(``-1022``), then the connection's limits: one subscription per account (``-2035``), 1,000
active and 65,535 over the connection's life (``-2042``; both configurable). The last three
codes are our best reading of Binance's error list (the docs only say "an error").

Timers (sim clock): a ping every ``ping_interval_s`` (20 s) with a payload the pong must echo
(other pongs do not count), no echo within ``pong_timeout_s`` (60 s) and the connection is cut,
and every connection is closed (1001) ``cut_after_s`` (24 h) after it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from fillstream.simulator.apierror import ApiError, mandatory
from fillstream.simulator.clock import SimClock
from fillstream.simulator.hub import Connection, Hub, Subscription
from fillstream.simulator.market import SPOT
from fillstream.simulator.ratelimit import Verdict, WeightLimiter
from fillstream.simulator.spot_events import event_stream_terminated, server_shutdown
from fillstream.simulator.spot_keys import SpotKey
from fillstream.simulator.spot_wsapi_rules import (
    BANNED,
    REFUSALS,
    TOO_MUCH,
    SpotWsFaults,
    number,
    signature_payloads,
    window,
)
from fillstream.simulator.state import AccountState

WEIGHT = 2
_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{64}$")
_ENDED = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})


class ApiSubscription(Subscription):
    """One account's user-data subscription on a WS API connection."""

    __slots__ = ("logon", "subscription_id")

    def __init__(
        self, conn: Connection, account: str, subscription_id: int, *, logon: bool = False
    ) -> None:
        super().__init__(
            conn, account, listen_key="", events=None, combined=False, alive=True, product=SPOT
        )
        self.subscription_id = subscription_id
        self.logon = logon  # made by userDataStream.subscribe (session.logout ends it)
        self.prefix = b'{"subscriptionId":%d,"event":' % subscription_id


class Session:
    """A WS API connection's own state: its subscriptions and their id counter."""

    def __init__(self, conn: Connection, ip: str, connected_ms: int) -> None:
        self.conn = conn
        self.ip = ip
        self.connected_ms = connected_ms
        self.next_id = 0  # subscriptionIds count up per connection; also the lifetime total
        self.subs: dict[int, ApiSubscription] = {}
        self.shutdown_at: float | None = None  # monotonic: close after a serverShutdown
        self.after: list[Callable[[], None]] = []  # run once the current answer is queued
        self.return_rate_limits = True  # ?returnRateLimits=false on the URL leaves them out
        self.logon: tuple[Credentials, int] | None = None  # session.logon: (key, since ms)


class Credentials(msgspec.Struct, frozen=True):
    """What the WS API knows of one spot account."""

    state: AccountState
    key: SpotKey


class _Request(msgspec.Struct):
    method: str
    id: int | str | None = None
    params: dict[str, Any] = {}


class WsApi:
    """aiohttp handler of ``/ws-api/v3`` plus its timers."""

    def __init__(
        self,
        hub: Hub,
        clock: SimClock,
        *,
        credentials: dict[str, Credentials],
        limiter: WeightLimiter,
        refused: Callable[[], bool],
        refused_account: Callable[[str], bool],
        ping_interval_s: float,
        pong_timeout_s: float,
        cut_after_s: float,
        max_active: int = 1000,
        max_lifetime: int = 65535,
    ) -> None:
        self._hub = hub
        self._clock = clock
        self._credentials = credentials  # by API key
        self._limiter = limiter
        self._refused = refused
        self._refused_account = refused_account
        self._ping_interval_s = ping_interval_s
        self._pong_timeout_s = pong_timeout_s
        self._cut_after_s = cut_after_s
        self._max_active = max_active
        self._max_lifetime = max_lifetime
        self._decode = msgspec.json.Decoder(_Request)
        self._encode = msgspec.json.Encoder().encode
        self.faults = SpotWsFaults()
        self.sessions: dict[Connection, Session] = {}
        self.accepted = 0
        self.requests = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/ws-api/v3", self.handle)]

    # -- connections ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or "unknown"
        if self._refused():
            return web.json_response(
                {"code": -1001, "msg": "Service unavailable (refuse_ws fault)"}, status=503
            )
        verdict = self._limiter.charge(ip, WEIGHT)
        if verdict.status != 200:
            error = self._limit_error(verdict)
            return web.json_response({"code": error["code"], "msg": error["msg"]},
                                     status=verdict.status)  # fmt: skip
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0)
        await ws.prepare(request)
        conn = Connection(ws, request.transport, self._clock.sim_s())
        conn.ws_api = True
        session = Session(conn, ip, self._clock.wall_ms())
        session.return_rate_limits = request.query.get("returnRateLimits", "true") != "false"
        self.sessions[conn] = session
        self._hub.register(conn)
        self.accepted += 1
        writer = asyncio.ensure_future(conn.writer())
        try:
            await self._read(session)
        finally:
            conn.closing = True
            conn.wake.set()
            self._hub.unregister(conn)
            self.sessions.pop(conn, None)
            await writer
        return ws

    async def _read(self, session: Session) -> None:
        conn = session.conn
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.PING:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                if conn.ping_payload and msg.data == conn.ping_payload:
                    conn.awaiting_pong_since = None
            elif msg.type == WSMsgType.TEXT:
                self._on_request(session, msg.data)
            elif msg.type in _ENDED:
                return

    # -- requests ------------------------------------------------------------------------------

    def _on_request(self, session: Session, text: str) -> None:
        self.requests += 1
        try:
            request = self._decode.decode(text)
        except msgspec.DecodeError:
            self._answer(session, None, error=ApiError(400, -1000, "Malformed request."))
            return
        verdict = self._limiter.charge(session.ip, WEIGHT)
        if verdict.status != 200:
            self._answer(session, request.id, verdict=verdict, limited=verdict)
            return  # a ban also disconnects: see tick()
        accounts = [str(s.account) for s in session.subs.values()]
        api_key = request.params.get("apiKey")
        known = self._credentials.get(api_key) if isinstance(api_key, str) else None
        if known is not None:
            accounts.append(known.state.name)
        retry = self.faults.take_rate_limit(accounts)
        if retry is not None:
            limited = Verdict(429, verdict.used, max(1, round(retry)))
            self._answer(session, request.id, verdict=verdict, limited=limited)
            return
        try:
            result = self._method(session, request)
        except ApiError as exc:
            self._answer(session, request.id, verdict=verdict, error=exc)
            return
        self._answer(session, request.id, verdict=verdict, result=result)
        after, session.after = session.after, []
        for step in after:
            step()

    def _method(self, session: Session, request: _Request) -> object:
        method = request.method
        params = request.params
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self._clock.server_ms()}
        if method == "userDataStream.subscribe.signature":
            return self._subscribe(session, self._authenticate(params).state.name)
        if method in ("session.logon", "userDataStream.subscribe", "session.logout"):
            return self._logon_method(session, method, params)
        if method == "userDataStream.unsubscribe":
            return self._unsubscribe(session, params)
        if method == "session.subscriptions":
            return [{"subscriptionId": i} for i in session.subs]
        if method == "session.status":
            return self._status(session)
        raise ApiError(400, -1020, "This operation is not supported.")

    def _status(self, session: Session) -> dict[str, object]:
        logon = session.logon
        return {
            "apiKey": logon[0].state.account.api_key if logon else None,
            "authorizedSince": logon[1] if logon else None,
            "connectedSince": session.connected_ms,
            "returnRateLimits": session.return_rate_limits,
            "serverTime": self._clock.server_ms(),
            "userDataStream": bool(session.subs),
        }

    def _logon_method(self, session: Session, method: str, params: dict[str, Any]) -> object:
        """The logon flow (binance-wave2 §A.3): ``session.logon`` (Ed25519 keys only; again
        switches the key), ``userDataStream.subscribe`` for the logged-on account, and
        ``session.logout``, which ends only that subscription. ``-1002`` for another key
        type or a subscribe without logon is our reading (the docs give no code)."""
        if method == "session.logon":
            known = self._authenticate(params)
            if known.key.key_type != "ED25519":
                raise ApiError(401, -1002, "Only Ed25519 keys are supported for this feature.")
            session.logon = (known, self._clock.wall_ms())
            return self._status(session)
        if method == "userDataStream.subscribe":
            if session.logon is None:
                raise ApiError(401, -1002, "You are not authorized to execute this request.")
            return self._subscribe(session, session.logon[0].state.name, logon=True)
        ended = [s for s in session.subs.values() if s.logon]
        session.logon = None
        session.after = [functools.partial(self.terminate, session, sub) for sub in ended]
        return self._status(session)

    def _subscribe(self, session: Session, account: str, *, logon: bool = False) -> dict[str, int]:
        if any(s.account == account for s in session.subs.values()):
            raise ApiError(400, -2035, "User Data Stream subscription already active.")
        if len(session.subs) >= self._max_active:
            raise ApiError(400, -2042, "Maximum active subscriptions reached for this connection.")
        if session.next_id >= self._max_lifetime:
            raise ApiError(400, -2042, "Maximum subscription ID reached for this connection.")
        sub_id = session.next_id
        session.next_id += 1
        sub = session.subs[sub_id] = ApiSubscription(session.conn, account, sub_id, logon=logon)
        session.after = [lambda: self._hub.attach(sub)]  # events only after the answer
        return {"subscriptionId": sub_id}

    def _authenticate(self, params: dict[str, Any]) -> Credentials:
        """The account a signed request is for, or the venue's error."""
        for name in ("apiKey", "timestamp", "signature"):
            if params.get(name) in (None, ""):
                raise mandatory(name)
        recv_window = window(params.get("recvWindow", 5000))
        if recv_window > 60000 or recv_window <= 0:
            raise ApiError(400, -1131, "recvWindow must be less than 60000")
        api_key = params["apiKey"]
        if not isinstance(api_key, str) or not _KEY_FORMAT.match(api_key):
            raise ApiError(401, -2014, "API-key format invalid.")
        known = self._credentials.get(api_key)
        if known is None:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        account = known.state.name
        self._refusals(account)
        self._check_timestamp(number(params["timestamp"], "timestamp"), recv_window)
        payloads = signature_payloads(params)
        signature = params["signature"]
        if not isinstance(signature, str) or not any(
            known.key.valid(p, signature) for p in payloads
        ):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        return known

    def _refusals(self, account: str) -> None:
        """The ``refuse_ws`` and ``refuse_subscribe`` faults of ``account``."""
        if self._refused_account(account):
            raise ApiError(503, -1001, "Internal error; unable to process your request.")
        refusal = self.faults.take_refusal(account)
        if refusal is not None:
            status, msg = REFUSALS.get(refusal, (400, "Request refused (refuse_subscribe fault)."))
            raise ApiError(status, refusal, msg)

    def _check_timestamp(self, timestamp: int, recv_window: float) -> None:
        server = self._clock.server_ms()
        if timestamp >= server + 1000:
            raise ApiError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - timestamp > recv_window:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _unsubscribe(self, session: Session, params: dict[str, Any]) -> dict[str, object]:
        wanted = params.get("subscriptionId")
        if wanted is None:
            ended = list(session.subs.values())
        else:
            sub_id = number(wanted, "subscriptionId")
            sub = session.subs.get(sub_id)
            if sub is None:
                raise ApiError(400, -2036, "User Data Stream subscription not active.")
            ended = [sub]
        # The answer goes out first, then each subscription's eventStreamTerminated.
        session.after = [functools.partial(self.terminate, session, sub) for sub in ended]
        return {}

    def terminate(self, session: Session, sub: ApiSubscription) -> None:
        """End ``sub``: ``eventStreamTerminated`` on it, then no more of its events."""
        if session.subs.pop(sub.subscription_id, None) is None:
            return
        self._hub.detach(sub)
        if not session.conn.closing:
            data = self._encode(event_stream_terminated(self._clock.wall_ms()))
            session.conn.push(sub.wrap(data))

    def _answer(
        self,
        session: Session,
        request_id: int | str | None,
        *,
        verdict: Verdict | None = None,
        result: object = None,
        error: ApiError | None = None,
        limited: Verdict | None = None,
    ) -> None:
        body: dict[str, object] = {"id": request_id}
        if limited is not None:
            body["status"] = limited.status
            body["error"] = self._limit_error(limited)
        elif error is not None:
            body["status"] = error.status
            body["error"] = {"code": error.code, "msg": error.msg}
        else:
            body["status"] = 200
            body["result"] = result
        if verdict is not None and session.return_rate_limits:
            body["rateLimits"] = [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self._limiter.limit,
                    "count": verdict.used,
                }
            ]
        session.conn.push(self._encode(body))

    def _limit_error(self, verdict: Verdict) -> dict[str, object]:
        server = self._clock.server_ms()
        if verdict.status == 418:
            until = verdict.banned_until_ms
            msg = BANNED.format(until=until)
        else:
            until = server + verdict.retry_after_s * 1000
            msg = TOO_MUCH.format(limit=self._limiter.limit)
        return {"code": -1003, "msg": msg, "data": {"serverTime": server, "retryAfter": until}}

    # -- faults --------------------------------------------------------------------------------

    def sessions_of(self, account: str) -> list[Session]:
        return [
            s for s in self.sessions.values() if any(x.account == account for x in s.subs.values())
        ]

    def terminate_account(self, account: str) -> int:
        """``terminate_subscription``: end the account's subscriptions; returns how many."""
        ended = 0
        for session in self.sessions_of(account):
            for sub in [s for s in session.subs.values() if s.account == account]:
                self.terminate(session, sub)
                ended += 1
        return ended

    def shutdown(self, account: str | None, seconds: float) -> int:
        """``server_shutdown``: ``serverShutdown`` now, close after ``seconds``; connections."""
        sessions = list(self.sessions.values()) if account is None else self.sessions_of(account)
        data = self._encode({"event": server_shutdown(self._clock.wall_ms())})
        for session in sessions:
            session.conn.push(data)
            session.shutdown_at = self._clock.mono() + seconds
        return len(sessions)

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Pings, pong timeouts, the 24 h cut and due shutdowns; the server's timer loop."""
        now = self._clock.sim_s()
        mono = self._clock.mono()
        for session in list(self.sessions.values()):
            conn = session.conn
            if conn.closing:
                continue
            if self._limiter.banned(session.ip):  # banned (by REST or WS API): disconnected
                self._hub.spawn(conn.close(1008, b"IP banned"))
                continue
            if session.shutdown_at is not None and mono >= session.shutdown_at:
                self._hub.spawn(conn.close(1001, b"server shutdown"))
                continue
            if now - conn.opened_sim >= self._cut_after_s:
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
                conn.ping_payload = str(self._clock.wall_ms()).encode()
                self._hub.spawn(_ping(conn, conn.ping_payload))


async def _ping(conn: Connection, payload: bytes) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await conn.ws.ping(payload)
