"""Building the shared clients from the config: the PostgreSQL pool, the NATS connection and each
account's REST venue. Built once per process (``run``, ``check``, ``reconcile``, ``republish``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import nats.errors
from nats.aio.client import Client as NatsClient

from fillstream.binance.rest import BinanceVenue, WeightBudgets
from fillstream.binance.signing import KeyKind
from fillstream.ledger.errors import ConfigError
from fillstream.sidecar.config import AccountConfig, Config, nats_tls_context
from fillstream.sidecar.errors import Unreachable, describe
from fillstream.sidecar.secrets import mask_url, scrub
from fillstream.storage import JetStreamPublisher
from fillstream.storage import create_pool as storage_pool

log = logging.getLogger(__name__)
T = TypeVar("T")


async def reach(what: str, where: str, connecting: Awaitable[T], timeout_s: float) -> T:
    """Await ``connecting`` for at most ``timeout_s``; any failure becomes :class:`Unreachable`
    naming ``what`` (PostgreSQL, NATS, the venue) and ``where`` (already masked)."""
    try:
        return await asyncio.wait_for(connecting, timeout_s)
    except TimeoutError:
        raise Unreachable(
            f"cannot reach {what} at {where}: no answer within {timeout_s:g} s"
        ) from None
    except (ConfigError, Unreachable):
        raise
    # The clients raise many unrelated types on a failed connect (OSError, ssl.SSLError,
    # asyncpg's and nats-py's own, ValueError for a malformed address): all mean "not reached".
    except Exception as exc:
        raise Unreachable(f"cannot reach {what} at {where}: {describe(exc, 300)}") from exc


async def create_pool(config: Config, environ: Mapping[str, str] | None = None) -> asyncpg.Pool:
    """The asyncpg pool of ``[database]``; raises what asyncpg raises when it cannot connect.
    Each connection attempt is bounded by ``database.connect_timeout_s``."""
    db = config.database
    return await storage_pool(
        db.resolve_dsn(environ),
        min_size=db.pool_min_size,
        max_size=db.pool_max_size,
        command_timeout=db.command_timeout_s,
        timeout=db.connect_timeout_s,
    )


async def reach_pool(config: Config, environ: Mapping[str, str] | None = None) -> asyncpg.Pool:
    """:func:`create_pool` for the one-shot commands: :class:`Unreachable` on failure."""
    db = config.database
    where = mask_url(db.resolve_dsn(environ))
    # create_pool opens pool_min_size connections one after the other.
    limit_s = db.connect_timeout_s * (db.pool_min_size + 1)
    return await reach("PostgreSQL", where, create_pool(config, environ), limit_s)


async def reach_postgres(dsn: str, timeout_s: float = 10.0) -> asyncpg.Connection:
    """One connection to ``dsn``; :class:`Unreachable` naming the (masked) DSN on failure."""
    connecting = asyncpg.connect(dsn, timeout=timeout_s)
    return await reach("PostgreSQL", mask_url(dsn), connecting, timeout_s + 1)


class NatsTlsRefused(nats.errors.Error):
    """TLS is required (tls://, ``tls_required``, a CA or client certificate) and the server did
    not offer it: nothing was sent, credentials included."""


class _FailClosedClient(NatsClient):
    """nats-py upgrades a connection to TLS only when the server's INFO says ``tls_required``,
    so a ``tls://`` URL against a plaintext server would connect, and send its credentials, in
    clear. This client checks the transport just before the CONNECT command (the one that
    carries user, password, token or signed nonce) and refuses it over plain TCP."""

    require_tls = False

    def _connect_command(self) -> bytes:
        if self.require_tls and not transport_tls_version(self):
            server = self._current_server
            where = mask_url(f"{server.uri.scheme}://{server.uri.netloc}") if server else "?"
            raise NatsTlsRefused(
                f"nats: {where} does not offer TLS; refusing to connect in clear (TLS is"
                " required by the tls:// URL or the [nats] tls settings)"
            )
        return super()._connect_command()


def transport_tls_version(nc: NatsClient) -> str | None:
    """``"TLSv1.3"`` when ``nc``'s current connection is TLS, else ``None``."""
    transport = getattr(nc, "_transport", None)
    writer = getattr(transport, "_io_writer", None)
    ssl_object = writer.get_extra_info("ssl_object") if writer is not None else None
    if ssl_object is not None:
        return str(ssl_object.version())
    server = getattr(nc, "_current_server", None)
    if server is not None and server.uri.scheme == "wss":  # aiohttp's TLS, not a stream writer
        return "TLS (wss)"
    return None


def _permanent(error: object) -> bool:
    """Errors that another attempt will not cure: fail now rather than after the timeout."""
    return (
        isinstance(error, NatsTlsRefused | nats.errors.AuthorizationError | ssl.SSLError)
        or "authorization violation" in str(error).lower()
    )


class _NatsEvents:
    """nats-py's callbacks: logged once connected; before that, only the last error is kept
    (for the one-line reason when the first connection never succeeds), and a permanent one
    (TLS refused or failed, credentials refused) ends the first connect at once, as does the
    ``give_up_after``-th error of any kind (without reconnecting: every server tried once)."""

    def __init__(self, give_up_after: int | None = None) -> None:
        self.nc: NatsClient | None = None
        self.last_error: object = None
        self.errors = 0
        self.give_up_after = give_up_after
        self.fatal = asyncio.Event()

    def callback(self, kind: str) -> Callable[..., Awaitable[None]]:
        async def on_event(*args: object) -> None:
            nc = self.nc
            if nc is None:
                self.last_error = args[0] if args else kind
                self.errors += 1
                limit = self.give_up_after
                if _permanent(self.last_error) or (limit is not None and self.errors >= limit):
                    self.fatal.set()
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
    tls: ssl.SSLContext | None = None,
    tls_hostname: str | None = None,
) -> NatsClient:
    """Connect to ``servers``, trying for at most three connect timeouts in all, then raising
    :class:`Unreachable` naming the (masked) servers and the last error: an unreachable NATS
    fails fast, and refused credentials or TLS fail at once. With ``tls`` every connection must
    be TLS (fail closed, see :class:`_FailClosedClient`). Once connected, with ``reconnect`` a
    lost connection is retried forever (the outbox keeps every message meanwhile); without it
    the first failure is final, but for a reset during the handshake (see ``_RESET_RETRIES``).
    """
    attempt = 0
    while True:
        try:
            return await _connect_nats_once(
                servers,
                name=name,
                reconnect=reconnect,
                connect_timeout_s=connect_timeout_s,
                credentials_file=credentials_file,
                tls=tls,
                tls_hostname=tls_hostname,
            )
        except _ResetBeforeReason:
            attempt += 1
            if attempt >= _RESET_RETRIES:
                raise


