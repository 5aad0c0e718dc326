"""``fillstream sim``: run the fake venue alone.

Prints one JSON line ``{"rest_url", "ws_url", "admin_url", "accounts": [{"name", "api_key",
"api_secret", "market", "rest_base", "listen_key_path", "stream_url"}]}`` on stdout (also
written to ``--ready-file``, atomically), the same for people on stderr (URLs, each account's
product, key and secret), then serves until SIGINT/SIGTERM or
``--duration`` seconds. ``--write-config F`` also writes a ready-to-run fillstream config for
its accounts (keys in files next to it: :mod:`fillstream.simulator.client_config`). Exit status
0 on a clean stop, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple

import msgspec

from fillstream.simulator import client_config
from fillstream.simulator.config import FaultSpec, SimConfig
from fillstream.simulator.faults import parse_cli_fault
from fillstream.simulator.server import Simulator


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _key_types(text: str) -> dict[str, str]:
    """``s2=ED25519,s3=RSA`` → ``{"s2": "ED25519", "s3": "RSA"}``."""
    out: dict[str, str] = {}
    for item in _names(text):
        name, eq, kind = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"expected NAME=TYPE, got {item!r}")
        out[name.strip()] = kind.strip().upper()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fillstream sim",
        description="A Binance USD-M and COIN-M futures and spot stand-in: REST (/fapi, /dapi, "
        "/api), user-data WebSockets and the spot WS API, ground truth (/_sim/ledger) and fault "
        "injection (/_sim/faults) on one port.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument("--seed", type=int, default=42, help="seed of keys and activity (default 42)")
    p.add_argument("--accounts", type=_names, default=("alpha",), help="names, comma-separated")
    p.add_argument("--hedge-accounts", type=_names, default=(), help="accounts in hedge mode")
    p.add_argument("--symbols", type=_names, default=("BTCUSDT", "ETHUSDT"), help="comma-separated")
    p.add_argument(
        "--coinm-accounts",
        type=_names,
        default=(),
        help="accounts that trade COIN-M (market coinm)",
    )
    p.add_argument(
        "--coinm-symbols",
        type=_names,
        default=("BTCUSD_PERP", "ETHUSD_PERP"),
        help="COIN-M contracts, e.g. BTCUSD_PERP,BTCUSD_250926 (default BTCUSD_PERP,ETHUSD_PERP)",
    )
    p.add_argument(
        "--no-coinm-algo-update",
        action="store_true",
        help="COIN-M algo orders push no ALGO_UPDATE (unconfirmed on dstream)",
    )
    p.add_argument(
        "--spot-accounts", type=_names, default=(), help="spot accounts (WS API, /api/v3)"
    )
    p.add_argument(
        "--spot-key-types",
        type=_key_types,
        default={},
        metavar="NAME=TYPE,...",
        help="spot accounts' key types: HMAC (default), RSA or ED25519, e.g. s2=ED25519",
    )
    p.add_argument("--rate", type=float, default=5.0, help="fills/s per account (0: generator off)")
    p.add_argument("--ready-file", help="also write the JSON line to this file")
    p.add_argument(
        "--write-config",
        metavar="FILE",
        help="write a ready-to-run fillstream TOML for these accounts to FILE (API keys in "
        "files next to it, mode 0600; PostgreSQL from FILLSTREAM_DSN)",
    )
    p.add_argument(
        "--config-nats",
        default="nats://127.0.0.1:4222",
        metavar="URL",
        help="the NATS server that config names (default nats://127.0.0.1:4222)",
    )
    p.add_argument("--clock-speed", type=float, default=1.0, help="timer acceleration")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--ping-interval", type=float, default=180.0, help="server ping, sim seconds")
    p.add_argument("--pong-timeout", type=float, default=600.0, help="sim seconds")
    p.add_argument("--weight-limit", type=int, default=2400, help="REST weight per minute")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:NAME=VALUE,...]",
        help="fault at start, e.g. drop_rate:p=0.05 or rest_error:account=alpha,status=429",
    )
    return p


class Outputs(NamedTuple):
    """Where the simulator says what it is, besides stdout."""

    ready_file: str | None = None
    config_file: str | None = None
    config_nats: str = "nats://127.0.0.1:4222"


def parse_all(argv: Sequence[str] | None) -> tuple[SimConfig, Outputs]:
    """(config, outputs); raises ``SystemExit(2)`` with a message on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = []
        for text in args.fault:
            account, kind, params = parse_cli_fault(text)
            faults.append(FaultSpec(kind=kind, account=account, params=params))
        config = SimConfig(
            host=args.host,
            port=args.port,
            seed=args.seed,
            accounts=args.accounts,
            hedge_accounts=args.hedge_accounts,
            symbols=args.symbols,
            coinm_accounts=args.coinm_accounts,
            coinm_symbols=args.coinm_symbols,
            coinm_algo_update=not args.no_coinm_algo_update,
            spot_accounts=args.spot_accounts,
            spot_key_types=args.spot_key_types,
            rate=args.rate,
            clock_speed=args.clock_speed,
            duration_s=args.duration,
            ping_interval_s=args.ping_interval,
            pong_timeout_s=args.pong_timeout,
            weight_limit_1m=args.weight_limit,
            faults=tuple(faults),
        )
    except ValueError as exc:
        parser.error(str(exc))
    return config, Outputs(args.ready_file, args.write_config, args.config_nats)


