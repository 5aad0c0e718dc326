"""Secrets: API keys, API secrets and database passwords, masked wherever they could leak.

A :class:`Secret` prints as ``'****'`` in ``repr``, ``str``, f-strings and msgspec encoding is
refused. Every value wrapped in a ``Secret`` is also remembered in a process-wide registry, so the
log formatter (:mod:`fillstream.sidecar.logs`) and the CLI's last-resort error printer can scrub it
from any text, including tracebacks and third-party messages that quote it.

Secrets come only from environment variables or files (design.md §5); the config holds their
*names*, never their values.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fillstream.ledger.errors import ConfigError

MASK = "****"
# Shorter strings would scrub ordinary words out of log lines; real keys are 64 characters.
_MIN_SCRUB_LEN = 6

_registry_lock = threading.Lock()
_registry: set[str] = set()


class Secret:
    """A string that never shows itself. Use :meth:`reveal` at the one place that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the value somewhere we do not control.
        raise TypeError("a Secret cannot be pickled")


def remember(value: str) -> None:
    """Add ``value`` to the scrub list (values shorter than 6 characters are ignored)."""
    if len(value) >= _MIN_SCRUB_LEN:
        with _registry_lock:
            _registry.add(value)


def scrub(text: str) -> str:
    """``text`` with every remembered secret and every URL password replaced by ``****``."""
    with _registry_lock:
        values = sorted(_registry, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text)


# scheme://user:password@ — the password part of any URL-like string (DSNs, NATS URLs).
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")


def mask_url(url: str) -> str:
    """The URL with its password (if any) masked; the rest is kept for diagnostics."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def remember_url_password(url: str) -> None:
    """Register the password embedded in ``url`` (e.g. a DSN) as a secret."""
    password = urlsplit(url).password
    if password:
        remember(password)


def read_secret(
    field: str,
    *,
    env_name: str | None,
    file_path: str | None,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Read one secret from the environment variable ``env_name`` or the file ``file_path``.

    Exactly one of the two must be given. A file's content is stripped of surrounding whitespace
    (a trailing newline is the norm). Raises :class:`ConfigError` naming ``field`` (e.g.
    ``accounts[alpha].api_secret_env``) and the reason; the message never contains the value.
    """
    env = os.environ if environ is None else environ
    if (env_name is None) == (file_path is None):
        raise ConfigError(f"{field}: set exactly one of {field}_env or {field}_file")
    if env_name is not None:
        value = env.get(env_name)
        if value is None:
            raise ConfigError(f"{field}_env: environment variable {env_name} is not set")
        value = value.strip()
        if not value:
            raise ConfigError(f"{field}_env: environment variable {env_name} is empty")
        return Secret(value)
    assert file_path is not None
    path = Path(file_path).expanduser()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{field}_file: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{field}_file: {path} is empty")
    return Secret(value)
