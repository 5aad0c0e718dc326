"""Rendezvous hashing: the same owner on every process, an even spread, and a member joining or
leaving moves only the accounts it must; the [replicas] settings are checked at load."""

from __future__ import annotations

import collections

import pytest

from fillstream.ledger import ConfigError
from fillstream.sidecar.config import config_from_dict
from fillstream.sidecar.ownership import rendezvous

KEYS = [f"acct.usdm.a{n:04d}" for n in range(3000)]


def _owners(members: list[str]) -> dict[str, str | None]:
    return {k: rendezvous(k, members) for k in KEYS}


def test_every_process_computes_the_same_owner() -> None:
    assert _owners(["a", "b", "c"]) == _owners(["c", "a", "b"])
    assert rendezvous("acct.usdm.x", []) is None


def test_the_spread_is_even() -> None:
    counts = collections.Counter(_owners(["pod-a", "pod-b", "pod-c"]).values())
    assert set(counts) == {"pod-a", "pod-b", "pod-c"}
    assert all(900 <= n <= 1100 for n in counts.values()), counts


def test_joining_or_leaving_moves_only_what_it_must() -> None:
    before = _owners(["a", "b", "c"])
    joined = _owners(["a", "b", "c", "d"])
    moved = {k for k in KEYS if before[k] != joined[k]}
    assert all(joined[k] == "d" for k in moved)  # only to the new member
    assert 600 <= len(moved) <= 900  # about a quarter
    left = _owners(["a", "c"])
    moved = {k for k in KEYS if before[k] != left[k]}
    assert moved == {k for k in KEYS if before[k] == "b"}  # only b's


def _config(**replicas: object) -> dict[str, object]:
    return {"database": {"dsn": "postgresql://u@h/db"}, "replicas": replicas}


def test_replicas_settings_are_checked() -> None:
    assert not config_from_dict(_config(), {}).replicas.enabled
    on = config_from_dict(_config(enabled=True, lease_ttl_s=10, renew_interval_s=2), {})
    assert on.replicas.lease_ttl_s == 10
    for bad, message in (
        ({"lease_ttl_s": 1}, "replicas.lease_ttl_s"),
        ({"lease_ttl_s": 10, "stop_margin_s": 10}, "stop_margin_s"),
        ({"lease_ttl_s": 10, "renew_interval_s": 4}, "renew_interval_s"),
        ({"bucket": "no.dots"}, "bucket"),
        ({"member": "a b"}, "member"),
    ):
        with pytest.raises(ConfigError, match=message):
            config_from_dict(_config(enabled=True, **bad), {})
