"""Isolating what the store refused: split a batch until each refused fact is alone.

When PostgreSQL refuses a batch for its data (:func:`fillstream.storage.quarantine.is_data_error`),
retrying the same batch can never succeed, and an account whose ingest retries it stores nothing
more. So the batch is bisected: each half is ingested on its own (its own transaction, in the
batch's order), a half refused for its data is split again, and a fact refused alone goes to the
quarantine. Everything else of the batch is stored; ``k`` bad facts in ``n`` cost about
``2·k·log2(n)`` transactions, paid only on this rare path.

A refused transaction stored nothing, and the ledger reloads the account's position book from the
store after any failure: a quarantined fill never moves a position. A failure that is not about
the data (PostgreSQL gone mid-split) ends the split: the halves already committed stay committed
(``on_commit`` has published them), the submitters get the error and resubmit the whole, which
is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from fillstream.ledger import (
    AlgoLink,
    BalanceChange,
    Fill,
    FundingFee,
    IngestBatch,
    OrderUpdate,
    PositionCorrection,
)
from fillstream.storage import IngestOutcome, Ledger, Quarantine, is_data_error
from fillstream.storage.quarantine import Fact

OnCommit = Callable[[IngestOutcome], None]


class Isolated(msgspec.Struct, kw_only=True):
    """What a split stored (one outcome per committed part) and what it quarantined."""

    outcomes: list[IngestOutcome]
    quarantined: list[Fact]


def facts(batch: IngestBatch) -> list[Fact]:
    """The batch's facts in the order the ledger applies them."""
    return [
        *batch.fills,
        *batch.orders,
        *batch.algo_links,
        *batch.corrections,
        *batch.funding,
        *batch.balances,
    ]


def batch_of(template: IngestBatch, part: Sequence[Fact]) -> IngestBatch:
    """``part`` as a batch of ``template``'s account, market and source."""
    return IngestBatch(
        account=template.account,
        market=template.market,
        source=template.source,
        fills=tuple(f for f in part if isinstance(f, Fill)),
        orders=tuple(f for f in part if isinstance(f, OrderUpdate)),
        algo_links=tuple(f for f in part if isinstance(f, AlgoLink)),
        corrections=tuple(f for f in part if isinstance(f, PositionCorrection)),
        funding=tuple(f for f in part if isinstance(f, FundingFee)),
        balances=tuple(f for f in part if isinstance(f, BalanceChange)),
    )


async def ingest_isolating(
    ledger: Ledger,
    quarantine: Quarantine,
    batch: IngestBatch,
    error: BaseException,
    *,
    on_commit: OnCommit,
) -> Isolated:
    """Store every fact of ``batch`` (refused as a whole with ``error``) but the refused ones.

    ``on_commit`` sees each committed part's outcome at once (to publish it). Raises the first
    error that is not about the data (the store is unavailable).
    """
    splitter = _Splitter(ledger, quarantine, batch, on_commit)
    await splitter.split(facts(batch), error)
    return splitter.result


class _Splitter:
    def __init__(
        self, ledger: Ledger, quarantine: Quarantine, template: IngestBatch, on_commit: OnCommit
    ) -> None:
        self.ledger = ledger
        self.quarantine = quarantine
        self.template = template
        self.on_commit = on_commit
        self.result = Isolated(outcomes=[], quarantined=[])

    async def split(self, part: list[Fact], error: BaseException) -> None:
        """``part`` was refused as a whole with ``error``."""
        if len(part) == 1:
            await self.quarantine.put(part[0], error)
            self.result.quarantined.append(part[0])
            return
        middle = len(part) // 2
        for half in (part[:middle], part[middle:]):
            try:
                outcome = await self.ledger.ingest(batch_of(self.template, half))
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                await self.split(half, exc)
                continue
            self.result.outcomes.append(outcome)
            self.on_commit(outcome)


def merge_outcomes(outcomes: Sequence[IngestOutcome]) -> IngestOutcome:
    """The committed parts as one outcome, in commit order."""
    return IngestOutcome(
        new_fills=[f for o in outcomes for f in o.new_fills],
        duplicate_fills=[f for o in outcomes for f in o.duplicate_fills],
        closes=[c for o in outcomes for c in o.closes],
        retracted=[c for o in outcomes for c in o.retracted],
        orders=[x for o in outcomes for x in o.orders],
        corrections=[c for o in outcomes for c in o.corrections],
        funding=[f for o in outcomes for f in o.funding],
        messages=[m for o in outcomes for m in o.messages],
        balances=[b for o in outcomes for b in o.balances],
    )
