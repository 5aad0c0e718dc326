"""A ready-to-run fillstream configuration for a running simulator (``sim --write-config F``).

The TOML names every account with ``endpoints = "custom"`` and the simulator's URLs; the API
keys are not inline (a config is something people commit): each key and secret is written to
its own file next to the TOML (``<stem>-<account>.key`` / ``.secret``, mode 0600) and the config
names those files by absolute path (``api_key_file`` / ``api_secret_file``). PostgreSQL comes
from ``FILLSTREAM_DSN``; NATS is ``--config-nats`` (default ``nats://127.0.0.1:4222``). Every
value can still be overridden with ``FILLSTREAM_<SECTION>__<KEY>`` variables.

A COIN-M account (``--coinm-accounts``) gets ``market = "coinm"`` and the COIN-M symbols; its
REST paths are ``/dapi/...`` and its user stream ``<ws_url>/ws/<listenKey>`` (dstream's form;
no ``/private`` routing is known for COIN-M), on the same host and port.

Standalone on purpose (the simulator imports nothing of the service): the text is checked by
``fillstream check`` in the tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from fillstream.simulator.accounts import SimAccount

_HEADER = """\
# fillstream configuration for the simulator at {rest_url}
# (written by `fillstream sim --write-config`; valid while that simulator runs on this port).
# The API keys are in files next to this one (mode 0600), never inline.
# PostgreSQL: set FILLSTREAM_DSN. Override any value with FILLSTREAM_<SECTION>__<KEY>
# (e.g. FILLSTREAM_NATS__SERVERS=nats://host:4222).
#   fillstream check --config {path}
#   fillstream run --config {path}

[database]
dsn_env = "FILLSTREAM_DSN"

[nats]
servers = [{nats}]
stream = "FILLSTREAM"
subject_prefix = "fillstream"

[http]
listen = "127.0.0.1:9464"
"""

_ACCOUNT = """
[[accounts]]
name = {name}
api_key_file = {key_file}
api_secret_file = {secret_file}
endpoints = "custom"
rest_url = {rest_url}
ws_url = {ws_url}
symbols = [{symbols}]
"""
_MARKET = 'market = "coinm"\n'


def _s(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def key_files(config_path: Path, account: str) -> tuple[Path, Path]:
    """Where ``account``'s API key and secret go: next to the config."""
    stem = config_path.with_suffix("").name
    return (
        config_path.parent / f"{stem}-{account}.key",
        config_path.parent / f"{stem}-{account}.secret",
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (replacing what was there)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def render(
    config_path: Path,
    accounts: Sequence[SimAccount],
    *,
    rest_url: str,
    ws_url: str,
    symbols: Sequence[str],
    nats_url: str,
    coinm_symbols: Sequence[str] = (),
) -> str:
    """The TOML text (no secret in it)."""
    text = _HEADER.format(rest_url=rest_url, path=config_path, nats=_s(nats_url))
    for account in accounts:
        key_file, secret_file = key_files(config_path, account.name)
        coinm = account.market == "coinm"
        text += _ACCOUNT.format(
            name=_s(account.name),
            key_file=_s(str(key_file)),
            secret_file=_s(str(secret_file)),
            rest_url=_s(rest_url),
            ws_url=_s(ws_url),
            symbols=", ".join(_s(s) for s in (coinm_symbols if coinm else symbols)),
        )
        if coinm:
            text += _MARKET
    return text


def write(
    config_path: str | Path,
    accounts: Sequence[SimAccount],
    *,
    rest_url: str,
    ws_url: str,
    symbols: Sequence[str],
    nats_url: str = "nats://127.0.0.1:4222",
    coinm_symbols: Sequence[str] = (),
) -> Path:
    """Write the config and the key files; returns the config's absolute path."""
    path = Path(config_path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    for account in accounts:
        key_file, secret_file = key_files(path, account.name)
        _write_private(key_file, account.api_key + "\n")
        _write_private(secret_file, account.api_secret + "\n")
    text = render(
        path,
        accounts,
        rest_url=rest_url,
        ws_url=ws_url,
        symbols=symbols,
        nats_url=nats_url,
        coinm_symbols=coinm_symbols,
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
