"""Chaos soak: nothing lost, nothing duplicated, closes right, metrics honest — under faults.

    python -m benchmarks.soak --duration 600 --rate 500 --accounts 4 --seed 1
    python -m benchmarks.soak --replicas 3 --accounts 9 --rate 90 --duration 600

Runs the simulator (in this process), embedded PostgreSQL and NATS JetStream (child processes
this soak stops, crashes and restarts on the same port and data) and ``fillstream run`` (a child
process it SIGKILLs and restarts). ``--rate`` is fills per second over all accounts; the last
account trades in hedge mode.

Timeline (``--duration`` seconds of load):

1. **chaos** (1 - ``--calm-fraction`` of it): a seeded random fault every ``--fault-interval``
   seconds on average, mixing every simulator fault kind with NATS restarts, PostgreSQL restarts
   (fast shutdown or a crash of its whole process group) and SIGKILL (sometimes SIGTERM) of
   fillstream; the first faults are a pass over every kind. Then the faults are lifted and the
   soak waits until the service streams again and PostgreSQL holds every fill made so far;
2. **calm**: only ``drop``/``drop_rate``, so that "fills missed by the stream = fill events the
   venue dropped" can be checked exactly;
3. **settle**: the generator stops; the soak polls until PostgreSQL holds the ground truth and the
   outbox is empty (``--settle-timeout``), scrapes /metrics, and stops fillstream with SIGTERM.

``--replicas N`` (N ≥ 2) runs N ``fillstream run`` replicas sharing the accounts through leases
(:mod:`benchmarks.soak_replicas`): the schedule's ``fillstream_kill`` (drawn four times as often
as another kind) kills an owner and records how long each of its accounts took to stream again
on another replica; the metric checks become per replica (the last owner of each account).

Then :mod:`benchmarks.soak_verify` checks ground truth = PostgreSQL = JetStream (count, ids,
every field), closes, attribution and metrics. The soak prints a one-screen report, writes
``--output`` (``benchmarks/results/soak.json``) and exits 1 on any discrepancy (2 when it could
not run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.soak_facts import load_jetstream, load_postgres, pg_counts
from benchmarks.soak_faults import ALL_KINDS, Chaos, FaultRecord, now_ms
from benchmarks.soak_replicas import REPLICAS_TOML, ReplicaRecord, Replicas, epochs, final_owners
from benchmarks.soak_report import render, report_json
from benchmarks.soak_service import PREFIX, STREAM, Infra, ServiceProcess, write_config
from benchmarks.soak_verify import CalmSlice, RunRecord, verify
from fillstream.simulator import SimConfig, Simulator

RESULTS = Path(__file__).parent / "results" / "soak.json"


@dataclass(frozen=True)
class SoakOptions:
    duration_s: float = 600.0
    rate: float = 500.0
    accounts: int = 4
    seed: int = 1
    replicas: int = 1
    fault_interval_s: float | None = None
    calm_fraction: float = 0.2
    settle_timeout_s: float = 120.0
    reconcile_interval_s: float = 10.0
    output: Path = RESULTS
    data_dir: Path | None = None
    verbose: bool = True

    @property
    def chaos_s(self) -> float:
        return self.duration_s * (1 - self.calm_fraction)

    @property
    def interval_s(self) -> float:
        if self.fault_interval_s is not None:
            return self.fault_interval_s
        return max(1.0, min(8.0, self.chaos_s / (len(ALL_KINDS) + 2)))

    @property
    def fault_scale(self) -> float:
        return max(0.3, min(1.0, self.duration_s / 300))


def parse_args(argv: list[str] | None = None) -> SoakOptions:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    p.add_argument("--rate", type=float, default=500.0, help="fills/s over all accounts")
    p.add_argument("--accounts", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--replicas", type=int, default=1, help="fillstream processes sharing leases")
    p.add_argument("--fault-interval", type=float, default=None, help="mean seconds between faults")
    p.add_argument("--calm-fraction", type=float, default=0.2)
    p.add_argument("--settle-timeout", type=float, default=120.0)
    p.add_argument("--reconcile-interval", type=float, default=10.0, help="fillstream's poll")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--data-dir", type=Path, default=None, help="keep servers' data and logs here")
    p.add_argument("--quiet", action="store_true", help="only the final report")
    a = p.parse_args(argv)
    if a.accounts < 1 or a.rate <= 0 or a.duration <= 0 or not 0 <= a.calm_fraction < 1:
        p.error("accounts ≥ 1, rate > 0, duration > 0, 0 ≤ calm-fraction < 1")
    if a.replicas < 1:
        p.error("replicas ≥ 1")
    return SoakOptions(
        duration_s=a.duration,
        rate=a.rate,
        accounts=a.accounts,
        seed=a.seed,
        replicas=a.replicas,
        fault_interval_s=a.fault_interval,
        calm_fraction=a.calm_fraction,
        settle_timeout_s=a.settle_timeout,
        reconcile_interval_s=a.reconcile_interval,
        output=a.output,
        data_dir=a.data_dir,
        verbose=not a.quiet,
    )


async def poll(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, period_s: float = 0.5
) -> float | None:
    """Seconds until ``predicate()`` held, or None after ``timeout_s``."""
    start = time.monotonic()
    while True:
        try:
            if await predicate():
                return time.monotonic() - start
        except (OSError, TimeoutError) as exc:  # PostgreSQL restarting: try again
            del exc
        if time.monotonic() - start > timeout_s:
            return None
        await asyncio.sleep(period_s)


class Soak:
    def __init__(self, opts: SoakOptions) -> None:
        self.opts = opts
        self.names = [f"acct{i}" for i in range(opts.accounts)]
        self.lock = asyncio.Lock()
        self.phases: dict[str, float] = {}
        self.notes: list[str] = []
        self.services: list[ServiceProcess] = []
        self.replicas: Replicas | None = None

    def say(self, text: str) -> None:
        if self.opts.verbose:
            print(text, flush=True)

    async def run(self) -> tuple[dict[str, Any], int]:
        opts = self.opts
        base = opts.data_dir or Path(tempfile.mkdtemp(prefix="fillstream-soak-"))
        base.mkdir(parents=True, exist_ok=True)
        infra = Infra(base)
        hedge = (self.names[-1],) if len(self.names) > 1 else ()
        sim = Simulator(
            SimConfig(
                seed=opts.seed,
                accounts=tuple(self.names),
                hedge_accounts=hedge,
                rate=opts.rate / len(self.names),
            )
        )
        watcher: asyncio.Task[None] | None = None
        try:
            t0 = time.monotonic()
            await infra.start()
            sim.pause()  # no fills before fillstream listens: start-up is not a fault
            await sim.start()
            record = RunRecord(accounts=self.names, faults=[], chaos_start_ms=0)
            self._make_services(sim, infra, base, record)
            service = self.services[0]
            await asyncio.gather(*(s.spawn() for s in self.services))
            await asyncio.gather(*(s.wait_ready(120) for s in self.services))
            if self.replicas is not None and await poll(self.replicas.spread, 120) is None:
                self.notes.append("the accounts were not spread over the replicas at the start")
            self.phases["startup_s"] = time.monotonic() - t0
            self.say(
                f"soak: seed {opts.seed}, {opts.duration_s:g} s, {opts.rate:g} fills/s over "
                f"{len(self.names)} accounts, {len(self.services)} fillstream process(es); "
                f"data in {base}"
            )
            record.chaos_start_ms = now_ms()
            watcher = asyncio.create_task(self._watch(record))
            sim.resume()
            await self._chaos(sim, infra, service, record)
            await self._calm(sim, infra, service, record)
            await self._settle(sim, infra, service, record)
            truth = sim.ground_truth()
            pg = await load_postgres(infra.dsn, self.names)
            js = await load_jetstream(infra.nats_url, STREAM, PREFIX, self.names)
            checks = verify(truth, pg, js, record)
            report = report_json(
                opts=self._opts_json(),
                record=record,
                checks=checks,
                truth=truth,
                pg=pg,
                js=js,
                phases=self.phases,
                notes=self.notes,
                machine=_machine(),
            )
            print(render(report))
            return report, 0 if all(c.ok for c in checks) else 1
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            for s in self.services:
                await s.aclose()
            await sim.aclose()
            await asyncio.to_thread(infra.close)
            if opts.data_dir is None:
                shutil.rmtree(base, ignore_errors=True)

    def _opts_json(self) -> dict[str, Any]:
        o = self.opts
        return {
            "duration_s": o.duration_s,
            "rate": o.rate,
            "accounts": o.accounts,
            "seed": o.seed,
            "replicas": o.replicas,
            "fault_interval_s": o.interval_s,
            "calm_fraction": o.calm_fraction,
            "settle_timeout_s": o.settle_timeout_s,
            "reconcile_interval_s": o.reconcile_interval_s,
            "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        }

    def _make_services(self, sim: Simulator, infra: Infra, base: Path, record: RunRecord) -> None:
        """One fillstream process, or ``--replicas`` of them with leases (own port and logs)."""
        count = self.opts.replicas
        for n in range(count):
            log_dir = base if count == 1 else base / f"r{n}"
            log_dir.mkdir(parents=True, exist_ok=True)
            config = log_dir / "fillstream.toml"
            env, port = write_config(
                config,
                sim,
                infra.nats_url,
                infra.dsn,
                reconcile_interval_s=self.opts.reconcile_interval_s,
            )
            if count > 1:
                with config.open("a") as f:
                    f.write(REPLICAS_TOML)
            self.services.append(ServiceProcess(config, env, port, log_dir))
        if count > 1:
            record.replicas = ReplicaRecord(count=count)
            self.replicas = Replicas(self.services, self.names, record.replicas, self.say)

    async def _watch(self, record: RunRecord) -> None:
        """A crash the soak did not cause is a finding; restart the service like k8s would."""
        while True:
            await asyncio.sleep(0.5)
            if self.lock.locked():
                continue
            async with self.lock:
                for service in self.services:
                    code = service.reap_unexpected()
                    if code is None:
                        continue
                    note = f"fillstream exited by itself with {code} (see {service.log_path})"
                    record.unexpected_exits.append(note)
                    self.say(f"  !! {note}; restarting")
                    await service.spawn()
                    with contextlib.suppress(TimeoutError, RuntimeError):
                        await service.wait_ready(120)

    async def _chaos(
        self, sim: Simulator, infra: Infra, service: ServiceProcess, record: RunRecord
    ) -> None:
        opts = self.opts
        chaos = Chaos(
            seed=opts.seed,
            sim=sim,
            infra=infra,
            service=service,
            service_lock=self.lock,
            interval_s=opts.interval_s,
            scale=opts.fault_scale,
            say=self.say,
            # Replica mode: owner kills four times as often as any other kind.
            kinds=ALL_KINDS if self.replicas is None else (*ALL_KINDS, *("fillstream_kill",) * 3),
            owner_kill=None if self.replicas is None else self.replicas.owner_kill,
        )
        record.faults = chaos.records
        start = time.monotonic()
        try:
            await chaos.run(opts.chaos_s)
        finally:
            await chaos.aclose()
        sim.clear_faults()
        record.chaos_end_ms = now_ms()
        self.phases["chaos_s"] = time.monotonic() - start
        for r in chaos.records:
            if r.kind == "duplicate" and r.account is not None:
                record.duplicated[r.account] = record.duplicated.get(r.account, 0) + int(
                    r.params.get("count", 0)
                )
        # Recovered: the service streams again and PostgreSQL holds every fill made so far.
        streaming = await poll(self._all_streaming, 120)
        self.phases["restream_s"] = -1.0 if streaming is None else streaming
        if streaming is None:
            self.notes.append("not every account was streaming 120 s after the chaos phase")
        if self.replicas is not None:  # no hand-over due in the calm phase
            spread = await poll(self.replicas.spread, 120)
            self.phases["spread_s"] = -1.0 if spread is None else spread
            if spread is None:
                self.notes.append("the accounts were not spread 120 s after the chaos phase")
        snap_ms = now_ms()
        await asyncio.sleep(0.002)  # every fill stamped ≤ snap_ms now exists
        want = {
            a: sum(1 for f in sim.states[a].fills if int(str(f["time"])) <= snap_ms)
            for a in self.names
        }

        async def caught_up() -> bool:
            have = await _pg_counts_until(infra.dsn, snap_ms)
            return all(have.get(a, 0) >= n for a, n in want.items())

        took = await poll(caught_up, opts.settle_timeout_s)
        self.phases["recover_s"] = -1.0 if took is None else took
        if took is None:
            self.notes.append("PostgreSQL had not caught up with the chaos phase before calm")
        self.say(
            f"chaos over: {len(chaos.records)} faults; streaming again after "
            f"{self.phases['restream_s']:.1f} s, caught up after {self.phases['recover_s']:.1f} s"
        )

    async def _calm(
        self, sim: Simulator, infra: Infra, service: ServiceProcess, record: RunRecord
    ) -> None:
        opts = self.opts
        calm_s = opts.duration_s * opts.calm_fraction
        if calm_s <= 0:
            sim.pause()
            return
        for a in self.names:
            st = sim.states[a]
            record.calm[a] = CalmSlice(
                first=st.fills_generated,
                dropped=st.dropped_fill_events,
                undelivered=st.undelivered_fill_events,
            )
        incarnations = [s.incarnation for s in self.services]
        if self.replicas is None:
            record.metrics_calm = await service.metrics()
            if record.metrics_calm is None:
                self.notes.append("no /metrics answer at the calm start: calm delta unchecked")
        else:
            assert record.replicas is not None
            record.replicas.epochs_calm_start = await epochs(infra.dsn)
            record.replicas.metrics_calm = await self.replicas.scrape()
        record.calm_start_ms = now_ms()
        chaos = Chaos(
            seed=opts.seed + 1_000_003,
            sim=sim,
            infra=infra,
            service=service,
            service_lock=self.lock,
            interval_s=max(1.0, calm_s / 8),
            scale=opts.fault_scale,
            say=self.say,
            kinds=("drop", "drop_rate"),
            first_n=len(record.faults) + 1,
        )
        start = time.monotonic()
        try:
            await chaos.run(calm_s)
        finally:
            await chaos.aclose()
        sim.pause()
        sim.clear_faults()
        record.calm_end_ms = now_ms()
        record.faults.extend(chaos.records)
        for a in self.names:
            st, s = sim.states[a], record.calm[a]
            s.last = st.fills_generated
            s.dropped = st.dropped_fill_events - s.dropped
            s.undelivered = st.undelivered_fill_events - s.undelivered
        record.calm_same_process = [s.incarnation for s in self.services] == incarnations
        if record.replicas is not None:
            record.replicas.epochs_calm_end = await epochs(infra.dsn)
        self.phases["calm_s"] = time.monotonic() - start
        self.say(f"calm over: {len(chaos.records)} drop faults; generator stopped")

    async def _settle(
        self, sim: Simulator, infra: Infra, service: ServiceProcess, record: RunRecord
    ) -> None:
        sim.pause()
        want = {a: len(sim.states[a].fills) for a in self.names}
        record.settle_deadline_s = self.opts.settle_timeout_s

        async def settled() -> bool:
            have, pending = await pg_counts(infra.dsn)
            return pending == 0 and all(have.get(a, 0) >= n for a, n in want.items())

        record.settled_s = await poll(settled, self.opts.settle_timeout_s)
        async with self.lock:
            if self.replicas is not None:
                await self._settle_replicas(self.replicas, infra, record)
                return
            # The outbox gauge is the relay's own count, resynchronised with the table on its
            # prune cycle (60 s): give it one cycle to agree with the now empty outbox.
            start = time.monotonic()
            while True:
                record.metrics_final = await service.metrics()
                gauge = (
                    None
                    if record.metrics_final is None
                    else record.metrics_final.value("fillstream_outbox_pending")
                )
                if gauge == 0 or time.monotonic() - start > 90:
                    break
                await asyncio.sleep(2.0)
            record.gauge_lag_s = time.monotonic() - start
            record.final_spawn_wall = service.started_wall
            record.final_exit_code = await service.terminate(60)
        self.say(
            "settled: "
            + ("no" if record.settled_s is None else f"{record.settled_s:.1f} s")
            + f"; fillstream stopped with exit code {record.final_exit_code}"
        )

    async def _settle_replicas(self, replicas: Replicas, infra: Infra, record: RunRecord) -> None:
        """Every replica's gauge reads 0 (summed: each counts only its own accounts), their
        last metrics and owners, then SIGTERM one by one (the last, alone, deletes the keys)."""
        rec = record.replicas
        assert rec is not None
        start = time.monotonic()
        while True:
            rec.metrics_final = await replicas.scrape()
            gauges = [
                None if m is None else m.value("fillstream_outbox_pending")
                for m in rec.metrics_final
            ]
            if (gauges and all(g == 0 for g in gauges)) or time.monotonic() - start > 90:
                break
            await asyncio.sleep(2.0)
        record.gauge_lag_s = time.monotonic() - start
        rec.members_final = await replicas.members()
        rec.owners_final = await final_owners(infra.dsn)
        rec.final_exit_codes = [await s.terminate(60) for s in self.services]
        record.final_exit_code = next((c for c in rec.final_exit_codes if c != 0), 0)
        self.say(f"replicas: exit codes {rec.final_exit_codes}")

    async def _all_streaming(self) -> bool:
        if self.replicas is not None:
            return await self.replicas.all_streaming()
        status = await self.services[0].status()
        if not status:
            return False
        accounts = status.get("accounts")
        return isinstance(accounts, dict) and all(
            isinstance(v, dict) and v.get("state") == "streaming" for v in accounts.values()
        )


async def _pg_counts_until(dsn: str, until_ms: int) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT account, count(*) FROM fills WHERE trade_time_ms <= $1 GROUP BY account",
            until_ms,
        )
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


async def run_soak(opts: SoakOptions) -> tuple[dict[str, Any], int]:
    """Run the soak; SIGINT/SIGTERM cancel it, which still stops every child process."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        report, code = await Soak(opts).run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {opts.output}")
    return report, code


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        _, code = asyncio.run(run_soak(opts))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("soak interrupted; child processes stopped", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["FaultRecord", "SoakOptions", "main", "run_soak"]
