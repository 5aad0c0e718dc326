"""The chaos soak's replica mode (``--replicas N``, issue 15): N ``fillstream run`` processes
share the accounts through leases, and the schedule's ``fillstream_kill`` becomes an *owner
kill*.

An owner kill picks a replica that owns accounts (seeded), SIGKILLs it (sometimes SIGTERM: a
clean handover), keeps it down at least ``down_s`` and until every account it owned streams on
another replica (the failover time, recorded per account), starts it again (a new member: its
pid is part of its name), and waits until the accounts are spread again (rendezvous hashing
over the live members, after their cool-down). The fault's window covers all of that, the
moves back to the restarted replica included.

Nothing here decides a verdict: :mod:`benchmarks.soak_verify` checks the stores, and the metric
identities per replica with :class:`ReplicaRecord`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from benchmarks.soak_faults import FaultRecord
from benchmarks.soak_service import Metrics, ServiceProcess
from fillstream.ledger import Market
from fillstream.sidecar.ownership import rendezvous
from fillstream.storage.leases import account_key

# Lease settings of the soak: a 3 s lease (the shortest the config allows), renewed every
# 0.5 s, given up 1.5 s before it can expire; the accounts of a restarted replica move back to
# it 3 s after it appears.
REPLICAS_TOML = """
[replicas]
enabled = true
bucket = "soak_leases"
lease_ttl_s = 3
renew_interval_s = 0.5
stop_margin_s = 1.5
poll_interval_s = 0.3
takeover_grace_s = 0.3
cooldown_s = 3
"""

_POLL_S = 0.1


@dataclass
class ReplicaRecord:
    """What the replica mode observed, for the verifier."""

    count: int
    # Per owner kill, per account it owned: (account, the kill's fault number, its start in
    # epoch ms, seconds from the kill until the account streamed again on a survivor).
    failovers: list[tuple[str, int, int, float]] = field(default_factory=list)
    metrics_calm: list[Metrics | None] = field(default_factory=list)
    metrics_final: list[Metrics | None] = field(default_factory=list)
    incarnations_calm: list[int] = field(default_factory=list)
    incarnations_end: list[int] = field(default_factory=list)
    epochs_calm_start: dict[str, int] = field(default_factory=dict)
    epochs_calm_end: dict[str, int] = field(default_factory=dict)
    members_final: list[str | None] = field(default_factory=list)
    # account → (member that claimed it last, when: epoch seconds, its epoch)
    owners_final: dict[str, tuple[str, float, int]] = field(default_factory=dict)
    final_exit_codes: list[int | None] = field(default_factory=list)

    def to_json(self, faults: Sequence[FaultRecord]) -> dict[str, Any]:
        """The failover distribution, all of them and those no other fault overlapped (another
        blind fault of the account, or of every account, between the kill and its return)."""
        clean = [
            t
            for account, n, start, t in self.failovers
            if not any(
                f.n != n
                and f.blind
                and f.account in (None, account)
                and f.start_ms <= start + t * 1000
                and (f.end_ms or start) >= start
                for f in faults
            )
        ]
        return {
            "replicas": self.count,
            "failover_s": _quantiles([t for *_, t in self.failovers]),
            "failover_s_no_other_fault": _quantiles(clean),
            "final_exit_codes": self.final_exit_codes,
        }


class Replicas:
    """The soak's replicas: their views of ownership and the owner kill."""

    def __init__(
        self,
        services: Sequence[ServiceProcess],
        accounts: Sequence[str],
        record: ReplicaRecord,
        say: Callable[[str], None],
    ) -> None:
        self.services = list(services)
        self.accounts = list(accounts)
        self.record = record
        self.say = say

    async def views(self) -> list[dict[str, Any] | None]:
        """Each replica's ``service.replicas`` and account states from /status (None: down)."""

        async def one(s: ServiceProcess) -> dict[str, Any] | None:
            if not s.running:
                return None
            body = await s.status()
            if not body:
                return None
            service = body.get("service")
            accounts = body.get("accounts")
            if not isinstance(service, dict) or not isinstance(accounts, dict):
                return None
            replicas = service.get("replicas")
            if not isinstance(replicas, dict):
                return None
            return {"replicas": replicas, "accounts": accounts}

        return list(await asyncio.gather(*(one(s) for s in self.services)))

    @staticmethod
    def _streaming(view: dict[str, Any] | None) -> set[str]:
        if view is None:
            return set()
        owned = view["replicas"]["owned"]
        return {
            name
            for name, a in view["accounts"].items()
            if name in owned and isinstance(a, dict) and a.get("state") == "streaming"
        }

    async def owners(self) -> dict[str, list[int]]:
        """account → the replicas streaming it."""
        out: dict[str, list[int]] = {}
        for i, view in enumerate(await self.views()):
            for account in self._streaming(view):
                out.setdefault(account, []).append(i)
        return out

    async def all_streaming(self) -> bool:
        """Every account streams on exactly one replica."""
        owners = await self.owners()
        return set(owners) == set(self.accounts) and all(len(v) == 1 for v in owners.values())

    async def spread(self) -> bool:
        """Every replica is up and sees the same members, and every account streams on exactly
        the one rendezvous hashing picks among them (no hand-over is due)."""
        views = await self.views()
        if any(v is None for v in views):
            return False
        members = {frozenset(v["replicas"]["members"]) for v in views if v is not None}
        if len(members) != 1:
            return False
        (live,) = members
        index = {v["replicas"]["member"]: i for i, v in enumerate(views) if v is not None}
        streaming = [self._streaming(v) for v in views]
        for account in self.accounts:
            want = index.get(rendezvous(account_key(account, Market.USDM), live))
            if want is None or [i for i, s in enumerate(streaming) if account in s] != [want]:
                return False
        return True

    async def owner_kill(
        self, r: FaultRecord, rng: random.Random, scale: float, lock: asyncio.Lock
    ) -> None:
        """SIGKILL (15 %: SIGTERM) a replica owning accounts; see the module docstring."""
        views = await self.views()
        owned = [set() if v is None else set(v["replicas"]["owned"]) for v in views]
        candidates = [i for i, o in enumerate(owned) if o] or list(range(len(self.services)))
        victim = rng.choice(candidates)
        graceful = rng.random() < 0.15
        down = round(rng.uniform(0.5, 5) * scale, 2)
        orphans = owned[victim]
        service = self.services[victim]
        r.params.update(
            replica=f"r{victim}",
            signal="SIGTERM" if graceful else "SIGKILL",
            orphans=len(orphans),
            down_s=down,
        )
        async with lock:
            killed = time.monotonic()
            if graceful:
                r.params["exit_code"] = await service.terminate()
            else:
                await service.kill()
            back = await self._failover(orphans, killed)
            self.record.failovers += [(a, r.n, r.start_ms, t) for a, t in back.items()]
            if back:
                r.params["failover_s"] = round(max(back.values()), 2)
            await asyncio.sleep(max(0.0, killed + down - time.monotonic()))
            await service.spawn()
            r.params["ready_s"] = round(await service.wait_ready(120), 2)
        settled = await _until(self.spread, 60)
        r.params["spread_s"] = None if settled is None else round(settled, 2)

    async def _failover(self, orphans: set[str], killed: float) -> dict[str, float]:
        """Seconds from ``killed`` until each of ``orphans`` streams on a survivor."""
        back: dict[str, float] = {}
        while len(back) < len(orphans) and time.monotonic() - killed < 60:
            owners = await self.owners()
            at = time.monotonic() - killed
            for account in orphans - set(back):
                if account in owners:
                    back[account] = at
            await asyncio.sleep(_POLL_S)
        if len(back) < len(orphans):
            self.say(f"  !! {sorted(orphans - set(back))} not back 60 s after an owner kill")
        return {a: back.get(a, float("inf")) for a in sorted(orphans)}

    async def scrape(self) -> list[Metrics | None]:
        return list(await asyncio.gather(*(s.metrics() for s in self.services)))

    async def members(self) -> list[str | None]:
        return [None if v is None else str(v["replicas"]["member"]) for v in await self.views()]


def _quantiles(values: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)

    def q(p: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {"n": len(ordered), "min": q(0.0), "p50": q(0.5), "p90": q(0.9), "max": q(1.0)}


async def epochs(dsn: str) -> dict[str, int]:
    """account → its claim epoch (bumped by every takeover)."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT account, epoch FROM account_owners")
    finally:
        await conn.close()
    return {r["account"]: int(r["epoch"]) for r in rows}


async def final_owners(dsn: str) -> dict[str, tuple[str, float, int]]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT account, owner, extract(epoch from claimed_at) AS at, epoch FROM account_owners"
        )
    finally:
        await conn.close()
    return {r["account"]: (str(r["owner"]), float(r["at"]), int(r["epoch"])) for r in rows}


async def _until(predicate: Callable[[], Any], timeout_s: float) -> float | None:
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout_s:
            return None
        await asyncio.sleep(0.2)
    return time.monotonic() - start
