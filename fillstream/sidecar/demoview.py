"""The demo's live terminal view: PostgreSQL, the metrics and the venue, redrawn every second.

Every second :func:`gather` reads the :class:`Figures` worth showing: per account the fills
stored (by the path that delivered each first), the closes in effect (latest revision, retracted
ones left out: the same rule as the final summary), how the REST-first fills split (missed by
the stream / from before its first session, from the metrics) and what the venue never delivered
(dropped by a fault / sent to no live socket). :class:`LiveView` renders them with the stream
states, fills/s by path, last-event age and reconcile cursor lag, the closes by reason, the outbox
and the faults injected so far. On a TTY the screen is redrawn in place; otherwise a compact
progress line is printed every few seconds.

The figures add up, and the legend under the table says how: ``stored = stream + REST``,
``REST = missed + before stream``, and the venue's lost fill events (``dropped`` by a fault +
``undelivered``: no live socket) are the ones only REST could deliver, so they equal ``REST``. A
difference shows as ``≠`` (a frame lost inside a socket the venue cut, a poll landing before a
slow stream).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

import asyncpg
from prometheus_client import REGISTRY

from fillstream.sidecar.tally import tally_postgres
from fillstream.simulator import Simulator

_CLEAR = "\x1b[H\x1b[2J"
LEGEND = (
    "legend: stored = stream + REST; REST = missed (the stream was up) + before stream "
    "(history); venue lost (never sent) = REST"
)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass(frozen=True)
class AccountFigures:
    """One account's counts (PostgreSQL, the metrics, the venue)."""

    stream: int = 0  # fills first delivered by the stream (fills.source = stream)
    rest: int = 0  # fills first delivered by the REST reconcile (fills.source = reconcile)
    missed: int = 0  # fillstream_fills_missed_by_stream_total
    before_stream: int = 0  # fillstream_fills_before_stream_total
    dropped: int = 0  # venue: fill events a drop fault swallowed
    undelivered: int = 0  # venue: fill events no live socket received
    closes: dict[str, int] = field(default_factory=dict)  # reason → closes in effect

    @property
    def stored(self) -> int:
        return self.stream + self.rest

    @property
    def close_count(self) -> int:
        return sum(self.closes.values())

    @property
    def venue_lost(self) -> int:
        return self.dropped + self.undelivered


@dataclass(frozen=True)
class Figures:
    accounts: dict[str, AccountFigures]

    def reasons(self) -> list[str]:
        return sorted({r for a in self.accounts.values() for r in a.closes})


async def gather(
    conn: asyncpg.Connection, sim: Simulator, accounts: Sequence[str], market: str = "usdm"
) -> Figures:
    """The figures of ``accounts`` now."""
    rows = await conn.fetch(
        "SELECT account, source, count(*) FROM fills WHERE account = ANY($1) GROUP BY 1, 2",
        list(accounts),
    )
    by_source = {(r[0], r[1]): int(r[2]) for r in rows}
    closes = (await tally_postgres(conn, accounts)).closes
    out: dict[str, AccountFigures] = {}
    for name in accounts:
        reasons: dict[str, int] = {}
        for close_id, reason in closes.items():
            if close_id.split(":", 2)[1] == name:
                reasons[reason] = reasons.get(reason, 0) + 1
        m = {"account": name, "market": sim.config.market(name) if market == "usdm" else market}
        venue = sim.states.get(name) or sim.spot_states[name]
        out[name] = AccountFigures(
            stream=by_source.get((name, "stream"), 0),
            rest=by_source.get((name, "reconcile"), 0),
            missed=int(_value("fillstream_fills_missed_by_stream_total", **m)),
            before_stream=int(_value("fillstream_fills_before_stream_total", **m)),
            dropped=venue.dropped_fill_events,
            undelivered=venue.undelivered_fill_events,
            closes=reasons,
        )
    return Figures(accounts=out)


