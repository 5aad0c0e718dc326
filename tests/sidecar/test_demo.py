"""``fillstream demo --duration S``: embedded servers, simulator, service, faults; exits 0 with a
summary showing ground truth = PostgreSQL = JetStream, having used both paths.

The live view runs in a pseudo-terminal (Python's ``pty``: nothing system-wide needed): its
last screen (drawn once everything converged) shows the same figures as the final summary, the
figures add up as the legend says, and no log line is drawn into the view (they go to a file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from fillstream.sidecar.demoview import LEGEND
from tests.sidecar.harness import run_cli

CLEAR = "\x1b[H\x1b[2J"
FOOTER = "alpha drops 3% of its events all along; Ctrl-C stops everything cleanly"
ACCOUNTS = ("alpha", "beta", "gamma")
# A log line in either format (text on a TTY, JSON otherwise), or Python's own noise.
LOG_LINE = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d{3} +(DEBUG|INFO|WARNING|ERROR|CRITICAL)|\{\"ts\"|Traceback|"
    r"\S+Warning:|--- Logging error)",
    re.M,
)


def run_in_pty(args: list[str], timeout_s: float) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal (160 x 60) as stdin, stdout and stderr; returns the
    exit code and everything it wrote to the terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm"}
    env.pop("VIRTUAL_ENV", None)  # the suggested commands must work without an active venv
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            chunks.append(data)
        else:
            raise AssertionError(f"demo still running after {timeout_s} s")
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


@dataclass
class Shown:
    """The figures of one account as drawn (live view) or printed (summary)."""

    stored: int = -1
    closes: int = -1
    stream: int = -1
    rest: int = -1
    missed: int = -1
    before_stream: int = -1
    dropped: int = -1
    undelivered: int = -1
    signs: tuple[str, ...] = ()


@dataclass
class Screen:
    accounts: dict[str, Shown] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # all accounts (PostgreSQL)


def parse_view(frame: str) -> Screen:
    screen = Screen(accounts={a: Shown() for a in ACCOUNTS})
    names = "|".join(ACCOUNTS)
    for m in re.finditer(rf"^({names}) +\S+ +[\d.]+ +[\d.]+ +(\d+) +(\d+) ", frame, re.M):
        shown = screen.accounts[m[1]]
        shown.stored, shown.closes = int(m[2]), int(m[3])
    paths = rf"^({names}) +(\d+) +(\d+) ([=≠]) +(\d+) \+ +(\d+) ([=≠]) +(\d+) = +(\d+) \+ +(\d+)$"
    for m in re.finditer(paths, frame, re.M):
        shown = screen.accounts[m[1]]
        shown.stream, shown.rest, shown.missed, shown.before_stream = map(int, m.group(2, 3, 5, 6))
        shown.dropped, shown.undelivered = int(m[9]), int(m[10])
        assert int(m[8]) == shown.dropped + shown.undelivered
        shown.signs = (m[4], m[7])
    block = frame.split("\ncloses by reason", 1)[1].split("\n\n", 1)[0]
    for m in re.finditer(r"^  (\w+) +(\d+) +(\d+) +(\d+)$", block, re.M):
        screen.reasons[m[1]] = int(m[4])
    return screen


def parse_summary(text: str) -> tuple[Screen, dict[str, tuple[int, int, int]]]:
    """The summary's PostgreSQL figures, and each account's (truth, PostgreSQL, JetStream) fills."""
    screen, fills = Screen(), {}
    current = Shown()
    for line in text.splitlines():
        if m := re.match(rf"^({'|'.join(ACCOUNTS)}) fills +(\d+) +(\d+) +(\d+)$", line):
            current = screen.accounts.setdefault(m[1], Shown())
            fills[m[1]] = (int(m[2]), int(m[3]), int(m[4]))
            current.stored = int(m[3])
        elif m := re.match(r"^\w+ closes +(\d+) +(\d+) +(\d+)$", line):
            current.closes = int(m[2])
        elif m := re.match(r"^  first seen: stream +(\d+)$", line):
            current.stream = int(m[1])
        elif m := re.match(
            r"^  first seen: REST +(\d+)   = missed by the stream (\d+) "
            r"\+ before the stream (\d+)$",
            line,
        ):
            current.rest, current.missed, current.before_stream = map(int, m.groups())
        elif m := re.match(
            r"^  not sent by the venue +(\d+)   = fill events dropped (\d+) \+ undelivered (\d+)$",
            line,
        ):
            current.dropped, current.undelivered = int(m[2]), int(m[3])
    block = text.split("\ncloses by reason (all accounts)\n", 1)[1].split("\n\n", 1)[0]
    for m in re.finditer(r"^  (\w+) +(\d+) +(\d+) +(\d+)$", block, re.M):
        screen.reasons[m[1]] = int(m[3])
    return screen, fills


def test_live_view_agrees_with_the_summary_and_carries_no_log_line() -> None:
    script = Path(sys.executable).parent / "fillstream"
    assert script.is_file()
    code, out = run_in_pty([str(script), "demo", "--duration", "30"], timeout_s=240)
    assert code == 0, out[-4000:]
    # Where the logs went, and that they were written there (so none on screen means something).
    log_file = re.search(r"^logs +(/\S+) +\(while the live view runs\)$", out, re.M)
    assert log_file is not None, out[:2000]
    logged = Path(log_file[1]).read_text()
    with contextlib.suppress(OSError):
        Path(log_file[1]).unlink()
    assert "fillstream started" in logged
    assert re.search(r"^logs: " + re.escape(log_file[1]) + "$", out, re.M)
    assert LOG_LINE.search(out) is None, LOG_LINE.search(out)
    # The suggested tail command is the interpreter's own script, absolute: no venv needed.
    tail = re.search(r"^watch it: (\S+) tail --nats nats://127\.0\.0\.1:\d+$", out, re.M)
    assert tail is not None and tail[1] == str(script)

    head, *frames = out.split(CLEAR)
    assert head.startswith("fillstream demo: starting embedded PostgreSQL and NATS in /")
    assert len(frames) >= 20  # a screen a second
    for frame in frames[:-1]:  # each screen is whole: nothing was written into it
        assert frame.startswith("fillstream demo  "), frame[:200]
        body = frame.split("\nstopping: generator paused", 1)[0]
        assert body.rstrip("\n").endswith(FOOTER), body[-500:]
    view_text, summary_text = frames[-1].split(FOOTER + "\n", 1)
    view = parse_view(view_text)
    summary, fills = parse_summary(summary_text)

    assert "RESULT: ground truth = PostgreSQL = JetStream (fills and closes)" in summary_text
    assert LEGEND in view_text and LEGEND in summary_text
    # The same figures, less the view's "=" / "≠" marks (checked below).
    assert {a: replace(s, signs=()) for a, s in view.accounts.items()} == summary.accounts
    assert view.reasons == summary.reasons and sum(view.reasons.values()) > 0
    for account, shown in view.accounts.items():
        assert len(set(fills[account])) == 1 and fills[account][0] == shown.stored > 0
        assert shown.stored == shown.stream + shown.rest, account
        assert shown.rest == shown.missed + shown.before_stream, account
        assert shown.signs[0] == "="
        assert sum(view.reasons.values()) == sum(s.closes for s in view.accounts.values())
    alpha = view.accounts["alpha"]
    assert alpha.dropped > 0 and alpha.missed > 0  # both paths delivered: REST recovered drops


async def test_demo_without_the_view_prints_progress_lines() -> None:
    code, out = await run_cli(["demo", "--duration", "12", "--no-view"], timeout_s=240)
    assert code == 0, out
    assert re.search(r"^NATS +nats://127\.0\.0\.1:\d+", out, re.M)
    assert re.search(r"^metrics +http://127\.0\.0\.1:\d+/metrics", out, re.M)
    assert re.search(r"^\[00:\d\d\] alpha=\w+ stored=\d+ rest=\d+ closes=\d+ ", out, re.M)
    assert "RESULT: ground truth = PostgreSQL = JetStream (fills and closes)" in out
    assert CLEAR not in out
