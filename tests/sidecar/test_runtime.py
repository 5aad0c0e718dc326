"""The collector tuning ``fillstream run`` applies once started (sidecar/runtime.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from fillstream.sidecar.runtime import THRESHOLDS, tune_gc


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("collector")
def test_start_up_objects_are_frozen_and_thresholds_raised() -> None:
    held = [[n] for n in range(1_000)]  # start-up's objects: tracked, alive
    tune_gc()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() >= len(held)
    assert not any(o is held for o in gc.get_objects())  # no collection walks them again
    later = [[n] for n in range(10)]
    assert any(o is later for o in gc.get_objects(generation=0))
