"""scripts/install-system-tools.sh never installs a system package silently: it says what, why
and how to skip first, asks on a terminal, and skips on FILLSTREAM_SKIP_SYSTEM_TOOLS=1.

The script runs with a PATH of stubs (``id`` says root, ``apt-get`` records any call), so
nothing on this machine is installed or changed; every path tested ends before apt-get.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-system-tools.sh"
BASH = shutil.which("bash") or "/bin/bash"


def stubs(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt-calls"}\n')
    for stub in ("id", "apt-get"):
        (bin_dir / stub).chmod(0o755)
    cat = shutil.which("cat")
    assert cat is not None
    (bin_dir / "cat").symlink_to(cat)
    return bin_dir


def test_skip_variable_installs_nothing(tmp_path: Path) -> None:
    env = {"PATH": str(stubs(tmp_path)), "FILLSTREAM_SKIP_SYSTEM_TOOLS": "1"}
    done = subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert "skipped (FILLSTREAM_SKIP_SYSTEM_TOOLS=1)" in done.stderr
    assert not (tmp_path / "apt-calls").exists()


def test_says_what_and_why_then_asks_on_a_terminal(tmp_path: Path) -> None:
    env = {"PATH": str(stubs(tmp_path))}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [BASH, str(SCRIPT)], env=env, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    os.close(slave)
    os.write(master, b"n\n")  # decline
    _, err = proc.communicate(timeout=30)
    os.close(master)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "about to install a SYSTEM package, as root, with apt-get" in text
    assert "prometheus" in text and "why:" in text
    assert "FILLSTREAM_SKIP_SYSTEM_TOOLS=1" in text
    assert "install it now? [Y/n]" in text
    assert "not installed" in text
    assert not (tmp_path / "apt-calls").exists()
