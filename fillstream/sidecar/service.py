"""The service: shared clients built once, one supervisor per account, ordered shutdown.

Start-up (:meth:`Service.start`; any failure is fatal and raises :class:`StartupError` with a
one-line reason, after closing what was opened): PostgreSQL pool → migrations → NATS → JetStream
stream → outbox relay (drains leftovers first) → ingest pipeline → HTTP endpoints.

Running (:meth:`Service.serve`): an :class:`asyncio.TaskGroup` holds one
:class:`~fillstream.sidecar.supervisor.AccountSupervisor` per enabled account. An account that
crashes is restarted with backoff by its supervisor; the others keep running. With
``[replicas] enabled``, :class:`~fillstream.sidecar.ownership.Ownership` decides which accounts
run here (one supervisor per account whose lease this process holds, started and stopped as
leases come and go), and shutdown step 1 hands the leases back.

Shutdown (when ``stop`` is set, e.g. SIGTERM/SIGINT), within ``service.shutdown_deadline_s``:

1. stop reading: every account's stream stops reading, flushes the frames it holds into the
   pipeline and deletes its listenKey; the reconcilers stop;
2. flush ingest: the pipeline commits what is queued;
3. drain the outbox until the deadline (what is left is published at the next start);
4. close the spot accounts' shared WS-API connections, the HTTP server, the NATS connection
   and the PostgreSQL pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from fillstream.ledger import ConfigError, StreamState
from fillstream.sidecar.clients import (
    weight_budgets,
)
from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.errors import StartupError
from fillstream.sidecar.http import HttpServer, Readiness
from fillstream.sidecar.ownership import NATS_ERRORS, Ownership
from fillstream.sidecar.pipeline import IngestState
from fillstream.sidecar.runtime import tune_gc
from fillstream.sidecar.secrets import scrub
from fillstream.sidecar.service_metrics import SHUTDOWN_OUTBOX_LEFT
from fillstream.sidecar.stack import IngestStack, build_stack
from fillstream.sidecar.supervisor import AccountSupervisor, SharedParts, SpotPools
from fillstream.storage.fence import Fences
from fillstream.storage.leases import LeaseStore
from fillstream.storage.relay import ROW_ACCOUNT

log = logging.getLogger(__name__)

_LEASE_OPEN_ERRORS: tuple[type[Exception], ...] = (*NATS_ERRORS, ValueError)

# An account is ready when its stream delivers, or when it is deliberately polling because the
# stream is down (degraded): data keeps flowing either way.
_READY_STATES = frozenset({StreamState.STREAMING, StreamState.DEGRADED})
_PER_ACCOUNT_OUTBOX = f"""
SELECT {ROW_ACCOUNT} AS account, count(*) AS pending
FROM outbox WHERE published_at IS NULL GROUP BY 1
"""


def _ingest_check(state: IngestState) -> str:
    if state.state == "ok":
        return "ok"
    if state.state == "failing":
        return f"failing: {state.consecutive_failures} ingest transactions failed in a row"
    return f"stuck: oldest submission waiting {state.oldest_pending_s:.1f} s"


class Service:
    """The running sidecar; also the :class:`~fillstream.sidecar.http.ServiceView` of /status."""

    def __init__(
        self,
        config: Config,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self._environ = environ
        self._parts: SharedParts | None = None
        self._stack: IngestStack | None = None
        self._http: HttpServer | None = None
        self.supervisors: dict[str, AccountSupervisor] = {}
        self.ownership: Ownership | None = None
        self._fences = Fences(enabled=config.replicas.enabled)
        self._tg: asyncio.TaskGroup | None = None
        self._account_tasks: dict[str, asyncio.Task[None]] = {}
        self._started_mono = time.monotonic()
        self._serving = False
        self._stopping = False
        self._closed = False
        self._deadline: float | None = None  # time.monotonic() by which shutdown must end

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return self._http.url if self._http is not None else ""

    @property
    def parts(self) -> SharedParts:
        if self._parts is None:
            raise RuntimeError("the service is not started")
        return self._parts

    async def start(self) -> None:
        """Build the shared parts and serve HTTP. Raises :class:`StartupError` (one line)."""
        config = self.config
        if not config.enabled_accounts:
            raise ConfigError("accounts: no enabled account is configured")
        stack = await build_stack(config, environ=self._environ, startup=True, fences=self._fences)
        try:
            self._parts = self._shared_parts(stack)
            if config.replicas.enabled:
                self.ownership = await self._open_ownership(self._parts)
            self._http = await self._start_http()
        except BaseException:
            await stack.aclose()
            self._parts = None
            raise
        self._stack = stack
        if self.ownership is None:
            self.supervisors = {
                a.name: AccountSupervisor(self.parts, a) for a in config.enabled_accounts
            }
        log.info(
            "fillstream started",
            extra={
                "http": self.http_url,
                "accounts": ",".join(self.supervisors),
                "nats_stream": config.nats.stream,
            },
        )

    def _shared_parts(self, stack: IngestStack) -> SharedParts:
        """What every account shares: the stack (built by :func:`build_stack`) and the budgets."""
        budgets = weight_budgets(self.config)
        return SharedParts(
            config=self.config,
            environ=self._environ,
            pool=stack.pool,
            nc=stack.nc,
            publisher=stack.publisher,
            relay=stack.relay,
            ledger=stack.ledger,
            pipeline=stack.pipeline,
            budgets=budgets,
            spot_pools=SpotPools(self.config, budgets),
        )

    async def _open_ownership(self, parts: SharedParts) -> Ownership:
        settings = self.config.replicas
        try:
            store = await LeaseStore.open(
                parts.nc.jetstream(),
                bucket=settings.bucket,
                ttl_s=settings.lease_ttl_s,
                replicas=settings.kv_replicas,
                storage=settings.kv_storage,
            )
        except _LEASE_OPEN_ERRORS as exc:
            raise StartupError(f"cannot open the lease bucket {settings.bucket}: {exc}") from exc
        return Ownership(
            settings,
            self.config.enabled_accounts,
            store=store,
            pool=parts.pool,
            ledger=parts.ledger,
            relay=parts.relay,
            fences=self._fences,
            runner=self,
            shutdown_deadline_s=self.config.service.shutdown_deadline_s,
        )

    # -- AccountRunner (replicas) ---------------------------------------------------------------

    def start_account(self, account: AccountConfig, takeover_since_ms: int | None) -> None:
        """Run ``account`` here (its lease was just taken)."""
        assert self._tg is not None
        supervisor = AccountSupervisor(
            self.parts, account, replica=True, takeover_since_ms=takeover_since_ms
        )
        self.supervisors[account.name] = supervisor
        self._account_tasks[account.name] = self._tg.create_task(
            supervisor.run(), name=f"account-{account.name}"
        )

    async def stop_account(self, name: str, deadline: float, *, delete_listen_key: bool) -> None:
        """Stop ``name`` by ``deadline``, then wait (until then) for its facts to commit."""
        supervisor = self.supervisors.get(name)
        task = self._account_tasks.pop(name, None)
        if supervisor is None or task is None:
            return
        supervisor.delete_listen_key = delete_listen_key
        supervisor.stop(deadline)
        done, _ = await asyncio.wait([task], timeout=max(0.1, deadline - time.monotonic()))
        if not done:
            task.cancel()
            await asyncio.wait([task])
        self.supervisors.pop(name, None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await self.parts.pipeline.wait_idle()

    async def _start_http(self) -> HttpServer:
        config = self.config
        http = HttpServer(
            self,
            host=config.http.host,
            port=config.http.port,
            loop_stall_s=config.http.loop_stall_s,
            enable_reconcile=config.http.enable_reconcile_endpoint,
            reconcile_token=config.http.reconcile_token(self._environ),
        )
        try:
            await http.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {config.http.listen}: {exc}") from exc
        return http

    async def serve(self, stop: asyncio.Event) -> None:
        """Run every account until ``stop`` is set, then shut down in order (see module doc)."""
        self._serving = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for name, supervisor in self.supervisors.items():
                    tg.create_task(supervisor.run(), name=f"account-{name}")
                if self.ownership is not None:
                    self.ownership.start()
                await stop.wait()
                self._stopping = True
                self._deadline = time.monotonic() + self.config.service.shutdown_deadline_s
                log.info(
                    "shutting down", extra={"deadline_s": self.config.service.shutdown_deadline_s}
                )
                # 1. stop reading (streams flush their frames and delete their listenKeys).
                if self.ownership is not None:  # ... and hand the leases back
                    await self.ownership.aclose(self._deadline)
                for supervisor in self.supervisors.values():
                    supervisor.stop(self._deadline)
        finally:
            self._serving = False
            await self.aclose(self._deadline)

    async def aclose(self, deadline: float | None = None) -> None:
        """Steps 2 to 4 of the shutdown (idempotent); ``deadline`` is a ``time.monotonic()``."""
        if self._closed:
            return
        self._closed = True
        if deadline is None:
            deadline = time.monotonic() + self.config.service.shutdown_deadline_s

        stack = self._stack
        if stack is not None:
            # 2. flush ingest, 3. drain the outbox until the deadline.
            left = await stack.drain(deadline - time.monotonic())
            SHUTDOWN_OUTBOX_LEFT.set(left)
            if left:
                log.warning(
                    "outbox not drained by the deadline; published at next start",
                    extra={"outbox_left": left},
                )
        # 4. close (the spot accounts unsubscribed in step 1: their shared sockets go now).
        if self._parts is not None:
            await self._parts.spot_pools.aclose(max(0.1, deadline - time.monotonic()))
        if self._http is not None:
            await self._http.aclose()
        if stack is not None:
            await stack.close()
        log.info("fillstream stopped")

    # -- ServiceView --------------------------------------------------------------------------

    def alive(self) -> bool:
        return self._parts is not None and not self._closed

    async def readiness(self) -> Readiness:
        checks: dict[str, str] = {}
        parts = self._parts
        if parts is None or self._stopping:
            return Readiness(ready=False, checks={"service": "not running"})
        try:
            await asyncio.wait_for(parts.pool.fetchval("SELECT 1"), 2.0)
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = scrub(f"unreachable: {exc!r}")
        checks["nats"] = "ok" if parts.nc.is_connected else "disconnected"
        if self.ownership is not None:
            checks["replicas"] = "ok" if self.ownership.healthy() else "lease bucket unreadable"
        for name, supervisor in self.supervisors.items():
            state = supervisor.state
            checks[f"account:{name}"] = "ok" if state in _READY_STATES else str(state)
            # Streaming says the socket delivers; it does not say the facts get stored.
            checks[f"ingest:{name}"] = _ingest_check(
                parts.pipeline.ingest_state(name, supervisor.account.market)
            )
        return Readiness(ready=all(v == "ok" for v in checks.values()), checks=checks)

    async def status(self) -> Mapping[str, Any]:
        parts = self._parts
        per_account: dict[str, int] = {}
        if parts is not None and not self._closed:
            with contextlib.suppress(Exception):
                rows = await asyncio.wait_for(parts.pool.fetch(_PER_ACCOUNT_OUTBOX), 2.0)
                per_account = {r["account"]: int(r["pending"]) for r in rows}
        return {
            "service": {
                "uptime_s": round(time.monotonic() - self._started_mono, 1),
                "stopping": self._stopping,
                "nats_connected": bool(parts and parts.nc.is_connected),
                "nats_stream": self.config.nats.stream,
                "outbox_pending": parts.relay.pending if parts else None,
                "startup": parts.startup.status() if parts else None,
                "rest": parts.budgets.status() if parts else None,
                "replicas": None if self.ownership is None else self.ownership.status(),
            },
            "accounts": {
                name: {
                    **sup.status(),
                    "outbox_pending": per_account.get(name, 0),
                    **self._account_health(name, sup),
                }
                for name, sup in self.supervisors.items()
            },
        }

    def _account_health(self, name: str, sup: AccountSupervisor) -> dict[str, Any]:
        """Ingest health and the symbols the venue refuses (set aside from reconcile)."""
        parts, reconciler = self._parts, sup.reconciler
        return {
            "ingest": None
            if parts is None
            else msgspec.to_builtins(parts.pipeline.ingest_state(name, sup.account.market)),
            "symbols_set_aside": [] if reconciler is None else reconciler.set_aside.view(),
        }

    async def trigger_reconcile(self, account: str) -> Mapping[str, Any]:
        supervisor = self.supervisors[account]  # KeyError → 404
        return {"account": account, "triggered": supervisor.trigger_reconcile()}


def run_service(config: Config) -> int:
    """``fillstream run``: start, serve until SIGTERM/SIGINT, shut down; the exit code.

    A second signal during the shutdown stops waiting for the deadline.
    """
    return asyncio.run(_run(config))


async def _run(config: Config) -> int:
    service = Service(config)
    await service.start()  # StartupError propagates: the CLI prints it on one line, exit 1
    tune_gc()  # start-up's objects frozen, collector thresholds raised (sidecar/runtime.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.info("signal received; stopping", extra={"signal": sig.name})
        stop.set()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(s)  # the next signal acts as usual (immediate)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await service.serve(stop)
    return 0
