"""TLS that means it: NATS and PostgreSQL connections fail closed, and `check` reports them.

Real servers throughout: the session's plaintext NATS and PostgreSQL, and nats-servers of their
own with TLS and mutual TLS (certificates made per module). The embedded PostgreSQL is built
without SSL support, so the PostgreSQL side shows failing closed; a TLS handshake with PostgreSQL
is asyncpg's own (libpq's sslmode semantics), fed by our settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from fillstream.sidecar.cli import EXIT_OK, EXIT_PROBLEMS
from fillstream.sidecar.clients import connect_nats_servers, transport_tls_version
from fillstream.sidecar.config import NatsConfig, nats_tls_context
from fillstream.sidecar.errors import Unreachable
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import run_cli, write_config
from tests.sidecar.natsfixtures import ConfNats, Pki, mtls_nats, pki, tls_nats

__all__ = ["mtls_nats", "pki", "tls_nats"]  # module-scoped fixtures used below

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(accounts=("alpha",), rate=0, seed=3)) as simulator:
        yield simulator


@pytest.fixture
def setup(
    sim: Simulator, nats_target: NatsTarget, pg_dsn: str, tmp_path: Path
) -> tuple[Path, dict[str, str]]:
    """A config for the simulator's account on the session's NATS and a fresh database."""
    path, env, _ = write_config(tmp_path / "fillstream.toml", sim, nats_target)
    return path, {**env, "TEST_DSN": pg_dsn}


def _lines(out: str, subject: str) -> list[str]:
    return [line for line in out.splitlines() if line.split()[1:2] == [subject]]


# -- NATS --------------------------------------------------------------------------------------


async def test_check_refuses_tls_url_against_a_plaintext_nats(
    setup: tuple[Path, dict[str, str]], nats_target: NatsTarget
) -> None:
    path, env = setup
    tls_url = nats_target.url.replace("nats://", "tls://")
    env["FILLSTREAM_NATS__SERVERS"] = tls_url
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_PROBLEMS, out
    (nats_line,) = _lines(out, "nats")
    assert nats_line.startswith("fail  nats")
    assert f"cannot reach NATS at {tls_url}" in nats_line
    assert "does not offer TLS; refusing to connect in clear" in nats_line
    assert "ok    postgres" in out  # the other checks still ran
    assert "listenKey obtained" in out
    assert "Traceback" not in out
    assert "never awaited" not in out


async def test_check_reports_an_encrypted_nats(
    setup: tuple[Path, dict[str, str]], tls_nats: ConfNats, pki: Pki
) -> None:
    path, env = setup
    env |= {
        "FILLSTREAM_NATS__SERVERS": tls_nats.url,
        "FILLSTREAM_NATS__TLS_CA_FILE": str(pki.ca),
    }
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_OK, out
    assert f"ok    nats                 reachable at {tls_nats.url}" in out
    assert "ok    nats                 connection encrypted (TLSv1." in out

    # A CA that did not sign the server's certificate: one clear line, the rest still runs.
    env["FILLSTREAM_NATS__TLS_CA_FILE"] = str(pki.other_ca)
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_PROBLEMS, out
    (nats_line,) = _lines(out, "nats")
    assert "CERTIFICATE_VERIFY_FAILED" in nats_line
    assert "listenKey obtained" in out

    # Verification off: encrypted, but said to be unverified.
    env["FILLSTREAM_NATS__TLS_VERIFY"] = "false"
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_OK, out
    assert "warn  nats                 connection encrypted (TLSv1." in out
    assert "NOT verified" in out


async def test_plaintext_server_is_refused_whatever_asks_for_tls(nats_target: NatsTarget) -> None:
    plain = nats_target.url
    tls_url = plain.replace("nats://", "tls://")
    for n in (
        NatsConfig(servers=(tls_url,)),
        NatsConfig(servers=(plain,), tls_required=True),
    ):
        for reconnect in (False, True):
            with pytest.raises(Unreachable, match="does not offer TLS"):
                await connect_nats_servers(
                    list(n.servers), reconnect=reconnect, tls=nats_tls_context(n)
                )
    nc = await connect_nats_servers([plain], reconnect=False, tls=None)
    try:
        assert transport_tls_version(nc) is None
    finally:
        await nc.close()


async def test_tls_and_mutual_tls(tls_nats: ConfNats, mtls_nats: ConfNats, pki: Pki) -> None:
    verified = NatsConfig(servers=(tls_nats.url,), tls_ca_file=str(pki.ca))
    nc = await connect_nats_servers([tls_nats.url], tls=nats_tls_context(verified))
    try:
        assert (transport_tls_version(nc) or "").startswith("TLSv1.")
        await nc.publish("tls.test", b"x")
        await nc.flush()
    finally:
        await nc.close()
    # nats:// to a server that requires TLS: upgraded (the server asks), verified with the CA.
    upgraded = NatsConfig(
        servers=(tls_nats.url.replace("tls://", "nats://"),), tls_ca_file=str(pki.ca)
    )
    nc = await connect_nats_servers(list(upgraded.servers), tls=nats_tls_context(upgraded))
    try:
        assert transport_tls_version(nc)
    finally:
        await nc.close()
    # Without the CA the system store does not know the test CA: refused.
    with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
        bare = NatsConfig(servers=(tls_nats.url,))
        await connect_nats_servers([tls_nats.url], tls=nats_tls_context(bare))

    # How the refusal surfaces (alert, reset, broken pipe) depends on timing; it is refused.
    with pytest.raises(Unreachable, match=r"^cannot reach NATS at tls://"):
        no_cert = msgspec.structs.replace(verified, servers=(mtls_nats.url,))
        await connect_nats_servers([mtls_nats.url], reconnect=False, tls=nats_tls_context(no_cert))
    mutual = NatsConfig(
        servers=(mtls_nats.url,),
        tls_ca_file=str(pki.ca),
        tls_cert_file=str(pki.client_cert),
        tls_key_file=str(pki.client_key),
    )
    nc = await connect_nats_servers([mtls_nats.url], tls=nats_tls_context(mutual))
    try:
        assert transport_tls_version(nc)
    finally:
        await nc.close()


def test_a_file_that_is_not_a_certificate_is_a_config_error(tmp_path: Path) -> None:
    from fillstream.ledger import ConfigError

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"^nats\.tls_ca_file: not a usable CA bundle"):
        nats_tls_context(NatsConfig(tls_ca_file=str(junk)))
    with pytest.raises(ConfigError, match=r"^nats\.tls_cert_file: "):
        nats_tls_context(NatsConfig(tls_cert_file=str(junk), tls_key_file=str(junk)))


# -- PostgreSQL --------------------------------------------------------------------------------


async def test_postgres_tls_fails_closed_and_is_reported(
    setup: tuple[Path, dict[str, str]], pki: Pki
) -> None:
    path, env = setup
    pg_dsn = env["TEST_DSN"]
    # The session's PostgreSQL has no TLS: sslmode = require must fail, not fall back.
    env["FILLSTREAM_DATABASE__SSLMODE"] = "require"
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_PROBLEMS, out
    (pg_line,) = _lines(out, "postgres")
    assert pg_line.startswith("fail  postgres             cannot reach PostgreSQL at ")
    assert "sslmode=require" in pg_line
    assert "ok    nats" in out  # the NATS and account checks still ran
    assert "listenKey obtained" in out

    # verify-full with a CA file: still refused by a server without TLS.
    env |= {
        "FILLSTREAM_DATABASE__SSLMODE": "verify-full",
        "FILLSTREAM_DATABASE__SSLROOTCERT": str(pki.ca),
    }
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_PROBLEMS, out
    (pg_line,) = _lines(out, "postgres")
    assert "cannot reach PostgreSQL at " in pg_line
    assert f"sslmode=verify-full&sslrootcert={pki.ca}" in pg_line  # the settings are shown

    # verify-full in the DSN without a CA file: one line naming the missing root certificate.
    env = {k: v for k, v in env.items() if not k.startswith("FILLSTREAM_DATABASE__")}
    env["TEST_DSN"] = pg_dsn + "?sslmode=verify-full"
    env["HOME"] = str(pki.ca.parent)  # no ~/.postgresql/root.crt there
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_PROBLEMS, out
    (pg_line,) = _lines(out, "postgres")
    assert "root certificate file" in pg_line
    assert "Traceback" not in out
    assert "ok    nats" in out

    # Plain text to a loopback server is fine; the check says it is not encrypted.
    env = {k: v for k, v in env.items() if not k.startswith("FILLSTREAM_DATABASE__")}
    env["TEST_DSN"] = pg_dsn + "?sslmode=disable"
    env.pop("HOME")
    code, out = await run_cli(["check", "--config", str(path)], env)
    assert code == EXIT_OK, out
    assert "ok    postgres             connection not encrypted (loopback)" in out


def test_clear_text_is_a_warning_only_off_the_machine() -> None:
    from fillstream.sidecar.check import Level, _transport_finding

    assert _transport_finding("nats", "TLSv1.3", "nats.internal:4222", "x").level is Level.OK
    for hosts in ("127.0.0.1:5432", "localhost", "[::1]:4222", "127.0.0.1:1,localhost:2"):
        finding = _transport_finding("postgres", None, hosts, "sslmode=prefer")
        assert (finding.level, finding.detail) == (Level.OK, "connection not encrypted (loopback)")
    finding = _transport_finding("postgres", None, "db.internal:5432", "sslmode=prefer")
    assert finding.level is Level.WARN
    assert finding.detail.startswith("connection NOT encrypted (sslmode=prefer): set database.")
    finding = _transport_finding("nats", None, "127.0.0.1:4222,nats.internal:4222", "nats://")
    assert finding.level is Level.WARN
