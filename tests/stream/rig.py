"""The stream path end to end: simulator (venue) → UserStream → Pipeline → PostgreSQL → JetStream.

``Rig`` owns one simulator, the real ingest stack, and per account the real ``BinanceVenue``, a
``UserStream`` and a :class:`BackfillGaps` listener. ``BackfillGaps`` stands in for the
reconciler, as issue 4 asks: on every gap it reads ``userTrades`` from its per-symbol cursor and
submits what it finds with source ``reconcile``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
import nats
from prometheus_client import REGISTRY

from fillstream.binance import Venue, VenueError
from fillstream.binance.rest import BinanceVenue, WeightBudgets
from fillstream.ledger import (
    Fill,
    FillSource,
    Gap,
    IngestBatch,
    Market,
    PositionSide,
    Side,
    StreamState,
)
from fillstream.sidecar.stack import IngestStack
from fillstream.simulator import SimConfig, Simulator
from fillstream.stream import StreamSettings, UserStream
from tests.conftest import NatsTarget

TradeRef = tuple[str, int, int]


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, timeout_s: float = 60.0, what: str = "it"
) -> None:
    """Poll until ``check()`` is true (no fixed sleeps in assertions)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _UserTrade(msgspec.Struct, frozen=True):
    symbol: str
    id: int
    orderId: int
    side: str
    positionSide: str
    price: str
    qty: str
    quoteQty: str
    commission: str
    commissionAsset: str
    realizedPnl: str
    maker: bool
    time: int


def _fill(account: str, row: _UserTrade) -> Fill:
    return Fill(
        account=account,
        market=Market.USDM,
        symbol=row.symbol,
        trade_id=row.id,
        order_id=row.orderId,
        side=Side(row.side),
        position_side=PositionSide(row.positionSide),
        price=Decimal(row.price),
        qty=Decimal(row.qty),
        quote_qty=Decimal(row.quoteQty),
        commission=Decimal(row.commission),
        commission_asset=row.commissionAsset,
        realized_pnl=Decimal(row.realizedPnl),
        maker=row.maker,
        trade_time_ms=row.time,
        source=FillSource.RECONCILE,
    )


class BackfillGaps:
    """A test ``GapListener``: records gaps and states; backfills gaps from ``userTrades``."""

    def __init__(
        self, account: str, venue: Venue, stack: IngestStack, symbols: tuple[str, ...]
    ) -> None:
        self.account = account
        self.venue = venue
        self.stack = stack
        self.symbols = symbols
        self.backfill = True
        self.gaps: list[Gap] = []
        self.states: list[StreamState] = []
        self.backfilled = 0
        self._cursors: dict[str, int] = {}
        self._wanted = 0
        self._done = 0
        self._until_ms = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._worker())

    def on_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        if self.backfill:
            self._request(gap.until_ms)

    def on_stream_state(self, account: str, market: Market, state: StreamState) -> None:
        self.states.append(state)

    def _request(self, until_ms: int | None) -> None:
        self._wanted += 1
        limit = 1 << 62 if until_ms is None else until_ms
        self._until_ms = max(self._until_ms, limit)
        self._wake.set()

    async def sweep(self) -> None:
        """Backfill everything now (what the reconciler's periodic poll would do)."""
        self._request(None)
        wanted = self._wanted
        await eventually(lambda: self._done >= wanted, what="backfill")

    @property
    def idle(self) -> bool:
        return self._done >= self._wanted

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted = self._wanted
            try:
                await self._backfill(self._until_ms)
            except VenueError:
                # Like the reconciler: the venue said no (a fault the test injected); retry.
                await asyncio.sleep(0.1)
                self._wake.set()
                continue
            self._done = wanted

    async def _backfill(self, until_ms: int) -> None:
        """Trades up to the gap's end only: younger ones are the live stream's (taking them
        here would race the stream and attribute its fills to the poll)."""
        for symbol in self.symbols:
            while True:
                cursor = self._cursors.get(symbol)
                raw = await self.venue.user_trades(
                    symbol, from_id=0 if cursor is None else cursor + 1, limit=1000
                )
                rows = msgspec.convert(raw, list[_UserTrade], from_attributes=True)
                mine = [r for r in rows if r.time <= until_ms]
                if mine:
                    self._cursors[symbol] = max(r.id for r in mine)
                    fills = tuple(_fill(self.account, r) for r in mine)
                    result = await self.stack.pipeline.submit(
                        IngestBatch(
                            account=self.account,
                            market=Market.USDM,
                            source=FillSource.RECONCILE,
                            fills=fills,
                        )
                    )
                    self.backfilled += result.new_fills
                if len(rows) < 1000 or len(mine) < len(rows):
                    break

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def covering(self, trade_time_ms: int, after: int = 0) -> Gap | None:
        """The first gap (from index ``after``) whose window holds ``trade_time_ms``."""
        for gap in self.gaps[after:]:
            until = gap.until_ms if gap.until_ms is not None else 1 << 62
            if gap.since_ms <= trade_time_ms <= until:
                return gap
        return None


