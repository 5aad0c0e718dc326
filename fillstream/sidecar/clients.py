"""Building the shared clients from the config: the PostgreSQL pool, the NATS connection and each
account's REST venue. Built once per process (``run``, ``check``, ``reconcile``, ``republish``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import nats
from nats.aio.client import Client as NatsClient

from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.secrets import mask_url, scrub
from fillstream.sidecar.venue import BinanceVenue, WeightBudgets
from fillstream.storage import JetStreamPublisher

log = logging.getLogger(__name__)


async def create_pool(config: Config, environ: Mapping[str, str] | None = None) -> asyncpg.Pool:
    """The asyncpg pool of ``[database]``; raises what asyncpg raises when it cannot connect."""
    db = config.database
    return await asyncpg.create_pool(
        db.resolve_dsn(environ),
        min_size=db.pool_min_size,
        max_size=db.pool_max_size,
        command_timeout=db.command_timeout_s,
        timeout=db.command_timeout_s,
    )


class _NatsEvents:
    """nats-py's callbacks: logged once connected; before that, only the last error is kept
    (for the one-line reason when the first connection never succeeds)."""

    def __init__(self) -> None:
        self.nc: NatsClient | None = None
        self.last_error: object = None

    def callback(self, kind: str) -> Callable[..., Awaitable[None]]:
        async def on_event(*args: object) -> None:
            nc = self.nc
            if nc is None:
                self.last_error = args[0] if args else kind
                return
            if nc.is_closed or nc.is_draining:
                return  # our own close, not an outage
            detail = f": {args[0]}" if args else ""
            level = logging.INFO if kind == "reconnected" else logging.WARNING
            log.log(level, "nats %s%s", kind, detail)

        return on_event


async def connect_nats_servers(
    servers: list[str],
    *,
    name: str = "fillstream",
    reconnect: bool = True,
    connect_timeout_s: float = 5.0,
    credentials_file: str | None = None,
) -> NatsClient:
    """Connect to ``servers``, trying for at most three connect timeouts in all, then raising
    ``TimeoutError`` (or the connection error): an unreachable NATS fails fast. Once connected,
    with ``reconnect`` a lost connection is retried forever (the outbox keeps every message
    meanwhile); without it the first failure is final.
    """
    events = _NatsEvents()
    connecting = nats.connect(
        servers=servers,
        name=name,
        connect_timeout=max(1, round(connect_timeout_s)),
        allow_reconnect=reconnect,
        max_reconnect_attempts=-1 if reconnect else 0,
        reconnect_time_wait=1,
        error_cb=events.callback("error"),
        disconnected_cb=events.callback("disconnected") if reconnect else None,
        reconnected_cb=events.callback("reconnected") if reconnect else None,
        user_credentials=credentials_file,
    )
    # nats-py retries the first connection forever when reconnecting is allowed: bound it.
    limit_s = 3 * connect_timeout_s
    try:
        events.nc = await asyncio.wait_for(connecting, limit_s)
    except TimeoutError:
        where = ", ".join(mask_url(s) for s in servers)
        raise ConnectionError(
            f"no NATS server reachable at {where} within {limit_s:g} s"
            f" (last error: {events.last_error})"
        ) from None
    return events.nc


async def connect_nats(config: Config, *, reconnect: bool = True) -> NatsClient:
    """:func:`connect_nats_servers` with the ``[nats]`` section."""
    n = config.nats
    return await connect_nats_servers(
        list(n.servers),
        reconnect=reconnect,
        connect_timeout_s=n.connect_timeout_s,
        credentials_file=n.credentials_file,
    )


async def create_venue(
    config: Config,
    account: AccountConfig,
    budgets: WeightBudgets,
    environ: Mapping[str, str] | None = None,
    *,
    fetch_limits: bool = True,
) -> BinanceVenue:
    """The account's REST client on the shared per-host weight ``budgets``; syncs the clock.

    Raises :class:`fillstream.ledger.VenueError` when the venue cannot be reached.
    """
    creds = account.credentials(environ)
    rest = config.rest
    return await BinanceVenue.create(
        account=account.name,
        market=account.market,
        api_key=creds.api_key.reveal(),
        api_secret=creds.api_secret.reveal(),
        rest_url=account.resolved_rest_url,
        budget=budgets,
        recv_window_ms=rest.recv_window_ms,
        request_timeout_s=rest.request_timeout_s,
        time_sync_interval_s=rest.time_sync_interval_s,
        max_wait_s=rest.max_wait_s,
        fetch_limits=fetch_limits,
    )


def weight_budgets(config: Config) -> WeightBudgets:
    return WeightBudgets(limits=dict(config.rest.weight_limits))


def publisher_for(config: Config, nc: NatsClient) -> JetStreamPublisher:
    """The JetStream publisher of ``[nats]`` (stream, prefix, dedup window, retention)."""
    n = config.nats
    return JetStreamPublisher(
        nc,
        stream=n.stream,
        prefix=n.subject_prefix,
        duplicate_window_s=n.duplicate_window_s,
        max_age_s=n.max_age_s,
        replicas=n.replicas,
        window=n.publish_window,
    )


async def close_all(resources: list[Any]) -> None:
    """Close in reverse order of opening; a failure to close one does not skip the others."""
    for resource in reversed(resources):
        try:
            closer = getattr(resource, "aclose", None) or resource.close
            result = closer()
            if asyncio.iscoroutine(result):
                await asyncio.wait_for(result, 10.0)
        except Exception as exc:
            log.warning("close %s: %s", type(resource).__name__, scrub(repr(exc)))
