"""The asyncpg pool the ledger runs on, and what its failures look like."""

from __future__ import annotations

from typing import Any

import asyncpg

DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,  # the server said no (or is shutting down, starting up, ...)
    asyncpg.InterfaceError,  # the connection is gone
    # asyncpg files some abrupt disconnects under "internal client error" ("cannot switch to
    # state ...; another operation is in progress"): for the caller it is a lost connection.
    asyncpg.InternalClientError,
    OSError,  # refused, reset, timed out
)
"""Exceptions that mean "PostgreSQL is unavailable or refused": retry later, idempotently."""


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (``RESET ALL; UNLISTEN *; ...``).

    That query is one more round trip and server statement on every release, which at low rate
    is every ingest, mark and count. Nothing here leaves session state behind: settings are
    ``SET LOCAL``, cursors live in transactions, the migration lock is released in ``finally``
    (and asyncpg still rolls back any open transaction before this runs).
    """


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **options: Any
) -> asyncpg.Pool:
    """An asyncpg pool for :class:`~fillstream.storage.Ledger`, the relay and the views."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, reset=_keep_session, **options
    )
    return pool
