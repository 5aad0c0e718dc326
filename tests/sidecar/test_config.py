"""Config: TOML decoding, environment overrides, validation messages, secrets from env or files."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fillstream.ledger import ConfigError, Market
from fillstream.sidecar.config import Config, Endpoints, LogFormat, load_config

SECRET = "s3cr3t-value-that-must-never-show-0123456789"
KEY = "api-key-value-0123456789abcdef"

MINIMAL = """
[database]
dsn = "postgresql://fill@127.0.0.1:5433/fills"

[[accounts]]
name = "alpha"
api_key_env = "ALPHA_API_KEY"
api_secret_env = "ALPHA_API_SECRET"
"""

ENV = {"ALPHA_API_KEY": KEY, "ALPHA_API_SECRET": SECRET}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fillstream.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **env: str) -> Config:
    return load_config(write(tmp_path, text), {**ENV, **env})


def error(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **env)
    message = str(info.value)
    assert SECRET not in message
    return message


def test_minimal_config_takes_documented_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    assert config.nats.servers == ("nats://127.0.0.1:4222",)
    assert config.nats.stream == "FILLSTREAM"
    assert config.nats.subject_prefix == "fillstream"
    assert config.http.listen == "127.0.0.1:9464"
    assert config.http.enable_reconcile_endpoint is False
    assert config.logging.format is LogFormat.AUTO
    (alpha,) = config.enabled_accounts
    assert alpha.market is Market.USDM
    assert alpha.endpoints is Endpoints.MAINNET
    assert alpha.resolved_rest_url == "https://fapi.binance.com"
    assert alpha.resolved_ws_url == "wss://fstream.binance.com"


def test_example_config_in_deploy_is_valid() -> None:
    example = Path(__file__).parents[2] / "deploy" / "fillstream.example.toml"
    env = {
        **ENV,
        "FILLSTREAM_DSN": "postgresql://fillstream@db/fillstream",
        "BETA_API_KEY": KEY,
        "BETA_API_SECRET": SECRET,
    }
    config = load_config(example, env)
    assert [a.name for a in config.accounts] == ["alpha", "beta", "sim"]
    assert config.account("beta").resolved_rest_url == "https://demo-fapi.binance.com"


def test_testnet_and_demo_endpoints_follow_binance_facts(tmp_path: Path) -> None:
    for endpoints in ("testnet", "demo"):
        config = load(tmp_path, MINIMAL + f'endpoints = "{endpoints}"\n')
        (alpha,) = config.accounts
        assert alpha.resolved_rest_url == "https://demo-fapi.binance.com"
        assert alpha.resolved_ws_url == "wss://fstream.binancefuture.com"


def test_custom_endpoints_need_both_urls(tmp_path: Path) -> None:
    text = MINIMAL + 'endpoints = "custom"\nrest_url = "http://127.0.0.1:8000/"\n'
    assert error(tmp_path, text) == (
        'accounts[alpha].rest_url: rest_url and ws_url are required with endpoints = "custom"'
    )
    config = load(tmp_path, text + 'ws_url = "ws://127.0.0.1:8000"\n')
    assert config.accounts[0].resolved_rest_url == "http://127.0.0.1:8000"


def test_several_accounts_with_per_account_section_overrides(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[accounts.reconcile]
degraded_interval_s = 2.5
symbols = ["ETHUSDT"]

[[accounts]]
name = "beta"
market = "usdm"
api_key_file = "{key}"
api_secret_file = "{secret}"
enabled = false

[reconcile]
interval_s = 30
degraded_interval_s = 4
symbols = ["BTCUSDT"]
"""
    )
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "secret").write_text(SECRET + "\n")
    text = text.format(key=tmp_path / "key", secret=tmp_path / "secret")
    config = load(tmp_path, text)
    alpha, beta = config.accounts
    assert alpha.reconcile_settings.interval_s == 30
    assert alpha.reconcile_settings.degraded_interval_s == 2.5
    assert alpha.reconcile_settings.symbols == ("ETHUSDT",)
    assert beta.reconcile_settings.degraded_interval_s == 4
    assert beta.reconcile_settings.symbols == ("BTCUSDT",)
    assert config.enabled_accounts == (alpha,)
    creds = beta.credentials()
    assert creds.api_secret.reveal() == SECRET
    assert creds.api_key.reveal() == KEY


