from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplane.kernel.money import (
    PrecisionError,
    apply_markup,
    base_ceiling,
    base_floor,
    decimal_to_minor,
)


@pytest.mark.parametrize(
    ("text", "precision", "minor"),
    [("12.99", 2, 1299), ("12", 2, 1200), ("0.5", 2, 50), ("1299", 0, 1299), ("1.234", 3, 1234)],
)
def test_decimal_to_minor(text: str, precision: int, minor: int) -> None:
    assert decimal_to_minor(text, precision) == minor


@pytest.mark.parametrize(("text", "precision"), [("12.999", 2), ("1.5", 0)])
def test_more_decimals_than_the_currency_has_is_refused(text: str, precision: int) -> None:
    with pytest.raises(PrecisionError):
        decimal_to_minor(text, precision)


@pytest.mark.parametrize("text", ["", "1e3", "12,99", "abc", "1.", "NaN"])
def test_non_decimals_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="decimal"):
        decimal_to_minor(text, 2)


def test_markup_rounds_half_up() -> None:
    assert apply_markup(1000, 1000) == 1100
    assert apply_markup(5, 1000) == 6  # 5.5 → 6
    assert apply_markup(1234, 0) == 1234


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    markup=st.integers(min_value=0, max_value=100_000),
)
def test_markup_never_lowers_a_price(amount: int, markup: int) -> None:
    assert apply_markup(amount, markup) >= amount


@given(
    shown=st.integers(min_value=0, max_value=10**9),
    markup=st.integers(min_value=0, max_value=50_000),
)
def test_price_bounds_invert_the_markup_exactly(shown: int, markup: int) -> None:
    # base_floor is the smallest base price shown at or above `shown`
    low = base_floor(shown, markup)
    assert apply_markup(low, markup) >= shown
    assert low == 0 or apply_markup(low - 1, markup) < shown
    # base_ceiling is the largest base price shown at or below `shown`
    high = base_ceiling(shown, markup)
    assert high == -1 or apply_markup(high, markup) <= shown
    assert apply_markup(high + 1, markup) > shown