def parse(argv: Sequence[str] | None) -> tuple[SimConfig, str | None]:
    """(config, ready file); raises ``SystemExit(2)`` with a message on bad arguments."""
    config, outputs = parse_all(argv)
    return config, outputs.ready_file


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sim-ready-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def describe(sim: Simulator, config_file: Path | None) -> str:
    """The ready line for people: URLs, keys in full (the simulator's own, fake), the config."""
    lines = [
        f"fillstream sim: REST {sim.rest_url}   user data stream {sim.ws_url}",
        f"  ground truth {sim.admin_url}/_sim/ledger   faults {sim.admin_url}/_sim/faults",
    ]
    for account in sim.accounts:
        urls = sim.urls(account.market)
        lines += [
            f"  account {account.name} ({account.market}: REST {urls['rest_base']}, "
            f"stream {urls['stream_url']})",
            f"    API key     {account.api_key}",
            f"    API secret  {account.api_secret}",
        ]
    if config_file is not None:
        files = [str(f) for a in sim.accounts for f in client_config.key_files(config_file, a.name)]
        lines += [
            f"  fillstream config {config_file}",
            f"    keys in {', '.join(files)}",
            f"    FILLSTREAM_DSN=postgresql://... fillstream run --config {config_file}",
        ]
    return "\n".join(lines) + "\n"


def _announce(sim: Simulator, outputs: Outputs, human: IO[str]) -> None:
    config_file = None
    if outputs.config_file:
        config_file = client_config.write(
            outputs.config_file,
            sim.accounts,
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            symbols=sim.config.symbols,
            coinm_symbols=sim.config.coinm_symbols,
            nats_url=outputs.config_nats,
        )
    line = msgspec.json.encode(sim.ready_info()) + b"\n"
    if outputs.ready_file:  # before stdout: whoever reads the line may look for the file at once
        _write_atomically(outputs.ready_file, line)
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
    human.write(describe(sim, config_file))
    human.flush()


async def serve(config: SimConfig, outputs: Outputs | None = None) -> None:
    """Run a simulator until SIGINT/SIGTERM or ``config.duration_s``."""
    outputs = outputs or Outputs()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    await sim.start()
    try:
        _announce(sim, outputs, sys.stderr)
        if config.duration_s is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.duration_s)
        else:
            await stop.wait()
    finally:
        await sim.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    config, outputs = parse_all(argv)
    asyncio.run(serve(config, outputs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
