"""Log lines: JSON off a TTY, text on a TTY, secrets scrubbed everywhere (tracebacks too)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fillstream.sidecar.logs import setup_logging
from fillstream.sidecar.secrets import Secret

SECRET = "log-test-secret-abcdef0123456789"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _boom() -> None:
    raise RuntimeError(f"venue refused signature for secret {SECRET}")


@pytest.mark.usefixtures("restore_root")
def test_json_lines_when_not_a_tty_with_extras_and_scrubbed_traceback() -> None:
    Secret(SECRET)
    out = io.StringIO()
    setup_logging("INFO", "auto", out)
    log = logging.getLogger("fillstream.test")
    log.info("stream connected %s", SECRET, extra={"account": "alpha", "lag_ms": 3})
    try:
        _boom()
    except RuntimeError:
        log.exception("account crashed", extra={"account": "alpha"})
    log.debug("not shown")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "stream connected ****"
    assert first["account"] == "alpha"
    assert first["lag_ms"] == 3
    assert first["level"] == "info"
    assert first["logger"] == "fillstream.test"
    assert first["ts"].endswith("Z")
    assert "RuntimeError" in second["exc"]
    assert SECRET not in out.getvalue()


@pytest.mark.usefixtures("restore_root")
def test_text_on_a_tty() -> None:
    Secret(SECRET)
    out = _Tty()
    setup_logging("DEBUG", "auto", out)
    logging.getLogger("fillstream.test").warning("key %s rejected", SECRET, extra={"code": -2015})
    text = out.getvalue()
    assert "WARNING" in text
    assert "key **** rejected" in text
    assert "code=-2015" in text
    assert not text.startswith("{")


@pytest.mark.usefixtures("restore_root")
def test_forced_format_and_truncation() -> None:
    out = _Tty()
    setup_logging("INFO", "json", out)
    # Not a run of one letter: other tests register stand-in secrets such as "x" * 64.
    frame = "0123456789" * 500
    logging.getLogger("fillstream.test").info("bad frame", extra={"frame": frame})
    doc = json.loads(out.getvalue())
    assert len(doc["frame"]) < 2100
    assert doc["frame"].endswith("(5000 chars)")
