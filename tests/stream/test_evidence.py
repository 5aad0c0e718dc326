"""The drop detector over venue-shaped events (binance-facts.md §2), one signal at a time.

Frames are built with the documented field names and decoded by the real decoder; the
``Feed`` helper does what the processor does with each event before the detector sees it
(the activity's TRADE_LITE/fill bookkeeping), then hands it to :class:`DropEvidence`.
Time is driven by hand (``check(now)``), so nothing here waits.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fillstream.binance.usdm.events import OrderTradeUpdate, TradeLite
from fillstream.ledger import Gap, Market
from fillstream.stream.activity import AccountActivity
from fillstream.stream.decode import FrameDecoder
from fillstream.stream.evidence import DropEvidence

SYMBOL = "BTCUSDT"
T0 = 1_789_478_401_000
WAIT = 0.3


def otu(
    order_id: int,
    *,
    x: str = "TRADE",
    status: str = "PARTIALLY_FILLED",
    last: str = "0",
    cum: str = "0",
    trade_id: int = 0,
    at: int = T0,
    side: str = "BUY",
    ps: str = "BOTH",
) -> bytes:
    o: dict[str, Any] = {
        "s": SYMBOL,
        "c": f"sim-{order_id}",
        "S": side,
        "o": "MARKET",
        "f": "GTC",
        "q": "1.000",
        "p": "0",
        "ap": "0",
        "sp": "0",
        "x": x,
        "X": status,
        "i": order_id,
        "l": last,
        "z": cum,
        "L": "76950.00" if trade_id else "0",
        "N": "USDT",
        "n": "0.01",
        "T": at,
        "t": trade_id,
        "b": "0",
        "a": "0",
        "m": False,
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": "MARKET",
        "ps": ps,
        "cp": False,
        "pP": False,
        "si": 0,
        "ss": 0,
        "rp": "0",
        "V": "NONE",
        "pm": "NONE",
        "gtd": 0,
        "er": "0",
    }
    return msgspec.json.encode({"e": "ORDER_TRADE_UPDATE", "E": at, "T": at, "o": o})


def lite(order_id: int, trade_id: int, last: str, *, at: int = T0) -> bytes:
    return msgspec.json.encode(
        {
            "e": "TRADE_LITE",
            "E": at,
            "T": at,
            "s": SYMBOL,
            "q": "1.000",
            "p": "0",
            "m": False,
            "c": f"sim-{order_id}",
            "S": "BUY",
            "L": "76950.00",
            "l": last,
            "t": trade_id,
            "i": order_id,
        }
    )


def account(pa: str, *, at: int = T0, ps: str = "BOTH") -> bytes:
    position = {"s": SYMBOL, "pa": pa, "ep": "76950", "bep": "76950", "cr": "0", "up": "0"}
    position |= {"mt": "cross", "iw": "0", "ps": ps}
    balance = {"a": "USDT", "wb": "1000", "cw": "1000", "bc": "0"}
    return msgspec.json.encode(
        {
            "e": "ACCOUNT_UPDATE",
            "E": at,
            "T": at,
            "a": {"m": "ORDER", "B": [balance], "P": [position]},
        }
    )


def algo(status: str, child: int, *, executed: str = "0", at: int = T0) -> bytes:
    o = {"caid": "sl-1", "aid": 1000000246753436, "at": "CONDITIONAL", "o": "STOP_MARKET"}
    o |= {"s": SYMBOL, "S": "SELL", "ps": "BOTH", "f": "GTC", "q": "1.000", "X": status}
    o |= {"ai": str(child), "ap": "0", "aq": executed, "act": "MARKET", "tp": "76000", "p": "0"}
    o |= {"tt": at, "R": True, "rm": ""}
    return msgspec.json.encode({"e": "ALGO_UPDATE", "T": at, "E": at, "o": o})


class Feed:
    """The detector with the processor's bookkeeping in front of it, on a hand-driven clock."""

    def __init__(self) -> None:
        self.activity = AccountActivity()
        self.gaps: list[Gap] = []
        self.evidence = DropEvidence(
            "alpha", Market.USDM, self.activity, wait_s=WAIT, on_gap=self.gaps.append
        )
        self.decoder = FrameDecoder()
        self.now = 100.0

    def __call__(self, *frames: bytes, conn: int = 1) -> None:
        for frame in frames:
            event = self.decoder.decode(frame)
            if isinstance(event, TradeLite):
                self.activity.trade_lite((event.s, event.t, event.i), event.T, self.now)
            elif isinstance(event, OrderTradeUpdate) and event.o.t:
                self.activity.fill((event.o.s, event.o.t, event.o.i), self.now)
            self.evidence.observe(event, conn, self.now)

    def later(self, seconds: float = WAIT + 0.01) -> list[Gap]:
        self.now += seconds
        return self.evidence.check(self.now)

    @property
    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.evidence.counts.items() if v}


