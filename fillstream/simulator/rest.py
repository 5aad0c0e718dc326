"""The REST API of both products (``/fapi``: USDⓈ-M, ``/dapi``: COIN-M): routing, weights, rate
limits, authentication and errors.

Both products share one weight pool per IP and one order count per account (the 2026 CM-UM
integration, binance-wave2 §B.2): the limiter does not look at the path. COIN-M weights are the
post-migration ones (``userTrades``/``allOrders`` 5 flat, ``positionRisk`` 1, ``income`` 20).

Order of checks, as Binance applies them: IP ban (418) and weight (429) first, then injected
``rest_error`` faults, then the API key (``-2014`` malformed/missing, ``-2015`` unknown, HTTP 401),
then for SIGNED endpoints ``timestamp``/``recvWindow`` (``-1021``: accepted iff
``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``; default 5000,
max 60000) and the HMAC signature (``-1022``), then the endpoint itself. Every response carries
``X-MBX-USED-WEIGHT-1M``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from fillstream.simulator import coinm, queries, trading
from fillstream.simulator.accounts import signature_valid
from fillstream.simulator.apierror import (
    AHEAD,
    BAD_KEY,
    BAD_RECV_WINDOW,
    BAD_SIGNATURE,
    KEY_FORMAT,
    LISTEN_KEY_GONE,
    OUTSIDE_WINDOW,
    ApiError,
    mandatory,
)
from fillstream.simulator.engine import Engine
from fillstream.simulator.exchange_info import coinm_exchange_info, exchange_info
from fillstream.simulator.faults import RestError
from fillstream.simulator.market import COINM, SPOT, USDM
from fillstream.simulator.params import Params
from fillstream.simulator.ratelimit import OrderCounter, WeightLimiter
from fillstream.simulator.state import AccountState

# The account is None only for Security.NONE routes, whose handlers ignore it.
Handler = Callable[[Any, Params, Engine], Any]


class Security(enum.Enum):
    NONE = "NONE"
    USER_STREAM = "USER_STREAM"  # X-MBX-APIKEY only
    SIGNED = "SIGNED"  # key + timestamp + signature


class RestContext:
    """What the REST layer needs from the simulator (kept narrow so handlers stay testable)."""

    def __init__(
        self,
        engine: Engine,
        *,
        accounts_by_key: dict[str, AccountState],
        limiter: WeightLimiter,
        rest_errors: list[RestError],
        listen_key_created: Callable[[AccountState, str], str],
        listen_key_kept: Callable[[AccountState, str], str | None],
        listen_key_deleted: Callable[[AccountState, str], None],
        trading: trading.Trading,
    ) -> None:
        self.engine = engine
        self.accounts_by_key = accounts_by_key
        self.limiter = limiter
        self.rest_errors = rest_errors
        self.listen_key_created = listen_key_created
        self.listen_key_kept = listen_key_kept
        self.listen_key_deleted = listen_key_deleted
        self.trading = trading
        self.orders = OrderCounter(engine.clock)
        self.requests = 0
        self.by_route: dict[str, int] = {}  # "POST /fapi/v1/listenKey" → requests


Weight = int | Callable[[Params], int]

# Order endpoints: the new orders a call counts (0: shows the counters, counts nothing).
ORDER_ROUTES: dict[tuple[str, str], int] = {
    (method, f"/{api}/v1/{path}"): count
    for api in ("fapi", "dapi")
    for method, path, count in (
        ("POST", "order", 1),
        ("DELETE", "order", 0),
        ("POST", "algoOrder", 1),
        ("DELETE", "algoOrder", 0),
    )
}
Route = tuple[str, str, Weight, Security, Handler]


def _by_symbol(with_symbol: int, without: int) -> Callable[[Params], int]:
    return lambda p: with_symbol if p.get("symbol") else without


class RestApi:
    """Builds the aiohttp routes of the REST API."""

    def __init__(self, ctx: RestContext) -> None:
        self.ctx = ctx
        self._encode = msgspec.json.Encoder().encode

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route(
                method,
                path,
                self._wrap(weight, security, handler, ORDER_ROUTES.get((method, path))),
            )
            for method, path, weight, security, handler in self._table()
        ]

    def _table(self) -> list[Route]:
        """Every route this API serves (the spot API has its own table)."""
        return self._usdm() + self._coinm()

    def _shared(self, api: str) -> list[Route]:
        """Endpoints both products have, with the same weights and handlers."""
        q = queries
        t = self.ctx.trading
        v1 = f"/{api}/v1"
        return [
            ("GET", f"{v1}/ping", 1, Security.NONE, lambda a, p, e: {}),
            ("GET", f"{v1}/time", 1, Security.NONE, self._time),
            ("POST", f"{v1}/listenKey", 1, Security.USER_STREAM, self._key_create),
            ("PUT", f"{v1}/listenKey", 1, Security.USER_STREAM, self._key_keepalive),
            ("DELETE", f"{v1}/listenKey", 1, Security.USER_STREAM, self._key_delete),
            ("GET", f"{v1}/allOrders", 5, Security.SIGNED, q.all_orders),
            ("GET", f"{v1}/order", 1, Security.SIGNED, q.order),
            ("GET", f"{v1}/openOrder", 1, Security.SIGNED, q.open_order),
            ("GET", f"{v1}/openOrders", _by_symbol(1, 40), Security.SIGNED, q.open_orders),
            ("GET", f"{v1}/algoOrder", 1, Security.SIGNED, q.algo_order),
            ("GET", f"{v1}/openAlgoOrders", _by_symbol(1, 40), Security.SIGNED,
             q.open_algo_orders),
            ("GET", f"{v1}/allAlgoOrders", 5, Security.SIGNED, q.all_algo_orders),
            ("DELETE", f"{v1}/order", 1, Security.SIGNED, t.cancel_order),
            ("POST", f"{v1}/algoOrder", 0, Security.SIGNED, t.place_algo),
            ("DELETE", f"{v1}/algoOrder", 1, Security.SIGNED, t.cancel_algo),
            ("GET", f"{v1}/positionSide/dual", 30, Security.SIGNED, t.position_mode),
            ("POST", f"{v1}/positionSide/dual", 1, Security.SIGNED, t.change_position_mode),
        ]  # fmt: skip

    def _usdm(self) -> list[Route]:
        q = queries
        t = self.ctx.trading
        return [
            *self._shared("fapi"),
            ("GET", "/fapi/v1/exchangeInfo", 1, Security.NONE, self._exchange_info),
            ("GET", "/fapi/v1/userTrades", 5, Security.SIGNED, q.user_trades),
            ("GET", "/fapi/v2/positionRisk", 5, Security.SIGNED, q.position_risk_v2),
            ("GET", "/fapi/v3/positionRisk", 5, Security.SIGNED, q.position_risk),
            ("GET", "/fapi/v1/income", 30, Security.SIGNED, q.income),
            ("GET", "/fapi/v2/account", 5, Security.SIGNED, q.account),
            ("GET", "/fapi/v3/account", 5, Security.SIGNED, q.account),
            ("GET", "/fapi/v2/balance", 5, Security.SIGNED, q.balance),
            ("GET", "/fapi/v3/balance", 5, Security.SIGNED, q.balance),
            ("POST", "/fapi/v1/order", 0, Security.SIGNED, t.place_order),
        ]

    def _coinm(self) -> list[Route]:
        q = queries
        t = self.ctx.trading
        return [
            *self._shared("dapi"),
            ("GET", "/dapi/v1/exchangeInfo", 1, Security.NONE, self._coinm_exchange_info),
            ("GET", "/dapi/v1/userTrades", 5, Security.SIGNED, coinm.coinm_user_trades),
            ("GET", "/dapi/v1/positionRisk", 1, Security.SIGNED, coinm.coinm_position_risk),
            ("GET", "/dapi/v1/income", 20, Security.SIGNED, q.income),
            ("GET", "/dapi/v1/account", 5, Security.SIGNED, coinm.coinm_account),
            ("GET", "/dapi/v1/balance", 1, Security.SIGNED, coinm.coinm_balance),
            ("POST", "/dapi/v1/order", 1, Security.SIGNED, t.place_order),
        ]

    def _wrap(
        self, weight: Weight, security: Security, handler: Handler, orders: int | None
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            return await self._dispatch(request, weight, security, handler, orders)

        return endpoint

    # -- dispatch ------------------------------------------------------------------------------

    async def _dispatch(
        self,
        request: web.Request,
        weight: Weight,
        security: Security,
        handler: Handler,
        orders: int | None = None,
    ) -> web.Response:
        ctx = self.ctx
        ctx.requests += 1
        route = f"{request.method} {request.path}"
        ctx.by_route[route] = ctx.by_route.get(route, 0) + 1
        raw_query = request.rel_url.raw_query_string
        raw_body = (
            (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
        )
        values = dict(parse_qsl(raw_query, keep_blank_values=True))
        if raw_body:
            values.update(parse_qsl(raw_body, keep_blank_values=True))
        params = Params(values, _product(request.path))
        headers, limited = self._charge(request, weight, params)
        if limited is not None:
            return limited
        api_key = request.headers.get("X-MBX-APIKEY")
        acct = ctx.accounts_by_key.get(api_key or "")
        injected = self._injected_error(acct)
        if injected is not None:
            if injected.status in (418, 429):
                headers["Retry-After"] = str(max(1, math.ceil(injected.retry_after)))
            return self._error(self._fault_error(injected), headers)
        try:
            self._authenticate(
                security,
                acct,
                api_key=api_key,
                params=params,
                raw_query=raw_query,
                raw_body=raw_body,
            )
            if orders is not None and acct is not None:
                self._count_orders(acct, orders, headers)
            body = handler(acct, params, ctx.engine)
        except ApiError as exc:
            return self._error(exc, headers)
        return web.Response(
            body=self._encode(body), content_type="application/json", headers=headers
        )

    def _charge(
        self, request: web.Request, weight: Weight, params: Params
    ) -> tuple[dict[str, str], web.Response | None]:
        """Charge the request's weight: (response headers, the 429/418 answer if over limit)."""
        ip = request.remote or "unknown"
        cost = weight(params) if callable(weight) else weight
        verdict = self.ctx.limiter.charge(ip, cost)
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used)}
        if verdict.status == 200:
            return headers, None
        headers["Retry-After"] = str(verdict.retry_after_s)
        if verdict.status == 418:
            msg = f"Way too many requests; IP(127.0.0.1) banned until {verdict.banned_until_ms}."
        else:
            msg = "Too many requests; current limit of IP is exceeded. Please use websocket."
        return headers, self._error(ApiError(verdict.status, -1003, msg), headers)

    def _count_orders(self, acct: AccountState, orders: int, headers: dict[str, str]) -> None:
        """Order endpoints: the account's order counters in ``headers``; ``-1015`` past them."""
        counted, refused = self.ctx.orders.charge(acct.name, orders)
        headers.update(counted)
        if refused is not None:
            raise ApiError(429, -1015, refused)

    def _authenticate(
        self,
        security: Security,
        acct: AccountState | None,
        *,
        api_key: str | None,
        params: Params,
        raw_query: str,
        raw_body: str,
    ) -> None:
        """Raise the venue's error when the request lacks the key or signature it needs."""
        if security is Security.NONE:
            return
        if not api_key:
            raise KEY_FORMAT
        if acct is None:
            raise BAD_KEY
        if security is Security.SIGNED:
            self._check_signed(acct, params, raw_query, raw_body)

    def _injected_error(self, acct: AccountState | None) -> RestError | None:
        for fault in self.ctx.rest_errors:
            if fault.remaining > 0 and (
                fault.account is None or (acct is not None and fault.account == acct.name)
            ):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.ctx.rest_errors.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_error(fault: RestError) -> ApiError:
        if fault.status in (418, 429):
            msg = "Too many requests; current limit of IP is exceeded (injected)."
            return ApiError(fault.status, fault.code or -1003, msg)
        if fault.status >= 500:
            msg = "Internal error; unable to process your request. Please try again."
            return ApiError(fault.status, fault.code or -1001, msg)
        return ApiError(fault.status, fault.code or -1000, "An unknown error occurred (injected).")

    def _check_signed(
        self, acct: AccountState, params: Params, raw_query: str, raw_body: str
    ) -> None:
        timestamp = params.integer("timestamp")
        if timestamp is None:
            raise mandatory("timestamp")
        recv_window = params.integer("recvWindow", 5000)
        assert recv_window is not None
        if recv_window > 60000 or recv_window <= 0:
            raise BAD_RECV_WINDOW
        server = self.ctx.engine.clock.server_ms()
        if timestamp >= server + 1000:
            raise AHEAD
        if server - timestamp > recv_window:
            raise OUTSIDE_WINDOW
        if params.get("signature") is None:
            raise mandatory("signature")
        if not self._signature_ok(acct, raw_query, raw_body):
            raise BAD_SIGNATURE

    def _signature_ok(self, acct: AccountState, raw_query: str, raw_body: str) -> bool:
        return signature_valid(acct.account.api_secret, raw_query, raw_body)

    def _error(self, exc: ApiError, headers: dict[str, str]) -> web.Response:
        return web.Response(
            status=exc.status,
            body=self._encode({"code": exc.code, "msg": exc.msg}),
            content_type="application/json",
            headers=headers,
        )

    # -- small endpoints -----------------------------------------------------------------------

    def _time(self, acct: AccountState | None, params: Params, engine: Engine) -> object:
        return {"serverTime": engine.clock.server_ms()}

    def _exchange_info(self, acct: AccountState | None, params: Params, engine: Engine) -> object:
        return exchange_info(engine, self.ctx.limiter.limit)

    def _coinm_exchange_info(
        self, acct: AccountState | None, params: Params, engine: Engine
    ) -> object:
        return coinm_exchange_info(engine, self.ctx.limiter.limit)

    def _key_create(self, acct: AccountState, params: Params, engine: Engine) -> object:
        return {"listenKey": self.ctx.listen_key_created(acct, params.product)}

    def _key_keepalive(self, acct: AccountState, params: Params, engine: Engine) -> object:
        key = self.ctx.listen_key_kept(acct, params.product)
        if key is None:
            raise LISTEN_KEY_GONE
        return {"listenKey": key}

    def _key_delete(self, acct: AccountState, params: Params, engine: Engine) -> object:
        self.ctx.listen_key_deleted(acct, params.product)
        return {}


def _product(path: str) -> str:
    """The product a REST path belongs to: ``/dapi`` COIN-M, ``/api`` spot, else USDⓈ-M."""
    if path.startswith("/dapi/"):
        return COINM
    return SPOT if path.startswith("/api/") else USDM
