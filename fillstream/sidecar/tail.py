"""``fillstream tail``: print what is being published, one line per message.

Live (default): a core NATS subscription on ``<prefix>.>``; JetStream publishes are ordinary
subject messages, so this sees them the moment they are stored. With ``since_ms``: an ephemeral
ordered JetStream consumer on the stream, replaying from that time and then following live.

Each line is ``<subject> <payload>``; with ``show_ids`` the ``Nats-Msg-Id`` goes between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import IO

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from fillstream.sidecar.clients import connect_nats_servers
from fillstream.sidecar.config import NatsConfig, nats_tls_context


async def tail(
    *,
    nats: NatsConfig,
    subject: str,
    out: IO[str],
    stream: str | None = None,
    since_ms: int | None = None,
    count: int | None = None,
    show_ids: bool = False,
    timeout_s: float | None = None,
) -> int:
    """Print messages until SIGINT/SIGTERM, ``count`` messages, or ``timeout_s``; returns how
    many were printed. Connects with ``nats``' TLS and credentials settings and no retry loop:
    raises :class:`~fillstream.sidecar.clients.Unreachable` (naming the servers) within the
    connect timeout, at once when the credentials or TLS are refused."""
    nc = await connect_nats_servers(
        list(nats.servers),
        name="fillstream-tail",
        reconnect=False,
        connect_timeout_s=nats.connect_timeout_s,
        credentials_file=nats.credentials_file,
        tls=nats_tls_context(nats),
        tls_hostname=nats.tls_hostname,
    )
    done = asyncio.Event()
    printed = 0

    async def on_message(msg: Msg) -> None:
        nonlocal printed
        if count is not None and printed >= count:
            return
        msg_id = (msg.headers or {}).get("Nats-Msg-Id", "-")
        payload = msg.data.decode("utf-8", errors="replace")
        line = f"{msg.subject} {msg_id} {payload}" if show_ids else f"{msg.subject} {payload}"
        out.write(line + "\n")
        out.flush()
        printed += 1
        if count is not None and printed >= count:
            done.set()

    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, done.set)
            installed.append(sig)
    try:
        if since_ms is None:
            await nc.subscribe(subject, cb=on_message)
        else:
            start = datetime.fromtimestamp(since_ms / 1000, tz=UTC)
            await nc.jetstream().subscribe(
                subject,
                stream=stream,
                cb=on_message,
                ordered_consumer=True,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_TIME,
                    opt_start_time=start,
                ),
            )
        await nc.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout_s)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await nc.close()
    return printed
