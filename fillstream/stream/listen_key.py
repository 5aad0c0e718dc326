"""The listenKey lifecycle of one account over the :class:`~fillstream.binance.Venue` protocol.

Binance facts (binance-facts.md §1.1): POST is an idempotent get-or-create that extends the key
60 min; PUT extends it; ``-1125`` means the key is gone; DELETE kills it for every process sharing
it. Errors are classified as data (``VenueError`` properties): auth failures stop this account,
429/418 honour ``Retry-After`` (the venue wrapper shares the ban per host), timeouts and 5xx back
off (jittered, ≥ 1 s, every account's keepalive retries paced together).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from typing import Final

from fillstream.binance import Venue, VenueError
from fillstream.stream.backoff import Backoff, pacer
from fillstream.stream.config import StreamSettings, mask
from fillstream.stream.metrics import StreamMetrics

log = logging.getLogger("fillstream.stream.listen_key")

_KEEPALIVES: Final = pacer("listen_key.keepalive")


class AuthFailedError(Exception):
    """The venue rejected the account's credentials (-2014/-2015/-1022/401): stop retrying."""

    def __init__(self, cause: VenueError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class KeepaliveOutcome(enum.Enum):
    OK = "ok"
    CHANGED = "key_changed"  # the venue answered with another key: ours is no longer the one
    GONE = "listen_key_gone"  # -1125
    FAILED = "keepalive_failed"  # hard failure (non-retryable, or retries exhausted)


def outcome_label(exc: VenueError) -> str:
    """The ``outcome`` label of a failed listenKey operation."""
    if exc.is_auth:
        return "auth_failed"
    if exc.is_listen_key_gone:
        return "gone"
    if exc.is_banned:
        return "banned"
    if exc.is_rate_limited:
        return "rate_limited"
    if exc.is_unknown_outcome:
        return "server_error"
    return "error"


class ListenKeyManager:
    """Creates, keeps alive and deletes one account's listenKey.

    ``key`` is the key the socket should use (None before the first successful create).
    """

    def __init__(
        self, venue: Venue, account: str, settings: StreamSettings, metrics: StreamMetrics
    ) -> None:
        self._venue = venue
        self._account = account
        self._settings = settings
        self._metrics = metrics
        self.key: str | None = None
        # A stable per-account offset spreads a fleet's keepalives over the jitter window.
        self._offset_s = random.Random(account).uniform(0.0, settings.keepalive_jitter_s)

    def keepalive_delay_s(self) -> float:
        """Seconds from one keepalive to the next for this account."""
        return self._settings.keepalive_interval_s + self._offset_s

    async def acquire(self) -> str:
        """POST: the account's active key (extended 60 min) or a new one.

        Raises :class:`AuthFailedError` on credential errors and ``VenueError`` otherwise (the
        caller backs off, honouring ``retry_after_s``).
        """
        try:
            key = await self._venue.create_listen_key()
        except VenueError as exc:
            self._metrics.listen_key("create", outcome_label(exc))
            if exc.is_auth:
                raise AuthFailedError(exc) from exc
            raise
        self._metrics.listen_key("create", "ok")
        if self.key is not None and key != self.key:
            log.info("%s: listenKey changed %s → %s", self._account, mask(self.key), mask(key))
        self.key = key
        return key

    async def keepalive(self) -> KeepaliveOutcome:
        """PUT, retrying retryable failures (honouring ``Retry-After``) a few times.

        Raises :class:`AuthFailedError` on credential errors.
        """
        attempts = self._settings.keepalive_attempts
        retry_s = self._settings.keepalive_retry_s
        backoff = Backoff(retry_s, retry_s * 2 ** max(0, attempts - 1))
        for attempt in range(attempts):
            try:
                key = await self._venue.keepalive_listen_key()
            except VenueError as exc:
                self._metrics.listen_key("keepalive", outcome_label(exc))
                if exc.is_auth:
                    raise AuthFailedError(exc) from exc
                if exc.is_listen_key_gone:
                    log.warning("%s: keepalive: listenKey gone (-1125)", self._account)
                    return KeepaliveOutcome.GONE
                if not exc.retryable or attempt == attempts - 1:
                    log.warning("%s: keepalive failed: %s", self._account, exc)
                    return KeepaliveOutcome.FAILED
                await asyncio.sleep(_KEEPALIVES.delay(time.monotonic(), backoff.after(exc)))
                continue
            self._metrics.listen_key("keepalive", "ok")
            if key and self.key is not None and key != self.key:
                log.warning(
                    "%s: keepalive returned another key %s (had %s)",
                    self._account,
                    mask(key),
                    mask(self.key),
                )
                return KeepaliveOutcome.CHANGED
            return KeepaliveOutcome.OK
        return KeepaliveOutcome.FAILED  # pragma: no cover - the loop always returns

    async def release(self) -> None:
        """DELETE the key, unless configured not to (another process may share it).

        Never raises ``VenueError``: shutdown goes on, the key expires within 60 min anyway.
        """
        if self.key is None or not self._settings.delete_key_on_shutdown:
            return
        try:
            await self._venue.close_listen_key()
        except VenueError as exc:
            self._metrics.listen_key("close", outcome_label(exc))
            log.warning("%s: listenKey delete failed: %s", self._account, exc)
            return
        self._metrics.listen_key("close", "ok")
        self.key = None
