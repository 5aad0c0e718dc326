"""Spot config: API key types (HMAC, RSA, Ed25519 private keys, encrypted or not), the ``[spot]``
section, their environment overrides, and that no key material shows in errors or reprs."""

from __future__ import annotations

from pathlib import Path

import pytest
from Crypto.PublicKey import ECC, RSA

from fillstream.binance.signing import KeyKind
from fillstream.ledger import ConfigError
from fillstream.sidecar.config import Config, load_config
from fillstream.sidecar.secrets import MASK, scrub

KEY = "spot-api-key-0123456789abcdef"
PASSPHRASE = "pem-passphrase-4711"
_PROTECTION = "PBKDF2WithHMAC-SHA512AndAES256-CBC"

BASE = """
[database]
dsn = "postgresql://fill@127.0.0.1:5433/fills"

[[accounts]]
name = "gamma"
api_key_env = "GAMMA_API_KEY"
"""


@pytest.fixture(scope="module")
def rsa_key() -> RSA.RsaKey:
    return RSA.generate(2048)


@pytest.fixture(scope="module")
def ed_key() -> ECC.EccKey:
    return ECC.generate(curve="Ed25519")


def load(tmp_path: Path, text: str, **env: str) -> Config:
    path = tmp_path / "fillstream.toml"
    path.write_text(text)
    return load_config(path, {"GAMMA_API_KEY": KEY, **env})


def error(tmp_path: Path, text: str, *hidden: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **env)
    message = str(info.value)
    for value in hidden:
        assert value not in message
    return message


def encrypted(key: RSA.RsaKey | ECC.EccKey) -> str:
    """``key`` as a PEM encrypted with :data:`PASSPHRASE` (few iterations: the test is quick)."""
    if isinstance(key, RSA.RsaKey):
        return key.export_key(
            format="PEM",
            passphrase=PASSPHRASE,
            pkcs=8,
            protection=_PROTECTION,
            prot_params={"iteration_count": 1000},
        ).decode()
    return key.export_key(
        format="PEM",
        passphrase=PASSPHRASE,
        protection=_PROTECTION,
        prot_params={"iteration_count": 1000},
    )


def body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if not line.startswith("-----")]


def test_ed25519_key_from_a_one_line_env_variable(tmp_path: Path, ed_key: ECC.EccKey) -> None:
    pem = ed_key.export_key(format="PEM")
    one_line = pem.replace("\n", "\\n")  # how a key is often put into a container's environment
    text = BASE + 'api_key_type = "ed25519"\napi_private_key_env = "GAMMA_PEM"\n'
    config = load(tmp_path, text, GAMMA_PEM=one_line)
    (gamma,) = config.accounts
    creds = gamma.credentials({"GAMMA_API_KEY": KEY, "GAMMA_PEM": one_line})
    assert creds.key_type is KeyKind.ED25519
    assert creds.api_secret.reveal() == pem  # already the normal form: unchanged
    assert ECC.import_key(creds.api_secret.reveal()) == ed_key
    assert MASK in repr(creds) and body_lines(pem)[0] not in repr(creds)


def test_encrypted_rsa_key_file_is_decrypted_once_at_load(
    tmp_path: Path, rsa_key: RSA.RsaKey
) -> None:
    locked = encrypted(rsa_key)
    key_file = tmp_path / "gamma.pem"
    key_file.write_text(locked + "\n")
    text = BASE + (
        f'api_key_type = "rsa"\napi_private_key_file = "{key_file}"\n'
        'api_private_key_pass_env = "GAMMA_PEM_PASS"\n'
    )
    env = {"GAMMA_API_KEY": KEY, "GAMMA_PEM_PASS": PASSPHRASE}
    (gamma,) = load(tmp_path, text, **env).accounts
    creds = gamma.credentials(env)
    plain = creds.api_secret.reveal()
    assert plain.startswith("-----BEGIN PRIVATE KEY-----")  # unencrypted PKCS#8 for every user
    assert RSA.import_key(plain) == rsa_key
    # Every line of the key, as stored and as decrypted, is scrubbed wherever it shows up.
    for line in (*body_lines(locked)[:2], *body_lines(plain)[:2]):
        assert scrub(f"leaked {line} here") == f"leaked {MASK} here"
    assert scrub(f"passphrase {PASSPHRASE}") == f"passphrase {MASK}"


