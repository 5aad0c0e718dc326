"""Which spot symbols the balances point at (reconcile/spot_symbols.py): the bounded rule."""

from __future__ import annotations

from decimal import Decimal

from fillstream.binance.spot.rows import AccountBalance, AccountInfo, SymbolInfo
from fillstream.ledger import BalanceKind, FillSource
from fillstream.reconcile.spot_symbols import candidates, changed_facts

QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB")


def _symbols(*pairs: tuple[str, str]) -> dict[str, SymbolInfo]:
    return {
        b + q: SymbolInfo(symbol=b + q, baseAsset=b, quoteAsset=q, status="TRADING")
        for b, q in pairs
    }


SYMBOLS = _symbols(
    ("ETH", "USDT"),
    ("ETH", "BTC"),
    ("ETH", "TRY"),
    ("BTC", "USDT"),
    ("BNB", "USDT"),
    ("BNB", "ETH"),
    ("SOL", "USDT"),
    ("USDT", "TRY"),
    ("币安人生", "USDT"),
)


def test_first_read_every_held_base_against_held_and_usual_quotes() -> None:
    held = {"ETH", "BTC", "币安人生"}
    found = candidates(SYMBOLS, held=held, changed=held, quotes=QUOTES, limit=20)
    # Both assets held first (ETHBTC), then by the quote's rank; TRY is neither held nor usual.
    assert found == ["ETHBTC", "BTCUSDT", "ETHUSDT", "币安人生USDT"]


def test_later_reads_probe_only_what_changed() -> None:
    # ETH sold for USDT: ETH gone, USDT new; BTC untouched.
    held = {"BTC", "USDT"}
    found = candidates(SYMBOLS, held=held, changed={"ETH", "USDT"}, quotes=QUOTES, limit=20)
    assert found == ["ETHUSDT", "BTCUSDT", "ETHBTC"]
    assert candidates(SYMBOLS, held=held, changed=set(), quotes=QUOTES, limit=20) == []


def test_the_probe_count_is_bounded() -> None:
    held = {"ETH", "BTC", "BNB", "SOL", "USDT"}
    found = candidates(SYMBOLS, held=held, changed=held, quotes=QUOTES, limit=3)
    assert len(found) == 3
    assert found == ["BNBUSDT", "BTCUSDT", "ETHUSDT"]  # by quote rank, then name


def test_a_balance_read_submits_only_what_changed_and_zero_for_what_went() -> None:
    info = AccountInfo(
        balances=(
            AccountBalance(asset="BTC", free="0.5", locked="0.1"),
            AccountBalance(asset="USDT", free="900", locked="0"),
        ),
        updateTime=1_700_000_000_123,
    )
    facts = changed_facts(info, {"ETH", "USDT"}, account="s1", received_at_ns=9)
    assert [(f.asset, f.free, f.locked) for f in facts] == [
        ("ETH", Decimal(0), Decimal(0)),  # sold out since the previous read
        ("USDT", Decimal(900), Decimal(0)),
    ]
    for f in facts:
        assert (f.kind, f.source, f.market) == (BalanceKind.POSITION, FillSource.RECONCILE, "spot")
        assert (f.time_ms, f.event_time_ms, f.received_at_ns) == (1_700_000_000_123,) * 2 + (9,)
