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
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from fillstream.ledger.errors import ConfigError
from fillstream.ledger.types import Market
from fillstream.reconcile.settings import ReconcileSettings
from fillstream.sidecar.envoverrides import apply_env_overrides
from fillstream.sidecar.secrets import Secret, read_secret, remember_url_password
from fillstream.sidecar.venue import REST_URLS
from fillstream.stream.config import StreamSettings

# The markets both paths implement today; coinm and spot are accepted names, not yet served.
SUPPORTED_MARKETS = (Market.USDM,)
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# A NATS subject token: no whitespace, no wildcards, no separators.
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class Endpoints(enum.StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    DEMO = "demo"
    CUSTOM = "custom"


# (market, endpoints) → WebSocket base URL; binance-facts.md §1.2, §1.3, §5, §6. The stream path
# appends ``/private/ws/<listenKey>`` (USDⓈ-M). REST base URLs are the venue's ``REST_URLS``.
WS_URLS: dict[tuple[Market, Endpoints], str] = {
    (Market.USDM, Endpoints.MAINNET): "wss://fstream.binance.com",
    (Market.USDM, Endpoints.TESTNET): "wss://fstream.binancefuture.com",
    (Market.USDM, Endpoints.DEMO): "wss://fstream.binancefuture.com",
    (Market.COINM, Endpoints.MAINNET): "wss://dstream.binance.com",
    (Market.COINM, Endpoints.TESTNET): "wss://dstream.binancefuture.com",
    (Market.COINM, Endpoints.DEMO): "wss://dstream.binancefuture.com",
    (Market.SPOT, Endpoints.MAINNET): "wss://ws-api.binance.com:443/ws-api/v3",
    (Market.SPOT, Endpoints.TESTNET): "wss://ws-api.testnet.binance.vision/ws-api/v3",
    (Market.SPOT, Endpoints.DEMO): "wss://demo-ws-api.binance.com/ws-api/v3",
}


class DatabaseConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[database]``: the PostgreSQL ledger: ``dsn`` inline (without a password) or ``dsn_env``."""

    dsn: str | None = None
    dsn_env: str | None = None
    pool_min_size: PositiveInt = 2
    pool_max_size: PositiveInt = 10
    command_timeout_s: Positive = 30.0
    migrate_on_start: bool = True

    def __post_init__(self) -> None:
        if (self.dsn is None) == (self.dsn_env is None):
            raise ValueError("dsn: set exactly one of dsn or dsn_env")
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size: must not exceed pool_max_size")

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
        return dsn


class NatsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[nats]``: where facts are published. The stream is created/updated at start-up."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = "FILLSTREAM"
    subject_prefix: str = "fillstream"
    # Nats-Msg-Id dedup window: must cover the outbox retries and `republish` re-sends that can
    # re-deliver a message (design.md §5).
    duplicate_window_s: Positive = 7200.0
    max_age_s: NonNegative = 30 * 86400.0  # 0: keep forever (bounded by the server's limits)
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    credentials_file: str | None = None
    connect_timeout_s: Positive = 5.0
    publish_window: PositiveInt = 100  # in-flight publishes awaiting their ack

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("servers: at least one server URL is required")
        for url in self.servers:
            if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"servers: {url!r} is not a nats:// or tls:// URL")
        if self.max_age_s and self.max_age_s < self.duplicate_window_s:
            raise ValueError("max_age_s: must be 0 (unlimited) or cover duplicate_window_s")
        if not _STREAM_NAME.match(self.stream):
            raise ValueError("stream: only letters, digits, '-' and '_' are allowed")
        if not all(_SUBJECT_TOKEN.match(t) for t in self.subject_prefix.split(".")):
            raise ValueError("subject_prefix: dot-separated tokens of letters, digits, '-' and '_'")


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[http]``: /metrics /healthz /readyz /status (and POST /reconcile when enabled)."""

    listen: str = "127.0.0.1:9464"
    enable_reconcile_endpoint: bool = False
    loop_stall_s: Positive = 5.0  # /healthz fails when the event loop lagged longer than this

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen: expected host:port, e.g. 127.0.0.1:9464")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class PipelineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[pipeline]``: ingest batching and the outbox relay."""

    max_batch: PositiveInt = 1000  # fills per transaction; only what is already queued
    outbox_chunk: PositiveInt = 1000  # rows per read when the relay drains the table
    outbox_retention_s: Positive = 86400.0  # published rows are pruned after this long
    stuck_after_s: Positive = 30.0  # /readyz: an account whose oldest submission waits longer


class RestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[rest]``: the signed REST client shared by both paths (one weight budget per host)."""

    recv_window_ms: Annotated[int, msgspec.Meta(ge=1, le=60000)] = 5000
    request_timeout_s: Positive = 10.0
    time_sync_interval_s: Positive = 300.0
    max_wait_s: Positive = 90.0  # longest wait for the weight budget before a call gives up
    weight_limits: dict[str, PositiveInt] = {}  # host[:port] → weight/min; else exchangeInfo


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

    shutdown_deadline_s: Positive = 15.0
    restart_initial_s: Positive = 1.0  # an account's supervisor backoff after a crash
    restart_max_s: Positive = 60.0


class Credentials(msgspec.Struct, frozen=True):
    api_key: Secret
    api_secret: Secret


class AccountConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[accounts]]``: one exchange account. ``name`` is used in subjects and metric labels."""

    name: str
    market: Market = Market.USDM
    api_key_env: str | None = None
    api_key_file: str | None = None
    api_secret_env: str | None = None
    api_secret_file: str | None = None
    endpoints: Endpoints = Endpoints.MAINNET
    rest_url: str | None = None  # required with endpoints = "custom"; overrides otherwise
    ws_url: str | None = None
    symbols: tuple[str, ...] = ()  # always polled, in addition to those discovered
    enabled: bool = True
    # This account's [stream]/[reconcile] tables, overlaid on the top-level ones by load_config.
    stream: StreamSettings | None = None
    reconcile: ReconcileSettings | None = None

    def __post_init__(self) -> None:
        if not ACCOUNT_NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} must match [A-Za-z0-9_-]+")
        for kind in ("api_key", "api_secret"):
            env, file = getattr(self, f"{kind}_env"), getattr(self, f"{kind}_file")
            if (env is None) == (file is None):
                raise ValueError(f"{kind}: set exactly one of {kind}_env or {kind}_file")
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

    @property
    def resolved_rest_url(self) -> str:
        if self.rest_url is not None:
            return self.rest_url.rstrip("/")
        return REST_URLS[(self.market, str(self.endpoints))]

    @property
    def resolved_ws_url(self) -> str:
        if self.ws_url is not None:
            return self.ws_url.rstrip("/")
        return WS_URLS[(self.market, self.endpoints)]

    def credentials(self, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read the API key and secret (from env or files); :class:`ConfigError` if missing."""
        prefix = f"accounts[{self.name}]"
        return Credentials(
            api_key=read_secret(
                f"{prefix}.api_key",
                env_name=self.api_key_env,
                file_path=self.api_key_file,
                environ=environ,
            ),
            api_secret=read_secret(
                f"{prefix}.api_secret",
                env_name=self.api_secret_env,
                file_path=self.api_secret_file,
                environ=environ,
            ),
        )

    @property
    def stream_settings(self) -> StreamSettings:
        """The stream settings of this account, on this account's WebSocket URL."""
        base = self.stream if self.stream is not None else StreamSettings()
        return msgspec.structs.replace(base, ws_url=self.resolved_ws_url)

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
    config.database.resolve_dsn(env)
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


def _validate_stream(settings: StreamSettings, where: str) -> None:
    if settings.ws_url != StreamSettings().ws_url:
        raise ConfigError(f"{where}.ws_url: set ws_url (or endpoints) on the account instead")
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
_SECTION_FIELD = re.compile(r"^([a-z_]+)\.([a-z_]+) (.*)$", re.DOTALL)


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
    elif message[:1].isupper():
        message = message[0].lower() + message[1:]
    source = sources.get(path)
    origin = f" (from {source})" if source else ""
    return f"{path or 'config'}: {message}{origin}"
