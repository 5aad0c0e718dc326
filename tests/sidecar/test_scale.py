"""Many accounts on one IP's real weight budget (the simulator's 2,400 a minute).

- 30 accounts start in priority order (sockets, then gaps, then history): they all stream within
  a generous bound, and the venue never answers 429 or 418, not even once the start-up history
  has pushed the budget through a whole busy minute;
- 30 accounts whose sockets are refused retry at a pace shared across the process: the
  simulator counts the handshakes, and there are never more than the pacer allows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from fillstream.binance.retry import DEFAULT_PACERS
from fillstream.sidecar.service import Service
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import serving, wait_for

ACCOUNTS = tuple(f"acct{i:02d}" for i in range(30))


def _streaming(service: Service) -> int:
    return sum(1 for s in service.supervisors.values() if s.stream and s.stream.connected)


@pytest.mark.timeout(400)
async def test_30_accounts_stream_on_the_real_budget_without_a_429(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    config = SimConfig(accounts=ACCOUNTS, rate=2, seed=11, weight_limit_1m=2400)
    async with Simulator(config) as sim:
        await wait_for(_has_history(sim), 30, "some history on the venue")
        sim.pause()
        async with serving(sim, pg_dsn, nats_target, tmp_path) as service:

            async def all_streaming() -> bool:
                return _streaming(service) == len(ACCOUNTS)

            await wait_for(all_streaming, 60, "all 30 accounts streaming")
            order = service.parts.startup

            async def gaps_served() -> bool:
                return order.phase in ("history", "open")

            await wait_for(gaps_served, 120, "every start gap served")
            # The start-up history of 30 accounts is more than one minute's weight: wait until
            # the venue has charged more than its limit, so the budget went through a busy
            # minute boundary, then check that the venue never refused.
            limiter = sim.limiter

            async def past_one_minute_of_weight() -> bool:
                return limiter.weight_total > limiter.limit

            await wait_for(past_one_minute_of_weight, 240, "more than a minute's weight spent")
            assert limiter.stats()["429"] == 0
            assert limiter.stats()["418"] == 0
            status = await service.status()
            rest = status["service"]["rest"]
            (host,) = rest.values()
            assert host["limit"] == 2400
            assert set(host["queued"]) == {"stream", "gap", "history", "periodic"}
            assert _streaming(service) == len(ACCOUNTS)


def _has_history(sim: Simulator) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(s.fills_generated > 0 for s in sim.states.values())

    return check


@pytest.mark.timeout(300)
async def test_refused_sockets_retry_at_a_pace_shared_by_every_account(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    limits = DEFAULT_PACERS["stream.connect"]
    config = SimConfig(accounts=ACCOUNTS, rate=0, seed=12, weight_limit_1m=2400)
    async with Simulator(config) as sim:
        sim.inject(None, "refuse_ws", seconds=3600)
        async with serving(sim, pg_dsn, nats_target, tmp_path):
            ws = sim.ws

            async def first_attempts_made() -> bool:
                return ws.refused >= len(ACCOUNTS)

            await wait_for(first_attempts_made, 60, "every account's first attempt refused")
            # From here on, every handshake is a retry. Count them at the venue over a stretch
            # long enough for each account's own backoff (≤ 1 s in this config) to have fired
            # several times: without the shared pace, 30 accounts retry ≥ 30 times a second.
            start, refused0 = time.monotonic(), ws.refused
            listen_keys0 = sim.rest.ctx.by_route.get("POST /fapi/v1/listenKey", 0)

            async def enough_retries() -> bool:
                return ws.refused - refused0 >= 3 * limits.burst

            await wait_for(enough_retries, 120, "retries of the refused accounts")
            await asyncio.sleep(2)  # a stretch with the pace already in force
            elapsed = time.monotonic() - start
            retries = ws.refused - refused0
            listen_keys = sim.rest.ctx.by_route.get("POST /fapi/v1/listenKey", 0) - listen_keys0
            # (a second burst of slack: a retry's slot and its handshake are a round trip apart)
            allowed = limits.rate_per_s * elapsed + 2 * limits.burst
            assert retries <= allowed, (retries, elapsed)
            # Each retry is one listenKey POST and one handshake: a handful of requests a second.
            assert listen_keys <= allowed + len(ACCOUNTS), (listen_keys, elapsed)
