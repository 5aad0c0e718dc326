"""Venue numbers → domain numbers: the one converter both paths (stream and REST) use.

Binance sends amounts as decimal strings and ids and times as integers. What passes here is
finite, fits what PostgreSQL stores (``numeric`` text, ``bigint``) and is small enough that the
arithmetic done on it later (``price * qty``, sums over a position's lifecycle) cannot overflow,
trap or silently round. Everything else raises :class:`~fillstream.ledger.errors.MalformedInput`
(a ``ValueError``), which every caller counts as a malformed frame or row:

- not a number, an empty string, ``NaN``/``sNaN``/``Infinity`` in any spelling;
- a magnitude of 10^20 or more, or a non-zero magnitude below 10^-30 (``"1e400"``,
  ``"1e-400"``, an exponent that would overflow a ``numeric``), or more than 64 characters;
- an id outside ``0..2**63-1`` (``bigint``), a time outside ``0..`` 9999-12-31 in ms.

The wire types of both paths use :data:`Id` and :data:`TimeMs` (msgspec constraints with the same
integer bounds, so such frames and rows already fail to decode) and :data:`Unused`.
"""

from __future__ import annotations

from decimal import Clamped, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Annotated, Any, Final

import msgspec

from fillstream.ledger.errors import MalformedInput

BIGINT_MAX: Final = 2**63 - 1
MAX_TIME_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: any datetime can hold it
MAX_DIGITS: Final = 20  # |amount| < 10**20 (integer digits)
MIN_ADJUSTED: Final = -30  # a non-zero |amount| >= 10**-30 (18 decimals are the most in use)
MAX_TEXT: Final = 64  # longer amount strings are not amounts (and bound every product below)
ZERO: Final = Decimal(0)

Id = Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX)]
"""A venue id (trade, order, algo, tran id) that fits PostgreSQL ``bigint``."""
TimeMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME_MS)]
"""A venue time in integer milliseconds since the epoch."""
Unused = Any
"""A wire field fillstream never reads: any JSON value (``null``, a number where Binance sends a
string, ...) is accepted, so drift in it never turns a valid event or row into an error."""

# Products of two amounts of at most MAX_TEXT digits are exact at this precision; the traps
# turn anything unexpected into an exception we map to MalformedInput instead of a wrong value.
_EXACT: Final = Context(
    prec=2 * MAX_TEXT + 8,
    Emax=999,
    Emin=-999,
    traps=[InvalidOperation, Overflow, DivisionByZero, Clamped],
)


def amount(value: str | None, field: str) -> Decimal:
    """``value`` (a venue amount string) as a finite, bounded Decimal; see the module doc."""
    cached = _SEEN.get(value)
    if cached is not None:
        return cached
    result = _convert(value, field)
    if len(_SEEN) < _SEEN_MAX:
        _SEEN[value] = result  # only strings get here: _convert raises on anything else
    return result


def _convert(value: str | None, field: str) -> Decimal:
    if not isinstance(value, str):
        raise MalformedInput(f"{field}: expected a decimal string, got {_show(value)}")
    if not value or len(value) > MAX_TEXT or "_" in value:
        raise MalformedInput(f"{field}: not a decimal amount: {_show(value)}")
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError):
        raise MalformedInput(f"{field}: not a decimal amount: {_show(value)}") from None
    if not result.is_finite():
        raise MalformedInput(f"{field}: not finite: {_show(value)}")
    adjusted = result.adjusted()
    if adjusted >= MAX_DIGITS or (adjusted < MIN_ADJUSTED and (result or adjusted < -MAX_TEXT)):
        raise MalformedInput(f"{field}: out of range: {_show(value)}")
    return result


# Amount strings repeat (``"0"``, prices, sizes): the checked conversions of the first ones seen
# are kept (Decimal is immutable) and a repeat is one dict lookup. Bounded, never evicted.
_SEEN: dict[str | None, Decimal] = {}
_SEEN_MAX: Final = 4096


def optional_amount(value: str | None, field: str, default: Decimal = ZERO) -> Decimal:
    """Like :func:`amount`, but an absent value (``None``: missing or JSON null) is ``default``."""
    return default if value is None else amount(value, field)


def positive_amount(value: str | None, field: str) -> Decimal:
    """Like :func:`amount`, and > 0 (a fill's price and quantity)."""
    result = amount(value, field)
    if result <= 0:
        raise MalformedInput(f"{field}: must be > 0: {_show(value)}")
    return result


def product(a: Decimal, b: Decimal, field: str) -> Decimal:
    """``a * b`` exactly (``quote = price * qty``); never raises ``decimal.Overflow``."""
    try:
        return _EXACT.multiply(a, b)
    except ArithmeticError:
        raise MalformedInput(f"{field}: {a} * {b} is out of range") from None


def identifier(value: int, field: str) -> int:
    """``value`` if it is a venue id that fits ``bigint`` (0 allowed: "none")."""
    if type(value) is not int or not 0 <= value <= BIGINT_MAX:
        raise MalformedInput(f"{field}: not an id in 0..2**63-1: {_show(value)}")
    return value


def time_ms(value: int, field: str) -> int:
    """``value`` if it is a plausible venue time in ms (0 allowed: "not given")."""
    if type(value) is not int or not 0 <= value <= MAX_TIME_MS:
        raise MalformedInput(f"{field}: not a time in ms: {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}…"
