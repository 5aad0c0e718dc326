"""Spot WebSocket API messages exactly as Binance sends them (binance-wave2.md §A.2 to §A.5).

Requests are JSON text frames ``{"id", "method", "params"}``; the answer to one is
``{"id", "status", "result" | "error", "rateLimits"}``; a user-data event is
``{"subscriptionId", "event"}`` (``subscriptionId`` optional: ``serverShutdown`` has none). One
:class:`Frame` struct decodes all three in a single pass, keeping ``result`` and ``event`` as raw
slices: the event goes undecoded to its account's processor (stage two of its decode).

A SIGNED request's signature covers every parameter but ``signature``, sorted by name, as
``k=v`` joined with ``&`` (:func:`signature_payload`); for ``userDataStream.subscribe.signature``
that is ``apiKey=…&[recvWindow=…&]timestamp=…``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from fillstream.binance.errors import VenueError
from fillstream.binance.signing import Signer

SUBSCRIBE: Final = "userDataStream.subscribe.signature"
UNSUBSCRIBE: Final = "userDataStream.unsubscribe"
SUBSCRIPTIONS: Final = "session.subscriptions"
TIME: Final = "time"

CONNECT_WEIGHT: Final = 2
WEIGHTS: Final[Mapping[str, int]] = {SUBSCRIBE: 2, UNSUBSCRIBE: 2, SUBSCRIPTIONS: 2, TIME: 1}
"""Request weight per method (binance-wave2.md §A.3, §A.5), in the spot REQUEST_WEIGHT pool."""

ParamValue = str | int


class Request(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    method: str
    params: Mapping[str, ParamValue] = {}


class ErrorBody(msgspec.Struct, frozen=True):
    code: int = 0  # Binance error code (-1003, -2015, ...)
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw()  # 429/418: {"serverTime", "retryAfter"} (ms since epoch)


class RetryData(msgspec.Struct, frozen=True):
    serverTime: int | None = None
    retryAfter: int | None = None  # when the limit or ban lifts (ms since epoch)


class Frame(msgspec.Struct, frozen=True):
    """Stage one of every WS-API frame: a response (``id`` set) or an event (``event`` set)."""

    id: str | int | None = None  # request id (responses)
    status: int = 0  # HTTP-like status (responses)
    result: msgspec.Raw = msgspec.Raw()  # responses: the result (empty when absent)
    error: ErrorBody | None = None  # responses: the refusal
    rateLimits: list[dict[str, Any]] = []  # responses: the pools' counts after this request
    subscriptionId: int | None = None  # events: the subscription (optional)
    event: msgspec.Raw = msgspec.Raw()  # events: the payload (empty when absent)


class SubscribeResult(msgspec.Struct, frozen=True):
    subscriptionId: int


class Subscription(msgspec.Struct, frozen=True):
    subscriptionId: int


class TimeResult(msgspec.Struct, frozen=True):
    serverTime: int


FRAME_DECODER: Final = msgspec.json.Decoder(Frame)
SUBSCRIBE_RESULT: Final = msgspec.json.Decoder(SubscribeResult)
SUBSCRIPTIONS_RESULT: Final = msgspec.json.Decoder(list[Subscription])
TIME_RESULT: Final = msgspec.json.Decoder(TimeResult)
_RETRY_DATA: Final = msgspec.json.Decoder(RetryData)
_ENCODER: Final = msgspec.json.Encoder()


def signature_payload(params: Mapping[str, ParamValue]) -> str:
    """Every parameter but ``signature``, sorted by name, as ``k=v`` joined with ``&``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")


def subscribe_params(
    api_key: str, signer: Signer, *, timestamp_ms: int, recv_window_ms: int | None = None
) -> dict[str, ParamValue]:
    """The signed params of ``userDataStream.subscribe.signature`` (a fresh timestamp each time:
    a replayed one is refused with -1021 once it is ``recvWindow`` old)."""
    params: dict[str, ParamValue] = {"apiKey": api_key, "timestamp": timestamp_ms}
    if recv_window_ms is not None:
        params["recvWindow"] = recv_window_ms
    params["signature"] = signer.sign(signature_payload(params))
    return params


def encode(request: Request) -> bytes:
    return _ENCODER.encode(request)


def retry_data(frame: Frame) -> RetryData:
    """``error.data`` of a 429/418 (empty when absent or not understood)."""
    body = frame.error
    if body is None or not len(body.data):
        return RetryData()
    try:
        return _RETRY_DATA.decode(body.data)
    except msgspec.DecodeError:
        return RetryData()


def error_of(frame: Frame, *, method: str, now_ms: int) -> VenueError:
    """The :class:`VenueError` of a refused request; 429/418 carry ``retry_after_s`` from
    ``error.data.retryAfter`` (an instant, measured against ``serverTime`` when sent)."""
    body = frame.error or ErrorBody()
    retry_after_s: float | None = None
    data = retry_data(frame)
    if data.retryAfter is not None:
        base = data.serverTime if data.serverTime is not None else now_ms
        retry_after_s = max(0.0, (data.retryAfter - base) / 1000)
    return VenueError(
        frame.status, body.code, body.msg, endpoint=f"ws-api {method}", retry_after_s=retry_after_s
    )
