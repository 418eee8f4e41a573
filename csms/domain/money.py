"""Currencies and amounts: ISO 4217 codes, their minor units, and the one rounding rule.

Every amount billed is a `Decimal`, rounded half up to the currency's minor unit (cents for
EUR, none for JPY, three places for KWD), with the minor units taken from ISO 4217's list.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from iso4217 import Currency


@cache
def minor_unit(currency: str) -> int:
    """Decimal places of the currency's minor unit; ValueError for an unknown code or one
    without a minor unit (gold, SDRs, ...)."""
    if len(currency) != 3 or not currency.isascii() or not currency.isupper():
        raise ValueError(f"currency must be an ISO 4217 code such as 'EUR', got {currency!r}")
    try:
        exponent = Currency(currency).exponent
    except ValueError:
        raise ValueError(f"{currency} is not an ISO 4217 currency") from None
    if exponent is None:
        raise ValueError(f"{currency} has no minor unit")
    return int(exponent)


def check_currency(currency: str) -> str:
    minor_unit(currency)
    return currency


def money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up to the currency's minor unit."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise TypeError(f"amount must be a finite Decimal, got {amount!r}")
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)