def test_a_complete_order_raises_nothing() -> None:
    feed = Feed()
    feed(
        account("0", at=T0 - 10),
        otu(7, x="NEW", status="NEW"),
        lite(7, 501, "0.400", at=T0 + 1),
        otu(7, last="0.400", cum="0.400", trade_id=501, at=T0 + 1),
        account("0.400", at=T0 + 1),
        lite(7, 502, "0.600", at=T0 + 2),
        otu(7, status="FILLED", last="0.600", cum="1.000", trade_id=502, at=T0 + 2),
        account("1.000", at=T0 + 2),
    )
    assert feed.later() == []
    assert feed.counts == {}


def test_cumulative_quantity_above_the_fills_seen() -> None:
    feed = Feed()
    feed(
        otu(7, x="NEW", status="NEW"),
        otu(7, status="FILLED", last="0.600", cum="1.000", trade_id=502, at=T0 + 2),
    )
    (gap,) = feed.later()
    assert feed.counts == {"cumulative_qty": 1}
    assert gap.narrow and gap.symbols == {SYMBOL} and gap.reason == "drop_evidence"
    assert gap.until_ms is not None and gap.since_ms <= T0 + 2 <= gap.until_ms


def test_evidence_resolved_within_the_wait_is_no_gap() -> None:
    feed = Feed()
    # The later fill first (a reconnect overlap, say), the earlier one inside the wait.
    feed(
        otu(7, x="NEW", status="NEW"),
        otu(7, status="FILLED", last="0.600", cum="1.000", trade_id=502, at=T0 + 2),
    )
    assert feed.later(WAIT / 2) == []
    feed(otu(7, last="0.400", cum="0.400", trade_id=501, at=T0 + 1))
    assert feed.later() == []
    assert feed.counts == {}


def test_an_order_seen_mid_way_is_not_judged() -> None:
    """No NEW, first fill with z > l, no earlier order of the symbol seen from its start: it
    may predate the socket, so its missing quantity proves nothing."""
    feed = Feed()
    feed(otu(7, status="FILLED", last="0.600", cum="1.000", trade_id=502))
    assert feed.later() == []
    assert feed.counts == {}


def test_an_order_younger_than_one_seen_new_is_judged() -> None:
    """Order ids increase per symbol: order 9 was created after order 7, whose NEW we saw."""
    feed = Feed()
    feed(
        otu(7, x="NEW", status="NEW"),
        otu(9, status="FILLED", last="0.600", cum="1.000", trade_id=502),
    )
    assert len(feed.later()) == 1
    assert feed.counts == {"cumulative_qty": 1}


def test_cancel_without_the_fills_its_quantity_implies() -> None:
    feed = Feed()
    feed(
        otu(7, x="NEW", status="NEW"),
        otu(7, x="CANCELED", status="CANCELED", cum="0.300", at=T0 + 5),
    )
    assert len(feed.later()) == 1
    assert feed.counts == {"order_transition": 1}


