"""ISO 4217 currencies and their minor-unit precision, from Babel's CLDR data."""

from __future__ import annotations

from functools import cache

from babel.numbers import get_currency_precision, list_currencies


@cache
def _known() -> frozenset[str]:
    return frozenset(list_currencies())


def precision(code: str) -> int | None:
    """Digits after the decimal point for a currency (EUR 2, JPY 0, KWD 3); None if unknown."""
    if len(code) != 3 or code not in _known():
        return None
    return int(get_currency_precision(code))
