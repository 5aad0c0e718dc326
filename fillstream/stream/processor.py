"""The processor: queued frames → ledger facts → the sink, in order.

It decodes whatever the readers have queued (never waiting for more), dedups, parses, and hands
the sink one :class:`~fillstream.ledger.IngestBatch` at a time: one submission in flight keeps
the account's order, and decoding the next frames overlaps the sink's commit of the previous
batch. When the pending batch is full the processor stops taking frames, the frame buffer fills,
and the readers pause: backpressure, never a dropped socket or a dropped frame.

Bad frames (malformed, unknown, or with a value ``parse`` rejects) are counted, logged truncated
(the first ten, then one in a thousand) and skipped; no frame can stop the processor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from fillstream.binance.products import EVENT_TYPES, product_handlers, stream_fill
from fillstream.binance.usdm.events import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    ConditionalOrderTriggerReject,
    Event,
    GridUpdate,
    ListenKeyExpired,
    MarginCall,
    OrderTradeUpdate,
    StrategyUpdate,
    TradeLite,
)
from fillstream.binance.usdm.parse import (
    algo_link_from,
    order_update_from,
    validate_account_update,
)
from fillstream.ledger import (
    AlgoLink,
    BalanceChange,
    Fill,
    FillSink,
    FillSource,
    IngestBatch,
    Market,
    OrderUpdate,
)
from fillstream.stream.activity import AccountActivity, RecentSet
from fillstream.stream.backoff import Backoff
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import Frame
from fillstream.stream.decode import FrameDecoder, FrameError, truncate
from fillstream.stream.evidence import DropEvidence
from fillstream.stream.metrics import StreamMetrics

log = logging.getLogger("fillstream.stream")

_LOG_EVERY: Final = 1000  # after the first few, log one bad frame in this many

KeyExpiredHook = Callable[[int, str], None]
"""Called with (connection id, listenKey of the event) on ``listenKeyExpired``."""

_CountedOnly = AccountConfigUpdate | StrategyUpdate | GridUpdate | ConditionalOrderTriggerReject
_Handler = Callable[[Any, int, int, float, "_Pending"], None]


def _no_size(symbol: str) -> Decimal | None:
    return None


"""One event type's handler: (event, received ns, connection id, monotonic now, pending)."""


