"""Spot drop evidence: an executionReport whose cumulative quantity ``z`` exceeds the Σ ``l`` we
saw of its order (seen from its NEW) proves a dropped fill; frames shaped as binance-facts.md
§5.3, decoded by the real decoder. Time is driven by hand (``check(now)``)."""

from __future__ import annotations

from typing import Any

import msgspec

from fillstream.binance.products import EVENT_TYPES
from fillstream.ledger import Gap, Market
from fillstream.stream.activity import AccountActivity
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.evidence import DropEvidence

SYMBOL = "ETHBTC"
T0 = 1_789_478_401_000
WAIT = 0.3
DECODER = FrameDecoder(EVENT_TYPES[Market.SPOT])


def report(
    order_id: int, *, x: str, status: str, last: str, cum: str, trade_id: int, at: int
) -> bytes:
    event: dict[str, Any] = {
        "e": "executionReport",
        "E": at,
        "s": SYMBOL,
        "c": f"c-{order_id}",
        "S": "BUY",
        "o": "LIMIT",
        "f": "GTC",
        "q": "1.00000000",
        "p": "0.10264410",
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": "",
        "x": x,
        "X": status,
        "r": "NONE",
        "i": order_id,
        "l": last,
        "z": cum,
        "L": "0.10264410" if trade_id != -1 else "0.00000000",
        "n": "0",
        "N": None,
        "T": at,
        "t": trade_id,
        "I": 8641984,
        "w": True,
        "m": False,
        "M": False,
        "O": T0,
        "Z": "0",
        "Y": "0",
        "Q": "0.00000000",
        "W": T0,
        "V": "NONE",
    }
    return msgspec.json.encode(event)


def detector() -> tuple[DropEvidence, list[Gap]]:
    gaps: list[Gap] = []
    evidence = DropEvidence("a1", Market.SPOT, AccountActivity(), wait_s=WAIT, on_gap=gaps.append)
    return evidence, gaps


def feed(evidence: DropEvidence, frame: bytes, now: float) -> None:
    evidence.observe(DECODER.decode(frame), 1, now)


def test_a_dropped_partial_fill_is_a_narrow_gap_on_its_symbol() -> None:
    evidence, gaps = detector()
    feed(evidence, report(7, x="NEW", status="NEW", last="0", cum="0", trade_id=-1, at=T0), 0.0)
    feed(
        evidence,
        report(
            7, x="TRADE", status="PARTIALLY_FILLED", last="0.4", cum="0.4", trade_id=11, at=T0 + 10
        ),
        0.0,
    )
    # The fill of 0.3 (trade 12) never came; the next one says z = 1.0.
    feed(
        evidence,
        report(7, x="TRADE", status="FILLED", last="0.3", cum="1.0", trade_id=13, at=T0 + 30),
        0.0,
    )
    assert evidence.check(WAIT + 0.01) == gaps
    assert len(gaps) == 1
    gap = gaps[0]
    assert (gap.narrow, gap.symbols, gap.reason) == (True, frozenset({SYMBOL}), "drop_evidence")
    assert gap.since_ms == T0 + 10 and gap.until_ms == T0 + 30
    assert evidence.counts["cumulative_qty"] == 1


def test_every_fill_seen_and_duplicates_raise_nothing() -> None:
    evidence, gaps = detector()
    frames = [
        report(8, x="NEW", status="NEW", last="0", cum="0", trade_id=-1, at=T0),
        report(
            8, x="TRADE", status="PARTIALLY_FILLED", last="0.4", cum="0.4", trade_id=21, at=T0 + 1
        ),
        report(
            8, x="TRADE", status="PARTIALLY_FILLED", last="0.4", cum="0.4", trade_id=21, at=T0 + 1
        ),  # the venue repeated it
        report(8, x="TRADE", status="FILLED", last="0.6", cum="1.0", trade_id=22, at=T0 + 2),
    ]
    for frame in frames:
        feed(evidence, frame, 0.0)
    assert evidence.check(WAIT + 0.01) == []
    assert gaps == []


def test_an_order_first_seen_mid_way_is_not_judged() -> None:
    evidence, gaps = detector()
    # Its NEW came before we listened: its earlier fills are the start gap's business.
    feed(
        evidence,
        report(9, x="TRADE", status="FILLED", last="0.5", cum="1.0", trade_id=31, at=T0),
        0.0,
    )
    feed(
        evidence,
        report(9, x="CANCELED", status="CANCELED", last="0", cum="1.0", trade_id=-1, at=T0 + 5),
        0.0,
    )
    assert evidence.check(WAIT + 0.01) == []
    assert gaps == []


def test_a_cancel_whose_z_exceeds_the_fills_seen_is_an_order_transition() -> None:
    evidence, gaps = detector()
    feed(evidence, report(10, x="NEW", status="NEW", last="0", cum="0", trade_id=-1, at=T0), 0.0)
    feed(
        evidence,
        report(10, x="CANCELED", status="CANCELED", last="0", cum="0.2", trade_id=-1, at=T0 + 9),
        0.0,
    )
    assert len(evidence.check(WAIT + 0.01)) == 1
    assert gaps[0].since_ms == T0 and gaps[0].until_ms == T0 + 9
    assert evidence.counts["order_transition"] == 1
