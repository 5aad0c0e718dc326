"""The one wiring of the stack: PostgreSQL pool (migrated) → NATS → publisher → relay → pipeline.

The service (:mod:`fillstream.sidecar.service`), the one-shot commands
(:mod:`fillstream.sidecar.admin`), the tests and the benchmarks all build it here, with
:func:`build_stack` (or :func:`open_stack`, its context manager), so what is tested and
benchmarked is what runs. ``upto`` says how much a caller needs:

- ``"ledger"``: the pool (migrated) and the :class:`~fillstream.storage.Ledger`; no NATS (a
  ``reconcile`` dry run);
- ``"publish"``: plus NATS, the JetStream publisher (stream ensured) and an outbox relay that is
  not started (``republish`` sends through it itself);
- ``"ingest"``: plus the relay started (it drains leftovers first) and the pipeline started.

``startup=True`` (the service) turns every failure into a one-line
:class:`~fillstream.sidecar.errors.StartupError`; otherwise an unreachable PostgreSQL or NATS is
:class:`~fillstream.sidecar.errors.Unreachable` and anything else propagates as raised.
Whatever was opened before a failure is closed again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, TypeVar

import asyncpg
from nats.aio.client import Client as NatsClient

from fillstream.sidecar.clients import (
    close_all,
    connect_nats,
    create_pool,
    publisher_for,
    reach_pool,
)
from fillstream.sidecar.config import (
    Config,
    DatabaseConfig,
    NatsConfig,
    PipelineConfig,
)
from fillstream.sidecar.errors import StartupError, Unreachable
from fillstream.sidecar.pipeline import Pipeline
from fillstream.sidecar.secrets import mask_url
from fillstream.storage import (
    JetStreamPublisher,
    Ledger,
    OrderPublishing,
    OutboxRelay,
    PublishedListener,
    migrate,
)
from fillstream.storage.fence import Fences

log = logging.getLogger(__name__)

Upto = Literal["ledger", "publish", "ingest"]


class IngestStack:
    """The parts :func:`build_stack` wired. ``nc``, ``publisher``, ``relay`` and ``pipeline``
    exist from the level that needs them (reading one below it is a ``RuntimeError``). Close with
    :meth:`aclose` (or :meth:`drain` then :meth:`close`, as the service does around its HTTP
    server)."""

    def __init__(self, config: Config, pool: asyncpg.Pool, ledger: Ledger) -> None:
        self.config = config
        self.pool = pool
        self.ledger = ledger
        self._nc: NatsClient | None = None
        self._publisher: JetStreamPublisher | None = None
        self._relay: OutboxRelay | None = None
        self._pipeline: Pipeline | None = None
        self._closed = False

    @property
    def nc(self) -> NatsClient:
        return _present(self._nc, "nc", "publish")

    @property
    def publisher(self) -> JetStreamPublisher:
        return _present(self._publisher, "publisher", "publish")

    @property
    def relay(self) -> OutboxRelay:
        return _present(self._relay, "relay", "publish")

    @property
    def pipeline(self) -> Pipeline:
        return _present(self._pipeline, "pipeline", "ingest")

    @property
    def ingesting(self) -> bool:
        """Whether the pipeline runs (built with ``upto="ingest"``)."""
        return self._pipeline is not None

    @classmethod
    async def open(
        cls,
        dsn: str,
        nats_servers: str | list[str],
        *,
        stream: str = "FILLSTREAM",
        prefix: str = "fillstream",
        duplicate_window_s: float = 7200.0,
        max_age_s: float = 30 * 86400.0,
        replicas: int = 1,
        max_batch: int = 1000,
        pool_size: int = 10,
        window: int = 100,
        publish_orders: OrderPublishing = OrderPublishing.ALL,
        on_published: PublishedListener | None = None,
    ) -> IngestStack:
        """The full stack from a DSN and NATS servers (tests and benchmarks): a :class:`Config`
        with these values and every other default, through :func:`build_stack`."""
        servers = (nats_servers,) if isinstance(nats_servers, str) else tuple(nats_servers)
        config = Config(
            database=DatabaseConfig(dsn=dsn, pool_min_size=1, pool_max_size=pool_size),
            nats=NatsConfig(
                servers=servers,
                stream=stream,
                subject_prefix=prefix,
                duplicate_window_s=duplicate_window_s,
                max_age_s=max_age_s,
                replicas=replicas,
                publish_window=window,
                publish_orders=publish_orders.value,
            ),
            pipeline=PipelineConfig(max_batch=max_batch),
        )
        return await build_stack(config, on_published=on_published)

    async def drain(self, deadline_s: float) -> int:
        """Commit what is queued, then publish what is committed, both within ``deadline_s``
        (each step gets at least 0.1 s); the number of outbox rows left unpublished."""
        end = time.monotonic() + deadline_s

        def remaining() -> float:
            return max(0.1, end - time.monotonic())

        if self._pipeline is not None:
            await self._pipeline.aclose(remaining())
        if self._relay is None:
            return 0
        await self._relay.aclose(remaining())
        return self._relay.pending

    async def close(self) -> None:
        """Close the connections (idempotent); :meth:`drain` first to lose nothing queued."""
        if self._closed:
            return
        self._closed = True
        opened: list[Any] = [self.pool, self._nc, self._publisher]
        await close_all([part for part in opened if part is not None])

    async def aclose(self, deadline_s: float = 5.0) -> None:
        """:meth:`drain`, then :meth:`close`."""
        try:
            await self.drain(deadline_s)
        finally:
            await self.close()


async def build_stack(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    upto: Upto = "ingest",
    migrate_schema: bool | None = None,
    startup: bool = False,
    on_published: PublishedListener | None = None,
    fences: Fences | None = None,
) -> IngestStack:
    """Open the stack ``config`` describes, up to ``upto`` (see the module doc).

    ``migrate_schema`` None: ``database.migrate_on_start``. ``fences``: the replicas' write
    fences every ingest checks (the service's, when ``[replicas]`` is enabled); none by default.
    """
    opened: list[Any] = []
    try:
        pool = await _open_pool(config, environ, startup)
        opened.append(pool)
        if config.database.migrate_on_start if migrate_schema is None else migrate_schema:
            await _migrate(pool, startup)
        n = config.nats
        ledger = Ledger(
            pool,
            prefix=n.subject_prefix,
            publish_orders=OrderPublishing(n.publish_orders),
            fences=fences,
        )
        stack = IngestStack(config, pool, ledger)
        if upto == "ledger":
            return stack
        nc = stack._nc = await _open_nats(config, startup)
        opened.append(nc)
        publisher = stack._publisher = await _open_publisher(config, nc, startup)
        opened.append(publisher)
        p = config.pipeline
        relay = stack._relay = OutboxRelay(
            pool,
            publisher,
            chunk=p.outbox_chunk,
            retention_s=p.outbox_retention_s,
            on_published=on_published,
        )
        if upto == "publish":
            return stack
        await relay.start()
        opened.append(relay)
        pipeline = stack._pipeline = Pipeline(
            ledger, relay, max_batch=p.max_batch, stuck_after_s=p.stuck_after_s
        )
        await pipeline.start()
        return stack
    except BaseException:
        await close_all(opened)
        raise


@contextlib.asynccontextmanager
async def open_stack(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    upto: Upto = "ingest",
    migrate_schema: bool | None = None,
    on_published: PublishedListener | None = None,
    deadline_s: float | None = None,
) -> AsyncIterator[IngestStack]:
    """:func:`build_stack` as a context manager: drained (within ``deadline_s``, default
    ``service.shutdown_deadline_s``) and closed on the way out."""
    stack = await build_stack(
        config,
        environ=environ,
        upto=upto,
        migrate_schema=migrate_schema,
        on_published=on_published,
    )
    try:
        yield stack
    finally:
        await stack.aclose(config.service.shutdown_deadline_s if deadline_s is None else deadline_s)


T = TypeVar("T")


def _present(part: T | None, name: str, level: str) -> T:
    if part is None:
        raise RuntimeError(f"this stack has no {name} (built below upto={level!r})")
    return part


async def _open_pool(
    config: Config, environ: Mapping[str, str] | None, startup: bool
) -> asyncpg.Pool:
    if not startup:
        return await reach_pool(config, environ)
    dsn = mask_url(config.database.resolve_dsn(environ))
    try:
        return await create_pool(config, environ)
    except (OSError, TimeoutError) as exc:
        raise StartupError(f"cannot connect to PostgreSQL at {dsn}: {exc}") from exc
    except Exception as exc:
        raise StartupError(f"PostgreSQL at {dsn}: {exc}") from exc


async def _migrate(pool: asyncpg.Pool, startup: bool) -> None:
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
    except Exception as exc:
        if not startup:
            raise
        raise StartupError(f"PostgreSQL migrations failed: {exc!r}") from exc
    if applied and startup:  # the one-shot commands print only their own result
        log.info("migrations applied", extra={"versions": ",".join(map(str, applied))})


async def _open_nats(config: Config, startup: bool) -> NatsClient:
    if not startup:
        return await connect_nats(config)
    servers = ", ".join(mask_url(s) for s in config.nats.servers)
    try:
        return await connect_nats(config)
    except Unreachable as exc:  # already names NATS and the (masked) servers
        raise StartupError(str(exc)) from exc
    except Exception as exc:  # nats-py raises several unrelated types here
        raise StartupError(f"cannot connect to NATS at {servers}: {exc!r}") from exc


async def _open_publisher(config: Config, nc: NatsClient, startup: bool) -> JetStreamPublisher:
    publisher = publisher_for(config, nc)
    try:
        await publisher.ensure_stream()
    except Exception as exc:
        if not startup:
            raise
        raise StartupError(
            f"cannot create/update JetStream stream {config.nats.stream}: {exc!r}"
        ) from exc
    await publisher.start()
    return publisher
