from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from fillstream.storage import Ledger, migrate


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's fresh database, migrated."""
    p: asyncpg.Pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with p.acquire() as conn:
        await migrate(conn)
    yield p
    await p.close()


@pytest.fixture
def ledger(pool: asyncpg.Pool) -> Ledger:
    return Ledger(pool, prefix="fst")
