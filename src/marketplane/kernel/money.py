"""Money is an integer count of a currency's minor unit plus its ISO 4217 code. Never a float."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MAX_AMOUNT = 10**15  # a quadrillion minor units: far above any price, far below BIGINT
BPS = 10_000
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


class PrecisionError(ValueError):
    """A decimal amount has more fraction digits than its currency has."""


def decimal_to_minor(text: str, precision: int) -> int:
    """'12.99' with precision 2 → 1299. Rejects more fraction digits than the currency has."""
    if not _DECIMAL.match(text):
        raise ValueError(f"{text!r} is not a decimal number")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"{text!r} is not a decimal number") from exc
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > precision:
        raise PrecisionError(f"{text} has more than {precision} decimal places")
    return int(value.scaleb(precision))


def apply_markup(amount: int, markup_bps: int) -> int:
    """The price a client shows: amount × (1 + markup), rounded half up to the minor unit."""
    if markup_bps == 0:
        return amount
    return (amount * (BPS + markup_bps) + BPS // 2) // BPS


def base_floor(shown_min: int, markup_bps: int) -> int:
    """Smallest base amount whose marked-up price is ≥ shown_min."""
    guess = max(0, (shown_min * BPS - BPS // 2) // (BPS + markup_bps))
    while guess > 0 and apply_markup(guess - 1, markup_bps) >= shown_min:
        guess -= 1
    while apply_markup(guess, markup_bps) < shown_min:
        guess += 1
    return guess


def base_ceiling(shown_max: int, markup_bps: int) -> int:
    """Largest base amount whose marked-up price is ≤ shown_max (−1 when none is)."""
    return base_floor(shown_max + 1, markup_bps) - 1
