"""The ``fillstream`` command line: ``run | demo | sim | reconcile | republish | tail | check |
migrate``.

Exit codes (also in ``fillstream --help``):

* 0 — success (for ``run``: a clean shutdown after SIGTERM/SIGINT);
* 1 — runtime failure (a dependency could not be reached, a fatal start-up error);
* 2 — usage or configuration error (the message names the field and the reason);
* 3 — the command ran and found problems (``check`` failures; ``demo`` ground truth, PostgreSQL
  and JetStream disagree; ``reconcile`` dry run found missing fills).

Errors end as one line on stderr, ``fillstream: <reason>``, with secrets masked; the traceback
goes to the log at DEBUG. A dependency that cannot be reached is named with its (masked) address
(``cannot reach PostgreSQL at postgresql://fill:****@db/fills: …``), within a bounded connect
timeout. Arguments are checked before anything connects: ``--since`` must be a finite duration or
a time that is neither in the future nor older than the command can use, ``--count`` at least 1.
Commands import their heavy modules lazily so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fillstream.ledger.errors import ConfigError, FillstreamError
from fillstream.sidecar.errors import Unreachable, describe
from fillstream.sidecar.logs import setup_logging
from fillstream.sidecar.secrets import scrub

if TYPE_CHECKING:
    from fillstream.sidecar.config import Config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PROBLEMS = 3

log = logging.getLogger("fillstream.cli")


class UsageError(FillstreamError):
    """A command-line argument is out of range; the message names it (exit 2)."""


_EPILOG = """\
exit codes: 0 success; 1 runtime failure; 2 usage or configuration error;
            3 the command found problems (check failures, demo mismatch, missing fills)
