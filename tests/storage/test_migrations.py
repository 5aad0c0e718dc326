from __future__ import annotations

import asyncio

import asyncpg

from fillstream.storage import migrate
from fillstream.storage.migrations import available

TABLES = {
    "fills",
    "orders",
    "positions",
    "position_closes",
    "position_corrections",
    "algo_links",
    "outbox",
    "cursors",
    "stream_sessions",
    "gaps",
    "funding",
    "status_changes",
    "schema_migrations",
}


async def test_migrate_applies_everything_once(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await migrate(conn) == [m.version for m in available()]
        assert await migrate(conn) == []
        names = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert names >= TABLES
    finally:
        await conn.close()


async def test_concurrent_starts_apply_each_migration_exactly_once(pg_dsn: str) -> None:
    conns = [await asyncpg.connect(pg_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [v for r in results for v in r]
        assert sorted(applied) == [m.version for m in available()]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(available())
    finally:
        for c in conns:
            await c.close()
