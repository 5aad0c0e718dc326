"""The soak's fault schedule: a seeded random mix of every simulator fault kind plus NATS
restarts, PostgreSQL restarts and SIGKILL/restart of fillstream.

Every fault becomes a :class:`FaultRecord` with its wall-clock start and end, so the verifier can
tell a fill the stream legitimately missed (inside a *blind window*: the socket was down, the
events were dropped, the process was dead...) from one it lost for no reason.

The first faults of a run are a shuffled pass over every kind, so even a short run covers them
all; after that kinds are drawn at random. Infrastructure faults never overlap each other (one
of PostgreSQL, NATS and fillstream is down at a time), simulator faults overlap freely.

In replica mode (:mod:`benchmarks.soak_replicas`) ``fillstream_kill`` kills the owner of some
accounts and a NATS restart is blind (the leases cannot be renewed: every account stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak_service import Infra, ServiceProcess
from fillstream.simulator import FAULT_KINDS, Simulator

INFRA_KINDS = ("nats_restart", "pg_restart", "fillstream_kill")
SIM_KINDS = tuple(sorted(FAULT_KINDS))
ALL_KINDS = SIM_KINDS + INFRA_KINDS

# Kinds that cannot make the stream path miss a fill: the events still reach the socket and the
# process that reads it (duplicates and malformed frames are extra frames; REST lag delays only
# the reconcile path; a NATS outage holds messages in the outbox, not frames).
NOT_BLIND = frozenset({"duplicate", "inject_frame", "rest_lag", "nats_restart"})
# Kinds that act on every account at once.
GLOBAL = frozenset({"clock_skew", "rest_error", *INFRA_KINDS})

OwnerKill = Callable[["FaultRecord", random.Random, float, asyncio.Lock], Awaitable[None]]
"""Replica mode's ``fillstream_kill``: (record, the schedule's rng, duration scale, the lock
the watcher takes before restarting a process)."""

MALFORMED_FRAMES = (
    "not json {",
    '{"e":"SOMETHING_NEW_2027","E":1,"x":[1,2]}',
    '{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"BTCUSDT"}}',
    '{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"BTCUSDT","x":"TRADE","t":5,"l":"x',
    "[]",
    '{"e":"ACCOUNT_UPDATE","E":"yesterday"}',
    "\u0000\u0001binary-ish\u00ff",
)


@dataclass
class FaultRecord:
    """One injected fault. Times are epoch ms (the simulator stamps trades with the same clock)."""

    n: int
    kind: str
    account: str | None  # None: every account
    params: dict[str, Any]
    start_ms: int
    end_ms: int | None = None
    error: str | None = None
    # Blind whatever its kind: with replicas a NATS outage stops every account whose lease
    # cannot be renewed, so the streams miss fills until the leases are taken again.
    always_blind: bool = False

    @property
    def blind(self) -> bool:
        return self.always_blind or self.kind not in NOT_BLIND

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "kind": self.kind,
            "account": self.account,
            "params": self.params,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "error": self.error,
        }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Windows:
    """Blind windows per account: [start - before, end + after] of every blind fault."""

    before_ms: int
    after_ms: int
    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        records: list[FaultRecord],
        accounts: list[str],
        before_ms: int,
        after_ms: int,
        states: dict[str, list[tuple[int, str, str]]] | None = None,
    ) -> Windows:
        """``states`` (account → [(time_ms, stream state, reason)]) stretches a fault's window until
        the account's stream said ``streaming`` again: recovering from a fault can take longer
        than the fixed margin (a reconnect waiting for the REST budget, a refused handshake)."""
        w = cls(before_ms, after_ms, {a: [] for a in accounts})
        for r in records:
            if not r.blind:
                continue
            end = r.end_ms if r.end_ms is not None else now_ms()
            for account in accounts if r.account is None else [r.account]:
                back = _back_streaming((states or {}).get(account, []), r.start_ms, end + after_ms)
                w.spans[account].append((r.start_ms - before_ms, max(end, back) + after_ms))
        return w

    def covers(self, account: str, time_ms: int) -> bool:
        return any(a <= time_ms <= b for a, b in self.spans.get(account, ()))

    def coverage(self, account: str, start_ms: int, end_ms: int) -> float:
        """Fraction of [start, end] inside some window of ``account``."""
        merged: list[list[int]] = []
        for lo, hi in sorted(self.spans.get(account, ())):
            a, b = max(lo, start_ms), min(hi, end_ms)
            if a >= b:
                continue
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        total = max(1, end_ms - start_ms)
        return sum(b - a for a, b in merged) / total


def _back_streaming(states: list[tuple[int, str, str]], start_ms: int, until_ms: int) -> int:
    """When the stream was ``streaming`` again after its last non-streaming state in
    [start, until]; ``start`` when it never left ``streaming`` then."""
    down = [t for t, s, _ in states if s != "streaming" and start_ms <= t <= until_ms]
    if not down:
        return start_ms
    last = max(down)
    return next((t for t, s, _ in states if s == "streaming" and t >= last), now_ms())


class Chaos:
    """Injects faults at random intervals until told to stop; remembers every one."""

    def __init__(
        self,
        *,
        seed: int,
        sim: Simulator,
        infra: Infra,
        service: ServiceProcess,
        service_lock: asyncio.Lock,
        interval_s: float,
        scale: float,
        say: Callable[[str], None],
        kinds: tuple[str, ...] = ALL_KINDS,
        first_n: int = 1,
        owner_kill: OwnerKill | None = None,
    ) -> None:
        self.rng = random.Random(f"soak:{seed}")
        self.sim = sim
        self.infra = infra
        self.service = service
        self.service_lock = service_lock
        self.interval_s = interval_s
        self.scale = scale  # fault durations are multiplied by this (short CI runs)
        self.say = say
        self.kinds = kinds
        self.first_n = first_n
        self.owner_kill = owner_kill  # replica mode: fillstream_kill kills an account's owner
        self.accounts = [a.name for a in sim.accounts]
        self.records: list[FaultRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._infra_busy = False
        self._pending = list(kinds)
        self.rng.shuffle(self._pending)

    # -- the schedule --------------------------------------------------------------------------

    async def run(self, duration_s: float) -> None:
        """Inject faults for ``duration_s``, then wait for the running ones to end."""
        end = time.monotonic() + duration_s
        while True:
            delay = self.interval_s * self.rng.uniform(0.5, 1.5)
            if time.monotonic() + delay >= end:
                break
            await asyncio.sleep(delay)
            self._launch(self._next_kind())
        await self.settle()

    async def settle(self) -> None:
        """Wait for every running fault to end (infrastructure back, timed faults lifted)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _next_kind(self) -> str:
        for i, kind in enumerate(self._pending):
            if kind not in INFRA_KINDS or not self._infra_busy:
                return self._pending.pop(i)
        while True:
            kind = self.rng.choice(self.kinds)
            if kind not in INFRA_KINDS or not self._infra_busy:
                return kind

    def _launch(self, kind: str) -> None:
        account = None if kind in GLOBAL else self.rng.choice(self.accounts)
        record = FaultRecord(
            self.first_n + len(self.records),
            kind,
            account,
            {},
            now_ms(),
            always_blind=kind == "nats_restart" and self.owner_kill is not None,
        )
        self.records.append(record)
        if kind in INFRA_KINDS:
            self._infra_busy = True
        task = asyncio.create_task(self._apply(record), name=f"fault-{record.n}-{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, r: FaultRecord) -> None:
        try:
            handler = getattr(self, f"_do_{r.kind}")
            await handler(r)
        except Exception as exc:
            r.error = f"{type(exc).__name__}: {exc}"
            self.say(f"  fault #{r.n} {r.kind} failed: {r.error}")
        finally:
            if r.end_ms is None:
                r.end_ms = now_ms()
            if r.kind in INFRA_KINDS:
                self._infra_busy = False
        detail = " ".join(f"{k}={v}" for k, v in r.params.items() if k != "raw")
        self.say(
            f"  fault #{r.n:<3} {r.kind:<17} {r.account or '*':<8} {detail}"
            f" ({(r.end_ms - r.start_ms) / 1000:.1f} s)"
        )

    def _seconds(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high) * self.scale, 2)

    # -- simulator faults ----------------------------------------------------------------------

    def _inject(self, r: FaultRecord, **params: Any) -> None:
        r.params.update(params)
        self.sim.inject(r.account, r.kind, **params)

    async def _until_consumed(self, r: FaultRecord, timeout_s: float = 30.0) -> None:
        """Wait until the simulator no longer lists this counted fault for the account."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            active = self.sim.faults()
            if not any(f["kind"] == r.kind and f["account"] == r.account for f in active):
                return
            await asyncio.sleep(0.05)

    async def _timed(self, r: FaultRecord, seconds: float, end: Callable[[], object]) -> None:
        r.params["seconds"] = seconds
        await asyncio.sleep(seconds)
        end()

    async def _do_drop(self, r: FaultRecord) -> None:
        self._inject(r, count=self.rng.randint(3, 40))
        await self._until_consumed(r)

    async def _do_drop_rate(self, r: FaultRecord) -> None:
        self._inject(r, p=round(self.rng.uniform(0.02, 0.25), 3))
        await self._timed(
            r, self._seconds(3, 15), lambda: self.sim.inject(r.account, "drop_rate", p=0)
        )

    async def _do_duplicate(self, r: FaultRecord) -> None:
        self._inject(r, count=self.rng.randint(3, 40))
        await self._until_consumed(r)

    async def _do_reorder(self, r: FaultRecord) -> None:
        self._inject(r, count=self.rng.randint(2, 12))
        await self._until_consumed(r)

    async def _do_disconnect(self, r: FaultRecord) -> None:
        if self.rng.random() < 0.3:
            self._inject(r, code=self.rng.choice((1001, 1006, 1011)))
        else:
            self._inject(r)

    async def _do_cut(self, r: FaultRecord) -> None:
        self._inject(r)

    async def _do_expire_listen_key(self, r: FaultRecord) -> None:
        self._inject(r)

    async def _do_silent(self, r: FaultRecord) -> None:
        seconds = self._seconds(3, 15)
        self._inject(r, seconds=seconds)
        await asyncio.sleep(seconds)

    async def _do_refuse_ws(self, r: FaultRecord) -> None:
        # Refusing handshakes only matters if the stream reconnects meanwhile: cut it too.
        seconds = self._seconds(2, 10)
        self._inject(r, seconds=seconds)
        self.sim.inject(r.account, "disconnect")
        await asyncio.sleep(seconds)

    async def _do_rest_lag(self, r: FaultRecord) -> None:
        self._inject(r, seconds=round(self.rng.uniform(0.5, 5), 2))
        await asyncio.sleep(self._seconds(5, 20))
        self.sim.inject(r.account, "rest_lag", seconds=0)

    async def _do_rest_error(self, r: FaultRecord) -> None:
        status = self.rng.choice((429, 418, 500, 502, 503))
        params: dict[str, Any] = {"status": status, "count": self.rng.randint(1, 6)}
        if status in (429, 418):
            params["retry_after"] = self.rng.choice((1, 2, 3))
        target = self.rng.choice([None, *self.accounts])
        r.params.update(params, target=target or "*")
        self.sim.inject(target, "rest_error", **params)
        await asyncio.sleep(float(params.get("retry_after", 1)))

    async def _do_clock_skew(self, r: FaultRecord) -> None:
        ms = self.rng.choice((-1, 1)) * self.rng.randint(500, 9000)
        self._inject(r, ms=ms)
        await self._timed(
            r, self._seconds(5, 15), lambda: self.sim.inject(None, "clock_skew", ms=0)
        )

    async def _do_inject_frame(self, r: FaultRecord) -> None:
        raw = self.rng.choice(MALFORMED_FRAMES)
        self._inject(r, raw=raw)

    # -- infrastructure faults -----------------------------------------------------------------

    async def _do_nats_restart(self, r: FaultRecord) -> None:
        crash = self.rng.random() < 0.5
        down = self._seconds(1, 8)
        r.params.update(mode="sigkill" if crash else "sigterm", down_s=down)
        await self.infra.stop_nats(crash)
        await asyncio.sleep(down)
        await self.infra.start_nats()

    async def _do_pg_restart(self, r: FaultRecord) -> None:
        crash = self.rng.random() < 0.5
        down = self._seconds(1, 8)
        r.params.update(mode="crash" if crash else "fast", down_s=down)
        await self.infra.stop_pg(crash)
        await asyncio.sleep(down)
        await self.infra.start_pg()

    async def _do_fillstream_kill(self, r: FaultRecord) -> None:
        if self.owner_kill is not None:
            await self.owner_kill(r, self.rng, self.scale, self.service_lock)
            return
        graceful = self.rng.random() < 0.15
        down = self._seconds(0.5, 5)
        r.params.update(signal="SIGTERM" if graceful else "SIGKILL", down_s=down)
        async with self.service_lock:
            if graceful:
                code = await self.service.terminate()
                r.params["exit_code"] = code
            else:
                await self.service.kill()
            await asyncio.sleep(down)
            await self.service.spawn()
            r.params["ready_s"] = round(await self.service.wait_ready(120), 2)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
