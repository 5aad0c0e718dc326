"""Secret masking: the wrapper, the scrubber, URL secrets in every form, and every output channel
(stdout, stderr, JSON logs with tracebacks, /status, /metrics) searched for a marker."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from fillstream.sidecar.secrets import MASK, Secret, mask_url, remember_url_password, scrub
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget
from tests.sidecar.harness import ServiceProcess, pg_fill_count, run_cli, wait_for, write_config


def test_secret_never_shows_itself() -> None:
    s = Secret("very-secret-value-42")
    assert repr(s) == "Secret('****')"
    assert str(s) == MASK
    assert f"{s:>30}" == MASK
    assert s.reveal() == "very-secret-value-42"
    assert s == Secret("very-secret-value-42")
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_scrub_replaces_remembered_values_and_url_passwords() -> None:
    Secret("another-secret-9876")
    text = "failed: another-secret-9876 at postgresql://bob:pw0rd@db:5432/x and nats://u:p@h:4222"
    assert (
        scrub(text)
        == f"failed: {MASK} at postgresql://bob:{MASK}@db:5432/x and nats://u:{MASK}@h:4222"
    )
    assert scrub("short") == "short"


def test_mask_url_and_remember_password() -> None:
    assert mask_url("postgresql://bob:pw0rd@db:5432/x") == f"postgresql://bob:{MASK}@db:5432/x"
    assert mask_url("postgresql://bob@db/x") == "postgresql://bob@db/x"
    remember_url_password("postgresql://bob:a-long-password@db/x")
    assert scrub("the password a-long-password leaked") == f"the password {MASK} leaked"


# -- one masking function for every URL form, every output channel -----------------------------

MARKER = "pw-marker-7f3a9c1e5d"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{MARKER}@h:5432/db", "postgresql://u:****@h:5432/db"),
        (f"postgresql://h/db?user=u&password={MARKER}", "postgresql://h/db?user=u&password=****"),
        (
            f"postgresql://u@h/db?sslmode=require&sslpassword={MARKER}&sslrootcert=/ca.pem",
            "postgresql://u@h/db?sslmode=require&sslpassword=****&sslrootcert=/ca.pem",
        ),
        (f"postgres://h/db?PASSWORD={MARKER}", "postgres://h/db?PASSWORD=****"),
        (f"postgresql://h/db?pass%77ord={MARKER}", "postgresql://h/db?pass%77ord=****"),
        (f"postgresql://u@h1:5432,h2:5433/db?passfile={MARKER}", None),
        (f"nats://{MARKER}@h:4222", "nats://****@h:4222"),  # a NATS token
        (f"tls://u:{MARKER}@h:4222", "tls://u:****@h:4222"),
        (f"nats://h:4222?auth_token={MARKER}", "nats://h:4222?auth_token=****"),
        (f"nats://h:4222?nkey_seed={MARKER}&jwt={MARKER}", "nats://h:4222?nkey_seed=****&jwt=****"),
        (f"postgresql://u:{MARKER}@[::1/db", "postgresql://u:****@[::1/db"),  # malformed
        (f"postgresql://u:{MARKER}@h:notaport/db", "postgresql://u:****@h:notaport/db"),
        ("postgresql://u@h/db?sslmode=verify-full", "postgresql://u@h/db?sslmode=verify-full"),
    ],
)
def test_mask_url_hides_every_secret_form(url: str, shown: str | None) -> None:
    masked = mask_url(url)
    assert MARKER not in masked
    if shown is not None:
        assert masked == shown
    text = f"cannot connect to {url}: ConnectionRefusedError: {url!r} (while {url})"
    scrubbed = scrub(text)
    assert MARKER not in scrubbed
    assert scrubbed.startswith(f"cannot connect to {masked}: ")


def test_remembered_url_secrets_are_scrubbed_anywhere() -> None:
    secret = "qs-password-8c1d7e2f"
    remember_url_password(f"postgresql://h/db?password={secret}&sslmode=require")
    assert scrub(f"auth failed for {secret}") == f"auth failed for {MASK}"
    encoded = "enc%2Fpassword%2B1234"
    remember_url_password(f"postgresql://u:{encoded}@h/db")
    assert scrub("it was enc/password+1234 here") == f"it was {MASK} here"


async def test_no_channel_shows_a_query_string_or_nats_secret(
    tmp_path: Path, nats_target: NatsTarget, pg_dsn: str
) -> None:
    """`check` and `run` start-up errors, at DEBUG (tracebacks included), on the TLS error
    paths, and `migrate` with the DSN on the command line: the marker never shows."""
    config = tmp_path / "fillstream.toml"
    config.write_text(
        '[database]\ndsn_env = "DSN"\n[nats]\nservers = ["nats://127.0.0.1:1"]\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        "[[accounts]]\n"
        'name = "alpha"\napi_key_env = "K"\napi_secret_env = "S"\nendpoints = "custom"\n'
        'rest_url = "http://127.0.0.1:1"\nws_url = "ws://127.0.0.1:1"\n'
    )
    plain_tls = nats_target.url.replace("nats://", f"tls://u:{MARKER}@")
    cases: list[tuple[list[str], dict[str, str]]] = [
        (["check"], {"DSN": f"postgresql://127.0.0.1:1/db?user=u&password={MARKER}"}),
        (["check"], {"DSN": f"postgresql://h:notaport/db?password={MARKER}"}),
        (["check"], {"DSN": f"postgresql://u:{MARKER}@[::1/db"}),
        (
            ["check"],
            {
                "DSN": f"{pg_dsn}?sslmode=verify-full&password={MARKER}",
                "FILLSTREAM_NATS__SERVERS": plain_tls,
            },
        ),
        (["check"], {"DSN": pg_dsn, "FILLSTREAM_NATS__SERVERS": f"nats://{MARKER}@127.0.0.1:1"}),
        (["run"], {"DSN": f"postgresql://127.0.0.1:1/db?user=u&password={MARKER}"}),
        (["run"], {"DSN": pg_dsn, "FILLSTREAM_NATS__SERVERS": plain_tls}),
    ]
    for command, env in cases:
        args = ["--log-level", "DEBUG", "--log-format", "json", *command, "--config", str(config)]
        code, out = await run_cli(args, {"K": "key-0123456789", "S": "secret-0123456789", **env})
        assert code in (1, 3), (command, env, out)
        assert MARKER not in out, (command, env, out)
        assert "****" in out, (command, env, out)
        assert "Traceback (most recent call last)" not in _plain_lines(out), out

    code, out = await run_cli(["migrate", "--dsn", f"postgresql://u:{MARKER}@127.0.0.1:1/db"])
    assert code == 1, out
    assert MARKER not in out
    assert "warning: a password on the command line is visible" in out
    assert "cannot reach PostgreSQL at postgresql://u:****@127.0.0.1:1/db" in out


def _plain_lines(out: str) -> str:
    """The output without the JSON log lines (a traceback belongs in a log record's ``exc``)."""
    return "\n".join(line for line in out.splitlines() if not line.startswith("{"))


async def test_running_service_never_shows_query_string_or_nats_secrets(
    tmp_path: Path, nats_target: NatsTarget, pg_dsn: str
) -> None:
    """The test servers ignore credentials (trust auth, no NATS auth), so a service configured
    with secrets in the DSN's query string and the NATS URL runs: /status, /metrics, /readyz
    and the DEBUG log never show them."""
    async with Simulator(SimConfig(accounts=("alpha",), rate=20, seed=5)) as sim:
        path, env, port = write_config(tmp_path / "fillstream.toml", sim, nats_target)
        nats_url = nats_target.url.replace("nats://", f"nats://fill:{MARKER}@")
        text = path.read_text().replace(
            f'servers = ["{nats_target.url}"]', f'servers = ["{nats_url}"]'
        )
        path.write_text(text)
        env["TEST_DSN"] = f"{pg_dsn}?password={MARKER}&sslmode=disable"
        env["FILLSTREAM_LOGGING__LEVEL"] = "DEBUG"
        service = await ServiceProcess.start(path, env, tmp_path / "run.log", port)
        try:
            await service.wait_ready()

            async def stored() -> bool:
                return await pg_fill_count(pg_dsn) >= 5

            await wait_for(stored, 60, "fills stored")
            bodies = [await service.get(p) for p in ("/status", "/metrics", "/readyz", "/healthz")]
        finally:
            assert await service.stop() == 0
        for status, body in bodies:
            assert status == 200
            assert MARKER not in body
        logs = service.logs()
        assert "fillstream started" in logs
        assert MARKER not in logs
