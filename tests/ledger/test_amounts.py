"""The one amount converter both paths use: what it accepts, what it rejects, and with what."""

from __future__ import annotations

from decimal import Context, Decimal

import msgspec
import pytest

from benchmarks.fuzz_frames import NOT_AMOUNTS
from fillstream.ledger.amounts import (
    BIGINT_MAX,
    Id,
    TimeMs,
    amount,
    identifier,
    optional_amount,
    positive_amount,
    product,
    time_ms,
)
from fillstream.ledger.errors import MalformedInput

REJECTED = [
    *NOT_AMOUNTS,
    "-1E+20",
    "1e20",
    "100000000000000000000",  # 10**20
    "1E-31",
    "0E+99999",
    "1" * 65,
    "0." + "0" * 63 + "1",
]

ACCEPTED = {
    "76950.00": Decimal("76950.00"),
    "-0.07819010": Decimal("-0.07819010"),  # a rebate
    "0.000000000000000001": Decimal("1E-18"),  # 18 decimals
    "12345.123456789012345678": Decimal("12345.123456789012345678"),
    "99999999999999999999.5": Decimal("99999999999999999999.5"),
    "0": Decimal(0),
    "-0": Decimal(0),
    "1e-30": Decimal("1E-30"),
    "7.5E+3": Decimal(7500),
}


@pytest.mark.parametrize("text", REJECTED)
def test_rejects_non_finite_empty_and_out_of_range(text: str) -> None:
    with pytest.raises(MalformedInput):
        amount(text, "price")
    with pytest.raises(ValueError, match="price"):  # callers count ValueError as malformed
        amount(text, "price")


@pytest.mark.parametrize(("text", "value"), sorted(ACCEPTED.items()))
def test_accepts_amounts_exactly(text: str, value: Decimal) -> None:
    result = amount(text, "x")
    assert result == value and result.is_finite()


def test_none_is_absent_only_where_optional() -> None:
    assert optional_amount(None, "sp") == 0
    assert optional_amount(None, "sp", Decimal(1)) == 1
    with pytest.raises(MalformedInput):
        amount(None, "rp")
    with pytest.raises(MalformedInput):
        optional_amount("", "sp")  # empty is not absent


@pytest.mark.parametrize("text", ["0", "-1", "0.000"])
def test_positive_amount(text: str) -> None:
    with pytest.raises(MalformedInput, match="> 0"):
        positive_amount(text, "qty")
    assert positive_amount("0.001", "qty") == Decimal("0.001")


def test_product_is_exact_and_never_overflows() -> None:
    big = amount("9" * 20 + "." + "9" * 30, "a")  # the largest magnitude and scale accepted
    exact = Context(prec=200).multiply(big, big)
    assert product(big, big, "q") == exact != big * big  # the default context rounds
    assert product(amount("76950.00", "p"), amount("0.004", "q"), "q") == Decimal("307.8")
    tiny = amount("1E-30", "a")
    assert product(tiny, tiny, "q") == Decimal("1E-60")


@pytest.mark.parametrize("value", [-1, BIGINT_MAX + 1, 18446744073709551615, True])
def test_ids_beyond_bigint_are_malformed(value: int) -> None:
    with pytest.raises(MalformedInput, match="id"):
        identifier(value, "trade id")
    assert identifier(BIGINT_MAX, "trade id") == BIGINT_MAX


def test_times_in_range() -> None:
    assert time_ms(1789478401234, "E") == 1789478401234
    for value in (-1, 10**17, 10**400):
        with pytest.raises(MalformedInput):
            time_ms(value, "E")


def test_wire_constraints_bound_ids_and_times_at_decode() -> None:
    class Row(msgspec.Struct):
        id: Id
        time: TimeMs

    assert msgspec.json.decode(b'{"id":9223372036854775807,"time":0}', type=Row).id == BIGINT_MAX
    for bad in (
        b'{"id":18446744073709551615,"time":0}',
        b'{"id":-1,"time":0}',
        b'{"id":1,"time":1e400}',
        b'{"id":1,"time":' + b"9" * 400 + b"}",
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=Row)
