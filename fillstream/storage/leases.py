"""Leases in a JetStream key-value bucket: which live process owns which account (issue 15).

One bucket (``history=1``, bucket-level ``ttl``: the stream's ``max_age``) holds two kinds of key:

* ``acct.<market>.<account>``: the account's lease. Taken with ``create`` (succeeds only if the
  key is absent: expired, deleted, or never written), renewed with ``update(last=revision)``
  (compare-and-swap: fails if anyone else wrote the key since), given back with
  ``delete(last=revision)``. The bucket's TTL expires a lease that is not renewed: each renewal
  writes a new revision whose age starts again (binance-wave2.md §D.2: a per-message TTL would
  not survive an update). Revisions are the bucket stream's sequence numbers, so they only grow:
  the fence (:mod:`.fence`) records the one a process took the lease with.
* ``member.<id>``: one per live process, re-put on every heartbeat; it expires with the same
  TTL, so the keys present are the processes alive within the last TTL (the spreading of
  accounts over processes reads them).

Expiry is decided by the server's clock and timer (≥ TTL after the last write, usually about
TTL). The holder bounds its own tenure on its monotonic clock from the *send* time of its last
acknowledged write (:attr:`Lease.valid_until`): it must stop acting before that, whether or not
NATS is reachable. A free lease is noticed by listing the keys (a poll, no watcher: without limit
markers an expiry is silent to watchers, and a poll survives reconnects without state).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import StorageType
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from fillstream.ledger import Market

ACCOUNT_PREFIX = "acct."
_WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
MEMBER_PREFIX = "member."
# A listing's consumer is deleted by the server this long after the listing stopped (or after
# its process died mid-listing).
_LISTING_INACTIVE_S = 2.0


class LeaseLostError(Exception):
    """The lease is no longer ours: someone else wrote the key (or it expired and was retaken)."""


class LeaseValue(msgspec.Struct, frozen=True, kw_only=True):
    """What a lease key holds (JSON): who holds it, since when (unix ms)."""

    member: str
    since_ms: int


class Lease(msgspec.Struct, kw_only=True):
    """A lease this process holds. Times are ``time.monotonic()``."""

    key: str
    revision: int
    acquired: float
    renewed: float  # send time of the last acknowledged write
    ttl_s: float

    @property
    def valid_until(self) -> float:
        """When the server may expire the lease, at the earliest, by our clock."""
        return self.renewed + self.ttl_s

    def age_s(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.acquired


def account_key(account: str, market: Market) -> str:
    return f"{ACCOUNT_PREFIX}{market.value}.{account}"


def member_key(member: str) -> str:
    return f"{MEMBER_PREFIX}{member}"


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of the bucket at one moment: leased account keys and live members."""

    leased: frozenset[str]
    members: frozenset[str]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LeaseValue).decode


