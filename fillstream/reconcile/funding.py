"""Funding payments from ``income`` (FUNDING_FEE), handed to the book so closes carry them.

Funding arrives only over REST (the stream's ACCOUNT_UPDATE says a balance moved, not for which
position). Rows are read from a watermark (kept a minute behind, REST may lag) and deduplicated by
``tranId``. A row names a symbol but not a position side: in one-way mode that is the ``BOTH``
position; in hedge mode the long and the short side both pay, so a row cannot be split
faithfully and is skipped (the close then says ``funding: null``, "not known").
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from fillstream.binance import Venue
from fillstream.binance.usdm.parse import decode_rows
from fillstream.binance.usdm.rows import Income
from fillstream.ledger import FillSink, FillSource, FundingFee, IngestBatch, Market, PositionSide
from fillstream.ledger.amounts import amount as dec  # strict: a missing amount is malformed
from fillstream.reconcile.metrics import BAD_ROWS

log = logging.getLogger(__name__)

PAGE = 1000
MAX_PAGES = 20
REST_LAG_MS = 60_000
SEEN_MAX = 50_000


class FundingPoller:
    """Reads one account's funding payments and submits the new ones."""

    def __init__(
        self, *, account: str, market: Market, venue: Venue, sink: FillSink, lookback_ms: int
    ) -> None:
        self.account = account
        self.market = market
        self.venue = venue
        self.sink = sink
        self.lookback_ms = lookback_ms
        self._since_ms: int | None = None
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def run(self) -> int:
        """One read from the watermark; returns how many payments were submitted."""
        now = int(time.time() * 1000)
        start = self._since_ms if self._since_ms is not None else now - self.lookback_ms
        rows = await self._read(start, now)
        hedged = {
            p.symbol
            for p in await self.sink.positions(self.account, self.market)
            if p.position_side is not PositionSide.BOTH
        }
        fees = [fee for row in rows if (fee := self._fee(row, hedged)) is not None]
        if fees:
            await self._submit(fees)
        self._since_ms = now - REST_LAG_MS
        return len(fees)

    async def _read(self, start: int, now: int) -> list[Income]:
        rows: list[Income] = []
        for _ in range(MAX_PAGES):
            raw = await self.venue.income(
                income_type="FUNDING_FEE", start_ms=start, end_ms=now, limit=PAGE
            )
            page, bad = decode_rows(raw, Income)
            if bad:
                BAD_ROWS.labels(self.account, self.market, "income").inc(len(bad))
            rows.extend(page)
            if len(raw) < PAGE or not page:
                break
            start = max(r.time for r in page)  # inclusive: the same ms may continue; tranId dedups
        return rows

    def _fee(self, row: Income, hedged: set[str]) -> FundingFee | None:
        """The payment of ``row``; None if not a new one-way funding payment (or malformed)."""
        tran_id = _int(row.tranId)
        if row.incomeType != "FUNDING_FEE" or not row.symbol or tran_id is None:
            return None
        if tran_id in self._seen or row.symbol in hedged:
            return None
        try:
            amount = dec(row.income, "income")
        except ValueError:
            BAD_ROWS.labels(self.account, self.market, "income").inc()
            return None
        return FundingFee(
            account=self.account,
            market=self.market,
            symbol=row.symbol,
            position_side=PositionSide.BOTH,
            amount=amount,
            asset=row.asset,
            time_ms=row.time,
            tran_id=tran_id,
        )

    async def _submit(self, fees: list[FundingFee]) -> None:
        await self.sink.submit(
            IngestBatch(
                account=self.account,
                market=self.market,
                source=FillSource.RECONCILE,
                funding=tuple(fees),
            )
        )
        for fee in fees:
            self._seen[fee.tran_id] = None
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)


def _int(value: int | str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
