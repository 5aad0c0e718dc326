"""Facts counted in three places, to prove "nothing lost, nothing duplicated" end to end.

* the venue's ground truth (the simulator's ``/_sim/ledger`` document, design.md §5),
* PostgreSQL (``fills``, ``position_closes``),
* JetStream (messages on ``<prefix>.fill.>`` and ``<prefix>.position.closed.>``).

Each becomes a :class:`Tally`: fill ids and close ids (the ``Nats-Msg-Id`` forms of design.md
§5) with the close reasons, plus how many fill copies were seen, so duplicates show; and the
balance fact ids of spot accounts (``balance_changes``, ``<prefix>.balance.>``: PostgreSQL and
JetStream must agree; the ground truth lists balances only when its document has them). Used by
``fillstream demo --duration`` and by the end-to-end tests.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


class Tally(msgspec.Struct, kw_only=True):
    """Fill ids → copies seen; close ids (first revision) → reason of the latest revision;
    balance fact ids → copies seen."""

    fills: collections.Counter[str] = msgspec.field(default_factory=collections.Counter)
    closes: dict[str, str] = msgspec.field(default_factory=dict)
    balances: collections.Counter[str] = msgspec.field(default_factory=collections.Counter)

    @property
    def fill_ids(self) -> set[str]:
        return set(self.fills)

    @property
    def duplicate_fills(self) -> int:
        return sum(n - 1 for n in self.fills.values() if n > 1)

    def for_account(self, account: str) -> Tally:
        def mine(msg_id: str) -> bool:
            return msg_id.split(":", 2)[1] == account

        return Tally(
            fills=collections.Counter({k: v for k, v in self.fills.items() if mine(k)}),
            closes={k: v for k, v in self.closes.items() if mine(k)},
            balances=collections.Counter({k: v for k, v in self.balances.items() if mine(k)}),
        )


def truth_from_ledger(doc: Mapping[str, Any], market: str = "usdm") -> Tally:
    """From the simulator's ``/_sim/ledger`` document (each account's own ``market`` when the
    document gives it, else ``market``)."""
    tally = Tally()
    for account, facts in doc.get("accounts", {}).items():
        market = str(facts.get("market", market))
        for f in facts.get("fills", []):
            tally.fills[f"fill:{account}:{market}:{f['symbol']}:{f['id']}:{f['orderId']}"] += 1
        for c in facts.get("closes", []):
            key = f"close:{account}:{market}:{c['symbol']}:{c['positionSide']}:{c['closeTradeId']}"
            tally.closes[key] = str(c["reason"])
    return tally


async def tally_postgres(conn: asyncpg.Connection, accounts: Iterable[str]) -> Tally:
    """Fills and effective closes (latest revision, not retracted) stored for ``accounts``."""
    names = list(accounts)
    tally = Tally()
    rows = await conn.fetch(
        "SELECT account, market, symbol, trade_id, order_id FROM fills WHERE account = ANY($1)",
        names,
    )
    for r in rows:
        tally.fills[f"fill:{r[0]}:{r[1]}:{r[2]}:{r[3]}:{r[4]}"] += 1
    closes = await conn.fetch(
        "SELECT DISTINCT ON (close_id) close_id, reason, retracted_at IS NOT NULL"
        " FROM position_closes WHERE account = ANY($1) ORDER BY close_id, revision DESC",
        names,
    )
    for close_id, reason, retracted in closes:
        if not retracted:
            tally.closes[close_id] = reason
    balances = await conn.fetch(
        "SELECT account, market, asset, kind, time_ms FROM balance_changes WHERE account = ANY($1)",
        names,
    )
    for r in balances:
        tally.balances[f"balance:{r[0]}:{r[1]}:{r[2]}:{r[3]}:{r[4]}"] += 1
    return tally


class _ClosePayload(msgspec.Struct):
    reason: str = ""
    revision: int = 0


_close_decoder = msgspec.json.Decoder(_ClosePayload)


async def tally_jetstream(
    nc: NatsClient, stream: str, prefix: str, accounts: Iterable[str]
) -> Tally:
    """Every fill and close message in ``stream`` for ``accounts``, read with an ephemeral
    consumer (nothing acknowledged, nothing changed). Closes are replayed in stream order: a
    revision replaces the close, a retraction (on ``position.corrected``) withdraws it."""
    wanted = set(accounts)
    tally = Tally()
    messages: list[tuple[int, str, bytes]] = []
    for subject in ("fill", "position.closed", "position.corrected", "balance"):
        messages += await _read_all(nc, stream, f"{prefix}.{subject}.>")
    closes: dict[str, tuple[int, str]] = {}
    for _, msg_id, data in sorted(messages):
        kind, _, rest = msg_id.partition(":")
        target = rest if kind == "retracted" else msg_id
        if target.count(":") < 2 or target.split(":", 2)[1] not in wanted:
            continue
        if kind == "fill":
            tally.fills[msg_id] += 1
        elif kind == "balance":
            tally.balances[msg_id] += 1
        elif kind == "close":
            payload = _close_decoder.decode(data)
            base = _close_base(msg_id)
            if base not in closes or closes[base][0] <= payload.revision:
                closes[base] = (payload.revision, payload.reason)
        elif kind == "retracted":
            closes.pop(_close_base(rest), None)
    tally.closes = {base: reason for base, (_, reason) in closes.items()}
    return tally


def _close_base(msg_id: str) -> str:
    """``close:…:<trade>:r2`` → ``close:…:<trade>`` (revisions carry ``:r<n>``)."""
    head, _, last = msg_id.rpartition(":")
    if last.startswith("r") and last[1:].isdigit() and head.count(":") >= 5:
        return head
    return msg_id


async def _read_all(nc: NatsClient, stream: str, subject: str) -> list[tuple[int, str, bytes]]:
    """``(stream sequence, Nats-Msg-Id, payload)`` of every message on ``subject``."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subject,
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    out: list[tuple[int, str, bytes]] = []
    try:
        if not (await sub.consumer_info()).num_pending:
            return out  # nothing on the subject: no fetch timeout to wait out
        while True:
            try:
                msgs = await sub.fetch(batch=1000, timeout=2.0)
            except TimeoutError:  # nats-py raises asyncio.TimeoutError or its subclass
                break
            out.extend(
                (m.metadata.sequence.stream, (m.headers or {}).get("Nats-Msg-Id", ""), m.data)
                for m in msgs
            )
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


