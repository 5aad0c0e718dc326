"""Versioned SQL migrations: ``migrations/NNN_name.sql``, applied in order, each once.

Idempotent (applied versions are recorded in ``schema_migrations``) and safe when several processes
start at once: the whole run holds a session-level ``pg_advisory_lock``, so a second process waits,
then finds everything applied. Each migration runs in its own transaction with its record.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg
import msgspec

# Any fixed 64-bit key unique to this schema; "fillstrm" in ASCII.
MIGRATION_LOCK_KEY = 0x66696C6C7374726D

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, by version."""
    found: list[Migration] = []
    for entry in resources.files("fillstream.storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration on ``conn``; returns the versions applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate_dsn(dsn: str) -> list[int]:
    """:func:`migrate` over a connection of its own (``fillstream migrate --dsn``)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
