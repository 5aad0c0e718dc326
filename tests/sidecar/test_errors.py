from __future__ import annotations

from fillstream.sidecar.errors import describe
from fillstream.sidecar.secrets import Secret


def test_describe_unwraps_groups_masks_and_truncates() -> None:
    Secret("a-secret-in-an-error-1234")
    group = ExceptionGroup("tg", [ValueError("bad key a-secret-in-an-error-1234\nsecond line")])
    assert describe(ExceptionGroup("outer", [group])) == "ValueError: bad key **** second line"
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(RuntimeError("x" * 50), limit=20) == "RuntimeError: xxxxx…"
