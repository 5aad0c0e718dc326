"""Logging: JSON lines when stderr is not a TTY, readable text on a TTY; secrets never printed.

:func:`setup_logging` installs one handler on the root logger. Both formatters run the finished
text (message, extra fields and traceback) through :func:`fillstream.sidecar.secrets.scrub`, so a
secret that reaches a log record by any route (our message, a third-party exception, a URL with a
password) is printed as ``****``.

Structured fields go in ``extra=``: ``log.info("stream connected", extra={"account": "alpha"})``.
One line per event worth knowing; no per-fill lines at INFO.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

import msgspec

from fillstream.sidecar.secrets import scrub

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_MAX_FIELD_CHARS = 2000  # bad frames are logged truncated (design.md §1.6)
_json = msgspec.json.Encoder()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _truncate(text: str) -> str:
    if len(text) <= _MAX_FIELD_CHARS:
        return text
    return f"{text[:_MAX_FIELD_CHARS]}… ({len(text)} chars)"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, extras, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _truncate(scrub(record.getMessage())),
        }
        for key, value in _extras(record).items():
            plain = _plain(value)
            doc[key] = _truncate(scrub(plain)) if isinstance(plain, str) else plain
        if record.exc_info:
            doc["exc"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            doc["stack"] = scrub(self.formatStack(record.stack_info))
        return _json.encode(doc).decode()


class TextFormatter(logging.Formatter):
    """``12:00:01.123 INFO  fillstream.stream  stream connected  account=alpha``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={_plain(v)}" for k, v in _extras(record).items())
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.name}  "
            f"{_truncate(record.getMessage())}"
        )
        if fields:
            line = f"{line}  {_truncate(fields)}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return scrub(line)


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Route every logger to ``stream`` (stderr) in the chosen format; idempotent.

    ``fmt`` is ``auto`` (text on a TTY, JSON otherwise), ``json`` or ``text``.
    """
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("fillstream")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "fillstream"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log every request or frame at INFO would drown the events worth knowing.
    for noisy in ("aiohttp.access", "websockets", "asyncio", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
