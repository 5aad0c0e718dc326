"""NATS credentials: a ``.creds`` file (user JWT + nkey seed, with the ``nkeys`` dependency)
against a nats-server in operator mode, a user and password, and refusals that fail at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from fillstream.sidecar.cli import EXIT_USAGE
from fillstream.sidecar.clients import connect_nats
from fillstream.sidecar.config import config_from_dict
from fillstream.sidecar.errors import Unreachable
from tests.sidecar.harness import run_cli
from tests.sidecar.natsfixtures import ConfNats, OperatorNats

KEYS = {"K": "key-0123456789", "S": "secret-0123456789"}
PASSWORD = "nats-password-5e8b1f"
# A connect timeout this long would make a retried refusal take minutes; the commands below
# must end at once (run_cli's own limit is far below it).
SLOW_CONNECT = 120


@pytest.fixture(scope="module")
def operator_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorNats]:
    server = OperatorNats(tmp_path_factory.mktemp("operator-nats"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def password_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfNats]:
    extra = f'authorization {{ user: alice, password: "{PASSWORD}" }}\n'
    server = ConfNats(tmp_path_factory.mktemp("password-nats"), extra)
    try:
        yield server
    finally:
        server.close()


def _raw(nats: dict[str, object]) -> dict[str, object]:
    return {
        "database": {"dsn": "postgresql://fill@127.0.0.1:1/fills"},
        "nats": nats,
        "accounts": [{"name": "alpha", "api_key_env": "K", "api_secret_env": "S"}],
    }


async def test_credentials_file_connects_and_carries_messages(operator_nats: OperatorNats) -> None:
    raw = _raw({"servers": [operator_nats.url], "credentials_file": str(operator_nats.creds)})
    config = config_from_dict(raw, KEYS)
    nc = await connect_nats(config, reconnect=False)
    try:
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(msg: object) -> None:
            await received.put(getattr(msg, "data", b""))

        await nc.subscribe("creds.test", cb=on_message)
        await nc.publish("creds.test", b"signed in with a .creds file")
        await nc.flush()
        assert await asyncio.wait_for(received.get(), 30) == b"signed in with a .creds file"
    finally:
        await nc.close()


async def test_refused_credentials_fail_at_once_with_the_reason(
    operator_nats: OperatorNats, password_nats: ConfNats, tmp_path: Path
) -> None:
    wrong = _raw(
        {"servers": [operator_nats.url], "credentials_file": str(operator_nats.wrong_creds)}
    )
    for reconnect in (False, True):
        with pytest.raises(Unreachable, match="Authorization Violation"):
            await connect_nats(config_from_dict(wrong, KEYS), reconnect=reconnect)

    config = tmp_path / "fillstream.toml"
    config.write_text(
        '[database]\ndsn = "postgresql://fill@127.0.0.1:1/fills"\n'
        f'[nats]\nservers = ["{operator_nats.url}"]\n'
        f'credentials_file = "{operator_nats.wrong_creds}"\nconnect_timeout_s = {SLOW_CONNECT}\n'
        '[[accounts]]\nname = "alpha"\napi_key_env = "K"\napi_secret_env = "S"\n'
    )
    code, out = await run_cli(["tail", "--config", str(config)], KEYS, timeout_s=SLOW_CONNECT / 4)
    assert code == 1
    assert out == (
        f"fillstream: cannot reach NATS at {operator_nats.url}: Error: nats: "
        "'Authorization Violation'\n"
    )

    url = password_nats.url.replace("nats://", "nats://alice:wrong-password-123@")
    code, out = await run_cli(["tail", "--nats", url], timeout_s=SLOW_CONNECT / 4)
    assert code == 1
    masked = password_nats.url.replace("nats://", "nats://alice:****@")
    assert out.startswith(f"fillstream: cannot reach NATS at {masked}: "), out
    assert "wrong-password-123" not in out

    good = password_nats.url.replace("nats://", f"nats://alice:{PASSWORD}@")
    code, out = await run_cli(["tail", "--nats", good, "--timeout", "0.5"])
    assert code == 0, out
    assert PASSWORD not in out


async def test_a_missing_credentials_file_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "fillstream.toml"
    config.write_text(
        '[database]\ndsn = "postgresql://fill@127.0.0.1:1/fills"\n'
        f'[nats]\ncredentials_file = "{tmp_path}/absent.creds"\n'
        '[[accounts]]\nname = "alpha"\napi_key_env = "K"\napi_secret_env = "S"\n'
    )
    code, out = await run_cli(["check", "--config", str(config)], KEYS)
    assert code == EXIT_USAGE
    assert out == (
        "fillstream: configuration error: nats.credentials_file: cannot read "
        f"{tmp_path}/absent.creds: No such file or directory\n"
    )
