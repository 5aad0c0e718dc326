"""Building the shared clients from the config: the PostgreSQL pool, the NATS connection and each
account's REST venue. Built once per process (``run``, ``check``, ``reconcile``, ``republish``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
import nats
from nats.aio.client import Client as NatsClient

from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.secrets import mask_url
from fillstream.sidecar.venue import BinanceVenue, WeightBudgets

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


def _nats_logger(kind: str) -> Callable[..., Awaitable[None]]:
    async def callback(*args: object) -> None:
        detail = f": {args[0]}" if args else ""
        log.warning("nats %s%s", kind, detail)

    return callback


async def connect_nats(config: Config, *, reconnect: bool = True) -> NatsClient:
    """Connect to ``[nats] servers``. With ``reconnect`` (the service), a lost connection is
    retried forever (the outbox keeps every message meanwhile); without it (``check``, ``tail``),
    the first failure is final. Raises on an initial connection failure.
    """
    n = config.nats
    return await nats.connect(
        servers=list(n.servers),
        name="fillstream",
        connect_timeout=max(1, round(n.connect_timeout_s)),
        allow_reconnect=reconnect,
        max_reconnect_attempts=-1 if reconnect else 0,
        reconnect_time_wait=1,
        error_cb=_nats_logger("error"),
        disconnected_cb=_nats_logger("disconnected") if reconnect else None,
        reconnected_cb=_nats_logger("reconnected") if reconnect else None,
        user_credentials=n.credentials_file,
    )


def nats_servers_for_humans(config: Config) -> str:
    return ", ".join(mask_url(s) for s in config.nats.servers)


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
