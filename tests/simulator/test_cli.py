"""``fillstream sim``: the ready line (stdout and file), serving, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from fillstream.simulator.cli import parse
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
