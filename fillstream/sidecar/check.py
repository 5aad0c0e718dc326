"""``fillstream check``: is this config ready to run?

The config has already been loaded and validated by the caller (no socket opens on a bad config).
Then, each with a short timeout: PostgreSQL (reachable, schema version), NATS (reachable,
JetStream on, the stream's duplicate window), and for each enabled account its REST endpoint
(server time and clock skew, a listenKey, the key's permissions). fillstream needs read-only
access: a key that can trade or withdraw is reported as a warning.

The listenKey is created (POST is idempotent: it returns the account's active key) and never
deleted, so checking a config next to a running service does not cut its stream. A spot account
has no listenKey: its key subscribes once on a WS-API connection of its own
(``userDataStream.subscribe.signature``, signed as the service signs it) and unsubscribes again;
a service running beside it keeps its own subscription on its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import Mapping
from typing import IO

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from fillstream.binance import VenueError
from fillstream.binance.rest import WeightBudgets
from fillstream.ledger import ConfigError, Market
from fillstream.sidecar.clients import (
    connect_nats,
    create_venue,
    reach_postgres,
    transport_tls_version,
    weight_budgets,
)
from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.errors import Unreachable, describe
from fillstream.sidecar.secrets import mask_url, scrub
from fillstream.storage.migrations import available
from fillstream.stream.connection import CONNECT_ERRORS
from fillstream.stream.spot_subscribe import SpotCredentials, check_subscription
from fillstream.stream.wsapi_session import SessionClosedError

_TIMEOUT_S = 10.0
_SKEW_WARN_MS = 1000  # Binance rejects timestamps > 1 s ahead of its clock (-1021)


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


class Finding(msgspec.Struct, frozen=True):
    level: Level
    subject: str  # postgres, nats, accounts[alpha]
    detail: str


async def run_checks(config: Config, environ: Mapping[str, str] | None = None) -> list[Finding]:
    """Every check, in order; never raises for an unreachable or misconfigured dependency (that
    is a finding), so one failing check never hides the others."""
    findings: list[Finding] = []
    findings.extend(await _check_postgres(config, environ))
    findings.extend(await _check_nats(config))
    findings.extend(_check_http(config))
    accounts = config.enabled_accounts
    if not accounts:
        findings.append(Finding(Level.FAIL, "accounts", "no enabled account is configured"))
    budgets = weight_budgets(config)
    results = await asyncio.gather(*(_check_account(config, a, budgets, environ) for a in accounts))
    for result in results:
        findings.extend(result)
    return findings


_SSL_QUERY = "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"


async def _check_postgres(config: Config, environ: Mapping[str, str] | None) -> list[Finding]:
    dsn = config.database.resolve_dsn(environ)
    where = mask_url(dsn)
    try:
        conn = await reach_postgres(dsn, min(_TIMEOUT_S, config.database.connect_timeout_s))
    except Unreachable as exc:
        return [Finding(Level.FAIL, "postgres", _clip(str(exc)))]
    try:
        version = await conn.fetchval("SHOW server_version")
        tls = await conn.fetchval(_SSL_QUERY)
        applied: set[int] = set()
        if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            applied = {
                r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
            }
    finally:
        await conn.close()
    pending = [m.version for m in available() if m.version not in applied]
    found = [
        Finding(Level.OK, "postgres", f"reachable at {where} (PostgreSQL {version})"),
        _transport_finding("postgres", tls, _dsn_host(dsn), f"sslmode={_sslmode(dsn)}"),
    ]
    if pending:
        how = "at start-up" if config.database.migrate_on_start else "by `fillstream migrate`"
        found.append(
            Finding(Level.WARN, "postgres", f"{len(pending)} migration(s) pending, applied {how}")
        )
    else:
        found.append(Finding(Level.OK, "postgres", "schema up to date"))
    return found


def _sslmode(dsn: str) -> str:
    """The sslmode asyncpg used for ``dsn`` (its query string, else $PGSSLMODE, else prefer)."""
    query = dsn.partition("?")[2].partition("#")[0]
    for param in query.split("&"):
        name, _, value = param.partition("=")
        if name == "sslmode":
            return value
    return os.environ.get("PGSSLMODE", "prefer")


def _dsn_host(dsn: str) -> str:
    netloc = dsn.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    return netloc.rpartition("@")[2]


def _loopback(hosts: str) -> bool:
    """Every host in ``hosts`` (``h1:5432,h2``, ``[::1]:4222``) is this machine."""
    return all(_host_name(h) in {"127.0.0.1", "::1", "localhost", ""} for h in hosts.split(","))


def _host_name(host_port: str) -> str:
    """``[::1]:4222`` → ``::1``, ``db:5432`` → ``db``, ``::1`` → ``::1``."""
    if host_port.startswith("["):
        return host_port[1:].partition("]")[0]
    if host_port.count(":") == 1:
        return host_port.partition(":")[0]
    return host_port


def _transport_finding(subject: str, tls: str | None, hosts: str, how: str) -> Finding:
    """The connection's encryption: TLS (version), or a warning for clear text off-machine."""
    if tls:
        return Finding(Level.OK, subject, f"connection encrypted ({tls})")
    if _loopback(hosts):
        return Finding(Level.OK, subject, "connection not encrypted (loopback)")
    hint = (
        "set database.sslmode = verify-full and sslrootcert"
        if subject == "postgres"
        else "use tls:// URLs (or nats.tls_required) and nats.tls_ca_file"
    )
    return Finding(Level.WARN, subject, f"connection NOT encrypted ({how}): {hint}")


