"""Fencing: a stale owner of an account cannot write to the ledger (issue 15, migration 005).

A lease in NATS (:mod:`.leases`) decides who *should* own an account; it cannot stop a process
that was paused past its lease, or cut off from NATS, from writing what it still holds. So the
process that takes a lease claims the account in PostgreSQL (:func:`claim`): the claim bumps the
account's ``epoch`` in ``account_owners``, and every ingest of a replica carries the epoch its
process claimed, checked by ``fillstream_fence()`` in the ingest's own statement (the
one-statement path: :func:`fenced_statement` adds one ``UNION ALL`` arm to it) or transaction
(:func:`check`, first thing in the transactional path). A write under an older epoch fails as a
whole with SQLSTATE ``FS403`` (:func:`is_refusal`); :class:`Fences` counts it and tells its
listener, which drops the account.

With replicas off no epoch is held and the ingest statements are exactly today's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import asyncpg

from fillstream.ledger import Market

log = logging.getLogger(__name__)

REFUSED = "FS403"  # fillstream_fence(): the account is owned under another epoch
NOT_OWNED = 0  # the epoch of an account this process does not own: every claim is ≥ 1

_PARAM = re.compile(r"\$(\d+)")

CLAIM = """
INSERT INTO account_owners AS o (account, market, epoch, lease_revision, lease_bucket, owner)
VALUES ($1, $2, 1, $3, $4, $5)
ON CONFLICT (account, market) DO UPDATE SET
    epoch = o.epoch + 1, lease_revision = EXCLUDED.lease_revision,
    lease_bucket = EXCLUDED.lease_bucket, owner = EXCLUDED.owner, claimed_at = now()
WHERE o.lease_revision < EXCLUDED.lease_revision OR o.lease_bucket <> EXCLUDED.lease_bucket
RETURNING epoch
"""

CHECK = "SELECT fillstream_fence($1, $2, $3)"

LAST_FILL_MS = """
SELECT max(trade_time_ms) FROM fills WHERE account = $1 AND market = $2
"""


def fenced_statement(statement: str) -> tuple[str, int]:
    """``statement`` (a ``SELECT`` whose rows have four columns, the first a ``bigint``, the
    second NULL-able and ignored when NULL: ``sql.INGEST_STREAM``) with the fence as one more
    ``UNION ALL`` arm, and the number of the parameter that takes the epoch (the next free one;
    ``$1``/``$2`` must be the account and market)."""
    param = max(int(n) for n in _PARAM.findall(statement)) + 1
    arm = f"UNION ALL\nSELECT fillstream_fence($1, $2, ${param}), NULL, NULL, NULL\n"
    return statement.rstrip() + "\n" + arm, param


def is_refusal(exc: BaseException) -> bool:
    """The fence refused a write: this process no longer owns the account."""
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate == REFUSED


async def check(conn: asyncpg.Connection, account: str, market: Market, epoch: int) -> None:
    """Inside a transaction: raise (``FS403``) unless ``epoch`` owns the account; holds the
    owner row until the transaction ends, so no claim lands in between."""
    await conn.execute(CHECK, account, market.value, epoch)


async def claim(
    pool: asyncpg.Pool, account: str, market: Market, *, revision: int, bucket: str, owner: str
) -> int | None:
    """Claim ``account`` for the lease ``revision`` of ``bucket``: the new epoch, or None when
    the stored claim has a newer revision (this lease is older than the last owner's: give it
    back). Waits for an ingest of the previous owner in flight (the fence's row lock)."""
    epoch = await pool.fetchval(CLAIM, account, market.value, revision, bucket, owner)
    return None if epoch is None else int(epoch)


async def last_fill_ms(pool: asyncpg.Pool, account: str, market: Market) -> int | None:
    """Trade time of the account's newest committed fill (where a takeover's gap starts)."""
    value = await pool.fetchval(LAST_FILL_MS, account, market.value)
    return None if value is None else int(value)


RefusalListener = Callable[[str, Market], None]


class Fences:
    """The epoch this process holds per account, for the ledger's writes.

    ``enabled`` False (replicas off): :meth:`epoch` is None for every account and nothing is
    checked. Enabled: an account this process has not claimed (or gave up) is
    :data:`NOT_OWNED`, which every fence refuses.
    """

    def __init__(self, *, enabled: bool = False) -> None:
        self.enabled = enabled
        self._epochs: dict[tuple[str, Market], int] = {}
        self._listeners: list[RefusalListener] = []
        self.refusals: dict[tuple[str, Market], int] = {}

    def epoch(self, account: str, market: Market) -> int | None:
        if not self.enabled:
            return None
        return self._epochs.get((account, market), NOT_OWNED)

    def hold(self, account: str, market: Market, epoch: int) -> None:
        self._epochs[(account, market)] = epoch

    def release(self, account: str, market: Market) -> None:
        self._epochs.pop((account, market), None)

    def listen(self, listener: RefusalListener) -> None:
        self._listeners.append(listener)

    def refused(self, account: str, market: Market, exc: BaseException) -> None:
        """A write of ``account`` was refused by the fence: count it, tell the listeners."""
        key = (account, market)
        self.refusals[key] = self.refusals.get(key, 0) + 1
        log.warning("%s/%s: write refused by the fence: %s", account, market, exc)
        for listener in self._listeners:
            listener(account, market)
