from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from fillstream.simulator import SimConfig
from tests.conftest import NatsTarget
from tests.reconcile.rig import Rig

RigFactory = Callable[[SimConfig], AbstractAsyncContextManager[Rig]]


@pytest.fixture
def rig_factory(pg_dsn: str, nats_target: NatsTarget) -> RigFactory:
    """``async with rig_factory(SimConfig(...)) as rig``: one rig per test, closed after it."""

    @asynccontextmanager
    async def make(sim: SimConfig) -> AsyncIterator[Rig]:
        rig = await Rig.open(
            pg_dsn=pg_dsn,
            nats_url=nats_target.url,
            nats_stream=nats_target.stream,
            prefix=nats_target.prefix,
            sim=sim,
        )
        try:
            yield rig
        finally:
            await rig.aclose()

    return make