async def _check_nats(config: Config) -> list[Finding]:
    n = config.nats
    servers = ", ".join(mask_url(s) for s in n.servers)
    try:
        nc = await asyncio.wait_for(connect_nats(config, reconnect=False), _TIMEOUT_S)
    except (Unreachable, ConfigError) as exc:
        return [Finding(Level.FAIL, "nats", _clip(str(exc)))]
    except TimeoutError:
        return [Finding(Level.FAIL, "nats", f"cannot reach NATS at {servers}: timed out")]
    tls = transport_tls_version(nc)
    hosts = ",".join(s.partition("://")[2].rpartition("@")[2] for s in n.servers)
    transport = _transport_finding("nats", tls, hosts, "nats:// without tls_required")
    if tls and not n.tls_verify:
        transport = Finding(
            Level.WARN,
            "nats",
            f"connection encrypted ({tls}), but the server certificate is NOT verified"
            " (nats.tls_verify = false)",
        )
    found = [Finding(Level.OK, "nats", f"reachable at {servers}"), transport]
    try:
        found.extend(await _check_stream(config, nc))
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return found


async def _check_stream(config: Config, nc: NatsClient) -> list[Finding]:
    js = nc.jetstream()
    try:
        await js.account_info()
    except Exception as exc:  # nats-py's errors share no base class worth naming
        return [Finding(Level.FAIL, "nats", f"JetStream unavailable: {describe(exc, 200)}")]
    name = config.nats.stream
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        return [Finding(Level.OK, "nats", f"stream {name} absent; created at start-up")]
    window_s = float(info.config.duplicate_window or 0)  # nats-py gives seconds
    wanted = config.nats.duplicate_window_s
    if window_s + 1e-9 < wanted:
        return [
            Finding(
                Level.WARN,
                "nats",
                f"stream {name} duplicate window is {window_s:g} s, config wants {wanted:g} s"
                " (updated at start-up)",
            )
        ]
    return [Finding(Level.OK, "nats", f"stream {name} exists")]


def _check_http(config: Config) -> list[Finding]:
    h = config.http
    if not h.enable_reconcile_endpoint:
        return []
    if h.reconcile_token_env is None and h.reconcile_token_file is None:
        return [
            Finding(
                Level.WARN,
                "http",
                "POST /reconcile is enabled without a token: anything that reaches "
                f"{h.listen} can trigger reconciles (set http.reconcile_token_env or _file)",
            )
        ]
    return [Finding(Level.OK, "http", "POST /reconcile requires a bearer token")]


