"""Position sync: the book against ``positionRisk``; the exchange wins, but only after proof.

A mismatch is first blamed on missed fills: the symbol is backfilled. Only if the exchange still
disagrees afterwards, with the symbol quiet (no trade in the last ``quiet_ms`` before the
snapshot, so nothing can be in flight) and the snapshot stable (the same amount as in the first
look), is the book corrected: a :class:`PositionCorrection` at the snapshot's exchange time. The
pipeline then publishes ``position.corrected``; a position that vanished on the exchange closes
with ``reconciled_unknown``. Entry prices alone never trigger a correction (rounding differs).

Spot has no positions on the exchange (no ``positionRisk``): its snapshot is empty and nothing
is checked or corrected.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from fillstream.binance import Venue
from fillstream.binance.usdm.parse import (
    correction_from_risk,
    decode_rows,
    position_key,
    position_qty,
)
from fillstream.binance.usdm.rows import PositionRisk
from fillstream.ledger import (
    FillSink,
    FillSource,
    IngestBatch,
    Market,
    Position,
    PositionCorrection,
    PositionSide,
)
from fillstream.reconcile.metrics import BAD_ROWS, POSITIONS_CORRECTED
from fillstream.reconcile.setaside import SetAside

log = logging.getLogger(__name__)

Key = tuple[str, PositionSide]
ZERO = Decimal(0)
QUIET_MS = 3000


class Snapshot:
    """The exchange's positions (non-zero amounts) by (symbol, position side)."""

    def __init__(self, rows: Sequence[PositionRisk]) -> None:
        self.rows: dict[Key, PositionRisk] = {}
        self.qty: dict[Key, Decimal] = {}
        for row in rows:
            qty = position_qty(row)
            key = position_key(row)
            self.rows[key] = row
            if qty != ZERO:
                self.qty[key] = qty

    @property
    def symbols(self) -> set[str]:
        return {symbol for symbol, _ in self.rows}


def book_qty(positions: Sequence[Position]) -> dict[Key, Decimal]:
    return {(p.symbol, p.position_side): p.qty for p in positions if p.qty != ZERO}


def mismatches(exchange: dict[Key, Decimal], book: dict[Key, Decimal]) -> set[Key]:
    return {k for k in exchange.keys() | book.keys() if exchange.get(k, ZERO) != book.get(k, ZERO)}


# Backfill one symbol completely and return the time of its newest known trade (ms, or None).
Backfiller = Callable[[str], Awaitable[int | None]]


class PositionSync:
    """Compares one account's book with the exchange and corrects what backfills cannot."""

    def __init__(
        self,
        *,
        account: str,
        market: Market,
        venue: Venue,
        sink: FillSink,
        set_aside: SetAside | None = None,
    ) -> None:
        self.account = account
        self.market = market
        self.venue = venue
        self.sink = sink
        self.set_aside = set_aside

    async def snapshot(self, symbol: str | None = None) -> Snapshot:
        if self.market is Market.SPOT:
            return Snapshot(())
        raw = await self.venue.position_risk(symbol)
        rows, bad = decode_rows(raw, PositionRisk)
        good = []
        for row in rows:
            try:
                position_qty(row)
                position_key(row)
                good.append(row)
            except ValueError:
                bad.append(row)
        if bad:
            BAD_ROWS.labels(self.account, self.market, "positionRisk").inc(len(bad))
            log.warning(
                "%s: %d malformed positionRisk row(s): %.300r", self.account, len(bad), bad[0]
            )
        return Snapshot(good)

    async def book(self) -> dict[Key, Decimal]:
        return book_qty(await self.sink.positions(self.account, self.market))

    async def check(
        self, backfill: Backfiller, *, first: Snapshot | None = None, dry_run: bool = False
    ) -> list[PositionCorrection]:
        """One round; returns the corrections made (or, in a dry run, that would be made)."""
        if self.market is Market.SPOT:
            return []
        first = first or await self.snapshot()
        suspects = mismatches(first.qty, await self.book())
        corrections: list[PositionCorrection] = []
        for symbol in sorted({s for s, _ in suspects}):
            settle = functools.partial(self._settle, symbol, first, backfill, dry_run=dry_run)
            if self.set_aside is None:
                corrections.extend(await settle())
            else:
                # A symbol the venue refuses (delisted) cannot be proven either way: set aside,
                # never corrected blind; the other symbols are checked as usual.
                corrections.extend(await self.set_aside.guard(symbol, settle) or [])
        if corrections and not dry_run:
            await self.sink.submit(
                IngestBatch(
                    account=self.account,
                    market=self.market,
                    source=FillSource.RECONCILE,
                    corrections=tuple(corrections),
                )
            )
            POSITIONS_CORRECTED.labels(self.account, self.market).inc(len(corrections))
        return corrections

    async def preview(
        self, snapshot: Snapshot, adjustments: dict[Key, Decimal]
    ) -> list[PositionCorrection]:
        """Dry run, no side effect: the positions the exchange disagrees with that the fills
        about to be added (``adjustments``: their signed quantities) do not explain.

        Whether the stored positions already include those fills is unknown (rows lost after
        they were folded, or never stored), so a position is listed only if it disagrees
        either way; after ``apply`` the book is refolded from the fills and checked for real.
        """
        if self.market is Market.SPOT:
            return []
        book = await self.book()
        adjusted = dict(book)
        for key, delta in adjustments.items():
            adjusted[key] = adjusted.get(key, ZERO) + delta
        adjusted = {k: v for k, v in adjusted.items() if v != ZERO}
        suspects = mismatches(snapshot.qty, book) & mismatches(snapshot.qty, adjusted)
        now_ms = await self.venue.server_time_ms()
        return [
            correction_from_risk(
                snapshot.rows.get(key),
                account=self.account,
                market=self.market,
                symbol=key[0],
                position_side=key[1],
                time_ms=now_ms,
            )
            for key in sorted(suspects)
        ]

    async def _settle(
        self, symbol: str, first: Snapshot, backfill: Backfiller, *, dry_run: bool
    ) -> list[PositionCorrection]:
        server_ms = await self.venue.server_time_ms()
        second = await self.snapshot(symbol)
        newest = await backfill(symbol)  # every trade up to now, so up to the snapshot
        if newest is not None and newest >= server_ms - QUIET_MS:
            log.info("%s %s: position check deferred (trading)", self.account, symbol)
            return []
        book = {k: v for k, v in (await self.book()).items() if k[0] == symbol}
        exchange = {k: v for k, v in second.qty.items() if k[0] == symbol}
        before = {k: v for k, v in first.qty.items() if k[0] == symbol}
        out: list[PositionCorrection] = []
        for key in sorted(mismatches(exchange, book)):
            if exchange.get(key, ZERO) != before.get(key, ZERO):
                log.info("%s %s: position moved during the check; deferred", self.account, symbol)
                continue
            correction = correction_from_risk(
                second.rows.get(key),
                account=self.account,
                market=self.market,
                symbol=symbol,
                position_side=key[1],
                time_ms=server_ms,
            )
            log.warning(
                "%s %s %s: book %s, exchange %s after backfill: %s",
                self.account,
                symbol,
                key[1],
                book.get(key, ZERO),
                exchange.get(key, ZERO),
                "would correct" if dry_run else "corrected to the exchange",
            )
            out.append(correction)
        return out
