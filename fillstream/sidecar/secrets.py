"""Secrets: API keys, API secrets and database passwords, masked wherever they could leak.

A :class:`Secret` prints as ``'****'`` in ``repr``, ``str``, f-strings and msgspec encoding is
refused. Every value wrapped in a ``Secret`` is also remembered in a process-wide registry, so the
log formatter (:mod:`fillstream.sidecar.logs`) and the CLI's last-resort error printer can scrub it
from any text, including tracebacks and third-party messages that quote it.

URLs (DSNs, NATS servers) are masked by ONE function, :func:`mask_url`: the userinfo password,
a NATS token, and every query parameter that can carry a secret (``password``, ``sslpassword``,
``token``...). :func:`scrub` applies it to every URL found in free text, so every output channel
that goes through ``scrub`` (logs, CLI errors, ``check``, start-up errors) masks the same parts.

Secrets come only from environment variables or files (design.md §5); the config holds their
*names*, never their values.

API keys come in three types (binance-wave2.md §A.3): an HMAC key signs with its secret; an RSA
or Ed25519 key signs with a private key, a PEM file or variable (optionally encrypted with a
passphrase). :func:`read_private_key` parses that key once at start-up, so a wrong file, a wrong
passphrase or a key of the other type fails there with the field named, and hands the rest of
the process the key re-encoded as an unencrypted PKCS#8 PEM: one form for every consumer
(python-binance's REST client tells RSA from Ed25519 by the PEM's length and cannot decrypt an
Ed25519 key; the WS-API signer reads the same text).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote_plus

from Crypto.PublicKey import ECC, RSA

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
    """``text`` with every remembered secret replaced by ``****`` and every URL in it passed
    through :func:`mask_url` (passwords, tokens and secret query parameters)."""
    with _registry_lock:
        values = sorted(_registry, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


# Anything URL-shaped inside free text (log lines, exception messages, tracebacks).
# Trailing punctuation is left out: "cannot connect to <url>: refused" keeps its colon.
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"<>`]*[^\s\"<>`:;,.)'\]]")
# Query parameters whose value is a secret, by name (lower case, after percent-decoding): libpq's
# password/sslpassword, tokens, nkey seeds, JWTs, API keys, Binance listenKeys and signatures. A
# name containing one of these words counts too (``auth_token``, ``db_password``, ``sslkey``: a
# path is not a secret, but hiding one costs less than a rule that misses a real key).
_SECRET_PARAM_WORDS = ("pass", "pwd", "token", "secret", "seed", "jwt", "key", "signature")
# NATS reads ``nats://TOKEN@host`` (a userinfo without ``:``) as a token, not a user name.
_TOKEN_USERINFO_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})


def _secret_param(name: str) -> bool:
    key = unquote_plus(name).strip().lower()
    return any(word in key for word in _SECRET_PARAM_WORDS)


def mask_url(url: str) -> str:
    """``url`` fit to print: the userinfo password (and a NATS token userinfo) and the value of
    every secret-bearing query parameter replaced by ``****``; scheme, user, hosts, path and the
    other parameters kept for diagnostics.

    The one masking function for DSNs and server URLs: the CLI, ``check``, the start-up errors
    and the log formatter (through :func:`scrub`) all use it. Works on text only, so it never
    raises, even on a malformed URL (``postgresql://[::1``, ``postgresql://h:notaport/db``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}"
        elif scheme.lower() in _TOKEN_USERINFO_SCHEMES:
            userinfo = MASK
        netloc = f"{userinfo}@{hosts}"
    before, q, query = tail.partition("?")
    if q:
        query, hash_, fragment = query.partition("#")
        params = [_mask_param(p) for p in query.split("&")]
        tail = f"{before}?{'&'.join(params)}{hash_}{fragment}"
    return f"{scheme}://{netloc}{tail}"


def _mask_param(param: str) -> str:
    name, eq, _value = param.partition("=")
    return f"{name}={MASK}" if eq and _secret_param(name) else param


def url_secrets(url: str) -> list[str]:
    """The secret parts of ``url`` that :func:`mask_url` hides (percent-decoded as well)."""
    masked = mask_url(url)
    found: list[str] = []
    for raw, shown in zip(_url_parts(url), _url_parts(masked), strict=True):
        if raw != shown and raw:
            found.extend({raw, unquote_plus(raw)})
    return found


def _url_parts(url: str) -> list[str]:
    _, _, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, _, _ = rest[:cut].rpartition("@")
    user, colon, password = userinfo.partition(":")
    parts = [password if colon else user]
    query = rest[cut:].partition("?")[2].partition("#")[0]
    parts.extend(p.partition("=")[2] for p in query.split("&"))
    return parts


def url_query_names(url: str) -> set[str]:
    """The (lower-case, percent-decoded) names of ``url``'s query parameters."""
    query = url.partition("?")[2].partition("#")[0]
    return {unquote_plus(p.partition("=")[0]).lower() for p in query.split("&") if p}


def remember_url_password(url: str) -> None:
    """Register every secret embedded in ``url`` (a DSN's password or ``?password=``, a NATS
    token) so that :func:`scrub` hides it even where it appears outside a URL."""
    for value in url_secrets(url):
        remember(value)


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


# What a PEM key must hold for each asymmetric key type of the config (``api_key_type``).
_PEM_KEY_TYPES = {"rsa": "RSA", "ed25519": "Ed25519"}


def read_private_key(
    field: str,
    *,
    key_type: str,
    env_name: str | None,
    file_path: str | None,
    passphrase: Secret | None = None,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Read the PEM private key of ``key_type`` (``rsa`` or ``ed25519``) from ``env_name`` or
    ``file_path``, decrypted with ``passphrase`` when given, as an unencrypted PKCS#8 PEM.

    Every line of the PEM as read and as returned joins the scrub list, so a key quoted in part
    is masked too. Raises :class:`ConfigError` naming ``field`` (e.g.
    ``accounts[alpha].api_private_key``) when the text is no private key of that type; the
    message never quotes the key.
    """
    pem = read_secret(field, env_name=env_name, file_path=file_path, environ=environ)
    where = f"{field}_env" if env_name is not None else f"{field}_file"
    text = pem.reveal().replace("\\n", "\n")  # one-line variables often carry literal \n
    _remember_lines(text)
    wanted = _PEM_KEY_TYPES[key_type]
    secret = None if passphrase is None else passphrase.reveal()
    encrypted = "ENCRYPTED" in text.partition("\n")[0]
    if encrypted and passphrase is None:
        raise ConfigError(f"{where}: the key is encrypted; set api_private_key_pass_env")
    found = _pem_key_type(text, secret)
    if found is None:
        why = "wrong passphrase, or not" if encrypted else "not"
        raise ConfigError(f"{where}: {why} a PEM private key (RSA or Ed25519)")
    if found != wanted:
        raise ConfigError(f"{where}: holds an {found} key, but api_key_type is {key_type}")
    key = RSA.import_key(text, secret) if wanted == "RSA" else ECC.import_key(text, secret)
    if not key.has_private():
        raise ConfigError(f"{where}: holds a public key; the private key is needed")
    if isinstance(key, RSA.RsaKey):
        normal = key.export_key(format="PEM", pkcs=8).decode()
    else:
        normal = key.export_key(format="PEM")
    _remember_lines(normal)
    return Secret(normal)


def _pem_key_type(text: str, passphrase: str | None) -> str | None:
    """``RSA``, the curve of an ECC key (``Ed25519``, ``NIST P-256``...), or None: no key."""
    if not text.lstrip().startswith("-----BEGIN"):
        return None
    try:
        RSA.import_key(text, passphrase)
        return "RSA"
    except (ValueError, IndexError, TypeError):
        pass
    try:
        return str(ECC.import_key(text, passphrase).curve)
    except (ValueError, IndexError, TypeError):
        return None


def _remember_lines(pem: str) -> None:
    for line in pem.splitlines():
        if not line.startswith("-----"):
            remember(line.strip())
