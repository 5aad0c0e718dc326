"""Which spot symbols an account's balances point at: spot's stand-in for ``positionRisk`` and
``income``, which spot does not have.

``myTrades`` needs a symbol, and a spot account can hold any of thousands. What names the
symbols a spot account trades: the stream (gap windows carry its active symbols), the cursors
(symbols with trades found before), local open orders, the configuration (``symbols``), and, for
what none of them know (a symbol traded while the service was down, a new account), the
balances. A trade moves two balances, its symbol's base and quote asset; so the rule, bounded:

1. read the account's non-zero balances (``GET /api/v3/account``, weight 20) at most every
   ``all_symbol_calls_min_interval_s``;
2. *changed* assets: every held asset on the first read; later, the assets whose free + locked
   total differs from the previous read (one that went to zero included);
3. candidates: the exchangeInfo symbols whose base asset is held or changed, whose quote asset
   is held, changed or one of ``spot_quote_assets`` (USDT, USDC, FDUSD, BTC, ETH, BNB by
   default: an account that spent all its USDT no longer holds it), with at least one of the
   two changed;
4. at most ``spot_probe_max`` of them, those with both assets changed first, then by the quote
   asset's place in ``spot_quote_assets``, then by name.

The candidates are *probes*: swept once (a cold sweep over the horizon, 24-hour windows), and
polled on only if that found a trade (it leaves a cursor, and symbols with recent cursors are
polled). A quiet account costs one ``account`` read per interval and nothing else; a busy one
at most ``spot_probe_max`` sweeps per interval, at ``PERIODIC`` priority, behind every gap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal

from fillstream.binance import Venue
from fillstream.binance.spot.rows import AccountInfo, SymbolInfo
from fillstream.ledger import Market
from fillstream.ledger.amounts import amount
from fillstream.reconcile.metrics import BAD_ROWS

log = logging.getLogger(__name__)


def candidates(
    symbols: Mapping[str, SymbolInfo],
    *,
    held: set[str],
    changed: set[str],
    quotes: Sequence[str],
    limit: int,
) -> list[str]:
    """The symbols to probe (rule steps 3 and 4 of the module docstring)."""
    bases = held | changed
    quote_rank = {q: i for i, q in enumerate(quotes)}
    found = []
    for info in symbols.values():
        base, quote = info.baseAsset, info.quoteAsset
        if base not in bases or base == quote:
            continue
        if quote not in bases and quote not in quote_rank:
            continue
        if base not in changed and quote not in changed:
            continue
        both = base in changed and quote in changed
        found.append((not both, quote_rank.get(quote, len(quotes)), info.symbol))
    found.sort()
    return [symbol for _, _, symbol in found[:limit]]


class BalanceProbe:
    """One spot account's balance reads, and the symbols they point at."""

    def __init__(self, *, account: str, venue: Venue, quotes: Sequence[str], limit: int) -> None:
        self.account = account
        self.venue = venue
        self.quotes = tuple(quotes)
        self.limit = limit
        self._totals: dict[str, Decimal] | None = None  # asset → free + locked, last read

    async def probe(self) -> list[str]:
        """Read the balances and return the symbols to probe (empty: nothing changed). Raises
        ``VenueError`` when the venue says no; a malformed answer is counted and yields none."""
        info = await self.venue.account_info()
        if not isinstance(info, AccountInfo):
            self._bad(info.reason)
            return []
        try:
            totals = _totals(info)
        except ValueError as exc:
            self._bad(str(exc))
            return []
        previous = self._totals
        self._totals = totals
        if previous is None:
            changed = set(totals)
        else:
            changed = {
                a for a in totals.keys() | previous.keys() if totals.get(a) != previous.get(a)
            }
        if not changed:
            return []
        symbols = await self.venue.spot_symbols()
        return candidates(
            symbols, held=set(totals), changed=changed, quotes=self.quotes, limit=self.limit
        )

    def _bad(self, reason: str) -> None:
        BAD_ROWS.labels(self.account, Market.SPOT, "account").inc()
        log.warning("%s: malformed account answer skipped (%s)", self.account, reason[:300])


def _totals(info: AccountInfo) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for b in info.balances:
        total = amount(b.free, "free") + amount(b.locked, "locked")
        if total:
            totals[b.asset] = totals.get(b.asset, Decimal(0)) + total
    return totals