def fast_settings(**overrides: Any) -> StreamSettings:
    """Fast settings for tests (seconds, not minutes)."""
    base: dict[str, Any] = {
        "url_form": "query",
        "ping_interval_s": 1.0,
        "ping_timeout_s": 2.0,
        "keepalive_interval_s": 30.0,
        "keepalive_jitter_s": 0.0,
        "keepalive_retry_s": 0.1,
        "stale_after_s": 60.0,
        "tick_s": 0.1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "degraded_after_s": 3.0,
        "gap_margin_ms": 1000,
        "rotation_overlap_s": 0.5,
    }
    base.update(overrides)
    return StreamSettings(**base)


class Rig:
    """Simulator + ingest stack + per-account venue/stream/backfill (see module docstring)."""

    def __init__(self, sim: Simulator, stack: IngestStack, nats: NatsTarget) -> None:
        self.sim = sim
        self.stack = stack
        self.nats = nats
        self.budgets = WeightBudgets()
        self.venues: dict[str, BinanceVenue] = {}
        self.streams: dict[str, UserStream] = {}
        self.listeners: dict[str, BackfillGaps] = {}

    @classmethod
    async def open(cls, config: SimConfig, pg_dsn: str, nats_target: NatsTarget) -> Rig:
        sim = Simulator(config)
        await sim.start()
        sim.pause()  # until the first stream is live (Rig.streaming), so no fill predates it
        try:
            stack = await IngestStack.open(
                pg_dsn, nats_target.url, stream=nats_target.stream, prefix=nats_target.prefix
            )
        except BaseException:
            await sim.aclose()
            raise
        return cls(sim, stack, nats_target)

    async def venue(self, account: str, *, api_key: str | None = None) -> BinanceVenue:
        creds = self.sim.account(account)
        return await BinanceVenue.create(
            account=account,
            api_key=api_key or creds.api_key,
            api_secret=creds.api_secret,
            rest_url=self.sim.rest_url,
            budget=self.budgets,
            fetch_limits=False,
        )

    async def add(
        self,
        account: str,
        settings: StreamSettings | None = None,
        *,
        backfill: bool = True,
        api_key: str | None = None,
        start: bool = True,
    ) -> UserStream:
        venue = await self.venue(account, api_key=api_key)
        self.venues[account] = venue
        listener = BackfillGaps(account, venue, self.stack, self.sim.config.symbols)
        listener.backfill = backfill
        self.listeners[account] = listener
        settings = msgspec.structs.replace(settings or fast_settings(), ws_url=self.sim.ws_url)
        stream = UserStream(
            account, venue, self.stack.pipeline, listener, settings, status=self.stack.pipeline
        )
        self.streams[account] = stream
        if start:
            stream.start()
        return stream

    async def streaming(self, account: str, timeout_s: float = 30.0) -> None:
        """Until ``account`` streams; then the generator runs (again)."""
        stream = self.streams[account]
        await eventually(
            lambda: stream.state is StreamState.STREAMING and stream.connected,
            timeout_s=timeout_s,
            what=f"{account} streaming",
        )
        self.sim.resume()

    def truth(self, account: str) -> dict[TradeRef, int]:
        """Every fill the venue made for ``account``: (symbol, trade id, order id) → time ms."""
        fills = self.sim.ground_truth()["accounts"][account]["fills"]
        return {(f["symbol"], f["id"], f["orderId"]): f["time"] for f in fills}

    async def stored(self, account: str) -> dict[TradeRef, str]:
        """Fills in PostgreSQL: (symbol, trade id, order id) → source."""
        rows = await self.stack.pool.fetch(
            "SELECT symbol, trade_id, order_id, source FROM fills WHERE account = $1", account
        )
        return {(r["symbol"], r["trade_id"], r["order_id"]): r["source"] for r in rows}

    async def converged(self, account: str) -> bool:
        return set(await self.stored(account)) == set(self.truth(account))

    async def published_fill_ids(self, account: str) -> list[str]:
        """Every ``Nats-Msg-Id`` on this account's fill subjects in JetStream."""
        assert await self.stack.relay.wait_idle(60)
        nc = await nats.connect(self.nats.url)
        try:
            js = nc.jetstream()
            subject = f"{self.nats.prefix}.fill.{account}.>"
            info = await js.stream_info(self.nats.stream, subjects_filter=subject)
            total = sum((info.state.subjects or {}).values())
            if total == 0:
                return []
            sub = await js.pull_subscribe(subject, stream=self.nats.stream)
            ids: list[str] = []
            while len(ids) < total:
                for msg in await sub.fetch(min(1000, total - len(ids)), timeout=10):
                    ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
                    await msg.ack()
            await sub.unsubscribe()
            return ids
        finally:
            await nc.close()

    async def published_count(self, subject: str) -> int:
        """Messages in JetStream on ``<prefix>.<subject>``."""
        assert await self.stack.relay.wait_idle(60)
        nc = await nats.connect(self.nats.url)
        try:
            full = f"{self.nats.prefix}.{subject}"
            info = await nc.jetstream().stream_info(self.nats.stream, subjects_filter=full)
            return sum((info.state.subjects or {}).values())
        finally:
            await nc.close()

    async def settle(self, account: str) -> None:
        """Stop the generator, let the stream drain, backfill once more, and wait for
        PostgreSQL to equal the ground truth."""
        self.sim.pause()
        stream = self.streams[account]
        await eventually(lambda: stream.backlog == 0, what="the stream's backlog drained")
        await self.stack.pipeline.wait_idle()

        async def done() -> bool:
            listener = self.listeners[account]
            if listener.backfill:
                await listener.sweep()
            return await self.converged(account)

        try:
            await eventually(done, timeout_s=60, what=f"{account}: PostgreSQL == ground truth")
        except AssertionError as exc:
            stored, truth = set(await self.stored(account)), self.truth(account)
            missing = sorted(set(truth) - stored)
            extra = sorted(stored - set(truth))
            raise AssertionError(
                f"{exc}: {len(missing)} of {len(truth)} missing {missing[:5]}, "
                f"{len(extra)} extra {extra[:5]}; stream: frames={stream.frames} "
                f"fills={stream.fills} state={stream.state}"
            ) from None

    async def aclose(self) -> None:
        """Close everything, even when a part fails to close (the first error is raised)."""
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.sim.aclose)
            stack.push_async_callback(self.stack.aclose)
            for venue in self.venues.values():
                stack.push_async_callback(venue.aclose)
            for listener in self.listeners.values():
                stack.push_async_callback(listener.aclose)
            for stream in self.streams.values():
                stack.push_async_callback(stream.aclose, 5.0)
