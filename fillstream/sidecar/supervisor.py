"""One account's supervisor: runs its REST venue, user stream and reconciler; restarts them with
backoff when they crash, so one account's failure never takes the process (or its neighbours)
down.

A crash is any exception out of the account's stream or reconciler, or a failure to build its
venue (REST unreachable at start). It is logged with its traceback (secrets scrubbed by the log
formatter), counted in ``fillstream_account_restarts_total``, and the account is rebuilt after
``restart_initial_s`` doubling to ``restart_max_s`` (jittered, and paced with every other
account's restarts); the backoff resets once an incarnation has run for ``restart_max_s``. Every
incarnation starts with a gap (the stream's ``start`` gap), so whatever happened while the
account was down is backfilled.

At process start the supervisors report to one :class:`StartupOrder`: every account's socket
first, then every gap, then the start-up reconciles (see :mod:`.startup_order`).

A spot account's stream is a :class:`~fillstream.stream.SpotUserStream`: a subscription on one
of the WS-API connections every spot account of its endpoint shares (:class:`SpotPools`, built
once by the service); its reconciler is the same as a futures account's, on the spot venue.

With replicas (:mod:`.ownership`), an account taken over from another process starts with a
``takeover`` gap from its last committed fill, and its stream never deletes the listenKey it
shares with the other processes: only a clean shutdown that sees no other replica alive sets
:attr:`AccountSupervisor.delete_listen_key`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import msgspec
from nats.aio.client import Client as NatsClient

from fillstream.binance import Venue, VenueError
from fillstream.binance.rest import WeightBudgets
from fillstream.binance.retry import Backoff, pacer
from fillstream.ledger import Gap, Market, StreamState
from fillstream.reconcile import Reconciler
from fillstream.sidecar.clients import create_venue
from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.errors import describe
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.sidecar.pipeline import Pipeline
from fillstream.sidecar.service_metrics import ACCOUNT_RESTARTS, ACCOUNT_RUNNING
from fillstream.sidecar.startup_order import StartupOrder
from fillstream.storage import JetStreamPublisher, Ledger, OutboxRelay, PgCursorStore, PgOrderView
from fillstream.stream import UserStream
from fillstream.stream.spot_stream import SpotUserStream
from fillstream.stream.spot_subscribe import SpotCredentials
from fillstream.stream.wsapi_pool import WsApiPool

log = logging.getLogger(__name__)

_RESTARTS: Final = pacer("account.restart")


class SpotPools:
    """The process's WS-API connection pools, one per WS-API URL: every spot account of one
    endpoint shares its connections, ``[spot] accounts_per_connection`` on each, with the
    top-level ``[stream]`` timers (per-account stream tables do not change a shared socket).
    Their weight is charged to ``budgets``, the pool spot REST draws on too."""

    def __init__(self, config: Config, budgets: WeightBudgets) -> None:
        self._settings = msgspec.structs.replace(
            config.stream, accounts_per_connection=config.spot.accounts_per_connection
        )
        self._budgets = budgets
        self._pools: dict[str, WsApiPool] = {}

    def pool(self, url: str) -> WsApiPool:
        """The pool of the WS-API endpoint ``url`` (made on first use)."""
        found = self._pools.get(url)
        if found is None:
            settings = msgspec.structs.replace(self._settings, ws_url=url)
            found = self._pools[url] = WsApiPool(
                url, settings, market=Market.SPOT.value, budgets=self._budgets
            )
        return found

    def pools(self) -> list[WsApiPool]:
        """Every pool made so far (one per WS-API endpoint in use)."""
        return list(self._pools.values())

    async def aclose(self, timeout_s: float) -> None:
        """Close every connection (after the accounts unsubscribed), within ``timeout_s``."""
        await asyncio.gather(*(p.aclose(timeout_s) for p in self._pools.values()))


@dataclass(frozen=True, kw_only=True)
class SharedParts:
    """What every account shares: built once by the service."""

    config: Config
    environ: Mapping[str, str] | None
    pool: asyncpg.Pool
    nc: NatsClient
    publisher: JetStreamPublisher
    relay: OutboxRelay
    ledger: Ledger
    pipeline: Pipeline
    budgets: WeightBudgets
    spot_pools: SpotPools
    startup: StartupOrder = field(default_factory=StartupOrder)


class AccountSupervisor:
    """Keeps one account running until :meth:`stop`."""

    def __init__(
        self,
        parts: SharedParts,
        account: AccountConfig,
        *,
        replica: bool = False,
        takeover_since_ms: int | None = None,
    ) -> None:
        self.parts = parts
        self.account = account
        self.replica = replica
        self.takeover_since_ms = takeover_since_ms
        # Replicas: whether stopping deletes the shared listenKey (a clean, last shutdown only).
        self.delete_listen_key = False
        self.restarts = 0
        self.last_error: str | None = None
        self.stream: UserStream | SpotUserStream | None = None
        self.reconciler: Reconciler | None = None
        self._stop = asyncio.Event()
        self._deadline = 0.0
        labels = (account.name, account.market.value)
        self._restarts = ACCOUNT_RESTARTS.labels(*labels)
        self._running = ACCOUNT_RUNNING.labels(*labels)
        parts.startup.join(account.name, parts.budgets)

    @property
    def state(self) -> StreamState | str:
        """The stream's state, or ``starting``/``restarting`` while the account is not running."""
        if self.stream is not None:
            return self.stream.state
        return "restarting" if self.restarts else "starting"

    def stop(self, deadline: float) -> None:
        """Ask the account to stop by ``deadline`` (``time.monotonic()``); :meth:`run` returns
        once its stream has flushed and released its listenKey."""
        self._deadline = deadline
        self._stop.set()

    def trigger_reconcile(self) -> bool:
        """Start a reconcile now; False when the account is not running."""
        if self.reconciler is None:
            return False
        self.reconciler.request()
        return True

    async def run(self) -> None:
        settings = self.parts.config.service
        backoff = Backoff(
            min(settings.restart_initial_s, settings.restart_max_s), settings.restart_max_s
        )
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self._incarnation()  # returns only once stopped
            except Exception as exc:  # the supervisor's job: log, count, restart
                if self._stop.is_set():
                    log.warning(
                        "account stopped with an error",
                        extra={"account": self.account.name, "error": describe(exc)},
                    )
                    break
                self.restarts += 1
                self.last_error = describe(exc)
                self._restarts.inc()
                now = time.monotonic()
                if now - started >= settings.restart_max_s:
                    backoff.reset()
                delay = _RESTARTS.delay(now, backoff.after(exc))
                log.error(
                    "account crashed; restarting",
                    exc_info=True,
                    extra={"account": self.account.name, "restart_in_s": round(delay, 2)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    async def _incarnation(self) -> None:
        try:
            await self._run_incarnation()
        finally:
            self.parts.startup.leave(self.account.name)

    async def _report_startup(
        self, stream: UserStream | SpotUserStream, reconciler: Reconciler
    ) -> None:
        """Tell the start-up order when this account's socket, then its first gap, went."""
        order, name = self.parts.startup, self.account.name
        await stream.attempted.wait()
        order.stream_attempted(name, connected=stream.connected)
        if stream.connected:
            await reconciler.first_gap_done.wait()
            order.gap_done(name)
        await reconciler.startup_done.wait()
        order.history_done(name)

    async def _run_incarnation(self) -> None:
        parts, account = self.parts, self.account
        venue = await create_venue(parts.config, account, parts.budgets, parts.environ)
        parts.pipeline.expect_stream(account.name, account.market)  # backfilled history ≠ missed
        try:
            reconciler = Reconciler(
                account=account.name,
                market=account.market,
                venue=venue,
                sink=parts.pipeline,
                cursors=PgCursorStore(parts.pool),
                orders=PgOrderView(parts.pool),
                index=PgFillIndex(parts.pool),
                settings=account.reconcile_settings,
            )
            stream = self._stream(venue, reconciler)
            self._takeover_gap(reconciler)
            self.reconciler, self.stream = reconciler, stream
            parts.startup.attach(account.name, reconciler)
            self._running.set(1)
            log.info("account started", extra={"account": account.name, "market": account.market})
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(reconciler.run(), name=f"reconcile-{account.name}")
                    tg.create_task(stream.run(), name=f"stream-{account.name}")
                    report = tg.create_task(
                        self._report_startup(stream, reconciler), name=f"startup-{account.name}"
                    )
                    await self._stop.wait()
                    report.cancel()
                    # Stop reading first: the stream flushes what it holds into the pipeline and
                    # deletes its listenKey; then the reconciler (its work is idempotent).
                    await stream.aclose(max(0.5, self._deadline - time.monotonic()))
                    await reconciler.aclose()
                    if self.replica and stream.listen_key is not None:
                        await self._release_shared_key(venue)
            finally:
                self._running.set(0)
                self.reconciler, self.stream = None, None
        finally:
            await venue.aclose()

    def _stream(self, venue: Venue, reconciler: Reconciler) -> UserStream | SpotUserStream:
        """The account's user stream: a WS-API subscription (spot) or a listenKey socket."""
        parts, account = self.parts, self.account
        settings = account.stream_settings
        if account.market is Market.SPOT:
            creds = account.credentials(parts.environ)
            signer = creds.signer()
            return SpotUserStream(
                account.name,
                venue,
                parts.pipeline,
                reconciler,
                settings,
                credentials=SpotCredentials(api_key=creds.api_key.reveal(), signer=signer),
                status=parts.pipeline,
                market=account.market,
                pool=parts.spot_pools.pool(settings.ws_url),
            )
        if self.replica:  # the stream never deletes the key other processes share
            settings = msgspec.structs.replace(settings, delete_key_on_shutdown=False)
        return UserStream(
            account.name,
            venue,
            parts.pipeline,
            reconciler,
            settings,
            status=parts.pipeline,
            market=account.market,
        )

    def _takeover_gap(self, reconciler: Reconciler) -> None:
        """Taken over from another process: backfill from its last committed fill, like after
        a reconnect (the start-up run, from the cursors, goes deeper later)."""
        since = self.takeover_since_ms
        if since is None:
            return
        self.takeover_since_ms = None  # a restarted incarnation has its own start gap
        account = self.account
        reconciler.on_gap(
            Gap(
                account=account.name,
                market=account.market,
                since_ms=since,
                until_ms=time.time_ns() // 1_000_000,
                reason="takeover",
            )
        )

    async def _release_shared_key(self, venue: Venue) -> None:
        """DELETE the listenKey: only on a clean shutdown with no other replica alive."""
        if not (self.delete_listen_key and self.account.stream_settings.delete_key_on_shutdown):
            return
        try:
            async with asyncio.timeout(max(1.0, self._deadline - time.monotonic())):
                await venue.close_listen_key()
        except (VenueError, TimeoutError) as exc:
            log.warning("%s: listenKey delete failed: %s", self.account.name, exc)

    def status(self) -> dict[str, Any]:
        """This account for ``/status``: names and numbers only, never a key."""
        market = self.account.market.value
        stream, reconciler = self.stream, self.reconciler
        # From the objects, not the metrics registry: a registry lookup collects every series of
        # every account, so a /status of N accounts cost N² (seconds of a blocked event loop at
        # 100 accounts, and every REST call and ping timed out behind it).
        age = None if stream is None else stream.last_event_age_s
        lag = None if reconciler is None else reconciler.cursor_lag_s
        return {
            "market": market,
            "running": stream is not None,
            "state": str(self.state),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_event_age_s": None if age is None else round(age, 3),
            "cursor_lag_s": None if lag is None else round(lag, 3),
            "stream": None
            if stream is None
            else {
                "connected": stream.connected,
                "listen_key_active": stream.listen_key is not None,
                "frames": stream.frames,
                "fills": stream.fills,
                "duplicates": stream.duplicates,
                **_subscription(stream),
            },
            "last_reconcile": None
            if reconciler is None or reconciler.last_run is None
            else msgspec.to_builtins(reconciler.last_run),
        }


def _subscription(stream: UserStream | SpotUserStream) -> dict[str, int | None]:
    """A spot account's place on the shared WS-API connections (which neighbours it has)."""
    if not isinstance(stream, SpotUserStream):
        return {}
    session = stream.session
    return {
        "ws_api_connection": None if session is None else session.id,
        "subscription_id": stream.subscription_id,
    }