def _clip(text: str, limit: int = 400) -> str:
    text = scrub(text).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _check_account(
    config: Config,
    account: AccountConfig,
    budgets: WeightBudgets,
    environ: Mapping[str, str] | None,
) -> list[Finding]:
    subject = f"accounts[{account.name}]"
    found: list[Finding] = []
    try:
        venue = await asyncio.wait_for(
            create_venue(config, account, budgets, environ, fetch_limits=False),
            _TIMEOUT_S,
        )
    except (VenueError, TimeoutError, OSError) as exc:
        return [
            Finding(Level.FAIL, subject, f"REST {account.resolved_rest_url}: {describe(exc, 200)}")
        ]
    try:
        skew = venue.clock_offset_ms
        level = Level.WARN if abs(skew) > _SKEW_WARN_MS else Level.OK
        found.append(
            Finding(level, subject, f"REST {venue.rest_url} reachable, clock skew {skew:+d} ms")
        )
        if account.market is Market.SPOT:
            found.append(await _check_subscription(account, budgets, environ))
        else:
            try:
                await asyncio.wait_for(venue.create_listen_key(), _TIMEOUT_S)
                found.append(Finding(Level.OK, subject, "listenKey obtained"))
            except (VenueError, TimeoutError) as exc:
                found.append(
                    Finding(Level.FAIL, subject, f"listenKey refused: {describe(exc, 200)}")
                )
        try:
            perms = await asyncio.wait_for(venue.account_permissions(), _TIMEOUT_S)
        except VenueError as exc:
            if exc.is_auth:
                found.append(Finding(Level.FAIL, subject, f"key refused: {describe(exc, 200)}"))
            else:  # the venue does not say (e.g. no account endpoint): only a warning
                found.append(
                    Finding(Level.WARN, subject, f"key permissions unknown: {describe(exc, 200)}")
                )
            return found
        except TimeoutError:
            found.append(Finding(Level.WARN, subject, "key permissions unknown: timed out"))
            return found
        risky = [p for p in ("canTrade", "canWithdraw") if perms.get(p)]
        if risky:
            found.append(
                Finding(
                    Level.WARN,
                    subject,
                    f"the key has {', '.join(risky)}: fillstream needs read-only access;"
                    " use a read-only key",
                )
            )
        else:
            found.append(Finding(Level.OK, subject, "key is read-only"))
        return found
    finally:
        await venue.aclose()


async def _check_subscription(
    account: AccountConfig, budgets: WeightBudgets, environ: Mapping[str, str] | None
) -> Finding:
    """Spot: subscribe the key to its user data on the WS API, then unsubscribe."""
    subject = f"accounts[{account.name}]"
    settings = account.stream_settings
    url = mask_url(settings.ws_url)
    creds = account.credentials(environ)
    signer = creds.signer()
    credentials = SpotCredentials(api_key=creds.api_key.reveal(), signer=signer)
    try:
        async with asyncio.timeout(_TIMEOUT_S):
            await check_subscription(account.name, credentials, settings, budgets=budgets)
    except VenueError as exc:
        return Finding(Level.FAIL, subject, f"WS API subscribe refused: {describe(exc, 200)}")
    except (*CONNECT_ERRORS, SessionClosedError, TimeoutError) as exc:
        return Finding(Level.FAIL, subject, f"WS API {url}: no answer: {describe(exc, 200)}")
    return Finding(
        Level.OK, subject, f"WS API {url}: user data subscribed and unsubscribed ({signer.kind})"
    )


def print_findings(findings: list[Finding], out: IO[str]) -> None:
    for f in findings:
        out.write(f"{f.level.value:<5} {f.subject:<20} {f.detail}\n")
    fails = sum(f.level is Level.FAIL for f in findings)
    warns = sum(f.level is Level.WARN for f in findings)
    verdict = "FAILED" if fails else "passed"
    out.write(f"check {verdict}: {fails} failure(s), {warns} warning(s)\n")
