"""``fillstream sim``: the ready line (stdout and file), serving, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from fillstream.sidecar.embedded import free_port
from fillstream.simulator import client_config
from fillstream.simulator.accounts import make_account
from fillstream.simulator.cli import parse
from tests.conftest import NatsTarget
from tests.sidecar.harness import run_cli, start_cli, wait_for
from tests.simulator.conftest import wait_until


async def test_serves_until_sigterm(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    ready = tmp_path / "ready.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fillstream.simulator.cli",
        "--port", "0", "--seed", "9", "--accounts", "a,b", "--symbols", "BTCUSDT,SOLUSDT",
        "--rate", "20", "--ready-file", str(ready), "--fault", "drop:account=a,count=1",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = msgspec.json.decode(line)
        assert msgspec.json.decode(ready.read_bytes()) == info
        assert set(info) == {"rest_url", "ws_url", "admin_url", "accounts"}
        assert [a["name"] for a in info["accounts"]] == ["a", "b"]
        assert info["ws_url"].startswith("ws://127.0.0.1:")
        async with http.get(info["rest_url"] + "/fapi/v1/exchangeInfo") as resp:
            symbols = [s["symbol"] for s in (await resp.json())["symbols"]]
        assert symbols == ["BTCUSDT", "SOLUSDT"]

        async def fills_of_b() -> int:
            async with http.get(info["admin_url"] + "/_sim/ledger") as resp:
                doc: dict[str, Any] = await resp.json()
            return len(doc["accounts"]["b"]["fills"])

        for _ in range(600):  # the generator runs in the child: poll until it has made fills
            if await fills_of_b() >= 5:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the child simulator made no fills")
        async with http.get(info["admin_url"] + "/_sim/faults") as resp:
            assert (await resp.json())["faults"] in (
                [],
                [{"account": "a", "kind": "drop", "count": 1}],
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_duration_stops_by_itself(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fillstream.simulator.cli", "--duration", "0.3", "--rate", "0",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 30) == 0


def test_arguments() -> None:
    config, ready = parse(
        ["--accounts", "x, y", "--hedge-accounts", "y", "--clock-speed", "60", "--fault",
         "rest_error:status=429,count=2", "--fault", "silent:account=x,seconds=5"]
    )  # fmt: skip
    assert (config.accounts, config.hedge_accounts, config.clock_speed, ready) == (
        ("x", "y"),
        ("y",),
        60.0,
        None,
    )
    assert [(f.kind, f.account, f.params) for f in config.faults] == [
        ("rest_error", None, {"status": 429, "count": 2}),
        ("silent", "x", {"seconds": 5.0}),
    ]
    for bad in (["--fault", "nope"], ["--accounts", "a", "--hedge-accounts", "b"], ["--rate", "x"]):
        with pytest.raises(SystemExit) as exited:
            parse(bad)
        assert exited.value.code == 2


async def test_wait_helper_times_out() -> None:
    with pytest.raises(AssertionError):
        await wait_until(lambda: False, within=0.05)


async def test_write_config_runs_fillstream_against_the_sim(
    tmp_path: Path, pg_dsn: str, nats_target: NatsTarget
) -> None:
    config = tmp_path / "conf" / "fillstream.toml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fillstream.simulator.cli", "--accounts", "alpha,beta",
        "--rate", "20", "--seed", "5", "--write-config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        info = msgspec.json.decode(await asyncio.wait_for(proc.stdout.readline(), 30))
        human = b""
        while b"fillstream run --config" not in human:  # the people's version, on stderr
            human += await asyncio.wait_for(proc.stderr.readline(), 30)
        text = config.read_text()
        for account in info["accounts"]:
            name, key, secret = account["name"], account["api_key"], account["api_secret"]
            # Keys for people: readable lines, in full.
            assert f"    API key     {key}\n".encode() in human
            assert f"    API secret  {secret}\n".encode() in human
            # Never inline in the config; in owner-only files it names.
            assert key not in text and secret not in text
            key_file, secret_file = (
                config.parent / f"fillstream-{name}.key",
                config.parent / (f"fillstream-{name}.secret"),
            )
            assert key_file.read_text() == key + "\n"
            assert secret_file.read_text() == secret + "\n"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
            assert f'api_key_file = "{key_file}"' in text
        assert text.count('endpoints = "custom"') == 2
        assert f'rest_url = "{info["rest_url"]}"' in text

        env = {
            "FILLSTREAM_DSN": pg_dsn,
            "FILLSTREAM_NATS__SERVERS": nats_target.url,
            "FILLSTREAM_NATS__STREAM": nats_target.stream,
            "FILLSTREAM_NATS__SUBJECT_PREFIX": nats_target.prefix,
            "FILLSTREAM_HTTP__LISTEN": f"127.0.0.1:{free_port()}",
        }
        code, out = await run_cli(["check", "--config", str(config)], env, timeout_s=120)
        assert code == 0, out
        assert "alpha" in out and "beta" in out
        service = await start_cli(["run", "--config", str(config)], env, tmp_path / "run.log")
        try:

            async def both_accounts_stored() -> bool:
                conn = await asyncpg.connect(pg_dsn)
                try:
                    rows = await conn.fetch("SELECT DISTINCT account FROM fills")
                except asyncpg.UndefinedTableError:
                    return False
                finally:
                    await conn.close()
                return {r[0] for r in rows} == {"alpha", "beta"}

            await wait_for(both_accounts_stored, 90, "fills of both accounts stored")
        finally:
            service.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(service.wait(), 60) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


def test_coinm_arguments_and_client_config(tmp_path: Path) -> None:
    config, _ = parse(
        ["--accounts", "um,cm", "--coinm-accounts", "cm", "--coinm-symbols",
         "BTCUSD_PERP,BTCUSD_261225", "--no-coinm-algo-update"]
    )  # fmt: skip
    assert (config.coinm_accounts, config.coinm_symbols, config.coinm_algo_update) == (
        ("cm",),
        ("BTCUSD_PERP", "BTCUSD_261225"),
        False,
    )
    assert (config.market("um"), config.market("cm")) == ("usdm", "coinm")
    for bad in (
        ["--accounts", "a", "--coinm-accounts", "b"],
        ["--coinm-symbols", "BTCUSDT"],  # a USDⓈ-M symbol
        ["--symbols", "BTCUSD_PERP"],  # a COIN-M one
        ["--coinm-symbols", "BTCUSD_261399"],  # no such day
    ):
        with pytest.raises(SystemExit) as exited:
            parse(bad)
        assert exited.value.code == 2
    accounts = [
        make_account(1, "um"),
        make_account(1, "cm", market="coinm"),
    ]
    path = client_config.write(
        tmp_path / "f.toml",
        accounts,
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
        symbols=("BTCUSDT",),
        coinm_symbols=("BTCUSD_PERP",),
    )
    doc = tomllib.loads(path.read_text())
    assert [(a["name"], a.get("market", "usdm"), a["symbols"]) for a in doc["accounts"]] == [
        ("um", "usdm", ["BTCUSDT"]),
        ("cm", "coinm", ["BTCUSD_PERP"]),
    ]