def test_environment_overrides_single_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL,
        FILLSTREAM_DATABASE__DSN="postgresql://other@db:5432/x",
        FILLSTREAM_NATS__SERVERS="nats://a:4222, nats://b:4222",
        FILLSTREAM_NATS__DUPLICATE_WINDOW_S="10800",
        FILLSTREAM_HTTP__ENABLE_RECONCILE_ENDPOINT="true",
        FILLSTREAM_STREAM__STALE_AFTER_S="30",
        FILLSTREAM_ACCOUNTS__ALPHA__SYMBOLS="BTCUSDT,ETHUSDT",
        FILLSTREAM_ACCOUNTS__ALPHA__ENDPOINTS="testnet",
        FILLSTREAM_ACCOUNTS__ALPHA__RECONCILE__SETTLE_DELAY_S="0.5",
        FILLSTREAM_TEST_PG_DSN="ignored: not an override (no double underscore)",
    )
    assert config.database.dsn == "postgresql://other@db:5432/x"
    assert config.nats.servers == ("nats://a:4222", "nats://b:4222")
    assert config.nats.duplicate_window_s == 10800
    assert config.http.enable_reconcile_endpoint is True
    (alpha,) = config.accounts
    assert alpha.stream_settings.stale_after_s == 30  # inherited from [stream]
    assert alpha.symbols == ("BTCUSDT", "ETHUSDT")
    assert alpha.reconcile_settings.symbols == ("BTCUSDT", "ETHUSDT")
    assert alpha.endpoints is Endpoints.TESTNET
    assert alpha.stream_settings.ws_url == "wss://fstream.binancefuture.com"
    assert alpha.reconcile_settings.settle_delay_s == 0.5


def test_account_override_matches_names_with_dashes(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "alpha"', 'name = "desk-1"')
    config = load(tmp_path, text, FILLSTREAM_ACCOUNTS__DESK_1__ENABLED="false")
    assert config.accounts[0].enabled is False
    assert config.enabled_accounts == ()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FILLSTREAM_HTTP__LISTN": "x"}, "FILLSTREAM_HTTP__LISTN: http has no field 'listn'"),
        ({"FILLSTREAM_NOPE__X": "1"}, "FILLSTREAM_NOPE__X: config has no field 'nope'"),
        (
            {"FILLSTREAM_ACCOUNTS__GAMMA__ENABLED": "1"},
            "FILLSTREAM_ACCOUNTS__GAMMA__ENABLED: no [[accounts]] entry named 'gamma'"
            " in the config file",
        ),
        (
            {"FILLSTREAM_HTTP__LISTEN": "9464"},
            "http.listen: expected host:port, e.g. 127.0.0.1:9464 (from FILLSTREAM_HTTP__LISTEN)",
        ),
        (
            {"FILLSTREAM_PIPELINE__MAX_BATCH": "many"},
            "pipeline.max_batch: expected `int`, got `str` (from FILLSTREAM_PIPELINE__MAX_BATCH)",
        ),
        (
            {"FILLSTREAM_ACCOUNTS__ALPHA__ENABLED": "perhaps"},
            "accounts[alpha].enabled: expected `bool`, got `str`"
            " (from FILLSTREAM_ACCOUNTS__ALPHA__ENABLED)",
        ),
        ({"FILLSTREAM_DATABASE__DSN_ENV": "X"}, "database.dsn: set exactly one of dsn or dsn_env"),
    ],
)
def test_bad_environment_overrides_name_the_variable_or_field(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    assert error(tmp_path, MINIMAL, **env) == expected


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (('name = "alpha"', 'name = "al pha"'), "accounts[al pha].name: 'al pha' must match"),
        (("[[accounts]]", "[[accounts]]\nmarket = 'perp'"), "accounts[alpha].market: invalid enum"),
        (
            ("[[accounts]]", "[[accounts]]\nsymbol = 'X'"),
            "accounts[alpha]: object contains unknown",
        ),
        (('api_secret_env = "ALPHA_API_SECRET"', ""), "accounts[alpha].api_secret: set exactly"),
        (("ALPHA_API_SECRET", "MISSING_VAR"), "accounts[alpha].api_secret_env: environment"),
        (
            ("[database]", "[database]\npool_max_size = 0"),
            "database.pool_max_size: must be an integer between 1",
        ),
        (("[database]", '[nats]\nstream = "a.b"\n[database]'), "nats.stream: only letters"),
        (("[database]", '[nats]\nservers = ["http://x"]\n[database]'), "nats.servers: 'http://"),
        (("[database]", '[logging]\nlevel = "LOUD"\n[database]'), "logging.level: one of"),
        (("[database]", "[reconcile]\ninterval_s = -1\n[database]"), "reconcile.interval_s: must"),
        (
            ("[database]", "[stream]\ntick_s = 0\n[database]"),
            "stream.tick_s: must be a finite number between 0.01",
        ),
        (("[database]", "[stream]\nws_url = 'ws://x'\n[database]"), "stream.ws_url: set ws_url"),
        (
            ("[[accounts]]", "[[accounts]]\nreconcile = {horizon_days = 100}"),
            "accounts[alpha].reconcile.horizon_days: must be a finite number between 1e-09 and 90",
        ),
        (
            ("[[accounts]]", "[[accounts]]\nstream = {backoff_max_s = 0.1}"),
            "accounts[alpha].stream.backoff_max_s: must be >=",
        ),
        (("[database]", "[nats]\nmax_age_s = 60\n[database]"), "nats.max_age_s: must be 0"),
        (("dsn =", "dsn_env = 'NOT_SET'\n#"), "database.dsn_env: environment variable NOT_SET"),
        (("postgresql://", "mysql://"), "database.dsn: must start with postgresql://"),
        (("[[accounts]]", "[[accounts]]\nrest_url = 'ftp://x'"), "accounts[alpha].rest_url: must"),
    ],
)
def test_validation_errors_name_the_field_and_the_reason(
    tmp_path: Path, patch: tuple[str, str], expected: str
) -> None:
    old, new = patch
    assert old in MINIMAL
    assert error(tmp_path, MINIMAL.replace(old, new, 1)).startswith(expected)


