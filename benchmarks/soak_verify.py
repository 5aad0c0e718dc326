"""The soak's verdict: every check that must hold after a chaos run, with its evidence.

Checks (each one a :class:`Check`; any failure makes the soak exit non-zero):

``fills``
    ground truth = PostgreSQL = JetStream per account: the same fill ids, no duplicate row, no
    second message for one fill, every ``Nats-Msg-Id`` matching its payload.
``fill fields (truth)``
    every field the venue knows (trade, price, qty, quote qty, commission + asset, realized PnL,
    side, position side, maker, time, and the order's client id/type/orig type/reduce-only) is
    equal in PostgreSQL; a stream-sourced fill carries its event time.
``fill fields (JetStream)``
    every field of every fill message equals the PostgreSQL row (amounts as decimals).
``closes``
    ground truth = PostgreSQL = JetStream: the same close ids (latest revision, retractions
    removed), and per close the reason, realized PnL, closing order, qty, entry price, fees,
    open and close times; PostgreSQL's payload equals JetStream's, revision included.
``attribution``
    every stored fill names the path that delivered it first (stream + reconcile = total), and
    the reconcile path delivered at least every fill whose event the venue never put on a live
    socket: ``reconcile ≥ dropped + undelivered - duplicated`` (a duplicated frame that found no
    socket is counted twice as undelivered, hence the subtraction).
``stream misses explained``
    the stream may miss a fill only inside a *blind window*: from ``before`` seconds ahead of a
    fault that can blind it (every kind except duplicate, inject_frame, rest_lag, NATS restart)
    until ``after`` seconds past the later of its end and the moment the account's stream said
    ``streaming`` again (``status_changes``). A reconcile-sourced fill outside every window of its
    account was missed with no fault to blame. If the stream had declared a gap itself at that
    time (it reported recovering/degraded, e.g. its staleness watchdog reconnected), the fill is
    reported as a note: the design worked (gap declared, reconciled) but the gap had no cause we
    injected. If the stream said it was streaming, the fill is a *silent* miss: a discrepancy.
``calm: missed = dropped``
    the last part of the run injects only ``drop``/``drop_rate`` into a healthy, converged
    service, so there the equality is exact: per account, the fills generated in that phase that
    PostgreSQL attributes to the reconcile path are exactly the fill events the venue dropped
    (plus undelivered ones, expected 0). Outside it the equality cannot hold and is not claimed:
    a disconnect, a silent socket, an expired listenKey, a refused handshake, a dead process or a
    PostgreSQL outage also make the stream miss fills the venue did send (frames in flight in a
    cut socket or a SIGKILLed process, a reconcile sweep landing first while the stream holds its
    batch); those are bounded by the two checks above instead.
``metrics``
    in the final fillstream process (counters restart with a process; its rows are those
    received after it was spawned): per account ``fills_total{stream} + fills_total{reconcile}``
    = its PostgreSQL rows, per source; ``fills_missed_by_stream_total`` +
    ``fills_before_stream_total`` = ``fills_total{reconcile}``; the outbox gauge reads 0 within
    90 s of the outbox table emptying (the relay resynchronises its count on a 60 s cycle); and
    over the calm phase the increase of ``fills_missed_by_stream_total`` equals the venue's
    dropped fill events.
    Replica mode (``--replicas N``): the same identities per replica, against each account's
    last owner and the rows received since its claim (:func:`check_metrics_replicas`).
``service``
    fillstream never exited by itself, and its final SIGTERM shutdown exited 0.
``convergence``
    after the generator stopped, PostgreSQL held the ground truth and the outbox was empty
    before the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from benchmarks.soak_facts import (
    AMOUNTS,
    FILL_FIELDS,
    JsFacts,
    PgFacts,
    close_view,
    fill_id,
    truth_closes,
    truth_fills,
)
from benchmarks.soak_faults import FaultRecord, Windows
from benchmarks.soak_replicas import ReplicaRecord
from benchmarks.soak_service import Metrics

EXAMPLES = 8


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    discrepancies: int = 0
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "discrepancies": self.discrepancies,
            "details": self.details,
        }


@dataclass
class CalmSlice:
    """One account's calm phase: truth fills [first, last) and the venue's counter increases."""

    first: int
    last: int = 0
    dropped: int = 0
    undelivered: int = 0


@dataclass
class RunRecord:
    """What the soak observed while it ran (the verifier's inputs besides the three stores)."""

    accounts: list[str]
    faults: list[FaultRecord]
    chaos_start_ms: int
    chaos_end_ms: int = 0
    calm_start_ms: int = 0
    calm_end_ms: int = 0
    calm: dict[str, CalmSlice] = field(default_factory=dict)
    metrics_calm: Metrics | None = None
    metrics_final: Metrics | None = None
    calm_same_process: bool = True
    final_spawn_wall: float = 0.0
    unexpected_exits: list[str] = field(default_factory=list)
    final_exit_code: int | None = None
    settled_s: float | None = None
    gauge_lag_s: float = 0.0  # until fillstream_outbox_pending read 0 after the table emptied
    settle_deadline_s: float = 0.0
    duplicated: dict[str, int] = field(default_factory=dict)
    window_before_ms: int = 5_000
    window_after_ms: int = 15_000
    replicas: ReplicaRecord | None = None  # replica mode (--replicas N)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return Decimal(str(a)) == Decimal(str(b))
        except ArithmeticError:
            return False
    return bool(a == b)


def _diff(want: dict[str, Any], got: dict[str, Any], fields: tuple[str, ...] | None = None) -> str:
    names = fields if fields is not None else tuple(want)
    return ", ".join(
        f"{n}: {want.get(n)!r} ≠ {got.get(n)!r}" for n in names if not _eq(want.get(n), got.get(n))
    )


def check_fills(
    truth: dict[str, dict[str, Any]], pg: PgFacts, js: JsFacts, accounts: list[str]
) -> Check:
    details: list[str] = []
    bad = 0
    tk, pk, jk = set(truth), set(pg.fills), set(js.fills)
    for name, have in (("PostgreSQL", pk), ("JetStream", jk)):
        missing, extra = tk - have, have - tk
        bad += len(missing) + len(extra)
        if missing:
            details.append(f"{name}: {len(missing)} missing, e.g. {sorted(missing)[:3]}")
        if extra:
            details.append(f"{name}: {len(extra)} not in ground truth, e.g. {sorted(extra)[:3]}")
    copies = {k: n for k, n in js.copies.items() if n > 1}
    if copies:
        bad += sum(n - 1 for n in copies.values())
        details.append(f"JetStream: {len(copies)} fills published more than once")
    if js.id_mismatches:
        bad += len(js.id_mismatches)
        details.append(f"JetStream: Nats-Msg-Id ≠ payload: {js.id_mismatches[:3]}")
    per = []
    for a in accounts:
        count = [sum(1 for k in keys if k.split(":", 2)[1] == a) for keys in (tk, pk, jk)]
        per.append(f"{a} {count[0]}/{count[1]}/{count[2]}")
    summary = (
        f"truth {len(tk):,} = PostgreSQL {len(pk):,} = JetStream {len(jk):,} "
        f"(per account truth/pg/js: {', '.join(per)})"
    )
    return Check("fills", bad == 0, summary, bad, details)


def check_fill_fields(truth: dict[str, dict[str, Any]], pg: PgFacts) -> Check:
    details: list[str] = []
    bad = 0
    compared = 0
    for key, want in truth.items():
        got = pg.fills.get(key)
        if got is None:
            continue
        compared += 1
        problem = _diff(want, got)
        if got["source"] == "stream" and (
            got["event_time_ms"] is None or got["event_time_ms"] < got["trade_time_ms"]
        ):
            problem += f" event_time_ms {got['event_time_ms']!r} (stream fill)"
        if problem:
            bad += 1
            if len(details) < EXAMPLES:
                details.append(f"{key} [{got['source']}]: {problem}")
    n_fields = len(next(iter(truth.values()), {}))
    summary = f"{compared:,} fills x {n_fields} venue fields: {bad} fill(s) differ"
    return Check("fill fields (truth = PostgreSQL)", bad == 0, summary, bad, details)


def check_js_fields(pg: PgFacts, js: JsFacts) -> Check:
    details: list[str] = []
    bad = 0
    compared = 0
    # Units are derived from the market, not stored: the soak trades USDⓈ-M (base quantity,
    # margin asset null: the account's, as commission_asset names it; no contract size).
    units = {"qty_unit": "base", "margin_asset": None, "contract_size": None}
    expected_keys = {*FILL_FIELDS, *units, "base_qty", "schema"}
    for key, row in pg.fills.items():
        msg = js.fills.get(key)
        if msg is None:
            continue
        compared += 1
        problem = _diff(row, msg, FILL_FIELDS)
        problem += "".join(
            f" {name} {msg.get(name)!r} != {want!r}"
            for name, want in units.items()
            if name in msg and msg[name] != want
        )
        if msg.get("base_qty") != msg.get("qty"):  # linear: the base quantity is qty
            problem += f" base_qty {msg.get('base_qty')!r} != qty {msg.get('qty')!r}"
        if set(msg) != expected_keys or msg.get("schema") != "fill/v1":
            problem += f" keys/schema {sorted(set(msg) ^ expected_keys)} {msg.get('schema')}"
        for name in AMOUNTS:
            if not isinstance(msg.get(name), str):
                problem += f" {name} is not a decimal string"
        if problem:
            bad += 1
            if len(details) < EXAMPLES:
                details.append(f"{key}: {problem}")
    summary = f"{compared:,} messages x {len(FILL_FIELDS)} fields: {bad} differ from PostgreSQL"
    return Check("fill fields (JetStream = PostgreSQL)", bad == 0, summary, bad, details)


def check_closes(truth_doc: dict[str, Any], pg: PgFacts, js: JsFacts) -> Check:
    truth = truth_closes(truth_doc)
    details: list[str] = []
    tk, pk, jk = set(truth), set(pg.closes), set(js.closes)
    bad = _close_ids(tk, pg, js, details)
    field_bad = _close_fields(truth, pg, js, details)
    pg_js = _closes_pg_vs_js(pk & jk, pg, js, details)
    bad += field_bad + pg_js
    reasons: dict[str, int] = {}
    for want in truth.values():
        reasons[want["reason"]] = reasons.get(want["reason"], 0) + 1
    revised = sum(1 for r in pg.close_revisions.values() if r > 0)
    summary = (
        f"truth {len(tk):,} = PostgreSQL {len(pk):,} = JetStream {len(jk):,}; "
        f"{field_bad} field mismatches, {pg_js} pg≠js; revised {revised}, "
        f"retracted {pg.retracted}; reasons "
        + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    )
    return Check("closes", bad == 0, summary, bad, details)


def _close_ids(truth: set[str], pg: PgFacts, js: JsFacts, details: list[str]) -> int:
    """Closes missing from, or extra in, PostgreSQL and JetStream."""
    bad = 0
    for name, have in (("PostgreSQL", set(pg.closes)), ("JetStream", set(js.closes))):
        missing, extra = truth - have, have - truth
        bad += len(missing) + len(extra)
        if missing:
            details.append(f"{name}: {len(missing)} close(s) missing, e.g. {sorted(missing)[:2]}")
        if extra:
            sample = sorted(extra)[:2]
            why = {(pg.closes.get(k) or js.closes.get(k) or {}).get("reason") for k in extra}
            details.append(f"{name}: {len(extra)} close(s) not in truth {why}, e.g. {sample}")
    return bad


def _close_fields(
    truth: dict[str, dict[str, Any]], pg: PgFacts, js: JsFacts, details: list[str]
) -> int:
    """Stored closes whose fields differ from the truth."""
    field_bad = 0
    for key, want in truth.items():
        for name, store in (("PostgreSQL", pg.closes), ("JetStream", js.closes)):
            payload = store.get(key)
            if payload is None:
                continue
            problem = _diff(want, close_view(payload))
            if problem:
                field_bad += 1
                if len(details) < EXAMPLES:
                    details.append(f"{name} {key}: {problem}")
    return field_bad


def _closes_pg_vs_js(keys: set[str], pg: PgFacts, js: JsFacts, details: list[str]) -> int:
    """Closes in both whose payload or revision differ."""
    pg_js = 0
    for key in keys:
        if pg.closes[key] != js.closes[key] or pg.close_revisions[key] != js.close_revisions[key]:
            pg_js += 1
            if len(details) < EXAMPLES:
                details.append(f"{key}: PostgreSQL payload ≠ JetStream payload")
    return pg_js


def _sources(pg: PgFacts, account: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in pg.fills.values():
        if row["account"] == account:
            out[row["source"]] = out.get(row["source"], 0) + 1
    return out


def check_attribution(truth_doc: dict[str, Any], pg: PgFacts, run: RunRecord) -> Check:
    details: list[str] = []
    bad = 0
    parts = []
    for a in run.accounts:
        facts = truth_doc["accounts"][a]
        src = _sources(pg, a)
        odd = {k: v for k, v in src.items() if k not in ("stream", "reconcile")}
        if odd:
            bad += sum(odd.values())
            details.append(f"{a}: fills with unknown source {odd}")
        stream, rec = src.get("stream", 0), src.get("reconcile", 0)
        total = sum(1 for row in pg.fills.values() if row["account"] == a)
        if stream + rec != total:
            bad += 1
            details.append(f"{a}: stream {stream} + reconcile {rec} ≠ {total}")
        unseen = facts["dropped_fill_events"] + facts["undelivered_fill_events"]
        floor = unseen - run.duplicated.get(a, 0)
        if rec < floor:
            bad += floor - rec
            details.append(
                f"{a}: reconcile delivered {rec} but the venue never sent {unseen} "
                f"(dropped {facts['dropped_fill_events']}, undelivered "
                f"{facts['undelivered_fill_events']}, duplicated {run.duplicated.get(a, 0)})"
            )
        parts.append(
            f"{a}: stream {stream:,} + reconcile {rec:,} = {total:,}; never sent {unseen:,} "
            f"(dropped {facts['dropped_fill_events']:,}), so {max(0, rec - unseen):,} "
            "more missed in blind windows"
        )
    return Check("attribution", bad == 0, "; ".join(parts), bad, details)


def _self_gaps(
    states: list[tuple[int, str, str]], before_ms: int, after_ms: int
) -> list[tuple[int, int, str]]:
    """Periods the stream itself declared it was not streaming (not the final ``stopped``):
    ``(from - before, back + after, reason)``."""
    out: list[tuple[int, int, str]] = []
    for i, (t, state, reason) in enumerate(states):
        if state in ("streaming", "stopped", "connecting"):
            continue
        back = next((u for u, s, _ in states[i:] if s == "streaming"), None)
        if back is not None:
            out.append((t - before_ms, back + after_ms, reason))
    return out


def check_misses_explained(truth_doc: dict[str, Any], pg: PgFacts, run: RunRecord) -> Check:
    windows = Windows.of(
        run.faults, run.accounts, run.window_before_ms, run.window_after_ms, pg.states
    )
    end = run.calm_start_ms or run.chaos_end_ms
    details: list[str] = []
    bad = 0
    parts = []
    for a in run.accounts:
        rec = [
            row
            for row in pg.fills.values()
            if row["account"] == a and row["source"] == "reconcile" and row["trade_time_ms"] < end
        ]
        unexplained = [r for r in rec if not windows.covers(a, r["trade_time_ms"])]
        gaps = _self_gaps(pg.states.get(a, []), run.window_before_ms, run.window_after_ms)
        declared: dict[str, int] = {}
        silent = []
        for r in unexplained:
            t = r["trade_time_ms"]
            reason = next((g[2] for g in gaps if g[0] <= t <= g[1]), None)
            if reason is None:
                silent.append(r)
            else:
                declared[reason] = declared.get(reason, 0) + 1
        bad += len(silent)
        for r in silent[:3]:
            key = fill_id(a, r["symbol"], r["trade_id"], r["order_id"])
            t = r["trade_time_ms"]
            near = min(pg.states.get(a, []), key=lambda x: abs(x[0] - t), default=None)
            said = "" if near is None else f"; nearest stream state: {near[1]} ({near[2]}) "
            said += "" if near is None else f"{(near[0] - t) / 1000:+.1f} s"
            details.append(f"{a}: {key} traded at {t}: no fault, stream said streaming{said}")
        if declared:
            details.append(
                f"{a}: note: {sum(declared.values())} fill(s) missed in gaps the stream declared "
                f"itself with no fault injected: {declared}"
            )
        coverage = windows.coverage(a, run.chaos_start_ms, end)
        parts.append(
            f"{a} {len(rec) - len(unexplained)}/{len(rec)} in fault windows "
            f"({coverage:.0%} of time), {len(unexplained) - len(silent)} in self-declared gaps, "
            f"{len(silent)} silent"
        )
    summary = (
        f"reconcile-sourced fills: fault windows are -{run.window_before_ms / 1000:g} s to "
        f"streaming again +{run.window_after_ms / 1000:g} s; " + "; ".join(parts)
    )
    return Check("stream misses explained", bad == 0, summary, bad, details)


def check_calm(truth_doc: dict[str, Any], pg: PgFacts, run: RunRecord) -> Check:
    if not run.calm:
        return Check("calm: missed = dropped", True, "no calm phase in this run")
    details: list[str] = []
    bad = 0
    parts = []
    for a, s in run.calm.items():
        rows = truth_doc["accounts"][a]["fills"][s.first : s.last]
        keys = [fill_id(a, f["symbol"], f["id"], f["orderId"]) for f in rows]
        missed = sum(1 for k in keys if (pg.fills.get(k) or {}).get("source") == "reconcile")
        expected = s.dropped + s.undelivered
        if missed != expected:
            bad += abs(missed - expected)
            details.append(
                f"{a}: {missed} of {len(keys)} calm fills came from reconcile; the venue dropped "
                f"{s.dropped} and left {s.undelivered} undelivered"
            )
        parts.append(f"{a} {missed}={expected}")
    fills = sum(s.last - s.first for s in run.calm.values())
    summary = f"{fills:,} fills in the calm phase; missed = dropped per account: " + ", ".join(
        parts
    )
    return Check("calm: missed = dropped", bad == 0, summary, bad, details)


def check_metrics(pg: PgFacts, run: RunRecord) -> Check:
    m = run.metrics_final
    if m is None:
        return Check("metrics", False, "no final /metrics scrape", 1)
    details: list[str] = []
    bad = 0
    parts = []
    for a in run.accounts:
        mine = [
            row
            for key, row in pg.fills.items()
            if row["account"] == a and pg.received_at[key] >= run.final_spawn_wall
        ]
        rows = {s: sum(1 for r in mine if r["source"] == s) for s in ("stream", "reconcile")}
        got = {
            s: int(m.value("fillstream_fills_total", account=a, source=s))
            for s in ("stream", "reconcile")
        }
        missed = int(m.value("fillstream_fills_missed_by_stream_total", account=a))
        missed += int(m.value("fillstream_fills_before_stream_total", account=a))
        if got != rows:
            bad += abs(got["stream"] - rows["stream"]) + abs(got["reconcile"] - rows["reconcile"])
            details.append(f"{a}: fills_total {got} ≠ PostgreSQL rows of this process {rows}")
        if missed != got["reconcile"]:
            bad += abs(missed - got["reconcile"])
            details.append(
                f"{a}: missed_by_stream + before_stream {missed} ≠ fills_total{{reconcile}}"
            )
        parts.append(f"{a} {got['stream']:,}+{got['reconcile']:,}={len(mine):,}")
    pending = m.value("fillstream_outbox_pending")
    if pending:
        bad += int(pending)
        when = (
            f"{run.gauge_lag_s:.0f} s after the outbox table was empty"
            if run.settled_s is not None
            else "at the end (the outbox never emptied)"
        )
        details.append(f"fillstream_outbox_pending = {pending:g} {when}")
    summary = "final process, stream+reconcile = rows: " + ", ".join(parts)
    summary += f"; outbox gauge 0 after {run.gauge_lag_s:.0f} s" if not pending else ""
    if run.calm and run.metrics_calm is not None:
        if not run.calm_same_process:
            details.append("fillstream restarted during the calm phase: calm delta not checked")
            bad += 1
        else:
            deltas = []
            for a, s in run.calm.items():
                name = "fillstream_fills_missed_by_stream_total"
                before = run.metrics_calm.value(name, account=a)
                after = m.value(name, account=a)
                delta = int(after - before)
                if delta != s.dropped + s.undelivered:
                    bad += abs(delta - s.dropped - s.undelivered)
                    details.append(
                        f"{a}: missed_by_stream rose {delta} in the calm phase; venue dropped "
                        f"{s.dropped} (+{s.undelivered} undelivered)"
                    )
                deltas.append(f"{a} {delta}={s.dropped + s.undelivered}")
            summary += "; calm missed_by_stream increase = dropped: " + ", ".join(deltas)
    return Check("metrics", bad == 0, summary, bad, details)


def check_metrics_replicas(pg: PgFacts, run: RunRecord) -> Check:
    """``metrics`` in replica mode: per replica and account, missed_by_stream + before_stream =
    fills_total{reconcile}; per account, its last owner's fills_total = the PostgreSQL rows
    received since its claim (the fence refuses every other process's write from then on),
    where that owner holds it since its one acquisition (a replica that held the account
    earlier in its life counted those rows too: reported, not compared); the outbox gauges read
    0; over the calm phase the increase of missed_by_stream summed over the replicas equals the
    venue's dropped fill events (no replica restarted, no account changed owner)."""
    rec = run.replicas
    assert rec is not None
    details: list[str] = []
    bad = sum(1 for m in rec.metrics_final if m is None)
    if bad:
        details.append(f"{bad} replica(s) gave no final /metrics scrape")
    bad += _replica_identities(rec, run.accounts, details)
    owners_bad, summary = _last_owners(pg, rec, run.accounts, details)
    bad += owners_bad
    pending = sum(m.value("fillstream_outbox_pending") for m in rec.metrics_final if m is not None)
    if pending:
        bad += int(pending)
        details.append(f"outbox gauges sum to {pending:g} after the outbox table was empty")
    if run.calm and all(m is not None for m in rec.metrics_calm):
        calm_bad, calm = _calm_replicas(rec, run, details)
        bad += calm_bad
        summary += calm
    return Check("metrics", bad == 0, summary, bad, details)


def _replica_identities(rec: ReplicaRecord, accounts: list[str], details: list[str]) -> int:
    bad = 0
    for i, m in enumerate(rec.metrics_final):
        if m is None:
            continue
        for a in accounts:
            missed = m.value("fillstream_fills_missed_by_stream_total", account=a)
            missed += m.value("fillstream_fills_before_stream_total", account=a)
            reconcile = m.value("fillstream_fills_total", account=a, source="reconcile")
            if missed != reconcile:
                bad += int(abs(missed - reconcile))
                details.append(f"r{i} {a}: missed + before_stream {missed:g} ≠ {reconcile:g}")
    return bad


def _last_owners(
    pg: PgFacts, rec: ReplicaRecord, accounts: list[str], details: list[str]
) -> tuple[int, str]:
    bad, checked, parts = 0, 0, []
    for a in accounts:
        owner = rec.owners_final.get(a)
        index = next(
            (i for i, member in enumerate(rec.members_final) if owner and member == owner[0]),
            None,
        )
        m = None if index is None else rec.metrics_final[index]
        if owner is None or m is None:
            bad += 1
            details.append(f"{a}: its last owner {owner} is not a live replica")
            continue
        stints = m.value("fillstream_replica_handovers_total", account=a, kind="acquired")
        if stints != 1:
            parts.append(f"{a} r{index} {stints:g} stints (not compared)")
            continue
        mine = [
            r for k, r in pg.fills.items() if r["account"] == a and pg.received_at[k] >= owner[1]
        ]
        rows = {s: sum(1 for r in mine if r["source"] == s) for s in ("stream", "reconcile")}
        got = {
            s: int(m.value("fillstream_fills_total", account=a, source=s))
            for s in ("stream", "reconcile")
        }
        checked += 1
        if got != rows:
            bad += abs(got["stream"] - rows["stream"]) + abs(got["reconcile"] - rows["reconcile"])
            details.append(f"{a}: r{index} fills_total {got} ≠ rows since its claim {rows}")
        parts.append(f"{a} r{index} {got['stream']:,}+{got['reconcile']:,}={len(mine):,}")
    summary = (
        f"last owners, stream+reconcile = rows since the claim ({checked}/{len(accounts)} "
        "accounts held in one stint): " + ", ".join(parts)
    )
    return bad, summary


def _calm_replicas(rec: ReplicaRecord, run: RunRecord, details: list[str]) -> tuple[int, str]:
    moved = sorted(
        a for a in run.accounts if rec.epochs_calm_end.get(a) != rec.epochs_calm_start.get(a)
    )
    if not run.calm_same_process or moved:
        details.append(
            f"a replica restarted or accounts {moved} moved in the calm phase: calm delta "
            "not checked"
        )
        return 1, ""
    bad, deltas = 0, []
    name = "fillstream_fills_missed_by_stream_total"
    for a, sl in run.calm.items():
        delta = int(
            sum(
                m.value(name, account=a) - c.value(name, account=a)
                for m, c in zip(rec.metrics_final, rec.metrics_calm, strict=True)
                if m is not None and c is not None
            )
        )
        if delta != sl.dropped + sl.undelivered:
            bad += abs(delta - sl.dropped - sl.undelivered)
            details.append(
                f"{a}: missed_by_stream rose {delta} in the calm phase; venue dropped "
                f"{sl.dropped} (+{sl.undelivered} undelivered)"
            )
        deltas.append(f"{a} {delta}={sl.dropped + sl.undelivered}")
    return bad, "; calm missed_by_stream increase = dropped: " + ", ".join(deltas)


def check_service(run: RunRecord) -> Check:
    bad = len(run.unexpected_exits) + (run.final_exit_code != 0)
    summary = (
        f"{len(run.unexpected_exits)} unexpected exit(s); final SIGTERM exit code "
        f"{run.final_exit_code}"
    )
    return Check("service", bad == 0, summary, bad, list(run.unexpected_exits))


def check_convergence(run: RunRecord, pg: PgFacts) -> Check:
    ok = run.settled_s is not None and pg.outbox_pending == 0
    summary = (
        f"converged {run.settled_s:.1f} s after the generator stopped"
        if run.settled_s is not None
        else f"not converged within {run.settle_deadline_s:g} s"
    ) + f"; outbox pending {pg.outbox_pending}"
    return Check("convergence", ok, summary, 0 if ok else 1)


def verify(truth_doc: dict[str, Any], pg: PgFacts, js: JsFacts, run: RunRecord) -> list[Check]:
    truth = truth_fills(truth_doc)
    return [
        check_fills(truth, pg, js, run.accounts),
        check_fill_fields(truth, pg),
        check_js_fields(pg, js),
        check_closes(truth_doc, pg, js),
        check_attribution(truth_doc, pg, run),
        check_misses_explained(truth_doc, pg, run),
        check_calm(truth_doc, pg, run),
        check_metrics(pg, run) if run.replicas is None else check_metrics_replicas(pg, run),
        check_service(run),
        check_convergence(run, pg),
    ]