def test_trade_lite_without_its_order_update() -> None:
    feed = Feed()
    feed(otu(7, x="NEW", status="NEW"), lite(7, 501, "0.400", at=T0 + 1))
    (gap,) = feed.later()
    assert feed.counts == {"trade_lite_unmatched": 1}
    assert gap.since_ms == gap.until_ms == T0 + 1


def test_order_update_without_its_trade_lite_is_counted_but_no_gap() -> None:
    feed = Feed()
    feed(
        lite(7, 500, "0.100", at=T0),
        otu(7, last="0.100", cum="0.100", trade_id=500, at=T0),
        otu(7, last="0.300", cum="0.400", trade_id=501, at=T0 + 1),
    )
    assert feed.later() == []
    assert feed.counts == {"trade_lite_missing": 1}


def test_position_amount_no_fill_run_explains() -> None:
    feed = Feed()
    feed(
        account("0.000", at=T0),
        otu(7, x="NEW", status="NEW", at=T0),
        # the fill of 0.400 at T0 + 1 never arrives (nor its TRADE_LITE)
        otu(8, last="0.100", cum="0.100", trade_id=502, at=T0 + 2),
        account("0.500", at=T0 + 2),
    )
    (gap,) = feed.later()
    assert feed.counts == {"position_amount": 1}
    assert gap.since_ms == T0 and gap.until_ms == T0 + 2


def test_position_amount_ahead_of_its_fills_and_ties_are_no_alarm() -> None:
    feed = Feed()
    feed(
        account("0", at=T0),
        # one update for two fills of the same millisecond, arriving before them
        account("0.700", at=T0 + 1),
        otu(7, x="NEW", status="NEW", at=T0),
        otu(7, last="0.300", cum="0.300", trade_id=501, at=T0 + 1),
        otu(7, last="0.400", cum="0.700", trade_id=502, at=T0 + 1),
        # a sell back in one fill, reported by the update of the next millisecond
        otu(8, x="NEW", status="NEW", at=T0 + 2, side="SELL"),
        otu(8, status="FILLED", last="0.700", cum="0.700", trade_id=503, at=T0 + 2, side="SELL"),
        account("0", at=T0 + 2),
    )
    assert feed.later() == []
    assert feed.counts == {}


def test_algo_child_never_seen_and_short_of_its_executed_quantity() -> None:
    feed = Feed()
    feed(otu(7, x="NEW", status="NEW"), algo("TRIGGERED", 8), algo("FINISHED", 8, executed="1.000"))
    assert len(feed.later()) == 1
    assert feed.counts == {"algo_child": 2}

    seen = Feed()
    seen(
        algo("TRIGGERED", 8),
        otu(8, x="NEW", status="NEW"),
        otu(8, status="FILLED", last="1.000", cum="1.000", trade_id=600),
        algo("FINISHED", 8, executed="1.000"),
    )
    assert seen.later() == []
    assert seen.counts == {}


def test_a_new_connection_forgets_half_seen_orders() -> None:
    feed = Feed()
    feed(otu(7, x="NEW", status="NEW"))
    feed(otu(7, status="FILLED", last="0.600", cum="1.000", trade_id=502), conn=2)
    assert feed.later() == []


def test_one_gap_per_symbol_for_a_burst() -> None:
    feed = Feed()
    feed(
        otu(7, x="NEW", status="NEW"),
        lite(7, 501, "0.100", at=T0 + 1),
        lite(7, 502, "0.100", at=T0 + 2),
        otu(7, last="0.100", cum="0.300", trade_id=503, at=T0 + 3),
    )
    (gap,) = feed.later()
    assert feed.counts == {"trade_lite_unmatched": 2, "cumulative_qty": 1, "trade_lite_missing": 1}
    assert (gap.since_ms, gap.until_ms) == (T0, T0 + 3)
