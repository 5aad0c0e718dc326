"""The spot processor: the futures :class:`~.processor.Processor` with spot's event handlers.

Everything but the handlers is shared (batching, backpressure, the one submission in flight,
bad frames counted and skipped, raw-frame dedup during a move between connections). Spot's
events (binance-wave2.md §A.4), parsed by :mod:`fillstream.binance.spot.parse`:

- ``executionReport``: a fill when ``x == "TRADE"`` and ``t != -1`` (deduplicated on
  ``(symbol, trade id, order id)``: the venue repeats events, and a move overlaps two
  subscriptions), and an order transition always;
- ``outboundAccountPosition``, ``balanceUpdate``, ``externalLockUpdate``: balance facts into
  ``IngestBatch.balances``;
- ``listStatus``: counted (each of the list's orders has its own executionReport);
- ``eventStreamTerminated``/``serverShutdown`` are the connection's business
  (:mod:`.wsapi_session`); one reaching here is counted, and moves no watermark.
"""

from __future__ import annotations

from typing import Any

from fillstream.binance.spot import parse as spot
from fillstream.binance.spot.events import (
    BalanceUpdate,
    EventStreamTerminated,
    ExecutionReport,
    ExternalLockUpdate,
    ListStatus,
    OutboundAccountPosition,
    ServerShutdown,
)
from fillstream.ledger import FillSink, Market
from fillstream.stream.activity import AccountActivity
from fillstream.stream.config import StreamSettings
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.evidence import DropEvidence
from fillstream.stream.metrics import StreamMetrics
from fillstream.stream.processor import Processor, _Pending


def _no_listen_key(conn_id: int, listen_key: str) -> None:
    return None


class SpotProcessor(Processor):
    """One spot account's frame processor (see module docstring)."""

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
        evidence: DropEvidence | None = None,
    ) -> None:
        super().__init__(
            account,
            market,
            sink,
            settings=settings,
            metrics=metrics,
            activity=activity,
            decoder=decoder,
            on_key_expired=_no_listen_key,
            evidence=evidence,
        )
        self._handlers.update(
            {
                ExecutionReport: self._execution_report,
                OutboundAccountPosition: self._balances,
                BalanceUpdate: self._balances,
                ExternalLockUpdate: self._balances,
                ListStatus: self._list_status,
                EventStreamTerminated: self._lifecycle,
                ServerShutdown: self._lifecycle,
            }
        )

    def _execution_report(
        self, event: ExecutionReport, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        fill = spot.stream_fill(event, self.account, received_at_ns=received_ns)
        update = spot.order_update(event, self.account, received_at_ns=received_ns)
        self._data(event.e, event.E, received_ns, now)
        self._order_event(fill, update, pending, event_ms=event.E, received_ns=received_ns, now=now)

    def _balances(
        self,
        event: OutboundAccountPosition | BalanceUpdate | ExternalLockUpdate,
        received_ns: int,
        conn_id: int,
        now: float,
        pending: _Pending,
    ) -> None:
        changes = spot.balance_changes(event, self.account, received_at_ns=received_ns)
        self._data(event.e, event.E, received_ns, now)
        pending.balances.extend(changes)

    def _list_status(
        self, event: ListStatus, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        self._data(event.e, event.E, received_ns, now)

    def _lifecycle(
        self, event: Any, received_ns: int, conn_id: int, now: float, pending: _Pending
    ) -> None:
        self._counts[event.e] = self._counts.get(event.e, 0) + 1