environment: FILLSTREAM_CONFIG (default --config); FILLSTREAM_<SECTION>__<KEY> overrides one
             config value, e.g. FILLSTREAM_DATABASE__DSN, FILLSTREAM_ACCOUNTS__ALPHA__ENABLED"""


def _default_config() -> str:
    return os.environ.get("FILLSTREAM_CONFIG", "fillstream.toml")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=_default_config(),
        metavar="PATH",
        help="TOML config file (default: $FILLSTREAM_CONFIG or ./fillstream.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fillstream",
        description="Binance user-data sidecar: every fill, order transition and position close, "
        "once, into PostgreSQL and NATS JetStream.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING... (default: config or INFO)"
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default=None,
        help="auto: text on a TTY, JSON lines otherwise",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command("run", "run the service (stream + reconcile + pipeline + HTTP endpoints)")
    _add_config(run)

    demo = command(
        "demo",
        "embedded PostgreSQL + NATS + the simulator (two accounts, faults on) + the service, "
        "with a live view",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds and print a summary comparing ground truth, PostgreSQL and "
        "JetStream (exit 3 if they differ); default: run until Ctrl-C",
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the embedded servers' data here (default: a temporary directory)",
    )
    demo.add_argument("--seed", type=int, default=42, help="simulator seed (default 42)")
    demo.add_argument("--rate", type=float, default=20.0, help="fills/s per account (default 20)")
    demo.add_argument("--http-port", type=int, default=0, help="metrics port (default: any free)")
    demo.add_argument(
        "--no-view", action="store_true", help="no live terminal view (print progress lines)"
    )

    command("sim", "the fake Binance venue alone; `fillstream sim --help` for its options")

    rec = command("reconcile", "backfill/repair one account from REST (dry run unless --apply)")
    _add_config(rec)
    rec.add_argument("--account", required=True, help="account name from the config")
    rec.add_argument(
        "--since",
        required=True,
        help="how far back (at most 90 days, the venue's history): 2d, 6h, an ISO timestamp "
        "(2026-10-01T00:00:00Z) or epoch milliseconds",
    )
    rec.add_argument(
        "--apply",
        action="store_true",
        help="store and publish what is missing (default: only report it)",
    )

    rep = command(
        "republish", "re-send stored facts from PostgreSQL to JetStream (same Nats-Msg-Id)"
    )
    _add_config(rep)
    rep.add_argument(
        "--since", required=True, help="2h, 1d, an ISO timestamp or epoch milliseconds"
    )

    tail = command("tail", "print published messages live: '<subject> <payload>' per line")
    tail.add_argument(
        "--nats",
        default=None,
        metavar="URL",
        help="NATS URL(s), comma separated (default: from --config, else "
        "nats://127.0.0.1:4222); a user:password in it is visible to other local users in `ps`: "
        "prefer --config, whose [nats] section also gives TLS and credentials_file",
    )
    tail.add_argument(
        "--config", "-c", default=None, metavar="PATH", help="read NATS servers/prefix from here"
    )
    tail.add_argument("--prefix", default=None, help="subject prefix (default: fillstream)")
    tail.add_argument("--subject", default=None, help="subject filter (default: '<prefix>.>')")
    tail.add_argument(
        "--since",
        default=None,
        help="replay from the JetStream stream since 10m, 2h, a timestamp... then follow",
    )
    tail.add_argument("--stream", default=None, help="JetStream stream for --since")
    tail.add_argument("--count", type=int, default=None, help="exit after N (≥ 1) messages")
    tail.add_argument("--timeout", default=None, metavar="S", help="exit after S (90, 5m...)")
    tail.add_argument("--ids", action="store_true", help="print the Nats-Msg-Id of each message")

    check = command(
        "check",
        "validate the config, reach PostgreSQL, NATS and each account's REST "
        "(clock skew, listenKey, key permissions)",
    )
    _add_config(check)

    mig = command("migrate", "apply pending PostgreSQL migrations")
    target = mig.add_mutually_exclusive_group()
    target.add_argument(
        "--dsn-env",
        default=None,
        metavar="NAME",
        help="read the PostgreSQL DSN from the environment variable NAME",
    )
    target.add_argument(
        "--config", "-c", default=None, metavar="PATH", help="take [database] from this config"
    )
    target.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL DSN; a password in it is visible to other local users (`ps`, shell "
        "history): prefer --dsn-env or --config (default: from --config)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fillstream`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sim"]:
        from fillstream.simulator.cli import main as sim_main  # noqa: PLC0415

        return sim_main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    setup_logging(args.log_level or "INFO", args.log_format or "auto")
    handler: Callable[[argparse.Namespace], int] = _COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", EXIT_USAGE)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except Unreachable as exc:
        log.debug("command failed", exc_info=True)
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        log.debug("command failed", exc_info=True)
        return _fail(describe(exc, limit=2000), EXIT_FAILURE)


def _fail(reason: str, code: int) -> int:
    sys.stderr.write(scrub(f"fillstream: {reason}").replace("\n", " ") + "\n")
    return code


def _since_ms(text: str, max_age_s: float | None = None) -> int:
    from fillstream.sidecar.timespec import DEFAULT_MAX_AGE_S, parse_since_ms  # noqa: PLC0415

    try:
        return parse_since_ms(
            text, int(time.time() * 1000), max_age_s=max_age_s or DEFAULT_MAX_AGE_S
        )
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


def _timeout_s(text: str | None) -> float | None:
    from fillstream.sidecar.timespec import parse_duration_s  # noqa: PLC0415

    if text is None:
        return None
    try:
        seconds = parse_duration_s(text)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"--timeout: must be more than 0, got {text!r}")
    return seconds


def _load(args: argparse.Namespace) -> Config:
    from fillstream.sidecar.config import load_config  # noqa: PLC0415

    config = load_config(args.config)
    if args.log_level is None or args.log_format is None:
        setup_logging(
            args.log_level or config.logging.level, args.log_format or config.logging.format
        )
    return config


def _cmd_run(args: argparse.Namespace) -> int:
    from fillstream.sidecar.service import run_service  # noqa: PLC0415

    config = _load(args)
    return run_service(config)


def _cmd_demo(args: argparse.Namespace) -> int:
    from fillstream.sidecar.demo import DemoOptions, run_demo  # noqa: PLC0415

    # Logging is the demo's: into a file while the live view owns the terminal.
    return run_demo(
        DemoOptions(
            duration_s=args.duration,
            data_dir=args.data_dir,
            seed=args.seed,
            rate_per_s=args.rate,
            http_port=args.http_port,
            live_view=not args.no_view and sys.stdout.isatty(),
            log_level=args.log_level,
            log_format=args.log_format,
        )
    )


def _cmd_check(args: argparse.Namespace) -> int:
    from fillstream.sidecar.check import Level, print_findings, run_checks  # noqa: PLC0415

    config = _load(args)  # a bad config fails here, before any socket opens
    findings = asyncio.run(run_checks(config))
    print_findings(findings, sys.stdout)
    return EXIT_PROBLEMS if any(f.level is Level.FAIL for f in findings) else EXIT_OK


def _cmd_tail(args: argparse.Namespace) -> int:
    import msgspec  # noqa: PLC0415

    from fillstream.sidecar.config import NatsConfig, load_config  # noqa: PLC0415
    from fillstream.sidecar.secrets import remember_url_password  # noqa: PLC0415
    from fillstream.sidecar.tail import tail  # noqa: PLC0415

    if args.count is not None and args.count < 1:
        raise UsageError(f"--count: must be at least 1, got {args.count}")
    timeout_s = _timeout_s(args.timeout)
    since_ms = None if args.since is None else _since_ms(args.since)
    nats, stream = NatsConfig(), None
    if args.config:
        config = load_config(args.config)
        nats, stream = config.nats, config.nats.stream
    if args.nats:
        servers = tuple(s.strip() for s in args.nats.split(",") if s.strip())
        for url in servers:
            remember_url_password(url)
        try:
            nats = msgspec.convert(
                {**msgspec.to_builtins(nats), "servers": servers}, NatsConfig, strict=False
            )
        except msgspec.ValidationError as exc:
            raise UsageError(f"--nats: {exc}") from None
    prefix = args.prefix or nats.subject_prefix
    asyncio.run(
        tail(
            nats=nats,
            subject=args.subject or f"{prefix}.>",
            out=sys.stdout,
            stream=args.stream or stream,
            since_ms=since_ms,
            count=args.count,
            show_ids=args.ids,
            timeout_s=timeout_s,
        )
    )
    return EXIT_OK


def _migrate_dsn(args: argparse.Namespace) -> tuple[str, float]:
    """The DSN ``migrate`` uses and its connect timeout, from --dsn-env, --dsn or the config."""
    from fillstream.sidecar.config import DatabaseConfig, load_config  # noqa: PLC0415

    if args.dsn is not None:
        if _has_secret(args.dsn):
            sys.stderr.write(
                "fillstream: warning: a password on the command line is visible to other local "
                "users (ps, shell history); use --dsn-env NAME or --config\n"
            )
        database = DatabaseConfig(dsn=args.dsn)
    elif args.dsn_env is not None:
        database = DatabaseConfig(dsn_env=args.dsn_env)
    else:
        database = load_config(args.config or _default_config()).database
    try:
        return database.resolve_dsn(), database.connect_timeout_s
    except ConfigError as exc:
        if args.dsn_env is not None:
            raise UsageError(f"--dsn-env: environment variable {args.dsn_env} is not set") from None
        raise UsageError(f"--dsn: {str(exc).removeprefix('database.dsn: ')}") from None


def _has_secret(url: str) -> bool:
    """Whether ``url`` carries a secret that :func:`~fillstream.sidecar.secrets.mask_url` hides."""
    from fillstream.sidecar.secrets import remember_url_password, url_secrets  # noqa: PLC0415

    remember_url_password(url)
    return bool(url_secrets(url))


async def _migrate(dsn: str, timeout_s: float) -> list[int]:
    from fillstream.sidecar.clients import reach_postgres  # noqa: PLC0415
    from fillstream.storage import migrate  # noqa: PLC0415

    conn = await reach_postgres(dsn, timeout_s)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def _cmd_migrate(args: argparse.Namespace) -> int:
    dsn, timeout_s = _migrate_dsn(args)
    applied = asyncio.run(_migrate(dsn, timeout_s))
    sys.stdout.write(
        f"applied migrations {', '.join(map(str, applied))}\n" if applied else "schema up to date\n"
    )
    return EXIT_OK


def _cmd_republish(args: argparse.Namespace) -> int:
    from fillstream.sidecar.admin import republish  # noqa: PLC0415

    since_ms = _since_ms(args.since)
    config = _load(args)
    sent = asyncio.run(republish(config, since_ms))
    sys.stdout.write(f"republished {sent} message(s) to {config.nats.stream}\n")
    return EXIT_OK


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from fillstream.reconcile.settings import MAX_HORIZON_DAYS  # noqa: PLC0415
    from fillstream.sidecar.admin import reconcile  # noqa: PLC0415

    since_ms = _since_ms(args.since, max_age_s=MAX_HORIZON_DAYS * 86400)
    config = _load(args)
    account = config.account(args.account)
    return asyncio.run(reconcile(config, account, since_ms, apply=args.apply, out=sys.stdout))


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "demo": _cmd_demo,
    "check": _cmd_check,
    "tail": _cmd_tail,
    "migrate": _cmd_migrate,
    "republish": _cmd_republish,
    "reconcile": _cmd_reconcile,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
