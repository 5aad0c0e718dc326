"""Which accounts this process runs when several replicas share them (issue 15).

Each enabled account is run by at most one live process: the one holding its lease
(:mod:`fillstream.storage.leases`). Three loops:

* **renew**: every ``renew_interval_s`` each held lease is renewed (compare-and-swap on its
  revision). A lease someone else wrote is lost at once.
* **guard**: an owner whose last acknowledged renewal was sent more than ``lease_ttl_s -
  stop_margin_s`` ago stops the account's stream and reconcile, with a deadline before the lease
  can expire on the server: a process cut off from NATS stands down on its own clock.
* **poll**: every ``poll_interval_s`` the process re-puts its member key, lists the bucket, takes
  the free leases it should own and hands over those it should not.

Taking an account: create the lease; claim the account in PostgreSQL with the lease's revision
(:func:`fillstream.storage.fence.claim`: a new epoch, which every later ingest of this process
carries and PostgreSQL checks); forget the in-memory book (the next batch restores it from
PostgreSQL); start the account's supervisor with a ``takeover`` gap from the account's last
committed fill, so what the previous owner did not store is backfilled like after a reconnect.
A write refused by the fence (another process claimed the account since) drops the account.

Spreading: rendezvous (highest random weight) hashing of each account over the live members.
Chosen over a claim limit because every process computes the same owner from the same member
list without talking to the others, the spread is even without a configured limit (which would
have to change with the number of replicas), and a member joining or leaving moves only the
accounts whose top-scoring member changed (about 1/N of them), nothing else. Against flapping:
a free lease is taken only after ``takeover_grace_s``; a held account moves to another member
only once that member has been alive ``cooldown_s`` and this process has held it
``cooldown_s``; an account left free longer than ``lease_ttl_s`` (its rendezvous owner does not
take it) may be taken by anyone.

listenKeys: Binance gives every caller the same key for an account, and a DELETE kills it for
all. A process giving an account up never deletes it; only a clean shutdown that sees no other
live member does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import nats.errors

from fillstream.ledger import Market
from fillstream.sidecar import replica_metrics as metrics
from fillstream.sidecar.config import AccountConfig, ReplicasConfig
from fillstream.storage import DB_ERRORS, Ledger, OutboxRelay, fence
from fillstream.storage.fence import Fences
from fillstream.storage.leases import (
    Lease,
    LeaseLostError,
    LeaseStore,
    Snapshot,
    account_key,
)

log = logging.getLogger(__name__)

NATS_ERRORS: tuple[type[Exception], ...] = (nats.errors.Error, TimeoutError, OSError)
_STORE_ERRORS: tuple[type[Exception], ...] = (*NATS_ERRORS, *DB_ERRORS)
_FORCED_STOP_S = 2.0  # a lost or fenced account: stop at once, its writes are refused anyway
_RETRY_S = 0.5  # a failed renewal is tried again after this long (within its tenure)


class AccountRunner(Protocol):
    """Runs accounts' supervisors (the service)."""

    def start_account(self, account: AccountConfig, takeover_since_ms: int | None) -> None: ...

    async def stop_account(self, name: str, deadline: float, *, delete_listen_key: bool) -> None:
        """Stop the account's supervisor by ``deadline`` (``time.monotonic()``) and wait for
        the pipeline to commit what it flushed."""
        ...


def default_member() -> str:
    """``<hostname>-<pid>``, made a KV key token."""
    raw = f"{socket.gethostname()}-{os.getpid()}"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)


def rendezvous(key: str, members: Iterable[str]) -> str | None:
    """The member with the highest hash of (member, key): every process computes the same."""
    best: tuple[bytes, str] | None = None
    for member in members:
        score = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
        if best is None or (score, member) > best:
            best = (score, member)
    return None if best is None else best[1]


@dataclass(kw_only=True)
class _Held:
    account: AccountConfig
    lease: Lease
    epoch: int
    retry_at: float = 0.0
    stopping: bool = False