class LeaseStore:
    """The lease bucket. Every call raises what nats-py raises (timeouts, no responders, ...)
    except where stated; the caller treats those as "unknown, try again"."""

    def __init__(self, kv: KeyValue, *, bucket: str, ttl_s: float, created: str) -> None:
        self.kv = kv
        self.bucket = bucket
        self.ttl_s = ttl_s
        # Identifies this incarnation of the bucket: a bucket recreated (NATS lost its data)
        # numbers its revisions from 1 again, which the fence's claim must accept.
        self.created = created
        self._stopping: set[asyncio.Future[None]] = set()  # listings cancelled while opening

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        bucket: str,
        ttl_s: float,
        replicas: int = 1,
        storage: str = "file",
    ) -> LeaseStore:
        """The bucket, created if missing (an existing bucket keeps its settings; its TTL must
        match ``ttl_s`` or ValueError: two TTLs would break every process's tenure bound)."""
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                bucket=bucket,
                history=1,
                ttl=ttl_s,
                replicas=replicas,
                storage=StorageType(storage),
            )
        info = await js.stream_info(f"KV_{bucket}")
        max_age = info.config.max_age or 0.0
        if abs(max_age - ttl_s) > 0.001:
            raise ValueError(
                f"lease bucket {bucket} has a TTL of {max_age} s, configured {ttl_s} s "
                "(every replica must use the same lease_ttl_s; delete the bucket to change it)"
            )
        return cls(kv, bucket=bucket, ttl_s=ttl_s, created=str(info.created))

    async def acquire(self, key: str, member: str) -> Lease | None:
        """Take ``key`` if it is free; None if someone holds it."""
        sent = time.monotonic()
        value = _encode(LeaseValue(member=member, since_ms=time.time_ns() // 1_000_000))
        try:
            revision = await self.kv.create(key, value)
        except KeyWrongLastSequenceError:
            return None
        return Lease(key=key, revision=revision, acquired=sent, renewed=sent, ttl_s=self.ttl_s)

    async def renew(self, lease: Lease, member: str) -> None:
        """Extend ``lease`` (a new revision). Raises :class:`LeaseLostError` if it is not ours
        any more; other errors leave it as it was (retry until :attr:`Lease.valid_until`)."""
        sent = time.monotonic()
        value = _encode(LeaseValue(member=member, since_ms=time.time_ns() // 1_000_000))
        try:
            lease.revision = await self.kv.update(lease.key, value, last=lease.revision)
        except KeyWrongLastSequenceError as exc:
            # An earlier renewal whose answer we never got (a timeout) may have been applied:
            # then the key holds our own newer revision, not someone else's.
            if not await self._adopt(lease, member):
                raise LeaseLostError(lease.key) from exc
            sent = time.monotonic()
            try:
                lease.revision = await self.kv.update(lease.key, value, last=lease.revision)
            except KeyWrongLastSequenceError as again:
                raise LeaseLostError(lease.key) from again
        lease.renewed = sent

    async def _adopt(self, lease: Lease, member: str) -> bool:
        """Whether the key's latest revision is ours (then ``lease`` takes its revision)."""
        try:
            entry = await self.kv.get(lease.key)
        except NotFoundError:  # expired or deleted
            return False
        if entry.value is None or entry.revision is None:
            return False
        try:
            holder = _decode(entry.value).member
        except msgspec.DecodeError:
            return False
        if holder != member:
            return False
        lease.revision = entry.revision
        return True

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` back now (a delete marker, only if it is still our revision): the next
        process need not wait for the TTL. A lease no longer ours is left alone."""
        try:
            await self.kv.delete(lease.key, last=lease.revision)
        except APIError as exc:  # nats-py maps this one only for create/update
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise

    async def heartbeat(self, member: str) -> None:
        """Say this process is alive (its member key, for another TTL)."""
        await self.kv.put(member_key(member), _encode({"since_ms": time.time_ns() // 1_000_000}))

    async def leave(self, member: str) -> None:
        """Remove this process's member key (clean shutdown)."""
        await self.kv.delete(member_key(member))

    def _stop_when_open(self, opening: asyncio.Future[KeyValue.KeyWatcher]) -> None:
        if opening.cancelled() or opening.exception() is not None:
            return
        task = asyncio.ensure_future(_stop(opening.result()))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def snapshot(self, timeout_s: float) -> Snapshot:
        """Every key present (deleted and expired ones are not).

        Not ``kv.keys()``: each listing is an ephemeral consumer on the bucket's stream, which
        nats-py leaves to the server's inactivity timer (5 min by default) and never stops
        when the listing is cancelled; polling every second from a few replicas reached the
        server's limit of 1,000 consumers per stream in minutes (found by the soak: every
        listing then failed, ``maximum consumers limit reached``). Here the listing's consumer
        goes ``_LISTING_INACTIVE_S`` after it is stopped, which it always is: opening it is
        shielded from a cancellation (a subscription cut half-way would stay in the client and
        keep its consumer alive), and stopped once open if the listing was cancelled meanwhile."""
        keys: list[str] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        opening = asyncio.ensure_future(
            self.kv.watchall(
                ignore_deletes=True, meta_only=True, inactive_threshold=_LISTING_INACTIVE_S
            )
        )
        try:
            async with asyncio.timeout_at(deadline):
                watcher = await asyncio.shield(opening)
        except BaseException:
            opening.add_done_callback(self._stop_when_open)
            raise
        try:
            async with asyncio.timeout_at(deadline):
                async for entry in watcher:
                    if entry is None:  # the end of what the bucket holds now
                        break
                    keys.append(entry.key)
        finally:
            await _stop(watcher)
        return Snapshot(
            leased=frozenset(k for k in keys if k.startswith(ACCOUNT_PREFIX)),
            members=frozenset(k[len(MEMBER_PREFIX) :] for k in keys if k.startswith(MEMBER_PREFIX)),
        )


async def _stop(watcher: KeyValue.KeyWatcher) -> None:
    with contextlib.suppress(nats.errors.Error):
        await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py: untyped
