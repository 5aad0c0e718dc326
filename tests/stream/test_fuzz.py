"""Bad frames never escape the processor: the issue's frames one by one, then a bounded fuzz run
(byte flips, truncation, type swaps, deep nesting, huge numbers, NaN/Infinity, unicode) through
decode, parse, the position book and the metrics (:mod:`benchmarks.fuzz_frames`)."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
from prometheus_client import REGISTRY

from benchmarks.fuzz_frames import fuzz, harness_processor
from fillstream.stream.processor import Processor, _Pending
from tests.stream import payloads as p


def _otu(frame: bytes = p.ORDER_TRADE_UPDATE_FILL, **order: object) -> bytes:
    obj = msgspec.json.decode(frame)
    obj["o"].update(order)
    return msgspec.json.encode(obj)


def _top(frame: bytes, **fields: object) -> bytes:
    obj = msgspec.json.decode(frame)
    obj.update(fields)
    return msgspec.json.encode(obj)


def _position(**fields: object) -> bytes:
    obj = msgspec.json.decode(p.ACCOUNT_UPDATE)
    obj["a"]["P"][1].update(fields)
    return msgspec.json.encode(obj)


BAD_FRAMES = {
    "l NaN": _otu(l="NaN"),
    "L NaN": _otu(L="NaN"),
    "L Infinity": _otu(L="Infinity"),
    "L -Infinity": _otu(L="-Infinity"),
    "n sNaN": _otu(n="sNaN"),
    "L huge exponent": _otu(L="1e400"),
    "l huge exponent": _otu(l="9e999999999"),
    "rp tiny exponent": _otu(rp="1e-999999999"),
    "L empty": _otu(L=""),
    "trade id 2**64-1": _otu(t=18446744073709551615),
    "order id 2**63": _otu(i=2**63),
    "E huge": _top(p.ORDER_TRADE_UPDATE_FILL, E=10**30),
    "E beyond float": _top(p.ORDER_TRADE_UPDATE_FILL, E=int("9" * 400)),
    "1000 levels": b'{"e":"ORDER_TRADE_UPDATE","E":1,"o":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "1000 levels in an unused field": _otu()[:-2] + b',"zz":' + b"[" * 1000 + b"]" * 1000 + b"}}",
    "1000 levels bare": b"[" * 1000 + b"]" * 1000,
    "pa sNaN": _position(pa="sNaN"),
    "pa NaN": _position(pa="NaN"),
    "ep Infinity": _position(ep="Infinity"),
    "invalid utf-8": _otu()[:40] + b"\xff\xfe" + _otu()[40:],
    "lone surrogate": _otu(c="\\ud800").replace(b"\\\\ud800", b"\\ud800"),
    "ai not an id": p.ALGO_UPDATE_TRIGGERED.replace(b'"8389765543210"', b'"87a"'),
    "ai beyond bigint": p.ALGO_UPDATE_TRIGGERED.replace(
        b'"8389765543210"', b'"18446744073709551615"'
    ),
}

ACCEPTED = {
    "the issue's nulls": _otu(
        p.ORDER_TRADE_UPDATE_LIQUIDATION,
        sp=None,
        V=None,
        si=None,
        ss=None,
        gtd=None,
        pm=None,
        wt=None,
        ot=None,
    ),
    "rp null on a transition": _otu(p.ORDER_TRADE_UPDATE_NEW_TRAILING, rp=None, sp=None),
    "bep a number": _position(bep=0.0, up=None),
}


def _processor() -> Processor:
    return harness_processor(f"fz{uuid.uuid4().hex[:8]}")


def _malformed(account: str) -> float:
    labels = {"account": account, "market": "usdm", "kind": "malformed"}
    return REGISTRY.get_sample_value("fillstream_stream_decode_errors_total", labels) or 0.0


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_each_bad_frame_is_counted_malformed_and_leaves_no_trace(name: str) -> None:
    processor = _processor()
    pending = _Pending()
    processor._handle((time.time_ns(), 1, BAD_FRAMES[name]), time.monotonic(), pending)
    assert _malformed(processor.account) == 1
    assert not pending and processor.last_event_ms is None
    assert processor.activity.exposed_symbols() == set()  # what the watchdog reads
    # ... and the next good frame goes through.
    processor._handle((time.time_ns(), 1, p.ORDER_TRADE_UPDATE_FILL), time.monotonic(), pending)
    assert len(pending.fills) == 1 and processor.fills == 1


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_tolerated_drift_is_not_malformed(name: str) -> None:
    processor = _processor()
    pending = _Pending()
    processor._handle((time.time_ns(), 1, ACCEPTED[name]), time.monotonic(), pending)
    assert _malformed(processor.account) == 0
    assert processor.last_event_ms is not None


def test_a_bounded_fuzz_run_raises_nothing() -> None:
    report = fuzz(8000, seed=11)
    assert report.uncaught_total == 0, report.examples
    # The fuzzer reaches every outcome (or this test could not fail).
    for outcome in ("fill", "event", "rejected:malformed", "rejected:unknown"):
        assert report.outcomes.get(outcome, 0) > 0, report.outcomes
