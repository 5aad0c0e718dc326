"""Data-staleness watchdog: is a quiet stream quiet, or dead?

A socket bound to an expired or wrong key still answers pings (binance-facts.md §8.3), so liveness
is judged by data. When no data event arrived for ``stale_after_s`` while the account has open
orders or positions, the newest trade id REST knows per active symbol (``userTrades`` with
``limit=1``, weight 5) is compared with the newest one the stream delivered. REST newer than the
stream, for a trade made after the socket went live, means the stream missed it: the verdict is
``mismatch`` and the listener reconnects and opens a gap. REST is allowed to lag (it may), so a
stream ahead of REST is fine.

Checks back off while the verdict stays ``ok``/``quiet`` (an idle account with a long-held
position is legitimately silent) and reset as soon as data flows again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

import msgspec

from fillstream.binance import Venue, VenueError
from fillstream.binance.priority import RestPriority, rest_priority
from fillstream.binance.usdm.rows import RiskSymbol, TradeMark
from fillstream.ledger import Market
from fillstream.stream.activity import AccountActivity
from fillstream.stream.config import StreamSettings

log = logging.getLogger("fillstream.stream.watchdog")

Verdict = Literal["ok", "quiet", "mismatch", "error"]


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One verification: the verdict and the symbols REST showed newer trades for."""

    verdict: Verdict
    symbols: frozenset[str] = frozenset()
    detail: str = ""


class StalenessWatchdog:
    """Decides when a silent stream needs verifying, and verifies it against REST."""

    def __init__(self, venue: Venue, activity: AccountActivity, settings: StreamSettings) -> None:
        self._venue = venue
        self._activity = activity
        self._settings = settings
        self._interval_s = settings.stale_after_s
        self._next_check = 0.0
        self._checked_data_mono: float | None = None

    def due(self, now: float, fresh_since: float) -> bool:
        """Whether to verify now; ``fresh_since`` is the later of the last data event and the
        moment the current socket went live (monotonic seconds)."""
        if fresh_since != self._checked_data_mono:
            # Data flowed (or a new socket opened) since the last verdict: start over.
            self._interval_s = self._settings.stale_after_s
            self._next_check = fresh_since + self._settings.stale_after_s
            self._checked_data_mono = fresh_since
        return now >= self._next_check

    def _schedule_next(self, now: float, verdict: Verdict) -> None:
        if verdict in ("ok", "quiet"):
            self._interval_s = min(self._interval_s * 2, self._settings.stale_recheck_max_s)
        self._next_check = now + self._interval_s

    async def verify(self, now: float, live_since_ms: int) -> Check:
        """Compare REST's newest trade per active symbol with the stream's watermark.

        ``live_since_ms`` (wall ms) is when the current socket went live: older trades belong
        to the connect gap, which the reconciler backfills anyway.
        """
        try:
            with rest_priority(RestPriority.URGENT):
                check = await self._verify(now, live_since_ms)
        except (VenueError, msgspec.ValidationError) as exc:
            # The venue said no, or answered with rows we cannot read: no verdict this time.
            log.warning("staleness check failed: %s", exc)
            check = Check(verdict="error", detail=str(exc))
        self._schedule_next(now, check.verdict)
        return check

    async def _verify(self, now: float, live_since_ms: int) -> Check:
        activity = self._activity
        symbols = activity.exposed_symbols()
        if not symbols and self._venue.market is not Market.SPOT:
            # Nothing known locally (e.g. positions opened before we started): positionRisk v3
            # lists exactly the symbols with a position or open orders. Spot has no positions:
            # its open orders are what the stream saw.
            rows = msgspec.convert(
                await self._venue.position_risk(), list[RiskSymbol], from_attributes=True
            )
            symbols = {row.symbol for row in rows}
        if not symbols:
            return Check(verdict="quiet", detail="no open orders or positions")
        missed: set[str] = set()
        for symbol in self._most_recent(symbols):
            marks = msgspec.convert(
                await self._venue.user_trades(symbol, limit=1),
                list[TradeMark],
                from_attributes=True,
            )
            if not marks:
                continue
            newest = max(marks, key=lambda m: m.id)
            streamed = activity.newest_trade_id.get(symbol, -1)
            if newest.id > streamed and newest.time >= live_since_ms:
                missed.add(symbol)
        if missed:
            return Check(
                verdict="mismatch",
                symbols=frozenset(missed),
                detail=f"REST has newer trades for {sorted(missed)}",
            )
        return Check(verdict="ok")

    def _most_recent(self, symbols: Iterable[str]) -> list[str]:
        seen = self._activity.symbol_seen
        ranked = sorted(symbols, key=lambda s: seen.get(s, 0.0), reverse=True)
        return ranked[: self._settings.watchdog_symbols_max]


class SilenceProbe:
    """Decides when a silent socket's key is probed with one keepalive PUT (weight 1).

    A listenKey deleted by another client of the account (binance-facts.md §1.1) leaves an open
    socket that sends nothing: pings are answered, and the REST watchdog only notices once
    ``stale_after_s`` passed *and* a missed trade shows up. The probe is cheaper and earlier: once
    the socket has been silent for ``silence_probe_after_s`` after data flowed (or after it went
    live), and again while orders are working, the key is PUT; ``-1125`` or another key means the
    key is dead. While the answer stays "alive" the interval doubles up to
    ``silence_probe_max_s``; it starts over as soon as data flows. So an account never sees more
    than one probe per threshold, and an idle account one probe per silence.
    """

    def __init__(self, activity: AccountActivity, settings: StreamSettings) -> None:
        self._activity = activity
        self._after_s = settings.silence_probe_after_s
        self._max_s = max(settings.silence_probe_max_s, self._after_s)
        self._interval_s = self._after_s
        self._next = 0.0
        self._fresh_since: float | None = None
        self._probed = False

    @property
    def enabled(self) -> bool:
        return self._after_s > 0

    def due(self, now: float, fresh_since: float) -> bool:
        """Whether to probe now; ``fresh_since`` as in :meth:`StalenessWatchdog.due`."""
        if not self.enabled:
            return False
        if fresh_since != self._fresh_since:
            self._fresh_since = fresh_since
            self._interval_s = self._after_s
            self._next = fresh_since + self._after_s
            self._probed = False
        if now < self._next:
            return False
        # The first probe of a silence always (the account was just active); later ones only
        # while orders are working (a resting order's fill would be lost on a dead key).
        return not self._probed or self._working()

    def _working(self) -> bool:
        activity = self._activity
        return bool(activity.open_orders or activity.open_algos)

    def probed(self, now: float) -> None:
        """A probe was made at ``now`` and the key was alive: back off."""
        self._probed = True
        self._next = now + self._interval_s
        self._interval_s = min(self._interval_s * 2, self._max_s)
