"""The position book: folds fills into positions and emits closes.

Fills reach the book in arrival order, which is not trade order: the stream may miss a fill that
the REST poll finds seconds later, after younger fills were applied. Folding in arrival order would
then invent or hide closes (a missed reducing fill turns a close into a flip). So the book keeps,
per position, every entry since the position was last flat long enough ago (``horizon_ms`` of
trade time), folds them in trade order, and when a late entry lands in the middle it refolds and
reports what changed: new closes, revised closes (same close, new ``revision``) and retracted ones.
The fast path (an entry younger than everything before it) is one incremental step.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from fillstream.ledger.classify import close_reason
from fillstream.ledger.types import (
    AlgoLink,
    CloseReason,
    Fill,
    FillKey,
    FillSource,
    FundingFee,
    Market,
    Position,
    PositionClose,
    PositionCorrection,
    PositionKey,
    PositionSide,
)

ZERO = Decimal(0)
_ADJUSTMENT_ORDER = 1 << 62  # an exchange correction sorts after every fill of its millisecond
_FUNDING_ORDER = 1 << 61  # a funding payment sorts after the fills of its millisecond, too

Entry = Fill | PositionCorrection | FundingFee
SortKey = tuple[int, int, int]


def sort_key(entry: Entry) -> SortKey:
    if isinstance(entry, Fill):
        return (entry.trade_time_ms, entry.trade_id, entry.order_id)
    if isinstance(entry, FundingFee):
        return (entry.time_ms, _FUNDING_ORDER, entry.tran_id)
    return (entry.time_ms, _ADJUSTMENT_ORDER, 0)


class BookChange(msgspec.Struct, kw_only=True):
    """What one call changed. ``closes`` holds new closes (revision 0) and revised ones (> 0)."""

    closes: list[PositionClose] = msgspec.field(default_factory=list)
    retracted: list[PositionClose] = msgspec.field(default_factory=list)
    positions: list[Position] = msgspec.field(default_factory=list)

    def extend(self, other: BookChange) -> None:
        self.closes.extend(other.closes)
        self.retracted.extend(other.retracted)
        self.positions.extend(other.positions)


def _close_id(close: PositionClose) -> tuple[int, int]:
    # Fill closes are identified by their closing trade; exchange corrections by their time.
    if close.reason is CloseReason.RECONCILED_UNKNOWN:
        return (0, close.closed_at_ms)
    return (close.close_trade_id, close.close_order_id)


def _close_sort_key(close: PositionClose) -> SortKey:
    """The sort key of the entry that closed the position."""
    if close.reason is CloseReason.RECONCILED_UNKNOWN:
        return (close.closed_at_ms, _ADJUSTMENT_ORDER, 0)
    return (close.closed_at_ms, close.close_trade_id, close.close_order_id)


@dataclass
class _Lifecycle:
    """Running state of one open position between two flat points."""

    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    max_abs_qty: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    exit_notional: Decimal = ZERO
    exit_qty: Decimal = ZERO
    fees: dict[str, Decimal] = field(default_factory=dict)
    closing_fills: list[FillKey] = field(default_factory=list)
    opened_at_ms: int | None = None
    updated_at_ms: int = 0
    funding: Decimal | None = None  # Σ funding paid/received while open, once any is known

    def open(self, qty: Decimal, price: Decimal, time_ms: int) -> None:
        self.qty = qty
        self.entry_price = price
        self.max_abs_qty = abs(qty)
        self.opened_at_ms = time_ms


class _PositionLedger:
    """Entries and emitted closes of one (account, market, symbol, position side)."""

    def __init__(self, key: PositionKey) -> None:
        self.key = key
        self.entries: list[Entry] = []
        self.sort_keys: list[SortKey] = []
        self.fill_keys: set[FillKey] = set()
        self.funding_keys: set[int] = set()  # tranIds of the funding entries held
        self.emitted: dict[tuple[int, int], PositionClose] = {}
        self.state = _Lifecycle()
        self.sealed_through: SortKey | None = None
        self.next_seal_ms = 0  # trade time before which seal() has nothing new to look at
        # Entries after which the position was exactly flat: the only safe seal points (a flip
        # closes one position but leaves the other side open, which a restart must not lose).
        self.flat_at: set[SortKey] = set()

    def position(self) -> Position:
        s = self.state
        return Position(
            account=self.key.account,
            market=self.key.market,
            symbol=self.key.symbol,
            position_side=self.key.position_side,
            qty=s.qty,
            entry_price=s.entry_price if s.qty else ZERO,
            realized_pnl=s.realized_pnl,
            opened_at_ms=s.opened_at_ms if s.qty else None,
            updated_at_ms=s.updated_at_ms,
        )

    # -- folding -------------------------------------------------------------------------------

    def step(self, entry: Entry, algo_types: Mapping[int, str]) -> list[PositionClose]:
        if isinstance(entry, PositionCorrection):
            return self._correct(entry)
        if isinstance(entry, FundingFee):
            if self.state.qty != ZERO:  # funding on a flat position belongs to no lifecycle
                self.state.funding = (self.state.funding or ZERO) + entry.amount
            return []
        return self._apply_fill(entry, algo_types)

    def _apply_fill(self, fill: Fill, algo_types: Mapping[int, str]) -> list[PositionClose]:
        s = self.state
        s.updated_at_ms = max(s.updated_at_ms, fill.trade_time_ms)
        delta = fill.signed_qty
        asset = fill.commission_asset
        s.fees[asset] = s.fees.get(asset, ZERO) + fill.commission
        if s.qty == ZERO:
            s.open(delta, fill.price, fill.trade_time_ms)
            return []
        if (delta > 0) == (s.qty > 0):
            total = abs(s.qty) + abs(delta)
            s.entry_price = (s.entry_price * abs(s.qty) + fill.price * abs(delta)) / total
            s.qty += delta
            s.max_abs_qty = max(s.max_abs_qty, abs(s.qty))
            return []
        reduced = min(abs(delta), abs(s.qty))
        s.realized_pnl += fill.realized_pnl
        s.exit_notional += fill.price * reduced
        s.exit_qty += reduced
        s.closing_fills.append(fill.key)
        remainder = s.qty + delta
        if remainder != ZERO and (remainder > 0) == (s.qty > 0):
            s.qty = remainder
            return []
        close = self._close(
            reason=close_reason(fill, algo_types),
            trade_id=fill.trade_id,
            order_id=fill.order_id,
            time_ms=fill.trade_time_ms,
            source=fill.source,
        )
        self.state = _Lifecycle(updated_at_ms=s.updated_at_ms)
        if remainder != ZERO:  # a flip closes one position and opens the other side
            self.state.open(remainder, fill.price, fill.trade_time_ms)
        else:
            self.flat_at.add(sort_key(fill))
        return [close]

    def _correct(self, c: PositionCorrection) -> list[PositionClose]:
        s = self.state
        s.updated_at_ms = max(s.updated_at_ms, c.time_ms)
        if c.qty == s.qty and (c.qty == ZERO or c.entry_price == s.entry_price):
            return []
        if c.qty == ZERO:
            close = self._close(
                reason=CloseReason.RECONCILED_UNKNOWN,
                trade_id=0,
                order_id=0,
                time_ms=c.time_ms,
                source=FillSource.RECONCILE,
            )
            self.state = _Lifecycle(updated_at_ms=s.updated_at_ms)
            self.flat_at.add(sort_key(c))
            return [close]
        if s.qty == ZERO:
            s.open(c.qty, c.entry_price, c.time_ms)
        else:
            s.qty = c.qty
            s.entry_price = c.entry_price
            s.max_abs_qty = max(s.max_abs_qty, abs(c.qty))
        return []

    def _close(
        self, *, reason: CloseReason, trade_id: int, order_id: int, time_ms: int, source: FillSource
    ) -> PositionClose:
        s = self.state
        exit_price = s.exit_notional / s.exit_qty if s.exit_qty else ZERO
        return PositionClose(
            account=self.key.account,
            market=self.key.market,
            symbol=self.key.symbol,
            position_side=self.key.position_side,
            reason=reason,
            close_trade_id=trade_id,
            close_order_id=order_id,
            qty=s.max_abs_qty,
            entry_price=s.entry_price,
            exit_price=exit_price,
            realized_pnl=s.realized_pnl,
            fees={asset: fee for asset, fee in sorted(s.fees.items())},
            funding=s.funding,
            opened_at_ms=s.opened_at_ms if s.opened_at_ms is not None else time_ms,
            closed_at_ms=time_ms,
            closing_fills=tuple(s.closing_fills),
            source=source,
        )

    def refold(self, algo_types: Mapping[int, str]) -> list[PositionClose]:
        self.state = _Lifecycle()
        self.flat_at = set()
        closes: list[PositionClose] = []
        for entry in self.entries:
            closes.extend(self.step(entry, algo_types))
        return closes

    # -- bookkeeping ---------------------------------------------------------------------------

    def insert(self, entry: Entry) -> bool:
        """Insert in trade order; True when it is the youngest (an incremental step is valid)."""
        key = sort_key(entry)
        index = bisect.bisect_right(self.sort_keys, key)
        self.entries.insert(index, entry)
        self.sort_keys.insert(index, key)
        if isinstance(entry, Fill):
            self.fill_keys.add(entry.key)
        elif isinstance(entry, FundingFee):
            self.funding_keys.add(entry.tran_id)
        return index == len(self.entries) - 1

    def diff(self, closes: Iterable[PositionClose], change: BookChange) -> None:
        """Compare a full refold's closes with what was emitted before; record the differences."""
        fresh = {_close_id(c): c for c in closes}
        for cid, old in list(self.emitted.items()):
            if cid not in fresh:
                change.retracted.append(old)
                del self.emitted[cid]
        for cid, new in fresh.items():
            old_close = self.emitted.get(cid)
            if old_close is None:
                self.emitted[cid] = new
                change.closes.append(new)
            elif msgspec.structs.replace(new, revision=old_close.revision) != old_close:
                revised = msgspec.structs.replace(new, revision=old_close.revision + 1)
                self.emitted[cid] = revised
                change.closes.append(revised)

    def seal(self, horizon_ms: int) -> None:  # noqa: C901 - to split (issue 11)
        """Forget entries before the last close older than the horizon (the position was flat)."""
        if not self.entries or not self.emitted:
            return
        newest = self.sort_keys[-1][0]
        # Sealing only trims memory, so it need not run on every fill: scanning the held closes
        # once per 1/16 of the horizon (of trade time) keeps the hot path O(1) per fill.
        if newest < self.next_seal_ms:
            return
        self.next_seal_ms = newest + max(horizon_ms // 16, 1)
        cut: PositionClose | None = None
        for close in self.emitted.values():
            if (
                close.closed_at_ms < newest - horizon_ms and _close_sort_key(close) in self.flat_at
            ) and (cut is None or close.closed_at_ms > cut.closed_at_ms):
                cut = close
        if cut is None:
            return
        boundary = _close_sort_key(cut)
        index = bisect.bisect_right(self.sort_keys, boundary)
        for entry in self.entries[:index]:
            if isinstance(entry, Fill):
                self.fill_keys.discard(entry.key)
            elif isinstance(entry, FundingFee):
                self.funding_keys.discard(entry.tran_id)
        del self.entries[:index]
        del self.sort_keys[:index]
        self.flat_at = {k for k in self.flat_at if k > boundary}
        self.sealed_through = boundary
        for cid, close in list(self.emitted.items()):
            if _close_sort_key(close) <= boundary:
                del self.emitted[cid]


class PositionBook:
    """All positions of one account on one market.

    Not thread-safe and not async: the pipeline serializes calls per account. Duplicate fills
    (same :class:`FillKey`) within the held range are ignored, so any interleaving of the same
    fills, with duplicates, yields the same positions and the same closes. Below the sealed range
    the store's unique key is the authority: the pipeline hands the book only new fills.
    """

    def __init__(self, account: str, market: Market, *, horizon_ms: int = 6 * 3600 * 1000) -> None:
        self.account = account
        self.market = market
        self.horizon_ms = horizon_ms
        self._ledgers: dict[PositionKey, _PositionLedger] = {}
        self._algo_types: dict[int, str] = {}

    def _ledger(self, symbol: str, position_side: PositionSide) -> _PositionLedger:
        key = PositionKey(self.account, self.market, symbol, position_side)
        ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = self._ledgers[key] = _PositionLedger(key)
        return ledger

    def apply(  # noqa: C901 - to split (issue 11)
        self,
        fills: Iterable[Fill] = (),
        corrections: Iterable[PositionCorrection] = (),
        algo_links: Iterable[AlgoLink] = (),
        funding: Iterable[FundingFee] = (),
    ) -> BookChange:
        """Fold new facts in. Returns the closes, revisions, retractions and touched positions.

        ``funding`` entries are deduplicated by ``tran_id`` within the held range; one that
        lands inside a closed lifecycle revises that close (its ``funding`` changes).
        """
        change = BookChange()
        relinked = {
            link.order_id: link.algo_type
            for link in algo_links
            if link.order_id is not None and self._algo_types.get(link.order_id) != link.algo_type
        }
        self._algo_types.update(relinked)
        touched: dict[PositionKey, bool] = {}  # key -> needs a full refold
        entries: list[Entry] = [*fills, *corrections, *funding]
        for entry in entries:
            if entry.account != self.account or entry.market is not self.market:
                raise ValueError(f"entry for {entry.account}/{entry.market} in book {self.account}")
            ledger = self._ledger(entry.symbol, entry.position_side)
            if isinstance(entry, Fill) and entry.key in ledger.fill_keys:
                continue
            if isinstance(entry, FundingFee) and entry.tran_id in ledger.funding_keys:
                continue
            if ledger.sealed_through is not None and sort_key(entry) <= ledger.sealed_through:
                # Older than anything we still hold: fold it in last rather than lose it.
                ledger.entries.append(entry)
                ledger.sort_keys.append(
                    ledger.sort_keys[-1] if ledger.sort_keys else sort_key(entry)
                )
                if isinstance(entry, Fill):
                    ledger.fill_keys.add(entry.key)
                elif isinstance(entry, FundingFee):
                    ledger.funding_keys.add(entry.tran_id)
                youngest = True
            else:
                youngest = ledger.insert(entry)
            if touched.get(ledger.key) or not youngest:
                touched[ledger.key] = True
                continue
            touched[ledger.key] = False
            for close in ledger.step(entry, self._algo_types):
                ledger.emitted[_close_id(close)] = close
                change.closes.append(close)
        if relinked:
            for ledger in self._ledgers.values():
                if any(c.close_order_id in relinked for c in ledger.emitted.values()):
                    touched[ledger.key] = True
        for key, needs_refold in touched.items():
            ledger = self._ledgers[key]
            if needs_refold:
                ledger.diff(ledger.refold(self._algo_types), change)
            ledger.seal(self.horizon_ms)
            change.positions.append(ledger.position())
        return change

    def restore(self, entries: Iterable[Entry], closes: Iterable[PositionClose]) -> BookChange:
        """Rebuild after a restart from stored entries and the closes already recorded.

        Returns only what differs from the stored closes (normally nothing).
        """
        for close in closes:
            ledger = self._ledger(close.symbol, close.position_side)
            ledger.emitted[_close_id(close)] = close
        for entry in entries:
            self._ledger(entry.symbol, entry.position_side).insert(entry)
        change = BookChange()
        for ledger in self._ledgers.values():
            ledger.diff(ledger.refold(self._algo_types), change)
        return change

    def link_algo_types(self, links: Mapping[int, str]) -> None:
        """Preload order id → algo type links (before :meth:`restore`)."""
        self._algo_types.update(links)

    def positions(self) -> list[Position]:
        return [ledger.position() for ledger in self._ledgers.values()]

    def position(self, symbol: str, position_side: PositionSide) -> Position:
        return self._ledger(symbol, position_side).position()

    def sealed_through(self, symbol: str, position_side: PositionSide) -> SortKey | None:
        """Entries at or before this (trade time, trade id, order id) are no longer needed."""
        return self._ledger(symbol, position_side).sealed_through