def test_duplicate_account_names_are_rejected(tmp_path: Path) -> None:
    text = MINIMAL + MINIMAL.split("\n\n")[1]
    assert error(tmp_path, text) == "accounts: the name 'alpha' is used twice"


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", ENV)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[database\n"), ENV)
    (tmp_path / "empty").write_text("\n")
    text = MINIMAL.replace(
        'api_secret_env = "ALPHA_API_SECRET"', f'api_secret_file = "{tmp_path}/empty"'
    )
    assert error(tmp_path, text).endswith("empty is empty")


def test_secrets_are_masked_in_every_repr(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    creds = config.accounts[0].credentials(ENV)
    for text in (repr(creds), str(creds.api_secret), f"{creds.api_secret}", repr(config)):
        assert SECRET not in text
        assert KEY not in text
    assert "****" in repr(creds)
    assert creds.api_secret.reveal() == SECRET


# -- every number finite and in a sane range (issue 11) ----------------------------------------

# (section table as TOML, field) for one duration/interval/size of every section.
NUMBERS = [
    ("database", "command_timeout_s"),
    ("database", "connect_timeout_s"),
    ("database", "pool_max_size"),
    ("nats", "connect_timeout_s"),
    ("nats", "duplicate_window_s"),
    ("nats", "publish_window"),
    ("http", "loop_stall_s"),
    ("pipeline", "max_batch"),
    ("pipeline", "outbox_retention_s"),
    ("rest", "request_timeout_s"),
    ("rest", "recv_window_ms"),
    ("service", "shutdown_deadline_s"),
    ("stream", "stale_after_s"),
    ("stream", "ping_interval_s"),
    ("stream", "queue_max"),
    ("reconcile", "interval_s"),
    ("reconcile", "horizon_days"),
    ("reconcile", "page_limit"),
]
BAD_VALUES = ["nan", "inf", "-inf", "1e400", "0", "-1", "-0.5", "1e12", "99999999999999999999"]


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize(("section", "field"), NUMBERS)
def test_every_number_is_finite_and_in_range(
    tmp_path: Path, section: str, field: str, value: str
) -> None:
    text = MINIMAL.replace("[[accounts]]", f"[{section}]\n{field} = {value}\n\n[[accounts]]", 1)
    if section == "database":
        text = MINIMAL.replace("[database]", f"[database]\n{field} = {value}", 1)
    message = error(tmp_path, text)
    assert message.startswith(f"{section}.{field}: "), message
    # A range the operator can act on, or (a string where a number belongs) the type.
    assert "must be" in message or "expected" in message, message


@pytest.mark.parametrize("value", ["nan", "1e400", "0", "-3"])
def test_environment_overrides_are_range_checked_too(tmp_path: Path, value: str) -> None:
    message = error(tmp_path, MINIMAL, FILLSTREAM_STREAM__STALE_AFTER_S=value)
    # The top-level value is also each account's default: either path may be named first.
    assert "stream.stale_after_s: must be a finite number" in message, message


def test_per_account_sections_are_range_checked(tmp_path: Path) -> None:
    text = MINIMAL.replace("[[accounts]]", "[[accounts]]\nstream = {ping_interval_s = nan}")
    assert error(tmp_path, text).startswith(
        "accounts[alpha].stream.ping_interval_s: must be a finite number between"
    )
    text = MINIMAL.replace("[[accounts]]", "[[accounts]]\nreconcile = {interval_s = inf}")
    assert error(tmp_path, text).startswith(
        "accounts[alpha].reconcile.interval_s: must be a finite number between"
    )


def test_every_number_of_every_section_has_a_range() -> None:
    """A new duration or size must come with its sane range (the tables beside the fields)."""
    import typing

    from fillstream.reconcile import settings as reconcile_settings
    from fillstream.sidecar import config as sidecar_config
    from fillstream.stream import config as stream_config

    tables: list[tuple[type[msgspec.Struct], typing.Mapping[str, object]]] = [
        (stream_config.StreamSettings, stream_config._RANGES),
        (reconcile_settings.ReconcileSettings, reconcile_settings._RANGES),
    ]
    for name in ("DatabaseConfig", "NatsConfig", "HttpConfig", "PipelineConfig"):
        cls = getattr(sidecar_config, name)
        tables.append((cls, cls._ranges))
    for name in ("RestConfig", "ServiceConfig", "ReplicasConfig"):
        cls = getattr(sidecar_config, name)
        tables.append((cls, cls._ranges))
    missing = []
    for cls, ranges in tables:
        hints = typing.get_type_hints(cls)
        for field in (f.name for f in msgspec.structs.fields(cls)):
            if hints[field] in (int, float) and field not in ranges:
                missing.append(f"{cls.__name__}.{field}")
    assert missing == []


def test_missing_files_are_named(tmp_path: Path) -> None:
    for section, field in (
        ("nats", "credentials_file"),
        ("nats", "tls_ca_file"),
        ("database", "sslrootcert"),
    ):
        if section == "database":
            text = MINIMAL.replace("[database]", f'[database]\n{field} = "{tmp_path}/nope"')
        else:
            text = MINIMAL.replace(
                "[[accounts]]", f'[nats]\n{field} = "{tmp_path}/nope"\n\n[[accounts]]'
            )
        assert error(tmp_path, text) == (
            f"{section}.{field}: cannot read {tmp_path}/nope: No such file or directory"
        )


def test_tls_settings(tmp_path: Path) -> None:
    from tests.sidecar.natsfixtures import make_pki

    ca = make_pki(tmp_path / "pki").ca
    text = MINIMAL.replace(
        "[database]", f'[database]\nsslmode = "verify-full"\nsslrootcert = "{ca}"'
    ).replace("[[accounts]]", f'[nats]\ntls_ca_file = "{ca}"\n\n[[accounts]]')
    config = load(tmp_path, text)
    assert config.database.resolve_dsn() == (
        f"postgresql://fill@127.0.0.1:5433/fills?sslmode=verify-full&sslrootcert={ca}"
    )
    assert config.nats.tls_wanted  # a CA means TLS, even with nats:// URLs
    assert not load(tmp_path, MINIMAL).nats.tls_wanted
    assert error(tmp_path, MINIMAL.replace("[database]", '[database]\nsslmode = "sometimes"')) == (
        "database.sslmode: one of disable, allow, prefer, require, verify-ca, verify-full"
    )
    both = MINIMAL.replace('fills"', 'fills?sslmode=require"').replace(
        "[database]", '[database]\nsslmode = "verify-full"'
    )
    assert error(tmp_path, both).startswith("database.sslmode: also given in the DSN")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\n")
    bad_ca = MINIMAL.replace("[[accounts]]", f'[nats]\ntls_ca_file = "{junk}"\n\n[[accounts]]')
    assert error(tmp_path, bad_ca).startswith("nats.tls_ca_file: not a usable CA bundle")
    half = MINIMAL.replace("[[accounts]]", f'[nats]\ntls_cert_file = "{ca}"\n\n[[accounts]]')
    assert error(tmp_path, half).startswith("nats.tls_cert_file: set both")
    ws = MINIMAL.replace(
        "[[accounts]]", '[nats]\nservers = ["ws://h:80"]\ntls_required = true\n\n[[accounts]]'
    )
    assert error(tmp_path, ws).startswith("nats.servers: TLS is required here; use wss://")


def test_reconcile_token_from_env_or_file(tmp_path: Path) -> None:
    token = "a-bearer-token-of-32-characters!"
    text = MINIMAL.replace(
        "[[accounts]]", '[http]\nreconcile_token_env = "RECONCILE_TOKEN"\n\n[[accounts]]'
    )
    config = load(tmp_path, text, RECONCILE_TOKEN=token)
    secret = config.http.reconcile_token({"RECONCILE_TOKEN": token})
    assert secret is not None
    assert secret.reveal() == token
    assert token not in repr(config)
    assert error(tmp_path, text).startswith(
        "http.reconcile_token_env: environment variable RECONCILE_TOKEN is not set"
    )
    assert error(tmp_path, text, RECONCILE_TOKEN="short").startswith(
        "http.reconcile_token_env: the token must be at least 16 characters"
    )
    (tmp_path / "token").write_text(token + "\n")
    from_file = MINIMAL.replace(
        "[[accounts]]", f'[http]\nreconcile_token_file = "{tmp_path}/token"\n\n[[accounts]]'
    )
    file_secret = load(tmp_path, from_file).http.reconcile_token()
    assert file_secret is not None
    assert file_secret.reveal() == token
    assert load(tmp_path, MINIMAL).http.reconcile_token() is None
