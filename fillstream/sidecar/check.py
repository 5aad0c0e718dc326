"""``fillstream check``: is this config ready to run?

The config has already been loaded and validated by the caller (no socket opens on a bad config).
Then, each with a short timeout: PostgreSQL (reachable, schema version), NATS (reachable,
JetStream on, the stream's duplicate window), and for each enabled account its REST endpoint
(server time and clock skew, a listenKey, the key's permissions). fillstream needs read-only
access: a key that can trade or withdraw is reported as a warning.

The listenKey is created (POST is idempotent: it returns the account's active key) and never
deleted, so checking a config next to a running service does not cut its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Mapping
from typing import IO

import asyncpg
import msgspec
from nats.js.errors import NotFoundError

from fillstream.ledger import Market, VenueError
from fillstream.sidecar.clients import connect_nats, create_venue, weight_budgets
from fillstream.sidecar.config import AccountConfig, Config
from fillstream.sidecar.errors import describe
from fillstream.sidecar.secrets import mask_url
from fillstream.sidecar.venue import WeightBudgets
from fillstream.storage.migrations import available

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
    """Every check, in order; never raises for an unreachable dependency (that is a finding)."""
    findings: list[Finding] = []
    for check in (_check_postgres(config, environ), _check_nats(config)):
        findings.extend(await check)
    accounts = config.enabled_accounts
    if not accounts:
        findings.append(Finding(Level.FAIL, "accounts", "no enabled account is configured"))
    budgets = weight_budgets(config)
    results = await asyncio.gather(*(_check_account(config, a, budgets, environ) for a in accounts))
    for result in results:
        findings.extend(result)
    return findings


async def _check_postgres(config: Config, environ: Mapping[str, str] | None) -> list[Finding]:
    dsn = config.database.resolve_dsn(environ)
    try:
        conn = await asyncpg.connect(dsn, timeout=_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return [
            Finding(
                Level.FAIL, "postgres", f"cannot connect to {mask_url(dsn)}: {describe(exc, 200)}"
            )
        ]
    try:
        version = await conn.fetchval("SHOW server_version")
        applied: set[int] = set()
        if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            applied = {
                r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
            }
    finally:
        await conn.close()
    pending = [m.version for m in available() if m.version not in applied]
    found = [Finding(Level.OK, "postgres", f"reachable at {mask_url(dsn)} (PostgreSQL {version})")]
    if pending:
        how = "at start-up" if config.database.migrate_on_start else "by `fillstream migrate`"
        found.append(
            Finding(Level.WARN, "postgres", f"{len(pending)} migration(s) pending, applied {how}")
        )
    else:
        found.append(Finding(Level.OK, "postgres", "schema up to date"))
    return found


async def _check_nats(config: Config) -> list[Finding]:
    servers = ", ".join(mask_url(s) for s in config.nats.servers)
    try:
        nc = await asyncio.wait_for(connect_nats(config, reconnect=False), _TIMEOUT_S)
    except Exception as exc:  # nats-py raises a variety of errors on failed connects
        return [Finding(Level.FAIL, "nats", f"cannot connect to {servers}: {describe(exc, 200)}")]
    found = [Finding(Level.OK, "nats", f"reachable at {servers}")]
    try:
        js = nc.jetstream()
        try:
            await js.account_info()
        except Exception as exc:
            found.append(
                Finding(Level.FAIL, "nats", f"JetStream unavailable: {describe(exc, 200)}")
            )
            return found
        name = config.nats.stream
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            found.append(Finding(Level.OK, "nats", f"stream {name} absent; created at start-up"))
            return found
        window_s = float(info.config.duplicate_window or 0)  # nats-py gives seconds
        wanted = config.nats.duplicate_window_s
        if window_s + 1e-9 < wanted:
            found.append(
                Finding(
                    Level.WARN,
                    "nats",
                    f"stream {name} duplicate window is {window_s:g} s, config wants {wanted:g} s"
                    " (updated at start-up)",
                )
            )
        else:
            found.append(Finding(Level.OK, "nats", f"stream {name} exists"))
        return found
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


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
        if account.market is not Market.SPOT:
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


def print_findings(findings: list[Finding], out: IO[str]) -> None:
    for f in findings:
        out.write(f"{f.level.value:<5} {f.subject:<20} {f.detail}\n")
    fails = sum(f.level is Level.FAIL for f in findings)
    warns = sum(f.level is Level.WARN for f in findings)
    verdict = "FAILED" if fails else "passed"
    out.write(f"check {verdict}: {fails} failure(s), {warns} warning(s)\n")
