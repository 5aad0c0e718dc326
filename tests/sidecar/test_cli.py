"""The ``fillstream`` commands: help and exit codes, check, tail, reconcile, republish, migrate."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import asyncpg
import nats
import pytest

from fillstream.sidecar.cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, build_parser, main
from fillstream.sidecar.config import load_config
from fillstream.sidecar.service import Service
from fillstream.sidecar.tally import tally_jetstream
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import converge, pg_fill_count, run_cli, wait_for, write_config

COMMANDS = ["run", "demo", "reconcile", "republish", "tail", "check", "migrate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"fillstream {command}" in out
    assert "exit codes:" in out


def test_top_level_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in [*COMMANDS, "sim"]:
        assert command in text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["reconcile"])  # --account and --since are required
    assert exit_info.value.code == EXIT_USAGE
    assert main(["check", "--config", "/nonexistent/fillstream.toml"]) == EXIT_USAGE
    assert "configuration error: config: cannot read" in capsys.readouterr().err


async def test_bad_config_fails_before_any_socket_opens(tmp_path: Path) -> None:
    accepted: list[int] = []

    async def on_connect(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(1)
        w.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = tmp_path / "bad.toml"
    config.write_text(
        f'[database]\ndsn = "postgresql://x@127.0.0.1:{port}/db"\n'
        f'[nats]\nservers = ["nats://127.0.0.1:{port}"]\n'
        "[[accounts]]\n"
        'name = "alpha"\napi_key_env = "K"\napi_secret_env = "S"\nendpoints = "custom"\n'
        f'rest_url = "http://127.0.0.1:{port}"\nws_url = "ws://127.0.0.1:{port}"\n'
        "enabled = maybe\n"
    )
    try:
        code, out = await run_cli(["check", "--config", str(config)], {"K": "k" * 8, "S": "s" * 8})
    finally:
        server.close()
        await server.wait_closed()
    assert code == EXIT_USAGE
    assert "fillstream: configuration error: config:" in out
    code, out = await run_cli(["check", "--config", str(config)], {"K": "k" * 8})
    assert code == EXIT_USAGE
    assert accepted == []


async def test_check_reports_each_dependency(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    async with Simulator(SimConfig(accounts=("alpha",), rate=0, seed=1)) as sim:
        config, env, _ = write_config(tmp_path / "fillstream.toml", sim, nats_target)
        code, out = await run_cli(["check", "--config", str(config)], {**env, "TEST_DSN": pg_dsn})
        assert code == EXIT_OK, out
        assert "ok    postgres" in out
        assert "migration(s) pending, applied at start-up" in out
        assert f"stream {nats_target.stream} absent; created at start-up" in out
        assert "clock skew" in out
        assert "listenKey obtained" in out
        assert re.search(r"key (permissions unknown|is read-only|has can)", out)
        assert "check passed" in out
        assert sim.keys.active("alpha") is not None  # created, never deleted by a check
        for a in sim.accounts:
            assert a.api_secret not in out

        env["TEST_DSN"] = "postgresql://nobody@127.0.0.1:1/none"
        code, out = await run_cli(["check", "--config", str(config)], env)
        assert code == EXIT_PROBLEMS
        assert "fail  postgres" in out
        assert "check FAILED" in out


async def test_tail_reconcile_republish_migrate(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    async with Simulator(SimConfig(accounts=("alpha",), rate=30, seed=9)) as sim:
        path, env, _ = write_config(tmp_path / "fillstream.toml", sim, nats_target, port=0)
        env["TEST_DSN"] = pg_dsn
        service = Service(load_config(path, env), env)
        await service.start()
        stop = asyncio.Event()
        serving = asyncio.create_task(service.serve(stop))
        try:
            live = ["tail", "--nats", nats_target.url, "--prefix", nats_target.prefix]
            code, out = await run_cli([*live, "--count", "5", "--timeout", "60"])
            assert code == EXIT_OK
            lines = out.splitlines()
            assert len(lines) == 5
            assert all(line.startswith(f"{nats_target.prefix}.") for line in lines)
            replay = ["--since", "1h", "--stream", nats_target.stream, "--ids", "--count", "3"]
            code, out = await run_cli([*live, *replay, "--subject", f"{nats_target.prefix}.fill.>"])
            assert code == EXIT_OK
            assert all(" fill:alpha:usdm:" in line for line in out.splitlines())
            sim.pause()
            await converge(sim, pg_dsn, nats_target)
        finally:
            stop.set()
            await serving

        # reconcile: a dry run lists what the store lacks (exit 3); --apply restores it.
        stored = await pg_fill_count(pg_dsn)
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "DELETE FROM fills WHERE (symbol, trade_id) IN (SELECT symbol, trade_id FROM fills"
                " ORDER BY trade_time_ms DESC LIMIT 4)"
            )
        finally:
            await conn.close()
        rec = ["reconcile", "--config", str(path), "--account", "alpha", "--since", "1h"]
        code, out = await run_cli(rec, env)
        assert code == EXIT_PROBLEMS, out
        assert out.count("would add fill") == 4
        # Times as ISO 8601 UTC, not epoch milliseconds.
        assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z:", out), out
        assert re.search(r"would add fill .* at \d{4}-\d\d-\d\dT[\d:.]+Z$", out, re.M), out
        assert await pg_fill_count(pg_dsn) == stored - 4
        code, out = await run_cli([*rec, "--apply"], env)
        assert code == EXIT_OK, out
        assert out.count("added fill") == 4
        assert await pg_fill_count(pg_dsn) == stored

        # republish: every stored fill re-sent, here into a fresh stream and prefix.
        other = {
            **env,
            "FILLSTREAM_NATS__STREAM": f"{nats_target.stream}_COPY",
            "FILLSTREAM_NATS__SUBJECT_PREFIX": f"{nats_target.prefix}copy",
        }
        code, out = await run_cli(["republish", "--config", str(path), "--since", "1h"], other)
        assert code == EXIT_OK, out
        nc = await nats.connect(nats_target.url)
        try:

            async def copied() -> bool:
                tally = await tally_jetstream(
                    nc, f"{nats_target.stream}_COPY", f"{nats_target.prefix}copy", ["alpha"]
                )
                return len(tally.fills) == stored and tally.duplicate_fills == 0

            await wait_for(copied, 30, "republished fills")
        finally:
            await nc.close()

        code, out = await run_cli(["migrate", "--dsn", pg_dsn])
        assert code == EXIT_OK
        assert "schema up to date" in out
        code, out = await run_cli(["migrate", "--dsn-env", "TEST_DSN"], {"TEST_DSN": pg_dsn})
        assert code == EXIT_OK, out
        assert out == "schema up to date\n"  # no warning: no password on the command line


async def test_fatal_start_up_error_is_one_masked_line(tmp_path: Path) -> None:
    secret = "the-api-secret-also-used-as-a-db-password-123"
    config = tmp_path / "fillstream.toml"
    config.write_text(
        '[database]\ndsn_env = "DSN"\n[nats]\nservers = ["nats://127.0.0.1:1"]\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        "[[accounts]]\n"
        'name = "alpha"\napi_key_env = "K"\napi_secret_env = "S"\n'
    )
    env = {"DSN": f"postgresql://fill:{secret}@127.0.0.1:1/fills", "K": "key-123456", "S": secret}
    code, out = await run_cli(["--log-level", "DEBUG", "run", "--config", str(config)], env)
    assert code == 1
    reason = [line for line in out.splitlines() if line.startswith("fillstream: ")]
    assert len(reason) == 1
    assert (
        "StartupError: cannot connect to PostgreSQL at postgresql://fill:****@127.0.0.1:1/fills"
        in reason[0]
    )
    traceback = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any("Traceback" in line.get("exc", "") for line in traceback)
    assert secret not in out


# -- commands never hang or dump a traceback ------------------------------------------------------

UNREACHABLE = """
[database]
dsn_env = "DSN"
connect_timeout_s = 5
[nats]
servers = ["{nats}"]
connect_timeout_s = {nats_timeout}
[[accounts]]
name = "alpha"
api_key_env = "K"
api_secret_env = "S"
endpoints = "custom"
rest_url = "http://127.0.0.1:1"
ws_url = "ws://127.0.0.1:1"
"""
KEYS = {"K": "key-0123456789", "S": "secret-0123456789"}


def _write(tmp_path: Path, nats: str = "nats://127.0.0.1:1", nats_timeout: float = 5) -> Path:
    path = tmp_path / "fillstream.toml"
    path.write_text(UNREACHABLE.format(nats=nats, nats_timeout=nats_timeout))
    return path


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("postgresql://h:notaport/db", "invalid literal for int()"),
        ("postgresql://127.0.0.1:1/db?sslmode=verify-full", "root certificate file"),
        ("postgresql://[::1", "Invalid IPv6 URL"),
        ("postgresql://nobody@127.0.0.1:1/none", "Connect call failed"),
    ],
)
async def test_check_with_a_bad_dsn_still_runs_every_check(
    tmp_path: Path, nats_target: NatsTarget, dsn: str, reason: str
) -> None:
    path = _write(tmp_path, nats=nats_target.url)
    env = {**KEYS, "DSN": dsn, "HOME": str(tmp_path)}  # HOME: no ~/.postgresql/root.crt
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_PROBLEMS, out
    lines = out.splitlines()
    assert lines[0].startswith("fail  postgres             cannot reach PostgreSQL at "), out
    assert reason in lines[0]
    assert "ok    nats                 reachable at" in out  # the NATS check ran
    assert any(line.startswith("fail  accounts[alpha]") for line in lines)  # and the account's
    assert lines[-1].startswith("check FAILED")
    assert "never awaited" not in out
    assert "Traceback" not in out


BAD_SINCE = [
    "1700000000",
    "1000000w",
    "99999999999999999999d",
    "inf",
    "1e400",
    "nan",
    "2099-01-01T00:00:00Z",
    "99999999999999999999",
    "91d",
    "yesterday",
]


@pytest.mark.parametrize("since", BAD_SINCE)
def test_reconcile_since_out_of_range_is_one_line_exit_2(
    tmp_path: Path, since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path)
    args = ["reconcile", "--config", str(path), "--account", "alpha", "--since", since]
    assert main(args) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("fillstream: --since: "), line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tail", "--count", "-1"], "fillstream: --count: must be at least 1, got -1"),
        (["tail", "--count", "0"], "fillstream: --count: must be at least 1, got 0"),
        (["tail", "--timeout", "nan"], "fillstream: --timeout: 'nan': a duration must be finite"),
        (["tail", "--timeout", "0"], "fillstream: --timeout: must be more than 0, got '0'"),
        (["tail", "--since", "2099-01-01T00:00:00Z"], "fillstream: --since: '2099-01-01T00:00"),
        (["republish", "--config", "X", "--since", "inf"], "fillstream: --since: 'inf': a dur"),
        (["migrate", "--dsn-env", "FS_TEST_UNSET_VAR"], "fillstream: --dsn-env: environment"),
        (["migrate", "--dsn", "mysql://x"], "fillstream: --dsn: must start with postgresql://"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == EXIT_USAGE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(expected), line


async def test_admin_commands_name_what_they_cannot_reach(
    tmp_path: Path, pg_dsn: str, nats_target: NatsTarget
) -> None:
    path = _write(tmp_path)
    config = ["--config", str(path)]
    unreachable_pg = {**KEYS, "DSN": "postgresql://fill:pw-9876543210@127.0.0.1:1/fills"}
    expected_pg = "fillstream: cannot reach PostgreSQL at postgresql://fill:****@127.0.0.1:1/fills"
    for args in (
        ["migrate", *config],
        ["republish", *config, "--since", "1h"],
        ["reconcile", *config, "--account", "alpha", "--since", "1h"],
    ):
        code, out = await run_cli(args, unreachable_pg)
        assert code == 1, out
        assert out.startswith(expected_pg), out
        assert len(out.splitlines()) == 1, out
        assert "pw-9876543210" not in out

    reachable_pg = {**KEYS, "DSN": pg_dsn}
    code, out = await run_cli(["republish", *config, "--since", "1h"], reachable_pg)
    assert code == 1, out
    assert out.startswith("fillstream: cannot reach NATS at nats://127.0.0.1:1: "), out
    code, out = await run_cli(
        ["reconcile", *config, "--account", "alpha", "--since", "1h"], reachable_pg
    )
    assert code == 1, out
    assert out.startswith(
        "fillstream: cannot reach the venue's REST API of account alpha at http://127.0.0.1:1: "
    ), out
    code, out = await run_cli(["tail", "--nats", "nats://u:pw-9876543210@127.0.0.1:1"])
    assert code == 1, out
    assert out == (
        "fillstream: cannot reach NATS at nats://u:****@127.0.0.1:1: ConnectionRefusedError: "
        "[Errno 111] Connect call failed ('127.0.0.1', 1)\n"
    )
