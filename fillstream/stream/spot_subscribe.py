"""The signed spot subscription: an account's credentials, ``userDataStream.subscribe.signature``
with its clock re-sync, and the one-shot check ``fillstream check`` runs.

The signature covers ``apiKey``, ``timestamp`` (fresh on every attempt) and ``recvWindow`` when
configured (:func:`~fillstream.binance.spot.wsapi.subscribe_params`); any key type signs it
(:class:`~fillstream.binance.signing.Signer`: HMAC, RSA, Ed25519).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fillstream.binance import VenueError
from fillstream.binance.budget import WeightBudgets
from fillstream.binance.errors import TIMESTAMP_OUTSIDE_WINDOW
from fillstream.binance.signing import Signer
from fillstream.binance.spot import wsapi
from fillstream.stream.buffer import FrameBuffer
from fillstream.stream.config import StreamSettings
from fillstream.stream.connection import Frame as QueuedFrame
from fillstream.stream.wsapi_pool import WsApiPool
from fillstream.stream.wsapi_session import Member, WsApiSession

log = logging.getLogger("fillstream.stream")


@dataclass(frozen=True)
class SpotCredentials:
    """The account's API key and its signer (HMAC, RSA or Ed25519); never printed."""

    api_key: str
    signer: Signer

    def __repr__(self) -> str:
        return f"SpotCredentials({self.api_key[:4]}…, {self.signer!r})"


async def subscribe(
    pool: WsApiPool,
    session: WsApiSession,
    member: Member,
    credentials: SpotCredentials,
    settings: StreamSettings,
) -> int:
    """``userDataStream.subscribe.signature`` with a fresh timestamp; a ``-1021`` re-syncs the
    clock (the venue's ``time``) and tries once more on the same connection at once."""

    async def attempt() -> int:
        params = wsapi.subscribe_params(
            credentials.api_key,
            credentials.signer,
            timestamp_ms=pool.now_ms(),  # fresh on every attempt: a stale one is -1021
            recv_window_ms=settings.recv_window_ms or None,
        )
        return await session.subscribe(member, params)

    try:
        return await attempt()
    except VenueError as exc:
        if exc.code != TIMESTAMP_OUTSIDE_WINDOW:
            raise
        log.warning("%s: %s; re-syncing the clock", member.account, exc.message)
        await pool.resync_time(session)
        return await attempt()


class _Probe:
    """The member of a one-shot subscription (:func:`check_subscription`); its few events are
    never read (the subscription ends at once)."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.buffer: FrameBuffer[QueuedFrame | None] = FrameBuffer(1 << 20)

    def on_subscription_ended(self, session: WsApiSession, reason: str) -> None:
        return None


async def check_subscription(
    account: str,
    credentials: SpotCredentials,
    settings: StreamSettings,
    *,
    budgets: WeightBudgets | None = None,
) -> int:
    """Subscribe once and unsubscribe, on a connection of its own (``fillstream check``): the
    subscription id the venue gave. Raises ``VenueError`` (the key or signature was refused:
    ``is_auth``; ``-1021`` even after a clock re-sync) or what connecting raises
    (:data:`~.connection.CONNECT_ERRORS`, ``TimeoutError``)."""
    pool = WsApiPool(settings.ws_url, settings, budgets=budgets)
    probe = _Probe(account)
    try:
        session = await pool.place(probe)
        sid = await subscribe(pool, session, probe, credentials, settings)
        await session.unsubscribe(sid)
        return sid
    finally:
        await pool.aclose(settings.close_timeout_s + 1)