# A server that refuses a connection (credentials, say) writes its -ERR line and closes; when
# our CONNECT and PING are still unread there, the close is a TCP reset, and the reset can
# reach us before the -ERR line is read, losing the reason. Without reconnecting, such a reset
# during the handshake is tried again this many times in all, so the reason is reported.
_RESET_RETRIES = 3


class _ResetBeforeReason(Unreachable):
    """The first connection was reset during the handshake, before any server error was read."""


async def _connect_nats_once(
    servers: list[str],
    *,
    name: str,
    reconnect: bool,
    connect_timeout_s: float,
    credentials_file: str | None,
    tls: ssl.SSLContext | None,
    tls_hostname: str | None,
) -> NatsClient:
    # nats-py's max_reconnect_attempts=0 retries a refused first connection forever: without
    # reconnecting, give up once each server has failed once.
    events = _NatsEvents(give_up_after=None if reconnect else len(servers))
    nc = _FailClosedClient()
    nc.require_tls = tls is not None
    options: dict[str, Any] = {"tls": tls, "tls_hostname": tls_hostname} if tls else {}
    connecting = asyncio.ensure_future(
        nc.connect(
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
            **options,
        )
    )
    fatal = asyncio.ensure_future(events.fatal.wait())
    # nats-py retries the first connection forever when reconnecting is allowed: bound it.
    limit_s = 3 * connect_timeout_s
    where = ", ".join(mask_url(s) for s in servers)
    try:
        await asyncio.wait({connecting, fatal}, timeout=limit_s, return_when="FIRST_COMPLETED")
    except BaseException:  # our caller gave up (a timeout of its own, a signal)
        connecting.cancel()
        raise
    finally:
        fatal.cancel()
    if connecting.done() and connecting.exception() is None:
        events.nc = nc
        return nc
    error = connecting.exception() if connecting.done() else events.last_error
    if not connecting.done():
        connecting.cancel()
        await asyncio.wait({connecting})  # never raises; the attempt's end is not our error
    # After a failed TLS handshake nats-py's close() can wait forever on its reader: bound it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 1.0)
    if error is None:
        raise Unreachable(f"cannot reach NATS at {where}: no answer within {limit_s:g} s")
    reason = describe(error) if isinstance(error, BaseException) else str(error)
    if not reconnect and isinstance(error, ConnectionResetError):
        raise _ResetBeforeReason(f"cannot reach NATS at {where}: {reason}")
    raise Unreachable(f"cannot reach NATS at {where}: {reason}")


async def connect_nats(config: Config, *, reconnect: bool = True) -> NatsClient:
    """:func:`connect_nats_servers` with the ``[nats]`` section (TLS and credentials)."""
    n = config.nats
    return await connect_nats_servers(
        list(n.servers),
        reconnect=reconnect,
        connect_timeout_s=n.connect_timeout_s,
        credentials_file=n.credentials_file,
        tls=nats_tls_context(n),
        tls_hostname=n.tls_hostname,
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
        api_secret=creds.api_secret.reveal() if creds.key_type is KeyKind.HMAC else None,
        private_key=None if creds.key_type is KeyKind.HMAC else creds.api_secret.reveal(),
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
