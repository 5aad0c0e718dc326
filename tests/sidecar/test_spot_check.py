"""``fillstream check`` on spot accounts: the REST ``account`` call and one WS-API subscribe and
unsubscribe, signed with each key type (HMAC, Ed25519 and RSA private keys read from the config's
environment), and a refused key reported as a failure naming the WS API, secrets never shown."""

from __future__ import annotations

from pathlib import Path

from fillstream.sidecar.check import Finding, Level, run_checks
from fillstream.sidecar.config import config_from_dict
from fillstream.simulator import SimConfig, Simulator
from tests.conftest import NatsTarget

ACCOUNTS = ("hmac1", "ed1", "rsa1", "wrong1")
KEY_TYPES = {"ed1": "ED25519", "rsa1": "RSA"}


def spot_accounts(sim: Simulator) -> tuple[list[dict[str, object]], dict[str, str]]:
    """Config entries for the simulator's spot accounts (``wrong1`` with a wrong secret)."""
    env: dict[str, str] = {}
    accounts: list[dict[str, object]] = []
    for account in sim.spot_accounts:
        upper = account.name.upper()
        entry: dict[str, object] = {
            "name": account.name,
            "market": "spot",
            "api_key_env": f"{upper}_KEY",
            "endpoints": "custom",
            "rest_url": sim.rest_url,
            "ws_url": sim.spot_record(account)["ws_api_url"],
        }
        env[f"{upper}_KEY"] = account.api_key
        if account.private_key_pem:
            entry |= {
                "api_key_type": account.key_type.lower(),
                "api_private_key_env": f"{upper}_PEM",
            }
            env[f"{upper}_PEM"] = account.private_key_pem
        else:
            entry["api_secret_env"] = f"{upper}_SECRET"
            wrong = account.name == "wrong1"
            env[f"{upper}_SECRET"] = "0" * 64 if wrong else account.api_secret
        accounts.append(entry)
    return accounts, env


def details(findings: list[Finding], account: str) -> list[tuple[Level, str]]:
    return [(f.level, f.detail) for f in findings if f.subject == f"accounts[{account}]"]


async def test_check_subscribes_each_key_type_and_reports_a_refused_key(
    pg_dsn: str, nats_target: NatsTarget, tmp_path: Path
) -> None:
    config = SimConfig(accounts=(), spot_accounts=ACCOUNTS, spot_key_types=KEY_TYPES, rate=0)
    async with Simulator(config) as sim:
        accounts, env = spot_accounts(sim)
        raw = {
            "database": {"dsn": pg_dsn},
            "nats": {"servers": [nats_target.url], "stream": nats_target.stream},
            "accounts": accounts,
        }
        findings = await run_checks(config_from_dict(raw, env), env)
    ws_api = sim.spot_record(sim.account("hmac1"))["ws_api_url"]
    for name, kind in (("hmac1", "hmac"), ("ed1", "ed25519"), ("rsa1", "rsa")):
        found = details(findings, name)
        assert (Level.OK, f"WS API {ws_api}: user data subscribed and unsubscribed ({kind})") in (
            found
        ), found
        assert not [d for level, d in found if level is Level.FAIL], found
    wrong = details(findings, "wrong1")
    failures = [d for level, d in wrong if level is Level.FAIL]
    assert any(d.startswith("WS API subscribe refused: ") and "-1022" in d for d in failures), wrong
    assert any(d.startswith("key refused: ") for d in failures), wrong
    shown = "\n".join(f.detail for f in findings)
    for account in sim.spot_accounts:
        secrets = [account.api_secret, *account.private_key_pem.splitlines()[1:-1]]
        assert not [s for s in secrets if s and s in shown]