class Comparison(msgspec.Struct, kw_only=True):
    """Ground truth against PostgreSQL and JetStream."""

    truth: Tally
    postgres: Tally
    jetstream: Tally

    @property
    def fills_equal(self) -> bool:
        return (
            self.truth.fill_ids == self.postgres.fill_ids == self.jetstream.fill_ids
            and self.postgres.duplicate_fills == 0
            and self.jetstream.duplicate_fills == 0
        )

    @property
    def closes_equal(self) -> bool:
        return self.truth.closes == self.postgres.closes == self.jetstream.closes

    @property
    def balances_equal(self) -> bool:
        """PostgreSQL = JetStream, no copies (and = the truth when it lists balances)."""
        truth = self.truth.balances
        return (
            set(self.postgres.balances) == set(self.jetstream.balances)
            and (not truth or set(truth) == set(self.postgres.balances))
            and all(n == 1 for n in self.postgres.balances.values())
            and all(n == 1 for n in self.jetstream.balances.values())
        )

    @property
    def equal(self) -> bool:
        return self.fills_equal and self.closes_equal and self.balances_equal

    def problems(self) -> list[str]:
        """Human-readable differences (empty when equal)."""
        out: list[str] = []
        truth = self.truth.fill_ids
        for name, tally in (("PostgreSQL", self.postgres), ("JetStream", self.jetstream)):
            missing, extra = truth - tally.fill_ids, tally.fill_ids - truth
            if missing:
                out.append(f"{name}: {len(missing)} fill(s) missing, e.g. {sorted(missing)[0]}")
            if extra:
                out.append(f"{name}: {len(extra)} fill(s) not in ground truth")
            if tally.duplicate_fills:
                out.append(f"{name}: {tally.duplicate_fills} duplicate fill(s)")
            for close_id, reason in sorted(self.truth.closes.items()):
                got = tally.closes.get(close_id)
                if got is None:
                    out.append(f"{name}: close missing: {close_id}")
                elif got != reason:
                    out.append(f"{name}: close {close_id} reason {got}, truth says {reason}")
            for close_id in sorted(set(tally.closes) - set(self.truth.closes)):
                out.append(f"{name}: close not in ground truth: {close_id}")
        if not self.balances_equal:
            pg, js = set(self.postgres.balances), set(self.jetstream.balances)
            out.append(
                f"balances: {len(pg - js)} in PostgreSQL only, {len(js - pg)} on JetStream only, "
                f"{len(self.truth.balances)} in the ground truth"
            )
        return out
