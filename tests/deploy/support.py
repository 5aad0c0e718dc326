"""Shared helpers of the deploy tests: repository paths and external tools.

Tools that come from the system (``promtool``, ``prometheus`` from Debian's ``prometheus``
package, installed by ``make install`` via scripts/install-system-tools.sh) make a test skip when
missing locally, and fail it in CI (``CI=true``), where their absence is a broken set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs"


def require_tool(name: str) -> str:
    """The path of executable ``name``; skip (locally) or fail (CI) when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (run `make install` as root, or apt-get install prometheus)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


def run(
    *cmd: str | Path, cwd: Path = ROOT, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion; the caller asserts on the return code and output."""
    return subprocess.run(
        [str(c) for c in cmd],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
    )
