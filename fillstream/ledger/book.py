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
from fillstream.ledger.units import average_entry, average_price, price_weight

ZERO = Decimal(0)
DEFAULT_HORIZON_MS = 6 * 3600 * 1000  # of trade time: how late a fill may be and still refold
DEFAULT_MAX_ENTRIES = 20_000  # per position: what one refold may cost at most (~0.1 s)
_ADJUSTMENT_ORDER = 1 << 62  # an exchange correction sorts after every fill of its millisecond
_FUNDING_ORDER = 1 << 61  # a funding payment sorts after the fills of its millisecond, too

Entry = Fill | PositionCorrection | FundingFee
SortKey = tuple[int, int, int]


def folds_positions(market: Market) -> bool:
    """Whether ``market`` has positions in Binance's sense, so its fills move a book.

    Spot has none: a base-asset balance also moves by deposits, withdrawals, transfers, fees
    charged in the base asset and trading on other pairs, so a "position" folded from one
    symbol's fills, and a "close" when it returns to zero, would be a guess, not an exchange fact.
    Spot accounts publish fills, order transitions and balance facts instead (docs/subjects.md).
    """
    return market is not Market.SPOT


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
    exit_notional: Decimal = ZERO  # Σ price*qty (linear) or Σ qty/price (inverse): units.py
    exit_qty: Decimal = ZERO
    fees: dict[str, Decimal] = field(default_factory=dict)
    closing_fills: list[FillKey] = field(default_factory=list)
    opened_at_ms: int | None = None
    updated_at_ms: int = 0
    funding: Decimal | None = None  # Σ funding paid/received while open, once any is known
    contract_size: Decimal | None = None  # COIN-M: the latest fill's that knew it

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
        # The oldest sort key inserted out of order since the last fold (None: nothing is).
        self.dirty_from: SortKey | None = None
        # An entry older than the sealed range was appended out of order: sort keys no longer
        # say where the position stood, so every refold of this ledger is a full one.
        self.unordered = False

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
        s.contract_size = fill.contract_size or s.contract_size
        if s.qty == ZERO:
            s.open(delta, fill.price, fill.trade_time_ms)
            return []
        if (delta > 0) == (s.qty > 0):
            s.entry_price = average_entry(
                self.key.market, abs(s.qty), s.entry_price, abs(delta), fill.price
            )
            s.qty += delta
            s.max_abs_qty = max(s.max_abs_qty, abs(s.qty))
            return []
        reduced = min(abs(delta), abs(s.qty))
        s.realized_pnl += fill.realized_pnl
        s.exit_notional += price_weight(self.key.market, reduced, fill.price)
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
        exit_price = average_price(self.key.market, s.exit_qty, s.exit_notional)
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
            contract_size=s.contract_size,
        )

    def refold(self, algo_types: Mapping[int, str]) -> list[PositionClose]:
        """Fold every held entry again, from a fresh state."""
        self.dirty_from = None
        self.state = _Lifecycle()
        self.flat_at = set()
        closes: list[PositionClose] = []
        for entry in self.entries:
            closes.extend(self.step(entry, algo_types))
        return closes

    def refold_late(self, algo_types: Mapping[int, str], change: BookChange) -> None:
        """Refold after late inserts, from the last flat point before the oldest of them.

        Entries up to a flat point are untouched by a younger insert, and a flat position
        carries nothing forward but ``updated_at_ms``: with entries in trade order that is the
        flat point's own trade time. So the fold restarts there, and only closes after it are
        compared with what was emitted. Without such a point it is the full refold.
        """
        start = self._restart_point()
        if start is None:
            self.diff(self.refold(algo_types), change)
            return
        self.dirty_from = None
        self.state = _Lifecycle(updated_at_ms=start[0])
        self.flat_at = {k for k in self.flat_at if k <= start}
        closes: list[PositionClose] = []
        for entry in self.entries[bisect.bisect_right(self.sort_keys, start) :]:
            closes.extend(self.step(entry, algo_types))
        self.diff(closes, change, after=start)

    def mark_dirty(self, key: SortKey) -> None:
        """What is held from ``key`` on must be folded again."""
        if self.dirty_from is None or key < self.dirty_from:
            self.dirty_from = key

    def _restart_point(self) -> SortKey | None:
        """The newest flat point strictly before ``dirty_from`` held by exactly one entry."""
        if self.unordered or self.dirty_from is None:
            return None
        candidates = [k for k in self.flat_at if k < self.dirty_from]
        while candidates:  # the newest one nearly always qualifies: no sort needed
            key = max(candidates)
            lo = bisect.bisect_left(self.sort_keys, key)
            if bisect.bisect_right(self.sort_keys, key) - lo == 1:
                return key
            candidates.remove(key)
        return None

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

    def diff(
        self, closes: Iterable[PositionClose], change: BookChange, after: SortKey | None = None
    ) -> None:
        """Compare a refold's closes with what was emitted before; record the differences.

        ``after``: the refold started past this flat point; closes up to it stay as emitted.
        """
        fresh = {_close_id(c): c for c in closes}
        for cid, old in list(self.emitted.items()):
            if after is not None and _close_sort_key(old) <= after:
                continue
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

    def seal(self, horizon_ms: int, max_entries: int) -> None:
        """Forget entries up to a flat point: the last one older than the horizon, or, past
        ``max_entries`` held, the newest one in the older half of what is held (see
        :class:`PositionBook`)."""
        if not self.entries or not self.emitted:
            return
        newest = self.sort_keys[-1][0]
        over = len(self.entries) > max_entries
        # Sealing only trims memory, so it need not run on every fill: scanning the held closes
        # once per 1/16 of the horizon (of trade time) keeps the hot path O(1) per fill.
        if newest < self.next_seal_ms and not over:
            return
        self.next_seal_ms = newest + max(horizon_ms // 16, 1)
        boundary = self._seal_point(newest - horizon_ms)
        if over:
            by_size = self._size_seal_point(max_entries)
            if by_size is not None and (boundary is None or by_size > boundary):
                boundary = by_size
        if boundary is not None:
            self._forget_through(boundary)

    def _flat_close_keys(self) -> list[SortKey]:
        keys = (_close_sort_key(c) for c in self.emitted.values())
        return sorted(k for k in keys if k in self.flat_at)

    def _seal_point(self, older_than_ms: int) -> SortKey | None:
        cut: SortKey | None = None
        for key in self._flat_close_keys():
            if key[0] < older_than_ms:
                cut = key
        return cut

    def _size_seal_point(self, max_entries: int) -> SortKey | None:
        flat = self._flat_close_keys()
        if not flat:
            return None  # one lifecycle longer than the cap: it is held whole
        held = len(self.sort_keys)
        keep_from = self.sort_keys[held - max_entries // 2 - 1]
        older = [k for k in flat if k <= keep_from]
        if older and held - bisect.bisect_right(self.sort_keys, older[-1]) <= max_entries:
            return older[-1]
        return flat[-1]

    def _forget_through(self, boundary: SortKey) -> None:
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

    def holds(self, entry: Entry) -> bool:
        if isinstance(entry, Fill):
            return entry.key in self.fill_keys
        if isinstance(entry, FundingFee):
            return entry.tran_id in self.funding_keys
        return False

    def add(self, entry: Entry) -> bool:
        """Hold a new entry; True when an incremental step is valid (it is the youngest)."""
        if self.sealed_through is None or sort_key(entry) > self.sealed_through:
            return self.insert(entry)
        # Older than anything we still hold: fold it in last rather than lose it.
        self.unordered = True
        self.entries.append(entry)
        self.sort_keys.append(self.sort_keys[-1] if self.sort_keys else sort_key(entry))
        if isinstance(entry, Fill):
            self.fill_keys.add(entry.key)
        elif isinstance(entry, FundingFee):
            self.funding_keys.add(entry.tran_id)
        return True


class PositionBook:
    """All positions of one account on one market.

    Not thread-safe and not async: the pipeline serializes calls per account. Duplicate fills
    (same :class:`FillKey`) within the held range are ignored, so any interleaving of the same
    fills, with duplicates, yields the same positions and the same closes. Below the sealed range
    the store's unique key is the authority: the pipeline hands the book only new fills.

    What a position holds is bounded twice, since a late entry refolds everything held: by trade
    time (entries before the last flat point older than ``horizon_ms`` are sealed) and by size.
    Past ``max_entries`` held, the book seals at the newest flat point that leaves between
    ``max_entries // 2`` and ``max_entries`` entries held (if there is none, at the newest flat
    point), so a refold never folds more than ``max_entries`` entries plus one batch. A fill
    older than the sealed range is folded in last, as the horizon already does; it cannot revise
    a sealed close. A position
    that has not been flat since more than ``max_entries`` entries ago has no safe seal point
    (a restart reloads from a flat point): it is held whole until it is flat again.
    """

    def __init__(
        self,
        account: str,
        market: Market,
        *,
        horizon_ms: int = DEFAULT_HORIZON_MS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        partial_refold: bool = True,
    ) -> None:
        if max_entries < 2:
            raise ValueError("max_entries must be at least 2")
        self.account = account
        self.market = market
        self.horizon_ms = horizon_ms
        self.max_entries = max_entries
        # False: every late entry refolds all that is held (the tests' oracle for the partial one).
        self.partial_refold = partial_refold
        self._ledgers: dict[PositionKey, _PositionLedger] = {}
        self._algo_types: dict[int, str] = {}

    def _ledger(self, symbol: str, position_side: PositionSide) -> _PositionLedger:
        key = PositionKey(self.account, self.market, symbol, position_side)
        ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = self._ledgers[key] = _PositionLedger(key)
        return ledger

    def apply(
        self,
        fills: Iterable[Fill] = (),
        corrections: Iterable[PositionCorrection] = (),
        algo_links: Iterable[AlgoLink] = (),
        funding: Iterable[FundingFee] = (),
    ) -> BookChange:
        """Fold new facts in. Returns the closes, revisions, retractions and touched positions.

        ``funding`` entries are deduplicated by ``tran_id`` within the held range; one that
        lands inside a closed lifecycle revises that close (its ``funding`` changes).
        A spot book folds nothing (:func:`folds_positions`): it never holds a position, so it
        never emits a close.
        """
        change = BookChange()
        if not folds_positions(self.market):
            return change
        # key -> needs a full refold. Only closes emitted before this call can carry a stale
        # reason: the links are in place before this call's fills are folded.
        touched = self._relink(algo_links)
        entries: list[Entry] = [*fills, *corrections, *funding]
        for entry in entries:
            self._fold(entry, touched, change)
        for key, needs_refold in touched.items():
            ledger = self._ledgers[key]
            if needs_refold and self.partial_refold:
                ledger.refold_late(self._algo_types, change)
            elif needs_refold:
                ledger.diff(ledger.refold(self._algo_types), change)
            ledger.seal(self.horizon_ms, self.max_entries)
            change.positions.append(ledger.position())
        return change

    def _relink(self, algo_links: Iterable[AlgoLink]) -> dict[PositionKey, bool]:
        relinked = {
            link.order_id: link.algo_type
            for link in algo_links
            if link.order_id is not None and self._algo_types.get(link.order_id) != link.algo_type
        }
        if not relinked:
            return {}
        self._algo_types.update(relinked)
        touched: dict[PositionKey, bool] = {}
        for ledger in self._ledgers.values():
            stale = [
                _close_sort_key(c) for c in ledger.emitted.values() if c.close_order_id in relinked
            ]
            if stale:
                ledger.mark_dirty(min(stale))  # the refold restarts before the oldest stale close
                touched[ledger.key] = True
        return touched

    def _fold(self, entry: Entry, touched: dict[PositionKey, bool], change: BookChange) -> None:
        if entry.account != self.account or entry.market is not self.market:
            raise ValueError(f"entry for {entry.account}/{entry.market} in book {self.account}")
        ledger = self._ledger(entry.symbol, entry.position_side)
        if ledger.holds(entry):
            return
        youngest = ledger.add(entry)
        if not youngest:
            ledger.mark_dirty(sort_key(entry))
        if touched.get(ledger.key) or not youngest:
            touched[ledger.key] = True
            return
        touched[ledger.key] = False
        for close in ledger.step(entry, self._algo_types):
            ledger.emitted[_close_id(close)] = close
            change.closes.append(close)

    def restore(self, entries: Iterable[Entry], closes: Iterable[PositionClose]) -> BookChange:
        """Rebuild after a restart from stored entries and the closes already recorded.

        Returns only what differs from the stored closes (normally nothing); a spot book
        restores nothing (:func:`folds_positions`).
        """
        if not folds_positions(self.market):
            return BookChange()
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

    def held(self, symbol: str, position_side: PositionSide) -> int:
        """How many entries the position holds for refolds (bounded by ``max_entries``)."""
        return len(self._ledger(symbol, position_side).entries)

    def sealed_through(self, symbol: str, position_side: PositionSide) -> SortKey | None:
        """Entries at or before this (trade time, trade id, order id) are no longer needed."""
        return self._ledger(symbol, position_side).sealed_through
