"""The service never says healthy while an account's facts are not stored, and shows why.

In-process service, two accounts against the simulator. A fill for a symbol the venue refuses
(``-1121``) reaches alpha's stream: ``/status`` lists the symbol as set aside with its reason and
next retry, and alpha stays ready. Then PostgreSQL refuses every fill of alpha (a trigger: not a
data error, so nothing is quarantined and the stream keeps retrying): alpha still streams, but
``/readyz`` answers 503 naming ``ingest:alpha`` and ``/status`` says its ingest is failing, while
beta stays ok. Once the store accepts again, alpha's fills land and ``/readyz`` is 200.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from fillstream.ledger import StreamState
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.reconcile.test_refused_symbol import REFUSED, delisted_fill_frame
from tests.sidecar.harness import serving, wait_for

REFUSE_ALPHA = """
CREATE FUNCTION refuse_alpha() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.account = 'alpha' THEN RAISE EXCEPTION 'fills of alpha refused for maintenance'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_alpha BEFORE INSERT ON fills FOR EACH ROW EXECUTE FUNCTION refuse_alpha();
"""


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.json()


async def _count(dsn: str, account: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM fills WHERE account = $1", account))
    finally:
        await conn.close()


async def test_readyz_and_status_show_set_aside_symbols_and_failing_ingest(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    async with (
        Simulator(SimConfig(accounts=("alpha", "beta"), rate=20, seed=5)) as sim,
        serving(sim, pg_dsn, nats_target, tmp_path) as service,
    ):
        base = service.http_url

        async def ready() -> bool:
            status, _ = await _get(f"{base}/readyz")
            return status == 200

        await wait_for(ready, 60, "both accounts ready")
        sim.inject("alpha", "inject_frame", raw=delisted_fill_frame(int(time.time() * 1000)))

        async def set_aside() -> bool:
            _, body = await _get(f"{base}/status")
            return bool(body["accounts"]["alpha"]["symbols_set_aside"])

        await wait_for(set_aside, 60, "the refused symbol in /status")
        _, body = await _get(f"{base}/status")
        (entry,) = body["accounts"]["alpha"]["symbols_set_aside"]
        assert entry["symbol"] == REFUSED and entry["code"] == -1121
        assert entry["next_retry_ms"] > entry["since_ms"]
        assert body["accounts"]["beta"]["symbols_set_aside"] == []
        assert body["accounts"]["alpha"]["ingest"]["state"] == "ok"
        assert await ready()  # a set-aside symbol is not an unhealthy account

        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(REFUSE_ALPHA)

            async def alpha_not_ready() -> bool:
                status, body = await _get(f"{base}/readyz")
                return status == 503 and body["checks"]["ingest:alpha"] != "ok"

            await wait_for(alpha_not_ready, 60, "/readyz naming alpha's ingest")
            _, body = await _get(f"{base}/readyz")
            assert body["checks"]["ingest:alpha"].startswith("failing")
            assert body["checks"]["ingest:beta"] == "ok"
            assert body["checks"]["account:alpha"] == "ok"  # it streams; facts are not stored
            _, status = await _get(f"{base}/status")
            ingest = status["accounts"]["alpha"]["ingest"]
            assert ingest["state"] == "failing"
            assert "maintenance" in ingest["last_error"]
            assert service.supervisors["alpha"].state is StreamState.STREAMING
            stored = await _count(pg_dsn, "alpha")
            await conn.execute("DROP TRIGGER refuse_alpha ON fills")
        finally:
            await conn.close()

        async def alpha_stores_again() -> bool:
            return await _count(pg_dsn, "alpha") > stored

        await wait_for(alpha_stores_again, 60, "alpha's fills stored again")
        await wait_for(ready, 60, "ready again")
