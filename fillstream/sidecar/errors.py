"""One-line descriptions of exceptions for operators: the cause, secrets masked."""

from __future__ import annotations

from fillstream.ledger.errors import FillstreamError
from fillstream.sidecar.secrets import scrub


class Unreachable(FillstreamError):
    """A dependency could not be reached; the message names it and its (masked) address:
    ``cannot reach PostgreSQL at postgresql://fill:****@db/fills: ConnectionRefusedError: …``."""


class StartupError(FillstreamError):
    """A dependency the service cannot run without failed at start-up (the message says which)."""


def describe(exc: BaseException, limit: int = 500) -> str:
    """``Type: message`` of the first leaf of (nested) exception groups — a TaskGroup wraps the
    real failure — on one line, scrubbed of secrets, at most ``limit`` characters."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = scrub(f"{type(exc).__name__}: {exc}".rstrip(": ")).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
