"""Binance's answers as data: the error codes fillstream acts on, and :class:`VenueError`.

The venue said no (HTTP status + Binance code); whether to retry is a lookup on the error's
properties, never a parse of its message.
"""

from __future__ import annotations

from fillstream.ledger.errors import FillstreamError

AUTH_CODES = frozenset({-2014, -2015, -1022})  # bad key format, key/IP/permission, signature
LISTEN_KEY_GONE = -1125
ORDER_DOES_NOT_EXIST = -2013
ORDER_ARCHIVED = -2026  # spot: a CANCELED/EXPIRED order without fills, archived after 90 days
TIMESTAMP_OUTSIDE_WINDOW = -1021
TOO_MANY_REQUESTS = -1003
UNKNOWN_STATUS_CODES = frozenset({-1006, -1007})  # the request may have succeeded


class VenueError(FillstreamError):
    """The exchange answered with an error (or did not answer: ``status`` 0).

    ``retry_after_s`` is the ``Retry-After`` header on 429/418, when present.
    """

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        *,
        endpoint: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{endpoint or 'venue'}: HTTP {status} code {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.endpoint = endpoint
        self.retry_after_s = retry_after_s

    @property
    def is_auth(self) -> bool:
        """The key is wrong, lacks permission, or the IP is not whitelisted: retrying won't help."""
        return self.code in AUTH_CODES or self.status == 401

    @property
    def is_rate_limited(self) -> bool:
        return self.status == 429 or self.code == TOO_MANY_REQUESTS

    @property
    def is_banned(self) -> bool:
        return self.status == 418

    @property
    def is_listen_key_gone(self) -> bool:
        return self.code == LISTEN_KEY_GONE

    @property
    def is_not_found(self) -> bool:
        return self.code == ORDER_DOES_NOT_EXIST

    @property
    def is_archived(self) -> bool:
        """Spot: the order is archived (``-2026``): its state is final and will not be served
        again, so asking again is pointless (a terminal outcome, not a failure)."""
        return self.code == ORDER_ARCHIVED

    @property
    def is_unknown_outcome(self) -> bool:
        """5xx, -1006/-1007 or no answer: the request may or may not have taken effect."""
        return self.status == 0 or self.status >= 500 or self.code in UNKNOWN_STATUS_CODES

    @property
    def retryable(self) -> bool:
        """Worth trying again later (with backoff, honouring ``retry_after_s``)."""
        if self.is_auth:
            return False
        return (
            self.is_rate_limited
            or self.is_banned
            or self.is_unknown_outcome
            or self.code == TIMESTAMP_OUTSIDE_WINDOW
        )
