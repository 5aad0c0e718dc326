"""The repair command's engine: ``fillstream reconcile --account A --since 2d [--apply]``.

Reads every trade of every known symbol since a point in time, compares them with what the store
holds (:class:`FillIndex`), and lists what is missing with the venue's own row as evidence, plus
the positions the exchange disagrees with. With ``apply`` the missing fills are submitted
(enriched, source ``reconcile``) and the positions corrected; a second ``apply`` finds nothing.
Safe while the service runs: every write is idempotent on its key, and trades younger than the
settle delay are left to the running stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from fillstream.binance import VenueError
from fillstream.binance.usdm.rows import UserTrade
from fillstream.ledger import PositionCorrection, PositionSide
from fillstream.ledger.amounts import amount as dec  # strict: a missing amount is malformed
from fillstream.reconcile.backfill import Backfill
from fillstream.reconcile.positions import Backfiller, PositionSync
from fillstream.reconcile.setaside import refuses_symbol
from fillstream.reconcile.symbols import SymbolUniverse

SUBMIT_CHUNK = 1000


class MissingFill(msgspec.Struct, frozen=True, kw_only=True):
    """A trade the venue reports and the store lacks: the evidence, as the venue sent it."""

    symbol: str
    trade_id: int
    order_id: int
    time_ms: int
    side: str
    position_side: str
    price: Decimal
    qty: Decimal
    realized_pnl: Decimal
    commission: Decimal
    commission_asset: str

    @classmethod
    def from_trade(cls, t: UserTrade) -> MissingFill:
        return cls(
            symbol=t.symbol,
            trade_id=t.id,
            order_id=t.orderId,
            time_ms=t.time,
            side=t.side or ("BUY" if t.isBuyer or t.buyer else "SELL"),  # spot: isBuyer
            position_side=t.positionSide,
            price=dec(t.price, "price"),
            qty=dec(t.qty, "qty"),
            realized_pnl=dec(t.realizedPnl, "realizedPnl"),
            commission=dec(t.commission, "commission"),
            commission_asset=t.commissionAsset,
        )


class RepairProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Reported after each symbol (long ranges take a while)."""

    symbol: str
    done: int
    total: int
    found: int  # trades read for this symbol
    missing: int  # of which not stored


class RepairReport(msgspec.Struct, kw_only=True):
    """What a repair found and, with ``applied``, did."""

    account: str
    market: str
    since_ms: int
    applied: bool
    symbols: list[str] = msgspec.field(default_factory=list)
    found: int = 0
    missing: list[MissingFill] = msgspec.field(default_factory=list)
    added: int = 0  # fills the pipeline stored (0 in a dry run)
    corrections: list[PositionCorrection] = msgspec.field(default_factory=list)
    refused: list[str] = msgspec.field(default_factory=list)  # symbols the venue refuses

    @property
    def clean(self) -> bool:
        """Nothing to add and nothing to correct."""
        return not self.missing and not self.corrections

    def lines(self) -> list[str]:
        """A human-readable listing (the CLI prints it)."""
        verb = "added" if self.applied else "would add"
        out = [
            f"account {self.account} ({self.market}) since {iso_utc(self.since_ms)}: "
            f"{len(self.symbols)} symbol(s), {self.found} trade(s) read, "
            f"{len(self.missing)} missing, {len(self.corrections)} position(s) to correct"
        ]
        if self.refused:
            out.append(f"  refused by the venue (skipped): {', '.join(self.refused)}")
        for m in self.missing:
            out.append(
                f"  {verb} fill {m.symbol} trade {m.trade_id} order {m.order_id} {m.side} "
                f"{m.position_side} {m.qty} @ {m.price} rp {m.realized_pnl} fee {m.commission} "
                f"{m.commission_asset} at {iso_utc(m.time_ms)}"
            )
        verb = "corrected" if self.applied else "would correct"
        for c in self.corrections:
            out.append(
                f"  {verb} position {c.symbol} {c.position_side} to {c.qty} @ {c.entry_price} "
                f"(exchange, at {iso_utc(c.time_ms)})"
            )
        return out


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ``2026-12-01T18:52:28.123Z`` (what operators read)."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


ProgressFn = Callable[[RepairProgress], None]


async def repair_account(
    report: RepairReport,
    *,
    backfill: Backfill,
    universe: SymbolUniverse,
    positions: PositionSync,
    backfill_symbol: Backfiller,
    settle_delay_s: float,
    apply: bool,
    progress: ProgressFn | None,
) -> None:
    """Fill ``report`` (and with ``apply``, repair): every symbol since ``report.since_ms``."""
    await universe.refresh(force=True)
    snapshot = await positions.snapshot()
    universe.note_exchange(snapshot.symbols)
    symbols = sorted(universe.current())
    report.symbols = symbols
    # Whether or not a stream runs elsewhere, the freshest trades are left to it.
    cutoff = int(time.time() * 1000) - int(settle_delay_s * 1000)
    for done, symbol in enumerate(symbols, 1):
        try:
            result = await backfill.window(symbol, report.since_ms, cutoff_ms=cutoff, dry_run=True)
        except VenueError as exc:
            if not refuses_symbol(exc):
                raise
            report.refused.append(symbol)  # delisted: the other symbols are still repaired
            continue
        report.found += result.found
        report.missing.extend(MissingFill.from_trade(t) for t in result.missing)
        if apply:
            for i in range(0, len(result.missing), SUBMIT_CHUNK):
                report.added += await backfill.submit(symbol, result.missing[i : i + SUBMIT_CHUNK])
        if progress is not None:
            progress(
                RepairProgress(
                    symbol=symbol,
                    done=done,
                    total=len(symbols),
                    found=result.found,
                    missing=len(result.missing),
                )
            )
    if apply:
        report.corrections = await positions.check(backfill_symbol, first=snapshot)
        return
    adjustments: dict[tuple[str, PositionSide], Decimal] = {}
    for m in report.missing:
        key = (m.symbol, PositionSide(m.position_side or "BOTH"))
        adjustments[key] = adjustments.get(key, Decimal(0)) + (m.qty if m.side == "BUY" else -m.qty)
    previewed = await positions.preview(snapshot, adjustments)
    # A refused symbol's position cannot be proven either way: never listed as a correction.
    report.corrections = [c for c in previewed if c.symbol not in report.refused]
