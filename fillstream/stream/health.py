"""What one stream tells the world about itself: its state, and its gap windows.

A state change goes to the ``fillstream_stream_state`` gauge, to the ``GapListener`` (the
reconciler polls fast while the stream is not streaming) and to the ``StatusSink`` (published on
``fillstream.status.<account>``). A gap goes to the ``GapListener`` (backfilled at once) and is
counted by reason. Both are logged.
"""

from __future__ import annotations

import logging
import time

from fillstream.ledger import Gap, GapListener, Market, StatusChange, StatusSink, StreamState
from fillstream.stream.metrics import StreamMetrics

log = logging.getLogger("fillstream.stream")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StreamHealth:
    """The current :class:`StreamState` of one account's stream, and its reporting."""

    def __init__(
        self,
        account: str,
        market: Market,
        metrics: StreamMetrics,
        gaps: GapListener,
        status: StatusSink | None,
    ) -> None:
        self.account = account
        self.market = market
        self.state = StreamState.CONNECTING
        self._metrics = metrics
        self._gaps = gaps
        self._status = status
        metrics.state(self.state)

    def set_state(self, state: StreamState, reason: str) -> None:
        """Move to ``state`` (no-op if already there) and tell everyone who listens."""
        if state is self.state:
            return
        previous, self.state = self.state, state
        self._metrics.state(state)
        log.info("%s/%s stream: %s → %s (%s)", self.account, self.market, previous, state, reason)
        self._gaps.on_stream_state(self.account, self.market, state)
        if self._status is not None:
            self._status.on_status(
                StatusChange(
                    account=self.account,
                    market=self.market,
                    state=state,
                    previous=previous,
                    reason=reason,
                    time_ms=now_ms(),
                )
            )

    def gap(self, reason: str, since_ms: int, until_ms: int, symbols: frozenset[str]) -> Gap:
        """Hand the reconciler the window ``[since_ms, until_ms]`` (margin already applied)."""
        gap = Gap(
            account=self.account,
            market=self.market,
            since_ms=since_ms,
            until_ms=until_ms,
            reason=reason,
            symbols=symbols,
        )
        self._metrics.gap(reason)
        log.info(
            "%s/%s gap %s: %d → %d (%.1fs)",
            self.account,
            self.market,
            reason,
            since_ms,
            until_ms,
            (until_ms - since_ms) / 1000,
        )
        self._gaps.on_gap(gap)
        return gap
