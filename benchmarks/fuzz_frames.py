"""Fuzz the stream path with mutated user-data frames (``python -m benchmarks.fuzz_frames``).

Each frame is one of the venue-shaped fixtures (``tests/stream/payloads.py``) put through one to
three mutations: byte flips, truncation, garbage or invalid UTF-8 inserted, JSON type swaps,
nulls, deleted keys, deep nesting, huge numbers and exponents, NaN/Infinity strings, unicode
(lone surrogates, NUL, right-to-left marks), envelopes, fresh ids. It goes through what the
processor does with a frame (``Processor._handle``: decode, dispatch, parse, the activity
bookkeeping, the lag histogram), the fills it yields through the position book, and the
watchdog's view of the account (``exposed_symbols``). Any exception escaping these is an
*uncaught* one: a frame that would have restarted the account.

Prints frames/s, the count of frames by outcome and the uncaught exceptions by type (with the
first few frames that raised them); exits non-zero when there is any. The suite runs a short
run (tests/stream/test_fuzz.py); the 10⁶-frame run is::

    flock /tmp/fillstream-heavy.lock python -m benchmarks.fuzz_frames --frames 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
from prometheus_client import REGISTRY

from fillstream.ledger import IngestBatch, IngestResult, Market, Position, PositionBook
from fillstream.stream.activity import AccountActivity
from fillstream.stream.config import StreamSettings
from fillstream.stream.decode import FrameDecoder, truncate
from fillstream.stream.metrics import StreamMetrics
from fillstream.stream.processor import Processor, _Pending
from tests.stream import payloads

SEEDS: tuple[bytes, ...] = (
    payloads.ORDER_TRADE_UPDATE_FILL,
    payloads.ORDER_TRADE_UPDATE_LIQUIDATION,
    payloads.ORDER_TRADE_UPDATE_NEW_TRAILING,
    payloads.ACCOUNT_UPDATE,
    payloads.ACCOUNT_UPDATE_FUNDING,
    *payloads.ALL_EVENTS.values(),
)

NOT_AMOUNTS = (
    "NaN",
    "nan",
    "-NaN",
    "sNaN",
    "-sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "-1e400",
    "1E+999999999",
    "1e-400",
    "0E-99999",
    "",
    " ",
    "1_000",
    "0x1p3",
    "7e3x",
    "9" * 400,
    "0." + "0" * 100 + "1",
)
"""Strings that look like amounts to someone and must be malformed to both parsers."""
NASTY_STRINGS = (*NOT_AMOUNTS, "\ud800", "\x00", "\u202e", "💥", "BTC\u0000USDT")
NASTY_NUMBERS: tuple[Any, ...] = (
    18446744073709551615,
    2**63,
    2**63 - 1,
    -1,
    0,
    10**30,
    1e308,
    -1e308,
    1.5,
    True,
)

Obj = dict[str, Any]


class _NullSink:
    """The processor's sink is never called here (the harness drives ``_handle`` directly)."""

    async def submit(self, batch: IngestBatch) -> IngestResult:
        raise AssertionError("not used")

    async def positions(self, account: str, market: Market) -> list[Position]:
        raise AssertionError("not used")


