"""Decimal formatting the way Binance prints amounts: fixed decimals, no exponent, no float."""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
EIGHT = Decimal("0.00000001")


def fmt_fixed(value: Decimal, places: int) -> str:
    """``value`` with exactly ``places`` decimals (rounded half-even), never in exponent form."""
    if not value:
        value = ZERO  # no "-0.000"
    return format(value, f".{places}f")


def fmt_plain(value: Decimal) -> str:
    """``value`` as Binance prints entry prices: all its digits, no exponent, ``0`` for zero."""
    if value == ZERO:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_amount(value: Decimal) -> str:
    """Money amounts (commission, realized PnL, balances): 8 decimals, ``0`` when exactly zero."""
    if not value:
        return "0"
    return format(value, ".8f")
