from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fillstream.sidecar.stack import IngestStack
from tests.conftest import NatsTarget


@pytest.fixture
async def stack(pg_dsn: str, nats_target: NatsTarget) -> AsyncIterator[IngestStack]:
    """The real sink: this test's database, this test's stream."""
    s = await IngestStack.open(
        pg_dsn, nats_target.url, stream=nats_target.stream, prefix=nats_target.prefix
    )
    yield s
    await s.aclose()