class Processor:
    """One account's frame processor (see module docstring).

    ``buffer`` is what the readers feed; :meth:`run` processes until :meth:`finish` (which
    queues the end marker behind everything received) and returns once all is submitted.
    """

    def __init__(
        self,
        account: str,
        market: Market,
        sink: FillSink,
        *,
        settings: StreamSettings,
        metrics: StreamMetrics,
        activity: AccountActivity,
        decoder: FrameDecoder,
        on_key_expired: KeyExpiredHook,
        evidence: DropEvidence | None = None,
        contract_size: Callable[[str], Decimal | None] | None = None,
    ) -> None:
        self.account = account
        self.market = market
        self.settings = settings
        self.metrics = metrics
        self.activity = activity
        self.buffer: FrameBuffer[Frame | None] = FrameBuffer(settings.queue_max)
        self._sink = sink
        self._decoder = decoder
        self._on_key_expired = on_key_expired
        self.evidence = evidence
        # COIN-M: the symbol's contract size, put on its fills (Venue.contract_size).
        self._contract_size = contract_size or _no_size
        self._counts: dict[str, int] = {}  # events by type in the current pass
        self._pending = _Pending()
        self._pending_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._draining = False
        # Raw-frame dedup, active during a rotation overlap (frames received before the limit).
        self._dedup_until_ns = 0
        self._recent_frames: RecentSet[bytes] = RecentSet(4 * settings.max_batch)
        self._bad_frames = 0
        self.last_event_ms: int | None = None  # min(E, receipt) of the last data event
        self.last_data_mono: float | None = None
        self.frames = 0
        self.fills = 0
        self.duplicates = 0
        # Stage two of the dispatch (decode.py's table picked the wire type): type → handler.
        self._handlers: dict[type[Event], _Handler] = {
            OrderTradeUpdate: self._order_trade_update,
            TradeLite: self._trade_lite,
            AlgoUpdate: self._algo_update,
            AccountUpdate: self._account_update,
            ListenKeyExpired: self._listen_key_expired,
            MarginCall: self._margin_call,
        }
        self._handlers.update(product_handlers(EVENT_TYPES[market], self._handlers))

    @property
    def backlog(self) -> int:
        """Frames received and events decoded that the sink has not been handed yet."""
        return len(self.buffer) + len(self._pending)

    def dedup_frames(self, until_ns: int) -> None:
        """Drop byte-identical frames received up to ``until_ns`` (a rotation overlap: both
        sockets deliver the same events); 0 ends it now."""
        self._dedup_until_ns = until_ns
        if not until_ns:
            self._recent_frames.clear()

    async def finish(self) -> None:
        """Queue the end marker behind every frame received so far."""
        await self.buffer.put(None)

    async def run(self) -> None:
        """Decode what is queued into the pending batch; the submitter hands it to the sink.

        Decoding the next frames overlaps the sink's commit of the previous batch, while the
        sink still sees one submission at a time, in order. When the pending batch is full the
        processor waits, the frame queue fills, and the reader pauses: backpressure.
        """
        queue = self.buffer
        max_batch = self.settings.max_batch
        submitter = asyncio.create_task(self._submitter(), name="stream-submitter")
        try:
            while True:
                items = await queue.take(max_batch)
                stop = items[-1] is None
                now = time.monotonic()
                pending = self._pending
                for item in items:
                    if item is not None:
                        self._handle(item, now, pending)
                self.metrics.queue_depth.set(len(queue))
                if self._counts:
                    self.metrics.events(self._counts)
                    self._counts = {}
                if pending:
                    self._pending_ready.set()
                if stop:
                    break
                while len(self._pending) >= 2 * max_batch:  # a fill frame is a fill + an order
                    self._room.clear()
                    await self._room.wait()
            self._draining = True
            self._pending_ready.set()
            await submitter
        finally:
            submitter.cancel()

    async def _submitter(self) -> None:
        while True:
            if not self._pending and not self._draining:
                await self._pending_ready.wait()
            self._pending_ready.clear()
            pending, self._pending = self._pending, _Pending()
            self._room.set()
            if pending:
                await self._submit(pending)
            elif self._draining:
                return

    def _handle(self, item: Frame, now: float, pending: _Pending) -> None:
        received_ns, conn_id, payload = item
        self.frames += 1
        if self._dedup_until_ns:
            if received_ns <= self._dedup_until_ns:
                if not self._recent_frames.add(payload):
                    self.duplicates += 1
                    self.metrics.duplicates.inc()
                    return
            else:
                self._dedup_until_ns = 0
                self._recent_frames.clear()
        try:
            event = self._decoder.decode(payload)
        except FrameError as exc:
            (self.metrics.malformed if exc.kind == "malformed" else self.metrics.unknown).inc()
            self._log_bad_frame(exc.kind, exc.reason, exc.excerpt)
            return
        handler = self._handlers.get(type(event), self._other)
        try:
            handler(event, received_ns, conn_id, now, pending)
        except (ValueError, ArithmeticError) as exc:
            # parse rejected a value (MalformedInput, a ValueError). ArithmeticError covers
            # decimal's signals (InvalidOperation is not a ValueError) should one slip past the
            # converters: a bad frame is counted and skipped, it never stops the account.
            self.metrics.malformed.inc()
            self._log_bad_frame("malformed", f"{type(exc).__name__}: {exc}", truncate(payload))
            return
        if self.evidence is not None:
            self.evidence.observe(event, conn_id, now)

    # Handlers by wire type (the table in __init__). Each parses everything first and only then
    # touches state, so a frame rejected half-way leaves no trace but its count.

    def _order_trade_update(
        self, event: OrderTradeUpdate, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        account, market = self.account, self.market
        size = self._contract_size(event.o.s)
        fill = stream_fill(event, account, market, received_at_ns=received_ns, contract_size=size)
        update = order_update_from(event, account, market, received_at_ns=received_ns)
        self._data(event.e, event.E, received_ns, now)
        self._order_event(fill, update, pending, event_ms=event.E, received_ns=received_ns, now=now)

    def _order_event(
        self,
        fill: Fill | None,
        update: OrderUpdate,
        pending: _Pending,
        *,
        event_ms: int,
        received_ns: int,
        now: float,
    ) -> None:
        """An order event's fill (deduplicated on its key) and transition, into ``pending``."""
        if fill is not None:
            # Lag of fill events only: they are what is latency-critical, and one
            # histogram observation per frame would cost more than the decode.
            self.metrics.observe_lag(received_ns, event_ms)
            if self.activity.fill((fill.symbol, fill.trade_id, fill.order_id), now):
                pending.fills.append(fill)
                self.fills += 1
            else:
                self.duplicates += 1
                self.metrics.duplicates.inc()
        self.activity.order(update, now)
        pending.orders.append(update)

    def _trade_lite(
        self, event: TradeLite, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        self._data(event.e, event.E, received_ns, now)
        if not self.activity.trade_lite((event.s, event.t, event.i), event.T or event.E, now):
            self.metrics.duplicates.inc()

    def _algo_update(
        self, event: AlgoUpdate, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        link = algo_link_from(event, self.account, self.market)
        self._data(event.e, event.E, received_ns, now)
        self.activity.algo(link, now)
        pending.algos.append(link)

    def _account_update(
        self, event: AccountUpdate, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        validate_account_update(event)  # positions are kept as the wire gave them
        self._data(event.e, event.E, received_ns, now)
        self.activity.account_update(event, now)

    def _listen_key_expired(
        self, event: ListenKeyExpired, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        self._counts[event.e] = self._counts.get(event.e, 0) + 1
        self._on_key_expired(conn_id, event.listenKey)

    def _margin_call(
        self, event: MarginCall, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        self._data(event.e, event.E, received_ns, now)
        log.warning("%s/%s: MARGIN_CALL %.500s", self.account, self.market, event.p)

    def _other(
        self, event: _CountedOnly, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        """Events the stream only counts (ACCOUNT_CONFIG_UPDATE, STRATEGY_UPDATE, ...)."""
        self._data(event.e, event.E, received_ns, now)

    def _data(self, event_type: str, event_ms: int, received_ns: int, now: float) -> None:
        """Book-keeping for every data event (everything but listenKeyExpired)."""
        counts = self._counts
        counts[event_type] = counts.get(event_type, 0) + 1
        received_ms = received_ns // 1_000_000
        self.last_event_ms = min(event_ms, received_ms) if event_ms else received_ms
        self.last_data_mono = now

    def _log_bad_frame(self, kind: str, reason: str, excerpt: str) -> None:
        self._bad_frames += 1
        if self._bad_frames <= 10 or self._bad_frames % _LOG_EVERY == 0:
            log.warning(
                "%s/%s %s frame #%d (%s): %s",
                self.account,
                self.market,
                kind,
                self._bad_frames,
                reason,
                excerpt,
            )

    async def _submit(self, pending: _Pending) -> None:
        batch = IngestBatch(
            account=self.account,
            market=self.market,
            source=FillSource.STREAM,
            fills=tuple(pending.fills),
            orders=tuple(pending.orders),
            algo_links=tuple(pending.algos),
            balances=tuple(pending.balances),
        )
        backoff = Backoff(0.05, self.settings.submit_retry_max_s)
        while True:
            try:
                await self._sink.submit(batch)
                return
            except Exception:
                # The sink is another component (PostgreSQL behind it may be down): keep the
                # batch, back off and retry; the queue behind us turns into backpressure.
                self.metrics.submit_errors.inc()
                log.exception("%s/%s: sink rejected a batch; retrying", self.account, self.market)
                await asyncio.sleep(backoff.next_delay())


@dataclass(slots=True)
class _Pending:
    """What one processor pass hands the sink."""

    fills: list[Fill] = field(default_factory=list)
    orders: list[OrderUpdate] = field(default_factory=list)
    algos: list[AlgoLink] = field(default_factory=list)
    balances: list[BalanceChange] = field(default_factory=list)  # spot

    def __bool__(self) -> bool:
        return bool(self.fills or self.orders or self.algos or self.balances)

    def __len__(self) -> int:
        return len(self.fills) + len(self.orders) + len(self.algos) + len(self.balances)