class Ownership:
    """The leases of this process and the accounts they run (see module docstring)."""

    def __init__(
        self,
        settings: ReplicasConfig,
        accounts: Iterable[AccountConfig],
        *,
        store: LeaseStore,
        pool: asyncpg.Pool,
        ledger: Ledger,
        relay: OutboxRelay,
        fences: Fences,
        runner: AccountRunner,
        shutdown_deadline_s: float,
    ) -> None:
        self.settings = settings
        self.accounts = {a.name: a for a in accounts}
        self.store = store
        self.pool = pool
        self.ledger = ledger
        self.relay = relay
        self.fences = fences
        self.runner = runner
        self.shutdown_deadline_s = shutdown_deadline_s
        self.member = settings.member or default_member()
        # Tells this process's leases from another incarnation using the same member name.
        self.token = secrets.token_hex(6)
        self.held: dict[str, _Held] = {}
        self.members: frozenset[str] = frozenset({self.member})
        self.handovers: dict[str, int] = {}
        self.last_poll_ok: float | None = None
        self._first_seen: dict[str, float] = {}
        self._free_since: dict[str, float] = {}
        self._stops: dict[str, asyncio.Task[None]] = {}
        self._drain: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        fences.listen(self._on_refused)
        # Every replica's relay reads the one outbox: its gauge counts the accounts it owns.
        relay.count_only(lambda: list(self.held))

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run the three loops in tasks of their own (until :meth:`aclose`)."""
        for loop, name in (
            (self._renew_loop, "renew"),
            (self._guard_loop, "guard"),
            (self._poll_loop, "poll"),
        ):
            self._tasks[name] = asyncio.create_task(
                self._supervised(loop, name), name=f"replicas-{name}"
            )

    async def _supervised(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        """A loop that fails on a bug is logged and started again: the guard, above all,
        must keep running."""
        while True:
            try:
                await loop()
            except Exception:  # a supervisor: log with the traceback, go on
                log.exception("replicas: the %s loop failed; restarting it", name)
                await asyncio.sleep(_RETRY_S)

    async def aclose(self, deadline: float) -> None:
        """Clean shutdown: stop taking accounts, stop every held one by ``deadline`` (deleting
        listenKeys only when no other member is alive), give the leases back, leave."""
        self._closing = True
        poll = self._tasks.get("poll")
        if poll is not None:  # no new accounts
            poll.cancel()
        alone = await self._alone()
        # Leave first: the others then hash the accounts over themselves, and take each one
        # as soon as its lease is given back below.
        with contextlib.suppress(*NATS_ERRORS):
            async with asyncio.timeout(1.0):
                await self.store.leave(self.member)
        for held in list(self.held.values()):
            self._drop(held, "released", deadline=deadline, delete_listen_key=alone)
        stops = list(self._stops.values())
        if stops:
            await asyncio.wait(stops, timeout=max(0.1, deadline - time.monotonic()))
        tasks = list(self._tasks.values())
        if self._drain is not None:
            tasks.append(self._drain)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *stops, return_exceptions=True)

    async def _alone(self) -> bool:
        """Whether no other member is alive (unknown counts as not alone: keep the keys)."""
        try:
            snapshot = await self.store.snapshot(1.0)
        except NATS_ERRORS:
            return False
        return not (snapshot.members - {self.member})

    # -- renew and guard ----------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        interval = self.settings.renew_interval_s
        while True:
            now = time.monotonic()
            due = [
                h
                for h in self.held.values()
                if now - h.lease.renewed >= interval and now >= h.retry_at
            ]
            if due:
                await asyncio.gather(*(self._renew(h) for h in due))
            await asyncio.sleep(min(_RETRY_S, interval / 2))

    async def _renew(self, held: _Held) -> None:
        tenure = held.lease.valid_until - self.settings.stop_margin_s - time.monotonic()
        try:
            async with asyncio.timeout(max(0.1, min(tenure, self.settings.renew_interval_s))):
                await self.store.renew(held.lease, self._value())
        except LeaseLostError:
            log.warning("%s: lease lost (written by another process)", held.account.name)
            self._drop(held, "lost")
        except NATS_ERRORS as exc:
            held.retry_at = time.monotonic() + _RETRY_S
            log.warning("%s: lease renewal failed: %r", held.account.name, exc)
        self._gauge(held)

    async def _guard_loop(self) -> None:
        step, margin = min(0.25, self.settings.stop_margin_s / 4), self.settings.stop_margin_s
        while True:
            now = time.monotonic()
            for held in list(self.held.values()):
                if not held.stopping and now >= held.lease.valid_until - margin:
                    log.warning(
                        "%s: lease not renewed in time; stopping the account before it expires",
                        held.account.name,
                    )
                    self._drop(held, "expired", deadline=held.lease.valid_until - 0.5)
            await asyncio.sleep(step)

    def _on_refused(self, account: str, market: Market) -> None:
        """The fence refused a write of ``account``: another process owns it now."""
        metrics.FENCE_REFUSALS.labels(account, market.value).inc()
        held = self.held.get(account)
        if held is not None and held.account.market is market:
            self._drop(held, "fenced")

    # -- poll: take and hand over -------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(max(1.0, self.settings.poll_interval_s * 2)):
                    await self.store.heartbeat(self.member)
                    snapshot = await self.store.snapshot(self.settings.poll_interval_s * 2)
            except NATS_ERRORS as exc:
                log.warning("replicas: cannot read the lease bucket: %r", exc)
            else:
                self.last_poll_ok = time.monotonic()
                await self._poll(snapshot)
            await asyncio.sleep(self.settings.poll_interval_s)

    async def _poll(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        self._observe(snapshot, now)
        taken = 0
        for account in self._to_take(snapshot, now):
            if self._closing:
                return
            taken += await self._take(account)
        if taken:
            self._publish_leftovers()
        for held in self._to_hand_over(now):
            self._drop(held, "released")

    def _publish_leftovers(self) -> None:
        """Publish the outbox rows a previous owner committed and never published (it died)
        now, rather than at the relay's next sweep (:mod:`fillstream.storage.relay`). One read
        of the table, in a task; rows another relay publishes meanwhile are deduplicated by
        their Nats-Msg-Id."""
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._drain_once(), name="replicas-leftovers")

    async def _drain_once(self) -> None:
        if not await self.relay.run_once():
            log.warning("replicas: the outbox left by a previous owner is not drained yet")

    def _observe(self, snapshot: Snapshot, now: float) -> None:
        self.members = snapshot.members | {self.member}
        metrics.MEMBERS.set(len(self.members))
        for member in self.members:
            self._first_seen.setdefault(member, now)
        for gone in set(self._first_seen) - self.members:
            del self._first_seen[gone]

    def _to_take(self, snapshot: Snapshot, now: float) -> list[AccountConfig]:
        grace, orphan_s = self.settings.takeover_grace_s, self.settings.lease_ttl_s
        wanted: list[AccountConfig] = []
        for name, account in self.accounts.items():
            key = account_key(name, account.market)
            if key in snapshot.leased or name in self.held:
                self._free_since.pop(key, None)
                continue
            free_for = now - self._free_since.setdefault(key, now)
            if free_for < grace:
                continue
            if rendezvous(key, self.members) == self.member or free_for >= grace + orphan_s:
                wanted.append(account)
        return wanted

    def _to_hand_over(self, now: float) -> list[_Held]:
        cooldown = self.settings.cooldown_s
        settled = {m for m, seen in self._first_seen.items() if now - seen >= cooldown}
        settled.add(self.member)
        return [
            held
            for held in self.held.values()
            if not held.stopping
            and held.lease.age_s(now) >= cooldown
            and rendezvous(held.lease.key, settled) != self.member
        ]

    async def _take(self, account: AccountConfig) -> bool:
        """Take ``account`` if its lease is still free; whether this process now runs it."""
        name, market = account.name, account.market
        try:
            lease = await self.store.acquire(account_key(name, market), self._value())
        except NATS_ERRORS as exc:
            log.warning("%s: cannot take the lease: %r", name, exc)
            return False
        if lease is None:
            return False  # taken by another process since the listing
        try:
            epoch = await fence.claim(
                self.pool,
                name,
                market,
                revision=lease.revision,
                bucket=self.store.created,
                owner=self.member,
            )
        except DB_ERRORS as exc:
            log.warning("%s: cannot claim the account in PostgreSQL: %r", name, exc)
            epoch = None
        if epoch is None or time.monotonic() >= lease.valid_until - self.settings.stop_margin_s:
            self._count(account, "refused")
            await self._give_back(lease)
            return False
        await self._run(account, lease, epoch)
        return True

    async def _run(self, account: AccountConfig, lease: Lease, epoch: int) -> None:
        name, market = account.name, account.market
        self.fences.hold(name, market, epoch)
        self.ledger.forget_book(name, market)  # restored from PostgreSQL by the next batch
        try:
            since_ms = await fence.last_fill_ms(self.pool, name, market)
        except DB_ERRORS:
            since_ms = None  # the start-up reconcile (from the cursors) still covers it
        held = self.held[name] = _Held(account=account, lease=lease, epoch=epoch)
        self._count(account, "acquired")
        self._gauge(held)
        log.info(
            "account taken",
            extra={"account": name, "epoch": epoch, "lease_revision": lease.revision},
        )
        self.runner.start_account(account, since_ms)

    # -- giving up ----------------------------------------------------------------------------

    def _drop(
        self,
        held: _Held,
        kind: str,
        *,
        deadline: float | None = None,
        delete_listen_key: bool = False,
    ) -> None:
        """Stop running ``held`` (once), then give its lease back."""
        if held.stopping:
            return
        held.stopping = True
        now = time.monotonic()
        if deadline is None:
            forced = kind in ("lost", "fenced")
            deadline = now + (_FORCED_STOP_S if forced else self.shutdown_deadline_s)
        name = held.account.name
        self._stops[name] = asyncio.create_task(
            self._stop(held, kind, max(deadline, now + 0.5), delete_listen_key),
            name=f"replicas-stop-{name}",
        )

    async def _stop(self, held: _Held, kind: str, deadline: float, delete_key: bool) -> None:
        account = held.account
        if kind in ("lost", "fenced"):
            # Another process owns it: whatever this one still flushes must be refused.
            self.fences.release(account.name, account.market)
        try:
            await self.runner.stop_account(account.name, deadline, delete_listen_key=delete_key)
        finally:
            self.fences.release(account.name, account.market)
            self.held.pop(account.name, None)
            self._stops.pop(account.name, None)
            self._count(account, kind)
            metrics.OWNED.labels(account.name, account.market.value).set(0)
            metrics.LEASE_AGE.labels(account.name, account.market.value).set(0)
            log.info("account given up", extra={"account": account.name, "reason": kind})
            await self._give_back(held.lease)

    async def _give_back(self, lease: Lease) -> None:
        with contextlib.suppress(*NATS_ERRORS):
            async with asyncio.timeout(1.0):
                await self.store.release(lease)

    # -- views --------------------------------------------------------------------------------

    def _value(self) -> str:
        return f"{self.member}/{self.token}"

    def _count(self, account: AccountConfig, kind: str) -> None:
        self.handovers[kind] = self.handovers.get(kind, 0) + 1
        metrics.HANDOVERS.labels(account.name, account.market.value, kind).inc()

    def _gauge(self, held: _Held) -> None:
        labels = (held.account.name, held.account.market.value)
        metrics.OWNED.labels(*labels).set(1)
        metrics.LEASE_AGE.labels(*labels).set(round(held.lease.age_s(), 3))

    def healthy(self) -> bool:
        """The bucket was read within the last few polls."""
        last = self.last_poll_ok
        window = max(3 * self.settings.poll_interval_s, 2.0)
        return last is not None and time.monotonic() - last <= window

    def status(self) -> dict[str, Any]:
        """For ``/status``: this member, the live ones, what it owns and what moved."""
        now = time.monotonic()
        return {
            "member": self.member,
            "members": sorted(self.members),
            "bucket_read_age_s": None
            if self.last_poll_ok is None
            else round(now - self.last_poll_ok, 3),
            "owned": {
                name: {
                    "epoch": h.epoch,
                    "lease_revision": h.lease.revision,
                    "lease_age_s": round(h.lease.age_s(now), 3),
                    "renewed_age_s": round(now - h.lease.renewed, 3),
                    "stopping": h.stopping,
                }
                for name, h in sorted(self.held.items())
            },
            "handovers": dict(self.handovers),
            "fence_refusals": sum(self.fences.refusals.values()),
        }
