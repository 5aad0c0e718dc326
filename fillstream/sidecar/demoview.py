"""The demo's live terminal view, drawn from the Prometheus registry and the supervisors.

:class:`LiveView` samples the metrics every second and renders one screen: per account its
stream state, fills/s by source, fills the stream missed, closes, last-event age and reconcile
cursor lag; closes by reason; outbox pending; the faults injected so far. On a TTY the screen is
redrawn in place; otherwise a compact progress line is printed every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from prometheus_client import REGISTRY

_CLEAR = "\x1b[H\x1b[2J"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _by_label(family: str, label: str, **match: str) -> dict[str, float]:
    """Sum of ``family``'s ``_total`` samples by ``label``, among samples matching ``match``."""
    out: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != family:
            continue
        for s in metric.samples:
            if s.name.endswith("_created") or any(s.labels.get(k) != v for k, v in match.items()):
                continue
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + s.value
    return out


@dataclass
class AccountRow:
    name: str
    state: str
    stream_per_s: float
    reconcile_per_s: float
    stored: int
    missed: int
    closes: int
    last_event_age_s: float | None
    cursor_lag_s: float | None


@dataclass
class Snapshot:
    elapsed_s: float
    rows: list[AccountRow]
    closes_by_reason: dict[str, int]
    outbox_pending: int
    published: int


@dataclass
class LiveView:
    """Samples the registry and renders screens; ``states`` gives each account's stream state."""

    accounts: Sequence[str]
    market: str = "usdm"
    header: str = ""
    footer: str = ""
    duration_s: float | None = None
    events: list[str] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic)
    _last: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """Record something that happened (a fault injected), shown with its time."""
        self.events.append(f"{self._clock()} {text}")

    def _clock(self) -> str:
        elapsed = int(time.monotonic() - self._started)
        return f"{elapsed // 60:02d}:{elapsed % 60:02d}"

    def _rate(self, account: str, source: str, total: float) -> float:
        now = time.monotonic()
        before = self._last.get((account, source))
        self._last[(account, source)] = (now, total)
        if before is None or now <= before[0]:
            return 0.0
        return (total - before[1]) / (now - before[0])

    def sample(self, states: Mapping[str, str]) -> Snapshot:
        rows: list[AccountRow] = []
        for name in self.accounts:
            m = {"account": name, "market": self.market}
            stream = _value("fillstream_fills_total", **m, source="stream")
            recon = _value("fillstream_fills_total", **m, source="reconcile")
            age = REGISTRY.get_sample_value("fillstream_stream_last_event_age_seconds", m)
            lag = REGISTRY.get_sample_value("fillstream_reconcile_cursor_lag_seconds", m)
            rows.append(
                AccountRow(
                    name=name,
                    state=states.get(name, "?"),
                    stream_per_s=self._rate(name, "stream", stream),
                    reconcile_per_s=self._rate(name, "reconcile", recon),
                    stored=int(stream + recon),
                    missed=int(_value("fillstream_fills_missed_by_stream_total", **m)),
                    closes=int(sum(_by_label("fillstream_closes", "reason", **m).values())),
                    last_event_age_s=age,
                    cursor_lag_s=lag,
                )
            )
        reasons = _by_label("fillstream_closes", "reason")
        published = _by_label("fillstream_publish", "outcome")
        return Snapshot(
            elapsed_s=time.monotonic() - self._started,
            rows=rows,
            closes_by_reason={k: int(v) for k, v in sorted(reasons.items()) if v},
            outbox_pending=int(_value("fillstream_outbox_pending")),
            published=int(sum(v for k, v in published.items() if k in ("acked", "duplicate"))),
        )

    def render(self, snap: Snapshot) -> str:
        def secs(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}s"

        total = f" of {self.duration_s:g} s" if self.duration_s else " (Ctrl-C to stop)"
        lines = [
            f"fillstream demo  {self._clock()} elapsed{total}",
            self.header,
            "",
            f"{'account':<8} {'stream state':<13} {'fills/s ws':>10} {'fills/s rest':>12} "
            f"{'stored':>7} {'missed':>7} {'closes':>7} {'last event':>10} {'cursor lag':>10}",
        ]
        for r in snap.rows:
            lines.append(
                f"{r.name:<8} {r.state:<13} {r.stream_per_s:>10.1f} {r.reconcile_per_s:>12.1f} "
                f"{r.stored:>7} {r.missed:>7} {r.closes:>7} {secs(r.last_event_age_s):>10} "
                f"{secs(r.cursor_lag_s):>10}"
            )
        reasons = ", ".join(f"{k} {v}" for k, v in snap.closes_by_reason.items()) or "none yet"
        lines += [
            "",
            f"closes by reason: {reasons}",
            f"outbox pending: {snap.outbox_pending}   published to JetStream: {snap.published}",
            "",
            "faults injected:",
            *(f"  {e}" for e in self.events[-8:]),
            "",
            self.footer,
        ]
        return "\n".join(lines)

    def draw(self, out: IO[str], states: Mapping[str, str], *, tty: bool) -> None:
        snap = self.sample(states)
        if tty:
            out.write(_CLEAR + self.render(snap) + "\n")
        else:
            parts = [
                f"{r.name}={r.state} stored={r.stored} missed={r.missed} closes={r.closes}"
                for r in snap.rows
            ]
            out.write(f"[{self._clock()}] {'  '.join(parts)}  outbox={snap.outbox_pending}\n")
        out.flush()
