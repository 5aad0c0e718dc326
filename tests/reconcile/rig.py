"""A whole account on real infrastructure: the simulator as the venue, the real venue wrapper,
pipeline (PostgreSQL + JetStream), stores, user stream and reconciler, wired like the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY

from fillstream.binance.rest import BinanceVenue, WeightBudgets
from fillstream.ledger import Market
from fillstream.reconcile import Reconciler, ReconcileSettings
from fillstream.sidecar.fill_index import PgFillIndex
from fillstream.sidecar.stack import IngestStack
from fillstream.sidecar.tally import Tally, tally_jetstream, tally_postgres, truth_from_ledger
from fillstream.simulator import SimConfig, Simulator
from fillstream.storage.cursors import PgCursorStore
from fillstream.storage.orders import PgOrderView
from fillstream.stream.config import StreamSettings
from fillstream.stream.listener import UserStream

FAST_RECONCILE = ReconcileSettings(
    interval_s=1.0,
    degraded_interval_s=0.5,
    settle_delay_s=1.0,
    stream_lag_grace_s=2.0,
    position_check_interval_s=2.0,
    all_symbol_calls_min_interval_s=5.0,
    order_check_after_s=1.0,
    symbols=("BTCUSDT", "ETHUSDT"),
)


def stream_settings(sim: Simulator, **overrides: Any) -> StreamSettings:
    base: dict[str, Any] = {
        "ws_url": sim.ws_url,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "trade_lite_grace_s": 2.0,
        "tick_s": 0.2,
    }
    return StreamSettings(**(base | overrides))


async def until(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0, what: str = ""
) -> None:
    """Poll ``predicate`` until true (never a fixed sleep); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.05)


def metric(name: str, **labels: str) -> float:
    """Sum of the samples of counter ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class Rig:
    """One simulator, one pipeline; per account a venue, a reconciler and (optionally) a stream."""

    def __init__(self, sim: Simulator, stack: IngestStack, nats_stream: str, prefix: str) -> None:
        self.sim = sim
        self.stack = stack
        self.nats_stream = nats_stream
        self.prefix = prefix
        self.budgets = WeightBudgets()
        self.venues: dict[str, BinanceVenue] = {}
        self.reconcilers: dict[str, Reconciler] = {}
        self.streams: dict[str, UserStream] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(
        cls, *, pg_dsn: str, nats_url: str, nats_stream: str, prefix: str, sim: SimConfig
    ) -> Rig:
        simulator = Simulator(sim)
        await simulator.start()
        try:
            stack = await IngestStack.open(pg_dsn, nats_url, stream=nats_stream, prefix=prefix)
        except BaseException:
            await simulator.aclose()
            raise
        return cls(simulator, stack, nats_stream, prefix)

    async def venue(self, account: str) -> BinanceVenue:
        if account not in self.venues:
            acct = self.sim.account(account)
            self.venues[account] = await BinanceVenue.create(
                account=account,
                api_key=acct.api_key,
                api_secret=acct.api_secret,
                rest_url=self.sim.rest_url,
                budget=self.budgets,
            )
        return self.venues[account]

    async def reconciler(
        self, account: str, settings: ReconcileSettings = FAST_RECONCILE
    ) -> Reconciler:
        pool = self.stack.pool
        rec = Reconciler(
            account=account,
            market=Market.USDM,
            venue=await self.venue(account),
            sink=self.stack.pipeline,
            cursors=PgCursorStore(pool),
            orders=PgOrderView(pool),
            index=PgFillIndex(pool),
            settings=settings,
        )
        self.reconcilers[account] = rec
        return rec

    async def run(
        self,
        account: str,
        *,
        settings: ReconcileSettings = FAST_RECONCILE,
        stream: StreamSettings | bool | None = True,
    ) -> Reconciler:
        """Start the reconciler loop and, unless ``stream`` is False, the user stream."""
        rec = await self.reconciler(account, settings)
        self._tasks.append(asyncio.create_task(rec.run(), name=f"reconciler-{account}"))
        if stream is not False:
            us = UserStream(
                account,
                await self.venue(account),
                self.stack.pipeline,
                rec,
                stream if isinstance(stream, StreamSettings) else stream_settings(self.sim),
                status=self.stack.pipeline,
            )
            us.start()
            self.streams[account] = us
        return rec

    async def streaming(self) -> bool:
        """Every started stream is streaming."""
        return all(us.state == "streaming" for us in self.streams.values())

    async def aclose(self) -> None:
        for us in self.streams.values():
            await us.aclose(5.0)
        for rec in self.reconcilers.values():
            await rec.aclose(5.0)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for venue in self.venues.values():
            await venue.aclose()
        await self.stack.aclose()
        await self.sim.aclose()

    # -- the three views ---------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        return self.sim.ground_truth()

    def truth_tally(self, account: str) -> Tally:
        return truth_from_ledger(self.truth()).for_account(account)

    async def pg_tally(self, account: str) -> Tally:
        async with self.stack.pool.acquire() as conn:
            return await tally_postgres(conn, [account])

    async def js_tally(self, account: str) -> Tally:
        await self.stack.relay.wait_idle()
        return await tally_jetstream(self.stack.nc, self.nats_stream, self.prefix, [account])

    async def pg_fill_count(self, account: str) -> int:
        value = await self.stack.pool.fetchval(
            "SELECT count(*) FROM fills WHERE account = $1", account
        )
        return int(value)

    async def pg_closes(self, account: str) -> dict[str, dict[str, Any]]:
        """Close id → the latest revision's close payload (not retracted)."""
        records = await self.stack.pool.fetch(
            "SELECT DISTINCT ON (close_id) close_id, close, retracted_at FROM position_closes"
            " WHERE account = $1 ORDER BY close_id, revision DESC",
            account,
        )
        out: dict[str, dict[str, Any]] = {}
        for r in records:
            if r["retracted_at"] is None:
                raw = r["close"]
                out[r["close_id"]] = msgspec.json.decode(raw) if isinstance(raw, str) else raw
        return out


async def read_subject(rig: Rig, subject: str) -> list[tuple[str, dict[str, Any]]]:
    """``(Nats-Msg-Id, payload)`` of every JetStream message on ``subject`` (read-only)."""
    await rig.stack.relay.wait_idle()
    js = rig.stack.nc.jetstream()
    sub = await js.pull_subscribe(
        subject,
        stream=rig.nats_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    out: list[tuple[str, dict[str, Any]]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(batch=1000, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            out.extend(
                ((m.headers or {}).get("Nats-Msg-Id", ""), msgspec.json.decode(m.data))
                for m in msgs
            )
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


def truth_closes(truth: dict[str, Any], account: str) -> dict[str, dict[str, Any]]:
    out = {}
    for c in truth["accounts"][account]["closes"]:
        key = f"close:{account}:usdm:{c['symbol']}:{c['positionSide']}:{c['closeTradeId']}"
        out[key] = c
    return out


def dec(value: object) -> Decimal:
    return Decimal(str(value))