@dataclass
class LiveView:
    """Renders screens of :class:`Figures`; ``states`` gives each account's stream state."""

    accounts: Sequence[str]
    market: str = "usdm"
    markets: Mapping[str, str] = field(default_factory=dict)  # per account, overrides market
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

    def _rate(self, account: str, source: str) -> float:
        market = self.markets.get(account, self.market)
        total = _value("fillstream_fills_total", account=account, market=market, source=source)
        now = time.monotonic()
        before = self._last.get((account, source))
        self._last[(account, source)] = (now, total)
        if before is None or now <= before[0]:
            return 0.0
        return (total - before[1]) / (now - before[0])

    def _gauge(self, name: str, account: str) -> str:
        market = self.markets.get(account, self.market)
        v = REGISTRY.get_sample_value(name, {"account": account, "market": market})
        return "-" if v is None else f"{v:.1f}s"

    def _accounts_block(self, figures: Figures, states: Mapping[str, str]) -> list[str]:
        lines = [
            f"{'account':<8} {'stream state':<13} {'fills/s ws':>10} {'fills/s rest':>12} "
            f"{'stored':>7} {'closes':>7} {'last event':>10} {'cursor lag':>10}"
        ]
        for name in self.accounts:
            f = figures.accounts[name]
            lines.append(
                f"{name:<8} {states.get(name, '?'):<13} {self._rate(name, 'stream'):>10.1f} "
                f"{self._rate(name, 'reconcile'):>12.1f} {f.stored:>7} {f.close_count:>7} "
                f"{self._gauge('fillstream_stream_last_event_age_seconds', name):>10} "
                f"{self._gauge('fillstream_reconcile_cursor_lag_seconds', name):>10}"
            )
        return lines

    def _paths_block(self, figures: Figures) -> list[str]:
        lines = [
            f"{'first seen':<10} {'stream':>6} {'REST':>6}   {'missed':>6}   {'before stream':>13}"
            f"   {'venue lost':>10}   {'dropped':>7}   {'undelivered':>11}"
        ]
        for name in self.accounts:
            f = figures.accounts[name]
            split = "=" if f.missed + f.before_stream == f.rest else "≠"
            venue = "=" if f.venue_lost == f.rest else "≠"
            lines.append(
                f"{name:<10} {f.stream:>6} {f.rest:>6} {split} {f.missed:>6} + "
                f"{f.before_stream:>13} {venue} {f.venue_lost:>10} = {f.dropped:>7} + "
                f"{f.undelivered:>11}"
            )
        return lines

    def _reasons_block(self, figures: Figures) -> list[str]:
        reasons = figures.reasons()
        if not reasons:
            return ["closes by reason: none yet"]
        # Spot accounts have no positions, so no closes (docs/subjects.md): no column of zeros.
        closing = [n for n in self.accounts if self.markets.get(n, self.market) != "spot"]
        head = "".join(f" {name:>8}" for name in closing)
        lines = [f"{'closes by reason':<20}{head} {'total':>8}"]
        for reason in reasons:
            counts = [figures.accounts[n].closes.get(reason, 0) for n in closing]
            cells = "".join(f" {c:>8}" for c in counts)
            lines.append(f"  {reason:<18}{cells} {sum(counts):>8}")
        return lines

    def render(self, figures: Figures, states: Mapping[str, str]) -> str:
        total = f" of {self.duration_s:g} s" if self.duration_s else " (Ctrl-C to stop)"
        pending = int(_value("fillstream_outbox_pending"))
        published = sum(
            _value("fillstream_publish_total", outcome=k) for k in ("acked", "duplicate")
        )
        return "\n".join(
            [
                f"fillstream demo  {self._clock()} elapsed{total}",
                self.header,
                "",
                *self._accounts_block(figures, states),
                "",
                *self._paths_block(figures),
                LEGEND,
                "",
                *self._reasons_block(figures),
                "",
                f"outbox pending: {pending}   published to JetStream: {int(published)}",
                "",
                "faults injected:",
                *(f"  {e}" for e in self.events[-8:]),
                "",
                self.footer,
            ]
        )

    def draw(self, out: IO[str], figures: Figures, states: Mapping[str, str], *, tty: bool) -> None:
        if tty:
            out.write(_CLEAR + self.render(figures, states) + "\n")
        else:
            parts = [
                f"{n}={states.get(n, '?')} stored={f.stored} rest={f.rest} closes={f.close_count}"
                for n, f in figures.accounts.items()
            ]
            pending = int(_value("fillstream_outbox_pending"))
            out.write(f"[{self._clock()}] {'  '.join(parts)}  outbox={pending}\n")
        out.flush()