def harness_processor(account: str) -> Processor:
    """A real processor for ``account`` whose ``_handle`` the caller drives frame by frame."""
    return Processor(
        account,
        Market.USDM,
        _NullSink(),
        settings=StreamSettings(),
        metrics=StreamMetrics(account, "usdm"),
        activity=AccountActivity(),
        decoder=FrameDecoder(),
        on_key_expired=lambda conn_id, key: None,
    )


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into ``obj`` (dicts and lists)."""
    out: list[tuple[Any, ...]] = []
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _nested(depth: int, rng: random.Random) -> bytes:
    opener, closer = rng.choice(((b"[", b"]"), (b'{"x":', b"}")))
    return opener * depth + b"1" + closer * depth


def _swap_type(value: Any, rng: random.Random) -> Any:
    if isinstance(value, str):
        try:
            return rng.choice((float(value), int(float(value)), None, [value], {"v": value}))
        except (ValueError, OverflowError):
            return rng.choice((0, None, True, [value]))
    if isinstance(value, bool):
        return rng.choice((str(value).lower(), int(value), None))
    if isinstance(value, int | float):
        return rng.choice((str(value), float(value), None, [value], bool(value)))
    return rng.choice((None, "x", 0, [], {}))


# Structured mutations: on the decoded JSON object, in place.


def _m_swap(obj: Obj, rng: random.Random) -> None:
    paths = _paths(obj)
    if paths:
        path = rng.choice(paths)
        _set(obj, path, _swap_type(_get(obj, path), rng))


def _m_null(obj: Obj, rng: random.Random) -> None:
    paths = _paths(obj)
    for path in rng.sample(paths, min(len(paths), rng.randint(1, 4))):
        _set(obj, path, None)


def _m_delete(obj: Obj, rng: random.Random) -> None:
    paths = [p for p in _paths(obj) if isinstance(p[-1], str)]
    if paths:
        path = rng.choice(paths)
        parent = _get(obj, path[:-1])
        parent.pop(path[-1], None)


def _m_nasty_string(obj: Obj, rng: random.Random) -> None:
    paths = _paths(obj)
    if paths:
        _set(obj, rng.choice(paths), rng.choice(NASTY_STRINGS))


def _m_nasty_number(obj: Obj, rng: random.Random) -> None:
    paths = _paths(obj)
    if paths:
        _set(obj, rng.choice(paths), rng.choice(NASTY_NUMBERS))


def _m_fresh_ids(obj: Obj, rng: random.Random) -> None:
    inner = obj.get("o")
    if isinstance(inner, dict):
        inner["t"] = rng.randint(1, 2**40)
        inner["i"] = rng.randint(1, 2**40)
        if rng.random() < 0.3:
            inner["s"] = rng.choice(("BTCUSDT", "ETHUSDT", "XRPUSDT", "€UR", "\u202eUSDT"))


STRUCTURED: tuple[Callable[[Obj, random.Random], None], ...] = (
    _m_swap,
    _m_null,
    _m_delete,
    _m_nasty_string,
    _m_nasty_number,
    _m_fresh_ids,
    _m_fresh_ids,
)


# Byte mutations: on the encoded frame.


def _b_flip(frame: bytes, rng: random.Random) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _b_truncate(frame: bytes, rng: random.Random) -> bytes:
    return frame[: rng.randrange(len(frame))]


def _b_insert(frame: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(frame))
    junk = rng.choice((b"\xff\xfe", b"\xc3", b"\x00", b"\\ud800", b",", b'"', b"}", b"{", b"1e400"))
    return frame[:at] + junk + frame[at:]


def _b_nest(frame: bytes, rng: random.Random) -> bytes:
    depth = rng.choice((100, 1000, 1000, 5000, 100_000))
    if frame.endswith(b"}") and rng.random() < 0.7:
        return frame[:-1] + b',"zz":' + _nested(depth, rng) + b"}"
    return _nested(depth, rng)


def _b_envelope(frame: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return b'{"stream":"k","data":' + frame + b"}"
    return b'{"subscriptionId":1,"event":' + frame + b"}"


BYTEWISE: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    _b_flip,
    _b_truncate,
    _b_insert,
    _b_nest,
    _b_envelope,
)


def mutate(rng: random.Random) -> bytes | str:
    """One mutated frame (bytes, or now and then a ``str`` as a text frame would be)."""
    seed = rng.choice(SEEDS)
    frame = seed
    if rng.random() < 0.7:
        obj = msgspec.json.decode(seed)
        for _ in range(rng.randint(1, 3)):
            try:
                rng.choice(STRUCTURED)(obj, rng)
            except (TypeError, KeyError, IndexError):  # a path an earlier mutation removed
                continue
        try:
            frame = msgspec.json.encode(obj)
        except (ValueError, TypeError, OverflowError):  # e.g. a lone surrogate in a str
            frame = seed
    if rng.random() < 0.35:
        frame = rng.choice(BYTEWISE)(frame or b"{}", rng)
    if rng.random() < 0.05:
        return frame.decode("utf-8", "surrogateescape")
    return frame


class FuzzReport(msgspec.Struct, kw_only=True):
    frames: int
    seconds: float
    outcomes: dict[str, int]
    uncaught: dict[str, int]
    examples: list[str]

    @property
    def uncaught_total(self) -> int:
        return sum(self.uncaught.values())


def fuzz(frames: int, seed: int, *, book_every: int = 64) -> FuzzReport:
    """Run ``frames`` mutated frames (see the module docstring); deterministic per ``seed``."""
    rng = random.Random(seed)
    account = f"fuzz{uuid.uuid4().hex[:8]}"
    processor = harness_processor(account)
    activity = processor.activity
    book = PositionBook(account, Market.USDM)
    outcomes: Counter[str] = Counter()
    uncaught: Counter[str] = Counter()
    examples: list[str] = []
    pending = _Pending()
    started = time.perf_counter()
    for n in range(frames):
        frame = mutate(rng)
        payload = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else frame
        fills, bad, dups = processor.fills, processor._bad_frames, processor.duplicates
        try:
            processor._handle((time.time_ns(), 1, payload), time.monotonic(), pending)
            if len(pending) >= book_every or n == frames - 1:
                book.apply(fills=pending.fills, algo_links=pending.algos)
                activity.active_symbols(time.monotonic())  # what the watchdog reads
                pending = _Pending()
        except Exception as exc:  # the harness's job: record whatever escapes
            uncaught[type(exc).__name__] += 1
            pending = _Pending()
            if len(examples) < 10:
                examples.append(f"{type(exc).__name__}: {exc!s:.200} ← {truncate(frame)}")
            continue
        if processor._bad_frames > bad:
            outcomes["rejected"] += 1
        elif processor.fills > fills:
            outcomes["fill"] += 1
        elif processor.duplicates > dups:
            outcomes["duplicate"] += 1
        else:
            outcomes["event"] += 1
    seconds = time.perf_counter() - started
    labels = {"account": account, "market": "usdm"}
    for kind in ("malformed", "unknown"):
        value = REGISTRY.get_sample_value(
            "fillstream_stream_decode_errors_total", {**labels, "kind": kind}
        )
        outcomes[f"rejected:{kind}"] = int(value or 0)
    return FuzzReport(
        frames=frames,
        seconds=seconds,
        outcomes=dict(sorted(outcomes.items())),
        uncaught=dict(uncaught),
        examples=examples,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="log the bad frames (sampled)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    report = fuzz(args.frames, args.seed)
    rate = report.frames / report.seconds if report.seconds else 0.0
    print(f"frames: {report.frames}  seconds: {report.seconds:.1f}  frames/s: {rate:,.0f}")
    for outcome, count in report.outcomes.items():
        print(f"  {outcome:<20} {count:>10}")
    print(f"uncaught exceptions: {report.uncaught_total}")
    for name, count in sorted(report.uncaught.items()):
        print(f"  {name:<20} {count:>10}")
    for example in report.examples:
        print(f"  e.g. {example}")
    return 1 if report.uncaught_total else 0


if __name__ == "__main__":
    sys.exit(main())
