"""JetStream publisher: ensures the stream, publishes with ``Nats-Msg-Id``, acks pipelined.

Publishing one message at a time and awaiting each ack costs a round trip per message; here a
round sends up to ``window`` messages before waiting for the oldest ack, and every ack comes
back on one wildcard inbox of ours. nats-py's ``publish_async`` does the same, but it leaks its
in-flight slot whenever the underlying publish raises (NATS reconnecting with a full buffer), and
its futures never time out, which is exactly the situation a relay must survive; so the few
lines of ack bookkeeping live here.

**Atomic batches** (nats-server ≥ 2.12, stream ``allow_atomic``): a call of more than one message
is sent as atomic batches of up to ``atomic_batch`` messages (``Nats-Batch-Id``,
``Nats-Batch-Sequence``, the last one ``Nats-Batch-Commit: 1`` and the only one acknowledged).
JetStream stores a batch all or nothing, with one fsync under ``sync_interval: always`` where
per-message publishing pays one per message. Every message keeps its own ``Nats-Msg-Id``, and
the server refuses a whole batch holding an id it already stored (measured on nats-server 2.15:
err_code 10201, nothing of the batch stored): after a crash the relay republishes rows JetStream
may have, so a refused batch is published again message by message, where each duplicate is
acknowledged as such. A stream that refuses atomic publishing (an older server, an operator's
setting) turns it off for this publisher; messages are then published one by one as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from fillstream.storage import metrics
from fillstream.storage.payloads import OutboxMessage

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
_UNSAFE = re.compile(r"[\s]|^$")  # what a subject token or header value must not hold
_STATUS_HEADER = "Status"
ATOMIC_MAX = 1000  # nats-server's limit on the messages of one atomic batch
_ATOMIC_DUPLICATE = 10201  # "atomic publish batch contains duplicate message id"
_ATOMIC_DISABLED = 10174  # "atomic publish is disabled" (allow_atomic off on the stream)
_ATOMIC_REFUSALS = (_ATOMIC_DUPLICATE, _ATOMIC_DISABLED)  # handled (and logged) by the caller

_Unit = Sequence[OutboxMessage]  # what one ack answers for: one message, or one atomic batch


class PublishOutcome(enum.StrEnum):
    ACKED = "acked"  # stored now
    DUPLICATE = "duplicate"  # already stored (same Nats-Msg-Id within the duplicate window)
    FAILED = "failed"  # not known to be stored: publish again

    @property
    def stored(self) -> bool:
        return self is not PublishOutcome.FAILED


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str | None = None
    seq: int | None = None
    duplicate: bool = False
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


async def connect(
    servers: str | list[str], *, name: str = "fillstream", reconnect_time_wait_s: float = 0.5
) -> NATS:
    """A NATS connection that reconnects forever (the relay copes with the outage meanwhile)."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s", exc)

    return await nats.connect(
        servers,
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=reconnect_time_wait_s,
        error_cb=on_error,
    )


