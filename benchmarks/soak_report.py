"""The soak's JSON report and its one-screen rendering."""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.soak_facts import JsFacts, PgFacts
from benchmarks.soak_verify import Check, RunRecord


def report_json(
    *,
    opts: dict[str, Any],
    record: RunRecord,
    checks: list[Check],
    truth: dict[str, Any],
    pg: PgFacts,
    js: JsFacts,
    phases: dict[str, float],
    notes: list[str],
    machine: dict[str, Any],
) -> dict[str, Any]:
    accounts: dict[str, Any] = {}
    for a in record.accounts:
        facts = truth["accounts"][a]
        sources = Counter(row["source"] for row in pg.fills.values() if row["account"] == a)
        accounts[a] = {
            "fills": len(facts["fills"]),
            "closes": len(facts["closes"]),
            "stream": sources.get("stream", 0),
            "reconcile": sources.get("reconcile", 0),
            "dropped_fill_events": facts["dropped_fill_events"],
            "undelivered_fill_events": facts["undelivered_fill_events"],
        }
    load_s = (record.calm_end_ms or record.chaos_end_ms) - record.chaos_start_ms
    fills = sum(v["fills"] for v in accounts.values())
    kinds = Counter(r.kind for r in record.faults)
    discrepancies = sum(c.discrepancies for c in checks)
    final: dict[str, Any] = {}
    m = record.metrics_final
    if m is not None:
        final = {
            "reconnects_by_reason": m.by_label("fillstream_stream_reconnects_total", "reason"),
            "gaps_by_reason": m.by_label("fillstream_stream_gaps_total", "reason"),
            "decode_errors_by_kind": m.by_label("fillstream_stream_decode_errors_total", "kind"),
            "account_restarts": m.value("fillstream_account_restarts_total"),
            "watchdog_by_verdict": m.by_label("fillstream_stream_watchdog_checks_total", "verdict"),
        }
    return {
        "result": "PASS" if all(c.ok for c in checks) else "FAIL",
        "discrepancies": discrepancies,
        "options": opts,
        "machine": machine,
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "load_s": round(load_s / 1000, 1),
        "fills": fills,
        "fills_per_s": round(fills / max(load_s / 1000, 1e-9), 1),
        "closes": sum(v["closes"] for v in accounts.values()),
        "jetstream_messages_read": js.messages,
        "accounts": accounts,
        "faults_by_kind": dict(sorted(kinds.items())),
        "faults_failed": [r.to_json() for r in record.faults if r.error],
        "checks": [c.to_json() for c in checks],
        "final_process_metrics": final,
        "notes": notes,
        "replicas": None if record.replicas is None else record.replicas.to_json(record.faults),
        "faults": [r.to_json() for r in record.faults],
    }


def render(report: dict[str, Any]) -> str:
    o = report["options"]
    acc = report["accounts"]
    stream = sum(v["stream"] for v in acc.values())
    rec = sum(v["reconcile"] for v in acc.values())
    dropped = sum(v["dropped_fill_events"] for v in acc.values())
    undelivered = sum(v["undelivered_fill_events"] for v in acc.values())
    kinds = report["faults_by_kind"]
    lines = [
        "",
        "=" * 100,
        f"fillstream chaos soak  seed {o['seed']}  {report['load_s']:g} s of load  "
        f"{report['fills']:,} fills ({report['fills_per_s']:,.0f}/s) over {o['accounts']} "
        f"accounts  {report['closes']:,} closes",
        f"faults {sum(kinds.values())}: " + ", ".join(f"{k} {v}" for k, v in kinds.items()),
        f"paths: stream {stream:,}  reconcile {rec:,} ({rec / max(1, stream + rec):.2%}); venue "
        f"dropped {dropped:,} and could not deliver {undelivered:,} fill events",
        "phases: " + ", ".join(f"{k} {v:g}" for k, v in report["phases_s"].items()),
        "last process: reconnects "
        + ", ".join(
            f"{k} {v:g}"
            for k, v in report["final_process_metrics"].get("reconnects_by_reason", {}).items()
        ),
        "-" * 100,
    ]
    if report.get("replicas"):
        r = report["replicas"]
        f, c = r["failover_s"], r["failover_s_no_other_fault"]
        lines.insert(
            -1,
            f"replicas {r['replicas']}: {f['n']} accounts failed over after owner kills, back "
            f"streaming in min {f['min']} / p50 {f['p50']} / p90 {f['p90']} / max {f['max']} s; "
            f"{c['n']} with no other fault meanwhile: p50 {c['p50']} / max {c['max']} s",
        )
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        lines.append(f"{mark} {c['name']:<38} {c['summary']}"[:400])
        lines.extend(f"       {d}"[:300] for d in c["details"][:5])
    for note in report["notes"]:
        lines.append(f"note: {note}")
    for f in report["faults_failed"][:5]:
        lines.append(f"note: fault #{f['n']} {f['kind']} could not be applied: {f['error']}")
    lines.append("-" * 100)
    lines.append(
        f"RESULT: {report['result']} ({report['discrepancies']} discrepancies)  "
        f"machine: {report['machine']['cpus']} cpus, load {report['machine']['loadavg_1m']}"
    )
    lines.append("=" * 100)
    return "\n".join(lines)
