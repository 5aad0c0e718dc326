"""Symbols the venue refuses, set aside so they cannot stop the rest of the account.

A symbol the venue answers "no such symbol" for (``-1121`` Invalid symbol, as for a delisted
contract; ``-1122`` invalid symbol status; ``-4141`` symbol closed) will keep being refused:
retrying it in every run would abort every run at that symbol. So the refusal is taken as the
symbol's outcome, not the run's: the symbol is set aside with its reason (logged, counted in
``fillstream_reconcile_symbols_set_aside`` per account, listed in ``/status``), every other
symbol of the run carries on, and the symbol is tried again rarely (``retry_s`` doubling per
refusal up to ``retry_max_s``). The first answer that is not a refusal brings it back.

Rate limits, bans and outages are not refusals of a symbol: they still end the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fillstream.binance import VenueError
from fillstream.ledger import Market
from fillstream.reconcile.metrics import SYMBOLS_REFUSED, SYMBOLS_SET_ASIDE

log = logging.getLogger(__name__)

# Binance codes that say "this symbol, not this request": per-symbol, permanent until it lists.
REFUSED_SYMBOL_CODES = frozenset({-1121, -1122, -4141})

T = TypeVar("T")


def refuses_symbol(exc: VenueError) -> bool:
    """The venue refused the symbol itself (retrying soon will not help)."""
    return exc.code in REFUSED_SYMBOL_CODES


@dataclass
class SetAsideSymbol:
    """One refused symbol: why, since when (epoch ms), and when it is tried again."""

    symbol: str
    reason: str
    code: int | None
    since_ms: int
    refusals: int
    retry_at: float  # time.monotonic()
    retry_at_ms: int

    def view(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "reason": self.reason,
            "code": self.code,
            "since_ms": self.since_ms,
            "refusals": self.refusals,
            "next_retry_ms": self.retry_at_ms,
        }


class SetAside:
    """The account's set-aside symbols; :meth:`guard` runs one symbol's work under it."""

    def __init__(self, *, account: str, market: Market, retry_s: float, retry_max_s: float) -> None:
        self.account = account
        self.market = market
        self.retry_s = retry_s
        self.retry_max_s = max(retry_s, retry_max_s)
        self.symbols: dict[str, SetAsideSymbol] = {}
        self._gauge = SYMBOLS_SET_ASIDE.labels(account, market)
        self._refused = SYMBOLS_REFUSED.labels(account, market)
        self._gauge.set(0)

    def due(self, symbol: str) -> bool:
        """Whether ``symbol`` is to be looked at now (not set aside, or its retry is due)."""
        entry = self.symbols.get(symbol)
        return entry is None or time.monotonic() >= entry.retry_at

    def waiting(self) -> set[str]:
        """The symbols set aside and not due: left out of runs (and of the cursor lag)."""
        now = time.monotonic()
        return {s for s, e in self.symbols.items() if now < e.retry_at}

    async def guard(self, symbol: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """``work()`` for ``symbol``; None when the symbol is set aside (now or before).

        A refusal of the symbol sets it aside; any other error propagates (the run's outcome).
        """
        if not self.due(symbol):
            return None
        try:
            result = await work()
        except VenueError as exc:
            if not refuses_symbol(exc):
                raise
            self.refuse(symbol, exc)
            return None
        self.accept(symbol)
        return result

    def refuse(self, symbol: str, exc: VenueError) -> None:
        """Set ``symbol`` aside (again) after the venue refused it."""
        now, now_ms = time.monotonic(), int(time.time() * 1000)
        entry = self.symbols.get(symbol)
        refusals = 1 if entry is None else entry.refusals + 1
        delay = min(self.retry_max_s, self.retry_s * 2.0 ** min(refusals - 1, 20))
        reason = exc.message or str(exc)
        self.symbols[symbol] = SetAsideSymbol(
            symbol=symbol,
            reason=reason,
            code=exc.code,
            since_ms=now_ms if entry is None else entry.since_ms,
            refusals=refusals,
            retry_at=now + delay,
            retry_at_ms=now_ms + int(delay * 1000),
        )
        self._refused.inc()
        self._gauge.set(len(self.symbols))
        log.warning(
            "%s %s: the venue refuses the symbol (%s, code %s); set aside, the account's other "
            "symbols carry on; next try in %.0f s",
            self.account,
            symbol,
            reason,
            exc.code,
            delay,
        )

    def accept(self, symbol: str) -> None:
        """The venue answered for ``symbol``: it is no longer set aside."""
        if self.symbols.pop(symbol, None) is not None:
            self._gauge.set(len(self.symbols))
            log.info("%s %s: the venue accepts the symbol again", self.account, symbol)

    def view(self) -> list[dict[str, Any]]:
        """For ``/status``: every set-aside symbol, by name."""
        return [self.symbols[s].view() for s in sorted(self.symbols)]
