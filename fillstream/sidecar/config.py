"""The typed configuration tree: one TOML file plus ``FILLSTREAM_…`` environment overrides.

Contract (design.md §5 "Stable surface"):

* :func:`load_config` reads the TOML file, applies environment overrides, decodes into frozen
  msgspec Structs (``forbid_unknown_fields``: a typo is an error, not a silent default), checks
  cross-field rules, and resolves every enabled account's secrets once so a missing key fails at
  start-up. Every problem raises :class:`ConfigError` whose message starts with the field path
  (``accounts[alpha].rest_url: …``) and says why.
* Environment overrides (:mod:`fillstream.sidecar.envoverrides`): ``FILLSTREAM_<SECTION>__<KEY>``
  sets one value, e.g. ``FILLSTREAM_DATABASE__DSN``, ``FILLSTREAM_NATS__SERVERS=nats://a,nats://b``
  (lists are comma separated), ``FILLSTREAM_ACCOUNTS__<NAME>__<KEY>`` for an account declared in
  the file (``<NAME>`` matched case-insensitively, ``-`` written as ``_``).
* Secrets are never values in this tree: only the names of the environment variables or files that
  hold them. :meth:`AccountConfig.credentials` reads them into masked :class:`Secret` objects.
* Units are in the field names (``_s``, ``_ms``).
"""

from __future__ import annotations

import enum
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import msgspec

from fillstream.binance.coinm.events import COINM_EVENTS
from fillstream.binance.endpoints import COINM_WS_PATH, REST_URLS, WS_URLS
from fillstream.binance.signing import KeyKind, Signer
from fillstream.ledger.bounds import Range, out_of_range
from fillstream.ledger.errors import ConfigError
from fillstream.ledger.types import Market
from fillstream.reconcile.settings import ReconcileSettings
from fillstream.sidecar.envoverrides import apply_env_overrides
from fillstream.sidecar.secrets import (
    Secret,
    read_private_key,
    read_secret,
    remember_url_password,
    url_query_names,
)
from fillstream.stream.config import StreamSettings

SUPPORTED_MARKETS = (Market.USDM, Market.COINM, Market.SPOT)
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# A NATS subject token: no whitespace, no wildcards, no separators.
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

_DAY_S = 86400.0
# libpq's sslmode values (asyncpg implements them): disable and allow may end in clear text,
# prefer tries TLS first, require fails without TLS, verify-ca/verify-full also check the server.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The [database] TLS fields and the DSN query parameters they become.
_PG_TLS_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
# A shorter bearer token can be guessed; `openssl rand -hex 32` gives 64 characters.
MIN_TOKEN_CHARS = 16


def _check_ranges(settings: msgspec.Struct, ranges: Mapping[str, Range]) -> None:
    """Every number finite and in its sane range (issue 11); the message names the field."""
    problem = out_of_range(settings, ranges)
    if problem is not None:
        raise ValueError(problem)


