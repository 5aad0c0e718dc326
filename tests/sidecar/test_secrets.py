"""Secret masking: the wrapper, the scrubber and URL passwords."""

from __future__ import annotations

import pickle

import pytest

from fillstream.sidecar.secrets import MASK, Secret, mask_url, remember_url_password, scrub


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
