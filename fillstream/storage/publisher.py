"""JetStream publisher: ensures the stream, publishes with ``Nats-Msg-Id``, acks pipelined.

Publishing one message at a time and awaiting each ack costs a round trip per message; here a
round sends up to ``window`` messages before waiting for the oldest ack, and every ack comes
back on one wildcard inbox of ours. nats-py's ``publish_async`` does the same, but it leaks its
in-flight slot whenever the underlying publish raises (NATS reconnecting with a full buffer), and
its futures never time out, which is exactly the situation a relay must survive; so the few
lines of ack bookkeeping live here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import logging
import re
from collections.abc import Sequence

import msgspec
import nats
import nats.errors
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
    ) -> None:
        if max_age_s and max_age_s < duplicate_window_s:
            raise ValueError("max_age_s must cover the duplicate window")
        self.nc = nc
        self.stream = stream
        self.prefix = prefix
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self.replicas = replicas
        self.storage = storage
        self.window = window
        self.ack_timeout_s = ack_timeout_s
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
        )

    async def ensure_stream(self) -> None:
        """Create the stream, or bring the settings we own up to date (idempotent).

        On an existing stream only subjects, duplicate window, max age and replicas are changed;
        whatever else an operator configured (limits, placement, ...) is kept, and the storage
        type, which JetStream cannot change in place, is left as it is (with a warning).
        """
        js = self.nc.jetstream()
        wanted = self.stream_config()
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(wanted)
            self.stream_missing = False
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
        )
        if updated != current:
            await js.update_stream(updated)
        self.stream_missing = False

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
        fut = self._waiting.pop(msg.subject[len(self._inbox) + 1 :], None)
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
            log.warning("JetStream refused a message: %s", ack.error)
            fut.set_result(PublishOutcome.FAILED)
        else:
            fut.set_result(PublishOutcome.DUPLICATE if ack.duplicate else PublishOutcome.ACKED)

    async def publish_many(self, messages: Sequence[OutboxMessage]) -> list[PublishOutcome]:
        """Publish in order with at most ``window`` acks outstanding; one outcome per message.

        A round gives up (the rest FAILED) as soon as NATS is disconnected, a publish is refused
        locally, or the oldest outstanding ack has not come within ``ack_timeout_s``.
        """
        outcomes = [PublishOutcome.FAILED] * len(messages)
        if not messages or not self.nc.is_connected:
            metrics.PUBLISH_TOTAL.labels("failed").inc(len(messages))
            return outcomes
        await self.start()
        futures: list[asyncio.Future[PublishOutcome]] = []
        tokens: list[str] = []
        try:
            await self._send_all(messages, futures, tokens)
            pending = [f for f in futures if not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=self.ack_timeout_s)
        finally:
            for i, (token, fut) in enumerate(zip(tokens, futures, strict=True)):
                if fut.done():
                    outcomes[i] = fut.result()
                else:
                    self._waiting.pop(token, None)
                    fut.cancel()
        acked = sum(1 for o in outcomes if o is PublishOutcome.ACKED)
        duplicate = sum(1 for o in outcomes if o is PublishOutcome.DUPLICATE)
        metrics.PUBLISH_TOTAL.labels("acked").inc(acked)
        metrics.PUBLISH_TOTAL.labels("duplicate").inc(duplicate)
        metrics.PUBLISH_TOTAL.labels("failed").inc(len(outcomes) - acked - duplicate)
        return outcomes

    async def _send_all(
        self,
        messages: Sequence[OutboxMessage],
        futures: list[asyncio.Future[PublishOutcome]],
        tokens: list[str],
    ) -> None:
        # Whole window-fulls at a time: every free slot is filled before one flush (one socket
        # write), rather than one write per message as each ack frees a slot.
        loop = asyncio.get_running_loop()
        settled = 0  # futures[:settled] are done
        sent = 0
        while sent < len(messages):
            while settled < len(futures) and futures[settled].done():
                settled += 1
            if len(futures) - settled >= self.window:
                if not await self._settle(futures[settled]):
                    return
                continue
            room = self.window - (len(futures) - settled)
            burst = messages[sent : sent + room]
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

    async def _write(self, burst: Sequence[OutboxMessage], tokens: Sequence[str]) -> None:
        """HPUB frames built here and queued on nats-py's connection, flushed once.

        nats-py's ``publish`` costs ~20 µs of Python per message (subject checks, a header
        dict encoded through regexes, a future and a queue put per flush request); our subjects
        and message ids are made of safe tokens by construction, so the frames are built
        directly. Anything unusual (a space or line break, a reconnect) takes nats-py's path.
        """
        nc = self.nc
        if not nc.is_connected or nc.is_draining_pubs:
            raise nats.errors.ConnectionClosedError
        inbox = self._inbox
        frames: list[bytes] = []
        for message, token in zip(burst, tokens, strict=True):
            subject, msg_id, payload = message.subject, message.msg_id, message.payload
            if _UNSAFE.search(subject) or _UNSAFE.search(msg_id):
                await self._flush_frames(frames)
                frames = []
                await nc.publish(
                    subject, payload, reply=f"{inbox}.{token}", headers={MSG_ID_HEADER: msg_id}
                )
                continue
            hdr = b"NATS/1.0\r\nNats-Msg-Id: " + msg_id.encode() + b"\r\n\r\n"
            head = f"HPUB {subject} {inbox}.{token} {len(hdr)} {len(hdr) + len(payload)}\r\n"
            frames.append(b"".join((head.encode(), hdr, payload, b"\r\n")))
        await self._flush_frames(frames)

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
