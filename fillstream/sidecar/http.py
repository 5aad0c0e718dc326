"""The operator endpoints (aiohttp): /metrics, /healthz, /readyz, /status, POST /reconcile.

* ``GET /metrics``: Prometheus text from the default registry.
* ``GET /healthz``: 200 while the process is alive and the event loop is not stalled (the lag
  monitor's worst tick in the last window is under ``loop_stall_s``), else 503.
* ``GET /readyz``: 200 when PostgreSQL and NATS answer and every enabled account is streaming or
  deliberately degraded (polling) and its ingest is neither stuck nor failing (``ingest:NAME``),
  else 503; the body says which check failed, naming the account.
* ``GET /status``: JSON per account (state, last-event age, cursor lag, outbox pending, last
  reconcile, ingest health, the symbols the venue refuses and when each is retried). Never
  contains a secret: the view builds it from names and numbers only.
* ``POST /reconcile?account=NAME``: trigger a reconcile now; 404 unless enabled in config. With
  a token configured (``http.reconcile_token_env`` / ``_file``) the request must carry
  ``Authorization: Bearer <token>`` (compared in constant time), else 401; the token is never
  logged, and neither is what a refused request sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from fillstream.sidecar.secrets import Secret

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    checks: dict[str, str]  # check name → "ok" or the reason it failed


class ServiceView(Protocol):
    """What the endpoints need from the running service."""

    def alive(self) -> bool: ...

    async def readiness(self) -> Readiness: ...

    async def status(self) -> Mapping[str, Any]: ...

    async def trigger_reconcile(self, account: str) -> Mapping[str, Any]:
        """Start a reconcile of ``account`` now; :class:`KeyError` if there is no such account."""
        ...


class LoopLagMonitor:
    """Measures how late the event loop wakes a sleeper; a stalled loop wakes it very late."""

    def __init__(self, interval_s: float = 0.25, window_s: float = 30.0) -> None:
        self._interval_s = interval_s
        self._window_s = window_s
        self._samples: list[tuple[float, float]] = []  # (monotonic time, lag s)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop-lag-monitor")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self._interval_s)
            now = time.monotonic()
            self._samples.append((now, max(0.0, now - before - self._interval_s)))
            cutoff = now - self._window_s
            while self._samples and self._samples[0][0] < cutoff:
                self._samples.pop(0)

    def worst_lag_s(self) -> float:
        """Worst lag in the window, counting the time since the last tick (a stall in progress)."""
        now = time.monotonic()
        last = self._samples[-1][0] if self._samples else now
        ongoing = max(0.0, now - last - self._interval_s)
        return max([ongoing, *(lag for _, lag in self._samples)])


class HttpServer:
    """Serves the endpoints for ``view`` on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        view: ServiceView,
        *,
        host: str,
        port: int,
        loop_stall_s: float = 5.0,
        enable_reconcile: bool = False,
        reconcile_token: Secret | None = None,
    ) -> None:
        self._view = view
        self._host = host
        self._port = port
        self._loop_stall_s = loop_stall_s
        self._enable_reconcile = enable_reconcile
        self._reconcile_token = (
            reconcile_token.reveal().encode() if reconcile_token is not None else None
        )
        self.lag = LoopLagMonitor()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Bind and serve; returns the base URL (``http://host:port``)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status)
        app.router.add_post("/reconcile", self._reconcile)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.lag.start()
        return self.url

    async def aclose(self) -> None:
        await self.lag.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        lag = self.lag.worst_lag_s()
        alive = self._view.alive()
        ok = alive and lag < self._loop_stall_s
        body = {"ok": ok, "alive": alive, "loop_lag_s": round(lag, 4)}
        return _json_response(body, 200 if ok else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        readiness = await self._view.readiness()
        return _json_response(readiness, 200 if readiness.ready else 503)

    async def _status(self, _request: web.Request) -> web.Response:
        return _json_response(await self._view.status(), 200)

    async def _reconcile(self, request: web.Request) -> web.Response:
        if not self._enable_reconcile:
            return _json_response(
                {"error": "the reconcile endpoint is disabled (http.enable_reconcile_endpoint)"},
                404,
            )
        if not self._authorized(request):
            log.warning(
                "POST /reconcile refused: missing or wrong bearer token",
                extra={"remote": request.remote or ""},
            )
            return web.Response(
                body=_json.encode({"error": "a valid 'Authorization: Bearer <token>' is required"}),
                status=401,
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="fillstream"'},
            )
        account = request.query.get("account", "")
        if not account:
            return _json_response({"error": "missing ?account=NAME"}, 400)
        try:
            result = await self._view.trigger_reconcile(account)
        except KeyError:
            return _json_response({"error": f"no enabled account named {account!r}"}, 404)
        log.info("manual reconcile requested", extra={"account": account})
        return _json_response(result, 202)

    def _authorized(self, request: web.Request) -> bool:
        if self._reconcile_token is None:
            return True
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(supplied.strip().encode(), self._reconcile_token)


def _json_response(body: object, status: int) -> web.Response:
    return web.Response(body=_json.encode(body), status=status, content_type="application/json")