class Endpoints(enum.StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    DEMO = "demo"
    CUSTOM = "custom"


# The built-in REST and WebSocket base URLs per (market, endpoints) are binance.endpoints'.


class DatabaseConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[database]``: the PostgreSQL ledger: ``dsn`` inline (without a password) or ``dsn_env``."""

    dsn: str | None = None
    dsn_env: str | None = None
    pool_min_size: int = 2
    pool_max_size: int = 10
    command_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0  # one connection attempt, at start-up and in every command
    migrate_on_start: bool = True
    # TLS (libpq's names; also accepted in the DSN's query string, but not in both places).
    sslmode: str | None = None  # None: the DSN's, else $PGSSLMODE, else "prefer"
    sslrootcert: str | None = None  # CA file that signed the server's certificate
    sslcert: str | None = None  # client certificate (with sslkey)
    sslkey: str | None = None

    _ranges: ClassVar[Mapping[str, Range]] = {
        "pool_min_size": (1, 1000),
        "pool_max_size": (1, 1000),
        "command_timeout_s": (0.1, 3600.0),
        "connect_timeout_s": (0.1, 600.0),
    }

    def __post_init__(self) -> None:
        if (self.dsn is None) == (self.dsn_env is None):
            raise ValueError("dsn: set exactly one of dsn or dsn_env")
        _check_ranges(self, self._ranges)
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size: must not exceed pool_max_size")
        if self.sslmode is not None and self.sslmode not in SSLMODES:
            raise ValueError(f"sslmode: one of {', '.join(SSLMODES)}")
        if self.sslkey is not None and self.sslcert is None:
            raise ValueError("sslkey: set sslcert (the client certificate) with it")

    @property
    def tls_files(self) -> dict[str, str]:
        """``{field: path}`` of the TLS files set (checked readable by :func:`load_config`)."""
        files = {"sslrootcert": self.sslrootcert, "sslcert": self.sslcert, "sslkey": self.sslkey}
        return {k: v for k, v in files.items() if v is not None}

    def resolve_dsn(self, environ: Mapping[str, str] | None = None) -> str:
        """The DSN, read from ``dsn_env`` if so configured; its password joins the scrub list."""
        env = os.environ if environ is None else environ
        if self.dsn is not None:
            dsn = self.dsn
        else:
            assert self.dsn_env is not None
            value = env.get(self.dsn_env)
            if not value:
                raise ConfigError(
                    f"database.dsn_env: environment variable {self.dsn_env} is not set"
                )
            dsn = value.strip()
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError("database.dsn: must start with postgresql://")
        remember_url_password(dsn)
        return self._with_tls(dsn)

    def _with_tls(self, dsn: str) -> str:
        """``dsn`` with the TLS fields appended as query parameters (asyncpg reads them there)."""
        in_dsn = url_query_names(dsn)
        extra: list[str] = []
        for name in _PG_TLS_PARAMS:
            value = getattr(self, name)
            if value is None:
                continue
            if name in in_dsn:
                raise ConfigError(
                    f"database.{name}: also given in the DSN (?{name}=...); set it in one place"
                )
            shown = value if name == "sslmode" else quote(str(Path(value).expanduser()), safe="/")
            extra.append(f"{name}={shown}")
        if not extra:
            return dsn
        base, hash_, fragment = dsn.partition("#")
        joiner = "&" if "?" in base else "?"
        return f"{base}{joiner}{'&'.join(extra)}{hash_}{fragment}"


class NatsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[nats]``: where facts are published. The stream is created/updated at start-up."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = "FILLSTREAM"
    subject_prefix: str = "fillstream"
    # Nats-Msg-Id dedup window: must cover the outbox retries and `republish` re-sends that can
    # re-deliver a message (design.md §5).
    duplicate_window_s: float = 7200.0
    max_age_s: float = 30 * 86400.0  # 0: keep forever (bounded by the server's limits)
    replicas: int = 1
    credentials_file: str | None = None  # a .creds file (user JWT + nkey seed)
    connect_timeout_s: float = 5.0
    publish_window: int = 100  # in-flight publishes awaiting their ack
    # TLS. A tls:// or wss:// server, tls_required, or any tls_*_file means TLS is required: a
    # server that does not offer it is refused before anything (credentials included) is sent.
    tls_required: bool = False
    tls_ca_file: str | None = None  # CA bundle the server's certificate must chain to
    tls_cert_file: str | None = None  # client certificate (mutual TLS), with tls_key_file
    tls_key_file: str | None = None
    tls_verify: bool = True  # false: no certificate or host name check (tests only)
    tls_hostname: str | None = None  # name to verify when the URLs carry IP addresses
    # What `<prefix>.order.>` carries: "all" (each batch's latest state of every order it moved
    # forward), "terminal" (final states only) or "none" (storage.OrderPublishing).
    publish_orders: Literal["all", "terminal", "none"] = "all"

    _ranges: ClassVar[Mapping[str, Range]] = {
        "duplicate_window_s": (1.0, 30 * _DAY_S),
        "max_age_s": (0.0, 3650 * _DAY_S),
        "replicas": (1, 5),
        "connect_timeout_s": (0.1, 600.0),
        "publish_window": (1, 100_000),
    }

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("servers: at least one server URL is required")
        for url in self.servers:
            if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"servers: {url!r} is not a nats:// or tls:// URL")
        _check_ranges(self, self._ranges)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file: set both tls_cert_file and tls_key_file, or neither")
        if self.tls_wanted and any(u.startswith("ws://") for u in self.servers):
            raise ValueError("servers: TLS is required here; use wss:// instead of ws://")
        if self.max_age_s and self.max_age_s < self.duplicate_window_s:
            raise ValueError("max_age_s: must be 0 (unlimited) or cover duplicate_window_s")
        if not _STREAM_NAME.match(self.stream):
            raise ValueError("stream: only letters, digits, '-' and '_' are allowed")
        if not all(_SUBJECT_TOKEN.match(t) for t in self.subject_prefix.split(".")):
            raise ValueError("subject_prefix: dot-separated tokens of letters, digits, '-' and '_'")

    @property
    def tls_wanted(self) -> bool:
        """Whether every connection must be TLS (fail closed)."""
        return (
            self.tls_required
            or any(u.startswith(("tls://", "wss://")) for u in self.servers)
            or any(f is not None for f in (self.tls_ca_file, self.tls_cert_file))
        )

    @property
    def files(self) -> dict[str, str]:
        """``{field: path}`` of the files set (checked readable by :func:`load_config`)."""
        files = {
            "credentials_file": self.credentials_file,
            "tls_ca_file": self.tls_ca_file,
            "tls_cert_file": self.tls_cert_file,
            "tls_key_file": self.tls_key_file,
        }
        return {k: v for k, v in files.items() if v is not None}


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[http]``: /metrics /healthz /readyz /status (and POST /reconcile when enabled)."""

    listen: str = "127.0.0.1:9464"
    enable_reconcile_endpoint: bool = False
    # POST /reconcile then needs "Authorization: Bearer <token>" (every container of a pod shares
    # the loopback): the token's environment variable or file, never the token itself.
    reconcile_token_env: str | None = None
    reconcile_token_file: str | None = None
    loop_stall_s: float = 5.0  # /healthz fails when the event loop lagged longer than this

    _ranges: ClassVar[Mapping[str, Range]] = {"loop_stall_s": (0.01, 3600.0)}

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen: expected host:port, e.g. 127.0.0.1:9464")
        _check_ranges(self, self._ranges)
        if self.reconcile_token_env is not None and self.reconcile_token_file is not None:
            raise ValueError("reconcile_token: set reconcile_token_env or _file, not both")

    def reconcile_token(self, environ: Mapping[str, str] | None = None) -> Secret | None:
        """The bearer token of ``POST /reconcile`` (``None``: not configured)."""
        if self.reconcile_token_env is None and self.reconcile_token_file is None:
            return None
        token = read_secret(
            "http.reconcile_token",
            env_name=self.reconcile_token_env,
            file_path=self.reconcile_token_file,
            environ=environ,
        )
        if len(token.reveal()) < MIN_TOKEN_CHARS:
            kind = "env" if self.reconcile_token_env is not None else "file"
            raise ConfigError(
                f"http.reconcile_token_{kind}: the token must be at least {MIN_TOKEN_CHARS}"
                " characters (e.g. `openssl rand -hex 32`)"
            )
        return token

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class PipelineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[pipeline]``: ingest batching and the outbox relay."""

    max_batch: int = 1000  # fills per transaction; only what is already queued
    outbox_chunk: int = 1000  # rows per read when the relay drains the table
    outbox_retention_s: float = 86400.0  # published rows are pruned after this long
    stuck_after_s: float = 30.0  # /readyz: an account whose oldest submission waits longer

    _ranges: ClassVar[Mapping[str, Range]] = {
        "max_batch": (1, 1_000_000),
        "outbox_chunk": (1, 1_000_000),
        "outbox_retention_s": (1.0, 365 * _DAY_S),
        "stuck_after_s": (0.1, _DAY_S),
    }

    def __post_init__(self) -> None:
        _check_ranges(self, self._ranges)


class RestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[rest]``: the signed REST client shared by both paths (one weight budget per host)."""

    recv_window_ms: int = 5000
    request_timeout_s: float = 10.0
    time_sync_interval_s: float = 300.0
    max_wait_s: float = 90.0  # longest wait for the weight budget before a call gives up
    weight_limits: dict[str, int] = {}  # host[:port] → weight/min; else exchangeInfo

    _ranges: ClassVar[Mapping[str, Range]] = {
        "recv_window_ms": (1, 60000),  # Binance's limit
        "request_timeout_s": (0.1, 600.0),
        "time_sync_interval_s": (1.0, _DAY_S),
        "max_wait_s": (0.0, 3600.0),
    }

    def __post_init__(self) -> None:
        _check_ranges(self, self._ranges)
        for host, limit in self.weight_limits.items():
            if not 1 <= limit <= 1_000_000:
                raise ValueError(f"weight_limits: {host}: must be an integer between 1 and 1000000")


class LogFormat(enum.StrEnum):
    AUTO = "auto"  # JSON lines unless stderr is a TTY
    JSON = "json"
    TEXT = "text"


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    level: str = "INFO"
    format: LogFormat = LogFormat.AUTO

    def __post_init__(self) -> None:
        if self.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("level: one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


class ServiceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[service]``: lifecycle knobs."""

    shutdown_deadline_s: float = 15.0
    restart_initial_s: float = 1.0  # an account's supervisor backoff after a crash
    restart_max_s: float = 60.0

    _ranges: ClassVar[Mapping[str, Range]] = {
        "shutdown_deadline_s": (0.1, 3600.0),
        "restart_initial_s": (0.01, 3600.0),
        "restart_max_s": (0.01, _DAY_S),
    }

    def __post_init__(self) -> None:
        _check_ranges(self, self._ranges)


class ReplicasConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[replicas]``: several processes share the accounts, one owner per account (issue 15).

    Off (the default): this process owns every enabled account, as before. On: each account is
    owned through a lease in the JetStream KV bucket ``bucket`` (sidecar/ownership.py).
    Failover after an owner dies takes about ``lease_ttl_s`` + ``poll_interval_s`` +
    ``takeover_grace_s`` + the new owner's connect.
    """

    enabled: bool = False
    bucket: str = "fillstream_leases"
    member: str = ""  # this process's name among the replicas; "" = <hostname>-<pid>
    lease_ttl_s: float = 15.0  # the bucket's TTL: a lease not renewed for this long expires
    renew_interval_s: float = 3.0  # how often a held lease is renewed
    # An owner whose last acknowledged renewal is older than lease_ttl_s - stop_margin_s stops
    # the account's stream and reconcile (before the lease can expire anywhere).
    stop_margin_s: float = 4.0
    poll_interval_s: float = 1.0  # how often the bucket is read for free leases and members
    takeover_grace_s: float = 1.0  # a free lease is taken only after being seen free this long
    # Accounts move to a process that joined (or back) only once it has been alive this long
    # and the current owner has held them this long: no flapping on restarts.
    cooldown_s: float = 30.0
    kv_replicas: int = 1  # the bucket's JetStream replicas (3 in a NATS cluster)
    kv_storage: Literal["file", "memory"] = "file"

    _ranges: ClassVar[Mapping[str, Range]] = {
        "lease_ttl_s": (3.0, 600.0),
        "renew_interval_s": (0.2, 300.0),
        "stop_margin_s": (0.5, 300.0),
        "poll_interval_s": (0.1, 60.0),
        "takeover_grace_s": (0.0, 300.0),
        "cooldown_s": (0.0, _DAY_S),
        "kv_replicas": (1, 5),
    }

    def __post_init__(self) -> None:
        _check_ranges(self, self._ranges)
        if not _STREAM_NAME.match(self.bucket):
            raise ValueError("bucket: only letters, digits, '-' and '_' are allowed")
        if self.member and not _SUBJECT_TOKEN.match(self.member):
            raise ValueError("member: only letters, digits, '-' and '_' are allowed")
        if self.stop_margin_s >= self.lease_ttl_s:
            raise ValueError("stop_margin_s: must be shorter than lease_ttl_s")
        if 2 * self.renew_interval_s > self.lease_ttl_s - self.stop_margin_s:
            raise ValueError(
                "renew_interval_s: at most half of lease_ttl_s - stop_margin_s "
                "(two renewals must fit before an owner stops)"
            )


class SpotConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[spot]``: the process-wide WebSocket-API connections spot accounts share (one pool per
    WS-API URL; the pool's connections take the top-level ``[stream]`` timers)."""

    # Accounts subscribed on one WS-API connection: Binance allows 1,000 active subscriptions
    # per connection but advises against packing many busy accounts on one (binance-wave2 §A.3).
    accounts_per_connection: int = StreamSettings().accounts_per_connection

    _ranges: ClassVar[Mapping[str, Range]] = {"accounts_per_connection": (1, 1000)}

    def __post_init__(self) -> None:
        _check_ranges(self, self._ranges)


class Credentials(msgspec.Struct, frozen=True):
    """An account's key. ``api_secret`` is what signs: the HMAC secret, or with an RSA or
    Ed25519 key the private key as an unencrypted PKCS#8 PEM (:func:`read_private_key`)."""

    api_key: Secret
    api_secret: Secret
    key_type: KeyKind = KeyKind.HMAC

    def signer(self) -> Signer:
        """What signs this key's WS-API requests (spot subscriptions)."""
        return Signer.from_secret(self.api_secret.reveal())


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[accounts]]``: one exchange account. ``name`` is used in subjects and metric labels."""

    name: str
    market: Market = Market.USDM
    api_key_env: str | None = None
    api_key_file: str | None = None
    api_secret_env: str | None = None
    api_secret_file: str | None = None
    # How the key signs (binance-wave2.md §A.3): HMAC-SHA256 with the secret, or RSA (PKCS#1
    # v1.5, SHA-256) / Ed25519 with a private key (PEM) instead of a secret.
    api_key_type: KeyKind = KeyKind.HMAC
    api_private_key_env: str | None = None
    api_private_key_file: str | None = None
    api_private_key_pass_env: str | None = None  # the PEM's passphrase, when it is encrypted
    endpoints: Endpoints = Endpoints.MAINNET
    rest_url: str | None = None  # required with endpoints = "custom"; overrides otherwise
    ws_url: str | None = None  # futures: the stream base; spot: the WS-API endpoint itself
    symbols: tuple[str, ...] = ()  # always polled, in addition to those discovered
    enabled: bool = True
    # This account's [stream]/[reconcile] tables, overlaid on the top-level ones by load_config.
    stream: StreamSettings | None = None
    reconcile: ReconcileSettings | None = None

    def __post_init__(self) -> None:
        if not ACCOUNT_NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} must match [A-Za-z0-9_-]+")
        self._check_key_fields()
        if self.endpoints is Endpoints.CUSTOM and (self.rest_url is None or self.ws_url is None):
            raise ValueError('rest_url: rest_url and ws_url are required with endpoints = "custom"')
        for field, url, schemes in (
            ("rest_url", self.rest_url, ("http://", "https://")),
            ("ws_url", self.ws_url, ("ws://", "wss://")),
        ):
            if url is not None and not url.startswith(schemes):
                raise ValueError(f"{field}: must start with {' or '.join(schemes)}")
        for symbol in self.symbols:
            if not _SUBJECT_TOKEN.match(symbol):
                raise ValueError(f"symbols: {symbol!r} is not a symbol")

    def _check_key_fields(self) -> None:
        """The key's type decides what signs: a secret (HMAC) or a private key (RSA, Ed25519)."""
        unused: tuple[str, ...]
        if self.api_key_type is KeyKind.HMAC:
            signing = "api_secret"
            unused = ("api_private_key_env", "api_private_key_file", "api_private_key_pass_env")
        else:
            signing = "api_private_key"
            unused = ("api_secret_env", "api_secret_file")
        for kind in ("api_key", signing):
            env, file = getattr(self, f"{kind}_env"), getattr(self, f"{kind}_file")
            if (env is None) == (file is None):
                raise ValueError(f"{kind}: set exactly one of {kind}_env or {kind}_file")
        for field in unused:
            if getattr(self, field) is not None:
                raise ValueError(f'{field}: not used with api_key_type = "{self.api_key_type}"')

    @property
    def resolved_rest_url(self) -> str:
        if self.rest_url is not None:
            return self.rest_url.rstrip("/")
        return REST_URLS[(self.market, str(self.endpoints))]

    @property
    def resolved_ws_url(self) -> str:
        if self.ws_url is not None:
            return self.ws_url.rstrip("/")
        return WS_URLS[(self.market, str(self.endpoints))]

    def credentials(self, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read the API key and its secret or private key (from env or files); a private key is
        parsed with its passphrase. :class:`ConfigError` if missing or unreadable."""
        prefix = f"accounts[{self.name}]"
        api_key = read_secret(
            f"{prefix}.api_key",
            env_name=self.api_key_env,
            file_path=self.api_key_file,
            environ=environ,
        )
        if self.api_key_type is KeyKind.HMAC:
            secret = read_secret(
                f"{prefix}.api_secret",
                env_name=self.api_secret_env,
                file_path=self.api_secret_file,
                environ=environ,
            )
            return Credentials(api_key=api_key, api_secret=secret)
        passphrase = None
        if self.api_private_key_pass_env is not None:
            passphrase = read_secret(
                f"{prefix}.api_private_key_pass",
                env_name=self.api_private_key_pass_env,
                file_path=None,
                environ=environ,
            )
        private_key = read_private_key(
            f"{prefix}.api_private_key",
            key_type=self.api_key_type.value,
            env_name=self.api_private_key_env,
            file_path=self.api_private_key_file,
            passphrase=passphrase,
            environ=environ,
        )
        return Credentials(api_key=api_key, api_secret=private_key, key_type=self.api_key_type)

    @property
    def stream_settings(self) -> StreamSettings:
        """The stream settings of this account, on this account's WebSocket URL.

        COIN-M (dstream) has no ``/private`` routing and no ``events=`` filter: its defaults are
        the ``path`` form on ``/ws`` (``<ws_url>/ws/<listenKey>``) and the COIN-M events; a
        ``url_form`` or ``ws_path`` set away from the USDⓈ-M defaults is kept. Spot has no
        listenKey URL: ``ws_url`` is the WS-API endpoint the subscriptions are made on
        (``wss://ws-api.binance.com:443/ws-api/v3``)."""
        base = self.stream if self.stream is not None else StreamSettings()
        settings = msgspec.structs.replace(base, ws_url=self.resolved_ws_url)
        if self.market is not Market.COINM:
            return settings
        usdm = StreamSettings()
        return msgspec.structs.replace(
            settings,
            url_form="path" if base.url_form == usdm.url_form else base.url_form,
            ws_path=COINM_WS_PATH if base.ws_path == usdm.ws_path else base.ws_path,
            events=COINM_EVENTS if base.events == usdm.events else base.events,
        )

    @property
    def reconcile_settings(self) -> ReconcileSettings:
        """The reconcile settings of this account; ``symbols`` adds the account's own."""
        base = self.reconcile if self.reconcile is not None else ReconcileSettings()
        symbols = tuple(dict.fromkeys((*self.symbols, *base.symbols)))
        return msgspec.structs.replace(base, symbols=symbols)


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration. Build it with :func:`load_config` (or :func:`config_from_dict`)."""

    database: DatabaseConfig
    nats: NatsConfig = NatsConfig()
    http: HttpConfig = HttpConfig()
    pipeline: PipelineConfig = PipelineConfig()
    rest: RestConfig = RestConfig()
    stream: StreamSettings = StreamSettings()  # defaults of every account (fillstream.stream)
    reconcile: ReconcileSettings = ReconcileSettings()  # (fillstream.reconcile)
    logging: LoggingConfig = LoggingConfig()
    service: ServiceConfig = ServiceConfig()
    replicas: ReplicasConfig = ReplicasConfig()
    spot: SpotConfig = SpotConfig()
    accounts: tuple[AccountConfig, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for account in self.accounts:
            if account.name in seen:
                raise ValueError(f"accounts: the name {account.name!r} is used twice")
            seen.add(account.name)

    @property
    def enabled_accounts(self) -> tuple[AccountConfig, ...]:
        return tuple(a for a in self.accounts if a.enabled)

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        raise ConfigError(f"accounts: no account named {name!r}")


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override, decode and validate ``path``. Raises :class:`ConfigError` only."""
    p = Path(path).expanduser()
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config: cannot read {p}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {p} is not valid TOML: {exc}") from None
    return config_from_dict(raw, environ)


def config_from_dict(raw: dict[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Decode an already-parsed TOML document (after applying environment overrides)."""
    env = os.environ if environ is None else environ
    raw, sources = apply_env_overrides(raw, env, Config)
    _inherit_account_sections(raw)
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc, raw, sources)) from None
    _check_files(config)
    nats_tls_context(config.nats)  # a CA or key that does not load fails here, before sockets
    config.database.resolve_dsn(env)
    for url in config.nats.servers:
        remember_url_password(url)
    config.http.reconcile_token(env)
    for account in config.enabled_accounts:
        account.credentials(env)
    for account in config.enabled_accounts:
        if account.market not in SUPPORTED_MARKETS:
            raise ConfigError(
                f"accounts[{account.name}].market: {account.market} is not supported by this "
                f"version ({', '.join(SUPPORTED_MARKETS)} only)"
            )
    _validate_stream(config.stream, "stream")
    for account in config.accounts:
        if account.stream is not None:
            _validate_stream(account.stream, f"accounts[{account.name}].stream")
    return config


def nats_tls_context(n: NatsConfig) -> ssl.SSLContext | None:
    """The client TLS context of ``[nats]`` (``None`` when TLS is not wanted); a CA or key file
    that is not valid PEM is a :class:`ConfigError` naming the field."""
    if not n.tls_wanted:
        return None
    try:
        context = ssl.create_default_context(cafile=n.tls_ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"nats.tls_ca_file: not a usable CA bundle: {exc}") from None
    if n.tls_cert_file is not None:
        try:
            context.load_cert_chain(n.tls_cert_file, n.tls_key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"nats.tls_cert_file: the certificate and tls_key_file do not load: {exc}"
            ) from None
    if not n.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _check_files(config: Config) -> None:
    """Every file the config names (credentials, CA, certificates, keys) is readable now, so a
    typo fails at start-up with the field named instead of deep inside a TLS handshake."""
    named = [
        *((f"nats.{k}", v) for k, v in config.nats.files.items()),
        *((f"database.{k}", v) for k, v in config.database.tls_files.items()),
    ]
    for field, value in named:
        path = Path(value).expanduser()
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None


def _validate_stream(settings: StreamSettings, where: str) -> None:
    defaults = StreamSettings()
    if settings.ws_url != defaults.ws_url:
        raise ConfigError(f"{where}.ws_url: set ws_url (or endpoints) on the account instead")
    if settings.accounts_per_connection != defaults.accounts_per_connection:
        # One pool of connections per process: a per-account value could not be honoured.
        raise ConfigError(
            f"{where}.accounts_per_connection: set it once, in [spot] accounts_per_connection"
        )
    try:
        settings.validate()
    except ConfigError as exc:
        message = str(exc).removeprefix("stream.")
        field, sep, reason = message.partition(" must ")
        if sep and field.isidentifier():
            message = f"{field}: must {reason}"
        raise ConfigError(f"{where}.{message}") from None


def _inherit_account_sections(raw: dict[str, Any]) -> None:
    """Each account's ``stream``/``reconcile`` table overlays the top-level one."""
    accounts = raw.get("accounts")
    if not isinstance(accounts, list):
        return
    for account in accounts:
        if not isinstance(account, dict):
            continue
        for section in ("stream", "reconcile"):
            base = raw.get(section, {})
            own = account.get(section, {})
            if isinstance(base, dict) and isinstance(own, dict):
                account[section] = {**base, **own}


_PATH_PART = re.compile(r"\.([A-Za-z_]+)|\[(\d+)\]")
# Our own __post_init__ messages are "<field relative to the section>: <reason>"; msgspec's start
# with a capital letter ("Expected `int`, got `str`") and already point at the field.
_RELATIVE = re.compile(r"^([a-z_]+): (.*)$", re.DOTALL)
# The paths' settings say "reconcile.interval_s must be > 0, got -1".
_SECTION_FIELD = re.compile(r"^([a-z_]+)\.([a-z_]+):? (.*)$", re.DOTALL)


def _describe(exc: msgspec.ValidationError, raw: dict[str, Any], sources: dict[str, str]) -> str:
    """``accounts[alpha].rest_url: must start with …`` from msgspec's ``… - at `$.accounts[0]```."""
    message, _, where = str(exc).rpartition(" - at ")
    if not message:
        message, where = str(exc), "$"
    parts: list[str] = []
    node: Any = raw
    for name, index in _PATH_PART.findall(where.strip("`").removeprefix("$")):
        if name:
            parts.append(f".{name}" if parts else name)
            node = node.get(name) if isinstance(node, dict) else None
        else:
            node = node[int(index)] if isinstance(node, list) else None
            label = node.get("name") if isinstance(node, dict) else None
            parts.append(f"[{label}]" if isinstance(label, str) else f"[{index}]")
    path = "".join(parts)
    relative = _RELATIVE.match(message)
    section_field = _SECTION_FIELD.match(message)
    if relative:
        field, message = relative.groups()
        path = f"{path}.{field}" if path else field
    elif section_field and path.endswith(section_field.group(1)):
        path = f"{path}.{section_field.group(2)}"
        message = section_field.group(3)
    elif message == "Number out of range":  # a string such as "1e400" from the environment
        message = "must be a finite number, got a value out of range"
    elif message[:1].isupper():
        message = message[0].lower() + message[1:]
    source = sources.get(path)
    origin = f" (from {source})" if source else ""
    return f"{path or 'config'}: {message}{origin}"