class JetStreamPublisher:
    """Publishes outbox messages to one JetStream stream (``<prefix>.>``).

    ``publish_many`` never raises for NATS trouble: each message gets an outcome, and a message
    is only reported stored when JetStream acknowledged it (or reported it a duplicate).
    """

    def __init__(
        self,
        nc: NATS,
        *,
        stream: str = "FILLSTREAM",
        prefix: str = "fillstream",
        duplicate_window_s: float = 7200.0,
        max_age_s: float = 30 * 86400.0,
        replicas: int = 1,
        storage: StorageType = StorageType.FILE,
        window: int = 256,
        ack_timeout_s: float = 5.0,
        atomic_batch: int = 250,
        atomic_in_flight: int = 4,
    ) -> None:
        if max_age_s and max_age_s < duplicate_window_s:
            raise ValueError("max_age_s must cover the duplicate window")
        if not 0 <= atomic_batch <= ATOMIC_MAX:
            raise ValueError(f"atomic_batch must be within 0..{ATOMIC_MAX}")
        self.nc = nc
        self.stream = stream
        self.prefix = prefix
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self.replicas = replicas
        self.storage = storage
        self.window = window
        self.ack_timeout_s = ack_timeout_s
        # Messages per atomic batch (0 or 1: every message published on its own) and batches
        # awaiting their commit's ack at once (nats-server allows 50 per stream).
        self.atomic_batch = atomic_batch
        self.atomic_in_flight = max(1, atomic_in_flight)
        self.atomic = atomic_batch > 1  # off once the stream refused atomic publishing
        self._batch_prefix = secrets.token_hex(6)
        self._refusals: dict[str, int] = {}  # token → err_code of an ack that refused
        # Frames go on nats-py's private write buffer (see _write) only if it is still there.
        self.raw_frames = all(
            hasattr(nc, name) for name in ("_pending", "_pending_data_size", "_flush_pending")
        )
        self._inbox = ""
        self._sub: Subscription | None = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[PublishOutcome]] = {}
        self.stream_missing = False  # JetStream said no stream takes our subjects

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            duplicate_window=self.duplicate_window_s,
            max_age=self.max_age_s,
            num_replicas=self.replicas,
            storage=self.storage,
            allow_atomic=True if self.atomic_batch > 1 else None,
        )

    async def ensure_stream(self) -> None:
        """Create the stream, or bring the settings we own up to date (idempotent).

        On an existing stream only subjects, duplicate window, max age, replicas and
        ``allow_atomic`` are changed; whatever else an operator configured (limits, placement,
        ...) is kept, and the storage type, which JetStream cannot change in place, is left as it
        is (with a warning). A stream that will not take ``allow_atomic`` (a server before 2.12,
        ``persist_mode: async``) is kept as it is and published to one message at a time.
        """
        js = self.nc.jetstream()
        wanted = self.stream_config()
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            await self._apply(js.add_stream, wanted, None)
            return
        current = info.config
        if current.storage is not None and current.storage != wanted.storage:
            log.warning(
                "stream %s uses %s storage, not %s: JetStream cannot change it in place",
                self.stream,
                current.storage,
                wanted.storage,
            )
        updated = dataclasses.replace(
            current,
            subjects=wanted.subjects,
            duplicate_window=wanted.duplicate_window,
            max_age=wanted.max_age,
            num_replicas=wanted.num_replicas,
            allow_atomic=wanted.allow_atomic or current.allow_atomic,
        )
        await self._apply(js.update_stream, updated, current)

    async def _apply(
        self,
        call: Callable[[StreamConfig], Awaitable[object]],
        config: StreamConfig,
        current: StreamConfig | None,
    ) -> None:
        """Create or update the stream with ``config``; without ``allow_atomic`` if refused."""
        atomic = bool(config.allow_atomic)
        if config != current:
            try:
                await call(config)
            except nats.js.errors.APIError as exc:
                if not atomic or (current is not None and current.allow_atomic):
                    raise
                log.warning(
                    "stream %s refused allow_atomic (%s): publishing one message at a time",
                    self.stream,
                    exc.description,
                )
                atomic = False
                config = dataclasses.replace(config, allow_atomic=None)
                if config != current:
                    await call(config)
        self.stream_missing = False
        self.atomic = atomic and self.atomic_batch > 1

    async def start(self) -> None:
        """Subscribe the ack inbox (also done lazily by the first publish)."""
        if self._sub is None:
            self._inbox = self.nc.new_inbox()
            self._sub = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)

    async def aclose(self) -> None:
        """Stop listening for acks; waiting publishes end as failed. Idempotent."""
        sub, self._sub = self._sub, None
        if sub is not None and not self.nc.is_closed:
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:
                log.debug("ack inbox unsubscribe: %s", exc)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_result(PublishOutcome.FAILED)
        self._waiting.clear()

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject[len(self._inbox) + 1 :]
        fut = self._waiting.pop(token, None)
        if fut is None or fut.done():
            return
        if msg.headers and msg.headers.get(_STATUS_HEADER) == "503":
            if not self.stream_missing:
                log.warning("no stream listens on %s.>", self.prefix)
            self.stream_missing = True
            fut.set_result(PublishOutcome.FAILED)
            return
        try:
            ack = _ack_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("undecodable JetStream ack: %r", msg.data[:200])
            fut.set_result(PublishOutcome.FAILED)
            return
        if ack.error is not None or ack.seq is None:
            if ack.error is not None and ack.error.err_code:
                self._refusals[token] = ack.error.err_code
            if ack.error is None or ack.error.err_code not in _ATOMIC_REFUSALS:
                log.warning("JetStream refused a message: %s", ack.error)
            fut.set_result(PublishOutcome.FAILED)
        else:
            fut.set_result(PublishOutcome.DUPLICATE if ack.duplicate else PublishOutcome.ACKED)

    async def publish_many(
        self, messages: Sequence[OutboxMessage], *, atomic: bool = True
    ) -> list[PublishOutcome]:
        """Publish in order; one outcome per message. Never raises for NATS trouble.

        More than one message goes as atomic batches (see the module docstring) while the stream
        accepts them, unless ``atomic`` is False (messages mostly stored already, as in a
        republish: a batch holding one would be refused); otherwise at most ``window`` acks are
        outstanding. A round gives up (the
        rest FAILED) as soon as NATS is disconnected, a publish is refused locally, or the oldest
        outstanding ack has not come within ``ack_timeout_s``.
        """
        if not messages or not self.nc.is_connected:
            metrics.PUBLISH_TOTAL.labels("failed").inc(len(messages))
            return [PublishOutcome.FAILED] * len(messages)
        await self.start()
        if atomic and self.atomic and len(messages) > 1:
            outcomes = await self._publish_atomic(messages)
        else:
            outcomes = await self._publish_each(messages)
        acked = sum(1 for o in outcomes if o is PublishOutcome.ACKED)
        duplicate = sum(1 for o in outcomes if o is PublishOutcome.DUPLICATE)
        metrics.PUBLISH_TOTAL.labels("acked").inc(acked)
        metrics.PUBLISH_TOTAL.labels("duplicate").inc(duplicate)
        metrics.PUBLISH_TOTAL.labels("failed").inc(len(outcomes) - acked - duplicate)
        return outcomes

    async def _publish_each(self, messages: Sequence[OutboxMessage]) -> list[PublishOutcome]:
        """One ack per message, ``window`` outstanding."""
        results = await self._round([(m,) for m in messages], self.window)
        return [outcome for outcome, _ in results]

    async def _publish_atomic(self, messages: Sequence[OutboxMessage]) -> list[PublishOutcome]:
        """Atomic batches of ``atomic_batch``; a batch the stream refused goes again one by one."""
        size = self.atomic_batch
        units = [messages[i : i + size] for i in range(0, len(messages), size)]
        results = await self._round(units, self.atomic_in_flight)
        outcomes: list[PublishOutcome] = []
        again: list[int] = []  # positions in outcomes of the messages of refused batches
        for unit, (outcome, refusal) in zip(units, results, strict=True):
            if refusal is not None:
                self._note_refusal(refusal)
                again.extend(range(len(outcomes), len(outcomes) + len(unit)))
            outcomes.extend([outcome] * len(unit))
        if again:
            retried = await self._publish_each([messages[i] for i in again])
            for i, outcome in zip(again, retried, strict=True):
                outcomes[i] = outcome
        return outcomes

    def _note_refusal(self, err_code: int) -> None:
        if err_code == _ATOMIC_DUPLICATE:
            log.debug("atomic batch holds a message JetStream has: publishing it one by one")
        elif err_code == _ATOMIC_DISABLED and self.atomic:
            log.warning(
                "stream %s refuses atomic batches (allow_atomic off): publishing one by one",
                self.stream,
            )
            self.atomic = False

    async def _round(
        self, units: Sequence[_Unit], window: int
    ) -> list[tuple[PublishOutcome, int | None]]:
        """Send ``units`` with at most ``window`` acks outstanding; per unit, its outcome and
        the err_code of the ack if JetStream answered with a refusal."""
        futures: list[asyncio.Future[PublishOutcome]] = []
        tokens: list[str] = []
        results: list[tuple[PublishOutcome, int | None]] = [(PublishOutcome.FAILED, None)] * len(
            units
        )
        try:
            await self._send_all(units, window, futures, tokens)
            pending = [f for f in futures if not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=self.ack_timeout_s)
        finally:
            for i, (token, fut) in enumerate(zip(tokens, futures, strict=True)):
                if fut.done():
                    results[i] = (fut.result(), self._refusals.pop(token, None))
                else:
                    self._waiting.pop(token, None)
                    fut.cancel()
        return results

    async def _send_all(
        self,
        units: Sequence[_Unit],
        window: int,
        futures: list[asyncio.Future[PublishOutcome]],
        tokens: list[str],
    ) -> None:
        # Whole window-fulls at a time: every free slot is filled before one flush (one socket
        # write), rather than one write per unit as each ack frees a slot.
        loop = asyncio.get_running_loop()
        settled = 0  # futures[:settled] are done
        sent = 0
        while sent < len(units):
            while settled < len(futures) and futures[settled].done():
                settled += 1
            if len(futures) - settled >= window:
                if not await self._settle(futures[settled]):
                    return
                continue
            room = window - (len(futures) - settled)
            burst = units[sent : sent + room]
            for _ in burst:
                token = str(next(self._tokens))
                fut: asyncio.Future[PublishOutcome] = loop.create_future()
                self._waiting[token] = fut
                futures.append(fut)
                tokens.append(token)
            try:
                await self._write(burst, tokens[-len(burst) :])
            except (nats.errors.Error, OSError) as exc:
                log.warning("publish refused locally: %r", exc)
                for token in tokens[-len(burst) :]:
                    self._waiting.pop(token, None)
                del futures[-len(burst) :]
                del tokens[-len(burst) :]
                return
            sent += len(burst)

    async def _write(self, burst: Sequence[_Unit], tokens: Sequence[str]) -> None:
        """HPUB frames built here and queued on nats-py's connection, flushed once.

        nats-py's ``publish`` costs ~20 µs of Python per message (subject checks, a header
        dict encoded through regexes, a future and a queue put per flush request); our subjects
        and message ids are made of safe tokens by construction, so the frames are built
        directly. Anything unusual (a space or line break, a reconnect) takes nats-py's path,
        and so does everything if a nats-py release no longer has the private write buffer
        (``raw_frames`` False). The reply subject (our inbox and the unit's token) goes on a
        unit's last message only.
        """
        nc = self.nc
        if not nc.is_connected or nc.is_draining_pubs:
            raise nats.errors.ConnectionClosedError
        frames: list[bytes] = []
        for unit, token in zip(burst, tokens, strict=True):
            reply = f"{self._inbox}.{token}"
            if len(unit) == 1:
                message = unit[0]
                if not (self.raw_frames and _safe(message)):
                    await self._flush_frames(frames)
                    frames = []
                    await self._publish_unsafe(message, reply, {})
                    continue
                frames.append(_frame(message, reply, b""))
            else:
                frames = await self._batch_frames(
                    unit, reply, f"{self._batch_prefix}-{token}", frames
                )
        await self._flush_frames(frames)

    async def _batch_frames(
        self, unit: _Unit, reply: str, batch_id: str, frames: list[bytes]
    ) -> list[bytes]:
        """Append one atomic batch's frames; returns the frames still to flush."""
        last = len(unit)
        for seq, message in enumerate(unit, 1):
            extra = f"Nats-Batch-Id: {batch_id}\r\nNats-Batch-Sequence: {seq}\r\n"
            if seq == last:
                extra += "Nats-Batch-Commit: 1\r\n"
            if not (self.raw_frames and _safe(message)):
                await self._flush_frames(frames)
                frames = []
                headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(seq)}
                if seq == last:
                    headers["Nats-Batch-Commit"] = "1"
                await self._publish_unsafe(message, reply if seq == last else "", headers)
                continue
            frames.append(_frame(message, reply if seq == last else "", extra.encode()))
        return frames

    async def _publish_unsafe(
        self, message: OutboxMessage, reply: str, headers: dict[str, str]
    ) -> None:
        await self.nc.publish(
            message.subject,
            message.payload,
            reply=reply,
            headers={MSG_ID_HEADER: message.msg_id, **headers},
        )

    async def _flush_frames(self, frames: list[bytes]) -> None:
        if not frames:
            return
        nc = self.nc
        size = sum(map(len, frames))
        nc._pending.extend(frames)  # private: see _write
        nc._pending_data_size += size
        nc.stats["out_msgs"] += len(frames)
        nc.stats["out_bytes"] += size
        await nc._flush_pending()

    async def _settle(self, fut: asyncio.Future[PublishOutcome]) -> bool:
        # False only when the ack did not come: NATS is gone, stop sending into the void. A
        # message JetStream refused fails alone and the round goes on.
        if not fut.done():
            await asyncio.wait([fut], timeout=self.ack_timeout_s)
        return fut.done()


def _safe(message: OutboxMessage) -> bool:
    return not (_UNSAFE.search(message.subject) or _UNSAFE.search(message.msg_id))


def _frame(message: OutboxMessage, reply: str, extra_headers: bytes) -> bytes:
    """One HPUB frame: ``Nats-Msg-Id`` and ``extra_headers`` (whole ``Name: value\\r\\n`` lines)."""
    hdr = b"NATS/1.0\r\nNats-Msg-Id: " + message.msg_id.encode() + b"\r\n" + extra_headers + b"\r\n"
    payload = message.payload
    total = len(hdr) + len(payload)
    head = (
        f"HPUB {message.subject} {reply} {len(hdr)} {total}\r\n"
        if reply
        else f"HPUB {message.subject} {len(hdr)} {total}\r\n"
    )
    return b"".join((head.encode(), hdr, payload, b"\r\n"))
