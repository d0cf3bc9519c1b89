"""Exact numbers: money, prices and volumes on integer grids.

* Money at rest is an ``int`` count of the account currency's minor units (USDT, 2 digits:
  cents). :func:`to_minor` is the one function that turns a computed amount into money; it
  rounds half to even ("banker's rounding"), so that rounding carries no bias over many deals.
* Prices are ``int64`` counts of ``10**-PRICE_DIGITS`` of the quote currency (USD). A quote
  must also lie on its symbol's point grid; a netting position's average open price is the
  one value that may lie between points, rounded half to even on the ``PRICE_DIGITS`` grid.
* Volumes are ``int64`` counts of ``10**-VOLUME_DIGITS`` lots.

Floats appear only for quantities re-derived on every tick (floating profit, margin, margin
level); nothing booked is ever computed in floating point.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction

PRICE_DIGITS = 6
PRICE_SCALE = 10**PRICE_DIGITS
VOLUME_DIGITS = 4
VOLUME_SCALE = 10**VOLUME_DIGITS
CURRENCY_DIGITS = 2
MINOR_SCALE = 10**CURRENCY_DIGITS


def div_round_half_even(num: int, den: int) -> int:
    """``num / den`` rounded half to even, exactly, for integers (``den > 0``)."""
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q % 2 == 1):
        q += 1
    return q


def to_minor(amount: Fraction | Decimal | int, scale: int = MINOR_SCALE) -> int:
    """The rounding function: an exact amount in currency units -> integer minor units.

    Rounds half to even. ``to_minor(Fraction(1, 200)) == 0`` (0.005 -> 0.00) and
    ``to_minor(Fraction(3, 200)) == 2`` (0.015 -> 0.02).
    """
    if isinstance(amount, int):
        return amount * scale
    frac = Fraction(amount) * scale
    return div_round_half_even(frac.numerator, frac.denominator)


def minor_to_float(minor: int, scale: int = MINOR_SCALE) -> float:
    """Money for display (MT5 records carry doubles)."""
    return minor / scale


def parse_decimal(value: object, what: str) -> Decimal:
    """A finite Decimal from a str, int, float or Decimal; ``ValueError`` naming ``what``.

    Floats are read through ``repr`` so ``0.1`` becomes ``Decimal('0.1')``, the number the
    client typed, not the binary approximation.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got a boolean")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what}: {value!r} is not a finite number")
        text = repr(value)
    elif isinstance(value, (int, Decimal)):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"{what}: expected a number, got {type(value).__name__}")
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not dec.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return dec


def to_grid(value: object, scale: int, what: str) -> int:
    """An exact decimal on the ``1/scale`` grid -> int; ``ValueError`` if it is off the grid."""
    dec = parse_decimal(value, what) * scale
    if dec != dec.to_integral_value():
        raise ValueError(f"{what}: {value!r} has more digits than the grid allows")
    return int(dec)


def price_units(value: object, what: str = "price") -> int:
    return to_grid(value, PRICE_SCALE, what)


def volume_units(value: object, what: str = "volume") -> int:
    return to_grid(value, VOLUME_SCALE, what)


def money_minor(value: object, what: str = "amount") -> int:
    """A money amount typed by a person (``"100.50"``, ``100.5``) -> minor units, exactly."""
    return to_grid(value, MINOR_SCALE, what)


def round_to_grid(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_HALF_EVEN)
