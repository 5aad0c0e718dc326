"""Simulator push rate to one plain ``websockets`` consumer.

Run: ``python -m benchmarks.sim_throughput``.

The simulator runs in a child process (``fillstream sim --rate 0``, as the other benchmarks use
it); this process connects one ``websockets`` client to ``/private/ws/<listenKey>`` and asks the
admin API for a burst of fills (``POST /_sim/burst``, four events per fill: ORDER_TRADE_UPDATE NEW,
TRADE_LITE, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE). It reports:

* **max**: a burst with no rate cap; events/s = events received / (last frame - first frame);
* **paced**: bursts capped at 1,000 and 10,000 fills/s; the achieved fill rate shows whether the
  simulator keeps the pace the other benchmarks ask of it.

Prints a table and writes ``benchmarks/results/sim_throughput.json``. ``--quick`` shrinks runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import websockets

RESULTS = Path(__file__).parent / "results" / "sim_throughput.json"
EVENTS_PER_FILL = 4


async def _start_sim() -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fillstream.simulator.cli", "--rate", "0", "--accounts", "bench",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc, msgspec.json.decode(line)


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run(
    http: aiohttp.ClientSession, info: dict[str, Any], fills: int, rate: float, pid: int
) -> dict[str, Any]:
    account = info["accounts"][0]
    async with http.post(
        info["rest_url"] + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": account["api_key"]}
    ) as resp:
        key = (await resp.json())["listenKey"]
    expected = fills * EVENTS_PER_FILL
    sim_cpu0 = _cpu_s(pid)
    own_cpu0 = time.process_time()
    async with websockets.connect(
        f"{info['ws_url']}/private/ws/{key}", max_size=None, compression=None
    ) as ws:
        body = {"account": "bench", "symbol": "BTCUSDT", "count": fills, "rate": rate}
        burst = asyncio.ensure_future(http.post(info["admin_url"] + "/_sim/burst", json=body))
        await ws.recv(decode=False)
        first = time.perf_counter()
        received = 1
        nbytes = 0
        while received < expected:
            frame = await ws.recv(decode=False)
            nbytes += len(frame)
            received += 1
        last = time.perf_counter()
        (await burst).release()
    elapsed = last - first
    sim_cpu1 = _cpu_s(pid)
    sim_cpu = None if sim_cpu0 is None or sim_cpu1 is None else sim_cpu1 - sim_cpu0
    return {
        "fills": fills,
        "requested_fills_per_s": rate,
        "events": received,
        "seconds": round(elapsed, 4),
        "events_per_s": round((received - 1) / elapsed),
        "fills_per_s": round((received - 1) / EVENTS_PER_FILL / elapsed),
        "mean_frame_bytes": round(nbytes / (received - 1)),
        # CPU per event, robust to other load on the machine: the simulator (generation,
        # encoding, sending) and this consumer (websockets receive).
        "sim_cpu_us_per_event": None if sim_cpu is None else round(sim_cpu / received * 1e6, 2),
        "consumer_cpu_us_per_event": round((time.process_time() - own_cpu0) / received * 1e6, 2),
    }


async def main_async(quick: bool) -> dict[str, Any]:
    proc, info = await _start_sim()
    try:
        async with aiohttp.ClientSession() as http:
            pid = proc.pid
            await _run(http, info, 2_000, 0, pid)  # warm-up
            runs = {
                "max": await _run(http, info, 20_000 if quick else 150_000, 0, pid),
                "paced_1k": await _run(http, info, 2_000 if quick else 10_000, 1_000, pid),
                "paced_10k": await _run(http, info, 10_000 if quick else 100_000, 10_000, pid),
            }
    finally:
        proc.terminate()
        await proc.wait()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "benchmark": "sim_throughput",
        "load_average_1m": load,
        "command": "python -m benchmarks.sim_throughput" + (" --quick" if quick else ""),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "consumer": "websockets recv(decode=False), one connection, simulator in a child process",
        "runs": runs,
        "target_events_per_s": 20_000,
        "meets_target": runs["max"]["events_per_s"] >= 20_000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.quick))
    print(
        f"{'run':<10} {'fills':>8} {'asked f/s':>10} {'got f/s':>9} {'events/s':>9} "
        f"{'sim us/ev':>10} {'client us/ev':>12}"
    )
    for name, run in result["runs"].items():
        asked = run["requested_fills_per_s"] or "max"
        print(
            f"{name:<10} {run['fills']:>8} {asked!s:>10} {run['fills_per_s']:>9} "
            f"{run['events_per_s']:>9} {run['sim_cpu_us_per_event']!s:>10} "
            f"{run['consumer_cpu_us_per_event']!s:>12}"
        )
    print(f"load average during the run: {result['load_average_1m']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
