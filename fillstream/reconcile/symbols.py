"""Which symbols the REST path polls (``userTrades`` needs a symbol; there is no all-symbol call).

The union of: configured symbols; symbols the stream reported active (gap windows carry them);
symbols with an exchange position or open orders (``positionRisk``, cheap, read with every
position check; ``openOrders`` without a symbol costs 40, so at most every
``all_symbol_calls_min_interval_s``); symbols whose cursor moved recently; symbols the book
holds a position in; symbols with orders open locally; and symbols the account traded, found in
``income`` (COMMISSION / REALIZED_PNL rows, no symbol filter, weight 30, on the same schedule as
``openOrders``). The last one is what finds a symbol traded and closed flat while the service
was down: nothing else names it.

Spot has neither positions nor ``income``: there the balances stand in for both, and for
``openOrders`` too (80 without a symbol on spot; an order placed locks a balance, which the
``account`` read, weight 20, sees): :mod:`.spot_symbols`, on the ``openOrders`` schedule. The
symbols they point at are *probes*, swept by the next full sweep until one sweep of each
succeeded (:meth:`SymbolUniverse.probed`) rather than polled every run: one that has trades
gets a cursor and is polled from then on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from fillstream.binance import Venue
from fillstream.binance.usdm.parse import decode_rows
from fillstream.binance.usdm.rows import Income, OpenOrder
from fillstream.ledger import FillSink, Market, OrderView
from fillstream.reconcile.cursors import CursorTable
from fillstream.reconcile.metrics import BAD_ROWS
from fillstream.reconcile.spot_symbols import BalanceProbe

log = logging.getLogger(__name__)

_TRADE_INCOME = frozenset({"COMMISSION", "REALIZED_PNL"})
_INCOME_PAGES_MAX = 20


class SymbolUniverse:
    """The account's symbols to poll."""

    def __init__(
        self,
        *,
        account: str,
        market: Market,
        venue: Venue,
        sink: FillSink,
        cursors: CursorTable,
        view: OrderView | None,
        configured: Iterable[str],
        recent_cursor_ms: int,
        all_symbol_min_interval_s: float,
        discovery_lookback_ms: int = 7 * 86_400_000,
        spot_quote_assets: Sequence[str] = (),
        spot_probe_max: int = 0,
    ) -> None:
        self.account = account
        self.market = market
        self.venue = venue
        self.sink = sink
        self.cursors = cursors
        self.view = view
        self.configured = frozenset(configured)
        self.recent_cursor_ms = recent_cursor_ms
        self.all_symbol_min_interval_s = all_symbol_min_interval_s
        self.streamed: set[str] = set()
        self.exchange: set[str] = set()  # positionRisk: positions or open orders
        self.open_orders: set[str] = set()
        self.book: set[str] = set()
        self._open_orders_at = 0.0
        self.traded: set[str] = set()  # from income rows
        self._income_since_ms = int(time.time() * 1000) - discovery_lookback_ms
        self.balances = (
            BalanceProbe(
                account=account,
                venue=venue,
                sink=sink,
                quotes=spot_quote_assets,
                limit=spot_probe_max,
            )
            if market is Market.SPOT
            else None
        )
        self.probes: set[str] = set()  # spot: symbols the balances point at, not yet swept

    def note_streamed(self, symbols: Iterable[str]) -> None:
        self.streamed.update(symbols)

    def note_exchange(self, symbols: Iterable[str]) -> None:
        self.exchange = set(symbols)

    async def refresh(self, *, force: bool = False) -> None:
        """Read the book, local open orders and (when due) ``openOrders`` for all symbols."""
        self.book = {
            p.symbol for p in await self.sink.positions(self.account, self.market) if p.qty
        }
        if self.view is not None:
            local = await self.view.open_orders(
                self.account, self.market, updated_before_ms=int(time.time() * 1000) + 1
            )
            self.book |= {o.symbol for o in local}
        due = time.monotonic() - self._open_orders_at >= self.all_symbol_min_interval_s
        if not (force or due or not self._open_orders_at):
            return
        if self.market is Market.SPOT:
            if self.balances is not None:
                self.probes |= set(await self.balances.probe())
        else:
            raw = await self.venue.open_orders(None)
            rows, bad = decode_rows(raw, OpenOrder)
            if bad:
                BAD_ROWS.labels(self.account, self.market, "openOrders").inc(len(bad))
            self.open_orders = {r.symbol for r in rows}
            await self._discover_traded()
        self._open_orders_at = time.monotonic()

    def probed(self, symbol: str) -> None:
        """Spot: ``symbol`` was swept (or set aside) since the balances pointed at it."""
        self.probes.discard(symbol)

    async def _discover_traded(self) -> None:
        """Symbols with trade income since the last look (paged forward by time)."""
        since = self._income_since_ms
        for _ in range(_INCOME_PAGES_MAX):
            raw = await self.venue.income(start_ms=since, limit=1000)
            rows, bad = decode_rows(raw, Income)
            if bad:
                BAD_ROWS.labels(self.account, self.market, "income").inc(len(bad))
            self.traded |= {r.symbol for r in rows if r.symbol and r.incomeType in _TRADE_INCOME}
            newest = max((r.time for r in rows), default=since)
            if len(raw) < 1000 or newest <= since:
                since = max(since, newest)
                break
            since = newest
        # Overlap by a minute: income rows may become visible a little late.
        self._income_since_ms = max(self._income_since_ms, since - 60_000)

    def current(self) -> set[str]:
        recent = self.cursors.symbols(
            updated_since_ms=int(time.time() * 1000) - self.recent_cursor_ms
        )
        return (
            set(self.configured)
            | self.streamed
            | self.exchange
            | self.open_orders
            | self.book
            | self.traded
            | recent
        )