def test_unreadable_keys_fail_at_load_naming_the_field(
    tmp_path: Path, rsa_key: RSA.RsaKey, ed_key: ECC.EccKey
) -> None:
    ed_text = BASE + 'api_key_type = "ed25519"\napi_private_key_env = "GAMMA_PEM"\n'
    rsa_pem = rsa_key.export_key(format="PEM").decode()
    locked = encrypted(ed_key)
    field = "accounts[gamma].api_private_key_env"
    assert error(tmp_path, ed_text, *body_lines(rsa_pem), GAMMA_PEM=rsa_pem) == (
        f"{field}: holds an RSA key, but api_key_type is ed25519"
    )
    assert error(tmp_path, ed_text, GAMMA_PEM="not a key at all") == (
        f"{field}: not a PEM private key (RSA or Ed25519)"
    )
    assert error(tmp_path, ed_text, GAMMA_PEM=locked) == (
        f"{field}: the key is encrypted; set api_private_key_pass_env"
    )
    wrong = ed_text + 'api_private_key_pass_env = "GAMMA_PEM_PASS"\n'
    assert error(tmp_path, wrong, PASSPHRASE, GAMMA_PEM=locked, GAMMA_PEM_PASS="nope-nope") == (
        f"{field}: wrong passphrase, or not a PEM private key (RSA or Ed25519)"
    )
    public = ed_key.public_key().export_key(format="PEM")
    assert error(tmp_path, ed_text, GAMMA_PEM=public) == (
        f"{field}: holds a public key; the private key is needed"
    )
    p256 = ECC.generate(curve="P-256").export_key(format="PEM")
    assert error(tmp_path, ed_text, GAMMA_PEM=p256) == (
        f"{field}: holds an NIST P-256 key, but api_key_type is ed25519"
    )
    assert error(tmp_path, ed_text) == f"{field}: environment variable GAMMA_PEM is not set"


def test_key_type_decides_which_fields_are_required_and_allowed(tmp_path: Path) -> None:
    hmac = BASE + 'api_secret_env = "GAMMA_API_SECRET"\n'
    assert load(tmp_path, hmac, GAMMA_API_SECRET="s" * 64).accounts[0].api_key_type is (
        KeyKind.HMAC
    )
    assert error(tmp_path, hmac + 'api_private_key_env = "GAMMA_PEM"\n') == (
        'accounts[gamma].api_private_key_env: not used with api_key_type = "hmac"'
    )
    rsa = BASE + 'api_key_type = "rsa"\n'
    assert error(tmp_path, rsa) == (
        "accounts[gamma].api_private_key: set exactly one of api_private_key_env or "
        "api_private_key_file"
    )
    assert error(tmp_path, rsa + 'api_private_key_env = "P"\napi_secret_env = "S"\n') == (
        'accounts[gamma].api_secret_env: not used with api_key_type = "rsa"'
    )
    assert error(tmp_path, BASE + 'api_key_type = "dsa"\napi_secret_env = "S"\n').startswith(
        "accounts[gamma].api_key_type: "
    )


def test_key_type_and_spot_section_follow_environment_overrides(
    tmp_path: Path, ed_key: ECC.EccKey
) -> None:
    config = load(
        tmp_path,
        BASE,
        FILLSTREAM_ACCOUNTS__GAMMA__API_KEY_TYPE="ed25519",
        FILLSTREAM_ACCOUNTS__GAMMA__API_PRIVATE_KEY_ENV="GAMMA_PEM",
        GAMMA_PEM=ed_key.export_key(format="PEM"),
        FILLSTREAM_SPOT__ACCOUNTS_PER_CONNECTION="200",
    )
    assert config.spot.accounts_per_connection == 200
    assert config.accounts[0].api_key_type is KeyKind.ED25519


def test_accounts_per_connection_is_range_checked(tmp_path: Path) -> None:
    text = BASE + 'api_secret_env = "S"\n'
    assert load(tmp_path, text, S="s" * 64).spot.accounts_per_connection == 50
    for bad in ("0", "1001"):
        message = error(tmp_path, text, S="s" * 64, FILLSTREAM_SPOT__ACCOUNTS_PER_CONNECTION=bad)
        assert message.startswith("spot.accounts_per_connection: ")
        assert message.endswith("(from FILLSTREAM_SPOT__ACCOUNTS_PER_CONNECTION)")


def test_accounts_per_connection_is_set_in_spot_only(tmp_path: Path) -> None:
    text = BASE + 'api_secret_env = "S"\n'
    for section, where in (("[stream]", "stream"), ("[accounts.stream]", "accounts[gamma].stream")):
        message = error(tmp_path, f"{text}\n{section}\naccounts_per_connection = 10\n", S="s" * 64)
        assert message == (
            f"{where}.accounts_per_connection: set it once, in [spot] accounts_per_connection"
        )
