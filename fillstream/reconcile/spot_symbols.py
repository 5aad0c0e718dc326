"""Which spot symbols an account's balances point at: spot's stand-in for ``positionRisk`` and
``income``, which spot does not have.

``myTrades`` needs a symbol, and a spot account can hold any of thousands. What names the
symbols a spot account trades: the stream (gap windows carry its active symbols), the cursors
(symbols with trades found before), local open orders, the configuration (``symbols``), and, for
what none of them know (a symbol traded while the service was down, a new account), the
balances. A trade moves two balances, its symbol's base and quote asset; so the rule, bounded:

1. read the account's non-zero balances (``GET /api/v3/account``, weight 20) at most every
   ``all_symbol_calls_min_interval_s``;
2. *changed* assets: every held asset on the first read; later, the assets whose free or
   locked amount differs from the previous read (one that went to zero included; an order
   placed locks funds, so open orders are seen too);
3. candidates: the exchangeInfo symbols whose base asset is held or changed, whose quote asset
   is held, changed or one of ``spot_quote_assets`` (USDT, USDC, FDUSD, BTC, ETH, BNB by
   default: an account that spent all its USDT no longer holds it), with at least one of the
   two changed;
4. at most ``spot_probe_max`` of them, those with both assets changed first, then by the quote
   asset's place in ``spot_quote_assets``, then by name.

The same read heals missed balance events: the assets it finds changed are submitted as
``position`` balance facts (source ``reconcile``, at the account's ``updateTime``: the ``u`` of
the stream's outboundAccountPosition for the same update, so a fact the stream delivered is not
stored twice); an asset gone since the previous read is a fact of zero.

The candidates are *probes*: swept once, and polled on only if that found a trade (it leaves a
cursor, and symbols with recent cursors are polled). A probe without a cursor costs one
``myTrades`` call (the newest trade: none, or older than the horizon, ends it, backfill.py)
before any search by time. A quiet account costs one ``account`` read per interval and nothing
else; a busy one at most ``spot_probe_max`` probes per interval, at the run's priority (start-up
``HISTORY``, then ``PERIODIC``), behind every gap and subscription in the shared pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal

from fillstream.binance import Venue
from fillstream.binance.spot.parse import account_balances
from fillstream.binance.spot.rows import AccountBalance, AccountInfo, SymbolInfo
from fillstream.ledger import BalanceChange, FillSink, FillSource, IngestBatch, Market
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


def changed_facts(
    info: AccountInfo,
    changed: set[str],
    *,
    account: str,
    received_at_ns: int | None = None,
) -> tuple[BalanceChange, ...]:
    """The balance facts of the ``changed`` assets of an account read (an asset no longer
    listed: free and locked 0). Raises ``MalformedInput``."""
    listed = {b.asset: b for b in info.balances}
    rows = tuple(
        listed.get(asset) or AccountBalance(asset=asset, free="0", locked="0")
        for asset in sorted(changed)
    )
    snapshot = AccountInfo(balances=rows, updateTime=info.updateTime)
    return account_balances(snapshot, account=account, received_at_ns=received_at_ns)


class BalanceProbe:
    """One spot account's balance reads: the symbols they point at, and the balances that
    changed as facts for the pipeline."""

    def __init__(
        self, *, account: str, venue: Venue, sink: FillSink, quotes: Sequence[str], limit: int
    ) -> None:
        self.account = account
        self.venue = venue
        self.sink = sink
        self.quotes = tuple(quotes)
        self.limit = limit
        self._amounts: dict[str, tuple[Decimal, Decimal]] | None = None  # asset → free, locked

    async def probe(self) -> list[str]:
        """Read the balances, submit the changed ones, and return the symbols to probe (empty:
        nothing changed). Raises ``VenueError`` when the venue says no; a malformed answer is
        counted and yields none."""
        info = await self.venue.account_info()
        if not isinstance(info, AccountInfo):
            self._bad(info.reason)
            return []
        try:
            amounts = _amounts(info)
            previous = self._amounts
            if previous is None:
                changed = set(amounts)
            else:
                changed = {
                    a for a in amounts.keys() | previous.keys() if amounts.get(a) != previous.get(a)
                }
            facts = changed_facts(
                info, changed, account=self.account, received_at_ns=time.time_ns()
            )
        except ValueError as exc:
            self._bad(str(exc))
            return []
        if facts:
            await self.sink.submit(
                IngestBatch(
                    account=self.account,
                    market=Market.SPOT,
                    source=FillSource.RECONCILE,
                    balances=facts,
                )
            )
        self._amounts = amounts  # after the submit: a failed one is tried again next read
        if not changed or not self.limit:
            return []
        symbols = await self.venue.spot_symbols()
        return candidates(
            symbols, held=set(amounts), changed=changed, quotes=self.quotes, limit=self.limit
        )

    def _bad(self, reason: str) -> None:
        BAD_ROWS.labels(self.account, Market.SPOT, "account").inc()
        log.warning("%s: malformed account answer skipped (%s)", self.account, reason[:300])


def _amounts(info: AccountInfo) -> dict[str, tuple[Decimal, Decimal]]:
    """Asset → (free, locked) of the non-zero balances (Binance lists each asset once)."""
    amounts: dict[str, tuple[Decimal, Decimal]] = {}
    for b in info.balances:
        free, locked = amount(b.free, "free"), amount(b.locked, "locked")
        if free or locked:
            amounts[b.asset] = (free, locked)
    return amounts
