"""Two-stage frame decoding: a tiny header (event type, envelope), then the typed event.

Decoders are built once per event type. A frame is either a bare event (``/private/ws``), a
combined-stream envelope ``{"stream", "data"}`` (``/private/stream``) or a WS-API envelope
``{"subscriptionId", "event"}``; all three are recognised in the header pass. The wire types
bound ids and times (:data:`~fillstream.ledger.amounts.Id`), so a trade id beyond ``bigint`` is
malformed here. Nothing here raises anything but :class:`FrameError` (:data:`DECODE_ERRORS`
covers what msgspec can raise on hostile input), whose ``kind`` is ``"malformed"`` (not JSON, not an
object, or a known event whose fields do not match) or ``"unknown"`` (an event type we have no
struct for, or a frame without one, such as a subscription reply). The read loop counts both and
keeps going.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from fillstream.binance.usdm.events import USDM_EVENT_TYPES, Event, Header

FrameKind = Literal["malformed", "unknown"]

_LOG_LIMIT: Final = 200

DECODE_ERRORS: Final = (ValueError, RecursionError, msgspec.MsgspecError)
"""What msgspec can raise on hostile input: DecodeError/ValidationError (ValueErrors), a
UnicodeError on bad UTF-8 or a lone surrogate in a ``str`` frame, RecursionError on deep
nesting (~1,000 levels), ValueError on integers of thousands of digits."""


class FrameError(Exception):
    """A frame that yields no event. ``event_type`` is set for unknown events."""

    def __init__(self, kind: FrameKind, reason: str, frame: bytes | str, event_type: str = ""):
        super().__init__(f"{kind}: {reason}")
        self.kind: FrameKind = kind
        self.reason = reason
        self.event_type = event_type
        self.excerpt = truncate(frame)


def truncate(frame: bytes | str, limit: int = _LOG_LIMIT) -> str:
    """The start of a frame, for logs (user-data frames hold no secrets but can be large)."""
    if isinstance(frame, bytes):
        text = frame[: 4 * limit + 4].decode("utf-8", "replace")
        size = len(frame)
    else:
        # A str frame may hold lone surrogates, which a log handler cannot encode.
        text = frame[: limit + 1].encode("utf-8", "replace").decode("utf-8", "replace")
        size = len(frame)
    if len(text) <= limit and size <= 4 * limit:
        return text
    return f"{text[:limit]}…({size} {'bytes' if isinstance(frame, bytes) else 'chars'})"


class FrameDecoder:
    """Decodes one venue's user-data frames into wire events (stateless, reusable, cheap).

    ``event_types`` maps the ``e`` value to its wire struct; USDⓈ-M by default. COIN-M and spot
    get their own mapping.
    """

    def __init__(self, event_types: Mapping[str, type[Event]] = USDM_EVENT_TYPES) -> None:
        self._header = msgspec.json.Decoder(Header)
        self._typed: dict[str, msgspec.json.Decoder[Event]] = {
            name: msgspec.json.Decoder(struct) for name, struct in event_types.items()
        }
        self._typed_bytes = {name.encode(): dec for name, dec in self._typed.items()}

    def decode(self, frame: bytes | str) -> Event:
        """The typed event of ``frame``; raises :class:`FrameError` (and nothing else) if none."""
        # Fast header: Binance writes ``e`` first in bare frames, so the type can be sliced out
        # without a JSON pass (a third of the decode cost). Anything else takes the full header.
        if isinstance(frame, bytes) and frame.startswith(b'{"e":"'):
            name = frame[6 : frame.find(b'"', 6)]
            decoder = self._typed_bytes.get(name)
            if decoder is not None:
                return _typed(decoder, frame, frame, name.decode())
        event_type, body = self._locate(frame)
        decoder = self._typed.get(event_type)
        if decoder is None:
            raise FrameError("unknown", f"event type {event_type!r:.60}", frame, event_type[:60])
        return _typed(decoder, body, frame, event_type)

    def _locate(self, frame: bytes | str) -> tuple[str, bytes | str | msgspec.Raw]:
        """The event type and the object holding the event (the frame, or its envelope's)."""
        header = self._header_of(frame, frame, "")
        if header.e is not None:
            return header.e, frame
        inner = header.data if len(header.data) else header.event
        if not len(inner):
            raise FrameError("unknown", "no event type", frame)
        event_type = self._header_of(inner, frame, "envelope payload: ").e
        if event_type is None:
            raise FrameError("unknown", "no event type in envelope", frame)
        return event_type, inner

    def _header_of(self, body: bytes | str | msgspec.Raw, frame: bytes | str, where: str) -> Header:
        try:
            return self._header.decode(body)
        except DECODE_ERRORS as exc:
            raise FrameError("malformed", f"{where}{_reason(exc)}", frame) from None


def _typed(
    decoder: msgspec.json.Decoder[Event],
    body: bytes | str | msgspec.Raw,
    frame: bytes | str,
    event_type: str,
) -> Event:
    try:
        return decoder.decode(body)
    except DECODE_ERRORS as exc:
        raise FrameError("malformed", f"{event_type}: {_reason(exc)}", frame, event_type) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, msgspec.DecodeError):  # ValidationError too: msgspec's own words
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
