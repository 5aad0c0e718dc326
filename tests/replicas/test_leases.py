"""Leases in a real JetStream KV bucket: create-if-absent, CAS renewal, expiry by the bucket's
TTL, release, members."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient

from fillstream.ledger import Market
from fillstream.storage.leases import LeaseLostError, LeaseStore, account_key
from tests.sidecar.harness import wait_for

TTL_S = 3.0


@pytest.fixture
async def nc(nats_server_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_server_url)
    yield client
    await client.close()


@pytest.fixture
async def bucket(nc: NatsClient) -> AsyncIterator[str]:
    name = f"leases_{uuid.uuid4().hex[:8]}"
    yield name
    await nc.jetstream().delete_key_value(name)


async def test_one_holder_renewal_and_expiry(nc: NatsClient, bucket: str) -> None:
    js = nc.jetstream()
    a = await LeaseStore.open(js, bucket=bucket, ttl_s=TTL_S)
    b = await LeaseStore.open(js, bucket=bucket, ttl_s=TTL_S)
    assert a.created == b.created
    key = account_key("alpha", Market.USDM)
    lease = await a.acquire(key, "a")
    assert lease is not None
    assert await b.acquire(key, "b") is None  # held
    first = lease.revision
    before = time.monotonic()
    await a.renew(lease, "a")
    assert lease.revision > first
    assert lease.renewed >= before
    assert lease.valid_until == lease.renewed + TTL_S
    # Not renewed any more: the bucket's TTL expires it and another process takes it.
    taken = []

    async def b_takes() -> bool:
        got = await b.acquire(key, "b")
        if got is not None:
            taken.append(got)
        return bool(taken)

    await wait_for(b_takes, TTL_S + 10, "the lease expired and was taken")
    assert taken[0].revision > lease.revision
    with pytest.raises(LeaseLostError):
        await a.renew(lease, "a")  # a stale holder's CAS fails


async def test_release_frees_at_once_and_only_our_revision(nc: NatsClient, bucket: str) -> None:
    store = await LeaseStore.open(nc.jetstream(), bucket=bucket, ttl_s=TTL_S)
    key = account_key("beta", Market.USDM)
    lease = await store.acquire(key, "a")
    assert lease is not None
    await store.release(lease)
    again = await store.acquire(key, "b")  # no TTL wait
    assert again is not None
    await store.release(lease)  # a's old revision: b's lease stays
    assert await store.acquire(key, "c") is None
    snapshot = await store.snapshot(2.0)
    assert snapshot.leased == {key}


async def test_members_come_and_go(nc: NatsClient, bucket: str) -> None:
    store = await LeaseStore.open(nc.jetstream(), bucket=bucket, ttl_s=TTL_S)
    assert (await store.snapshot(2.0)).members == frozenset()
    await store.heartbeat("a")
    await store.heartbeat("b")
    assert (await store.snapshot(2.0)).members == {"a", "b"}
    await store.leave("a")
    assert (await store.snapshot(2.0)).members == {"b"}

    async def b_expired() -> bool:
        return not (await store.snapshot(2.0)).members

    await wait_for(b_expired, TTL_S + 10, "member b expired")


async def test_every_replica_must_use_one_ttl(nc: NatsClient, bucket: str) -> None:
    await LeaseStore.open(nc.jetstream(), bucket=bucket, ttl_s=TTL_S)
    with pytest.raises(ValueError, match="lease_ttl_s"):
        await LeaseStore.open(nc.jetstream(), bucket=bucket, ttl_s=10.0)
    await asyncio.sleep(0)


async def test_a_renewal_applied_but_unanswered_is_adopted(nc: NatsClient, bucket: str) -> None:
    """A renewal that timed out on our side but reached the server leaves our own newer
    revision in the key: the next renewal adopts it instead of giving the account up."""
    store = await LeaseStore.open(nc.jetstream(), bucket=bucket, ttl_s=TTL_S)
    key = account_key("alpha", Market.USDM)
    lease = await store.acquire(key, "a/1")
    assert lease is not None
    stale = lease.revision
    await store.renew(lease, "a/1")  # as if its answer had been lost:
    applied = lease.revision
    lease.revision = stale
    await store.renew(lease, "a/1")
    assert lease.revision > applied
    other = await store.acquire(account_key("beta", Market.USDM), "b/2")
    assert other is not None
    other.revision -= 1  # another holder's revision in between: not ours
    with pytest.raises(LeaseLostError):
        await store.renew(other, "a/1")


async def test_listings_leave_no_consumers_behind(nc: NatsClient, bucket: str) -> None:
    """Every poll lists the bucket; each listing's consumer must go, or a few replicas reach
    the server's 1,000 consumers per stream within minutes (``kv.keys()`` left them for
    5 min, and forever when cancelled)."""
    js = nc.jetstream()
    store = await LeaseStore.open(js, bucket=bucket, ttl_s=TTL_S)
    await store.heartbeat("m1")
    for _ in range(40):
        snapshot = await store.snapshot(5.0)
        assert snapshot.members == {"m1"}
    for _ in range(10):  # cancelled mid-listing: stopped all the same
        with contextlib.suppress(TimeoutError):
            await store.snapshot(0.0005)

    async def reaped() -> bool:
        info = await js.stream_info(f"KV_{bucket}")
        return info.state.consumer_count <= 2

    await wait_for(reaped, 15, "the listings' consumers deleted by the server")
