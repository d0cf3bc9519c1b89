"""Overnight financing (swaps): the nights a rollover covers, the rates, the charges.

A rollover closes a trading date ``D`` (at 17:00 New York by default). Each symbol charges
the nights from ``D`` to its next session day, each calendar night ``X`` weighted as MT5
weights it: 3 on the symbol's ``swap_rollover3days`` (the triple day, SUNDAY 0 .. SATURDAY 6),
0 on a Saturday or Sunday when a triple day is set (the triple day carried the weekend), 1
otherwise (-1: no triple day, every calendar night once). A date that is not a session day of
the symbol charges nothing, so a holiday's night is charged once, on the session day before
it. With the US stock default (triple day FRIDAY):

    Monday-Thursday     1 night
    Friday              3 nights (Friday, Saturday, Sunday)
    Thursday before Good Friday: 4 nights (Thursday 1 + Friday 3 + Saturday 0 + Sunday 0)

The charge of one position for ``n`` nights, by ``swap_mode`` (positive: paid to the client):

* POINTS (1):            ``swap * contract_size * point * lots * n``   (profit currency)
* CURRENCY_DEPOSIT (4):  ``swap * lots * n``                          (account currency)
* INTEREST_CURRENT (5):  ``swap / 100 / year_days * mid * contract_size * lots * n``
* INTEREST_OPEN (6):     the same at the position's open price

``swap`` is ``swap_long`` for a long and ``swap_short`` for a short. A symbol with a
``swap_benchmark`` (INTEREST modes) takes its annual rates from the benchmark ``B`` of the date
(SOFR, Fed funds: set by the admin, dated, journaled) and the account group's markup ``m``:

    long:  swap_long  - (B + m)
    short: swap_short + (B - m) - borrow_fee

so with ``swap_long = swap_short = 0`` a long pays ``B + m`` a year and a short receives
``B - m`` (pays when negative) and pays the symbol's borrow fee, as IG, CMC and IBKR publish.
Every charge is rounded half to even into minor units once, per position and rollover.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from cfd.constants import SwapMode
from cfd.instruments.sessions import NEW_YORK, Session, default_calendar
from cfd.kernels.financing import BASE_MID2, BASE_ONE, BASE_OPEN
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE, div_round_half_even

if TYPE_CHECKING:
    from cfd.accounts.book import AccountGroup
    from cfd.engine import Engine
    from cfd.instruments.spec import SymbolSpec

SUPPORTED_SWAP_MODES = (SwapMode.DISABLED, SwapMode.POINTS, SwapMode.CURRENCY_DEPOSIT,
                        SwapMode.INTEREST_CURRENT, SwapMode.INTEREST_OPEN)
INTEREST_MODES = (SwapMode.INTEREST_CURRENT, SwapMode.INTEREST_OPEN)
_MAX_CATCH_UP_DAYS = 366  # a rollover for a date far past the last one is refused


# ---------------------------------------------------------------------------------------------
# Dates and nights
# ---------------------------------------------------------------------------------------------
def parse_date(value: object) -> dt.date:
    """A trading date from ``"YYYY-MM-DD"`` (or a :class:`datetime.date`); ValueError."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"date {value!r} must be a string YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"date {value!r} is not a date YYYY-MM-DD") from None


def cutoff_msc(day: dt.date, at: dt.time = dt.time(17, 0)) -> int:
    """UTC milliseconds of the rollover of New York trading date ``day``."""
    return int(dt.datetime.combine(day, at, tzinfo=NEW_YORK).timestamp() * 1000)


def trading_date(time_msc: int, at: dt.time = dt.time(17, 0)) -> dt.date:
    """The last trading date whose rollover time is at or before ``time_msc``."""
    local = dt.datetime.fromtimestamp(time_msc / 1000, tz=NEW_YORK)
    day = local.date()
    return day if local.time() >= at else day - dt.timedelta(days=1)


def mt5_weekday(day: dt.date) -> int:
    """MT5's DAY_OF_WEEK: SUNDAY 0, MONDAY 1, ... SATURDAY 6."""
    return (day.weekday() + 1) % 7


def is_session_day(calendar, kind: int, day: dt.date) -> bool:
    if kind == Session.ALWAYS:
        return True
    return calendar.hours(kind, day) is not None


def night_weight(day: dt.date, triple: int) -> int:
    """The weight of the calendar night after ``day`` (see the module docstring)."""
    if triple < 0:
        return 1
    wd = mt5_weekday(day)
    if wd == triple:
        return 3
    return 0 if wd in (0, 6) else 1


@lru_cache(maxsize=4096)
def nights(calendar, kind: int, triple: int, day: dt.date) -> int:
    """Nights charged by the rollover of ``day`` for a symbol of session ``kind``."""
    if not is_session_day(calendar, kind, day):
        return 0
    n = 0
    x = day
    while True:
        n += night_weight(x, triple)
        x += dt.timedelta(days=1)
        if is_session_day(calendar, kind, x) or (x - day).days > 14:
            return n


# ---------------------------------------------------------------------------------------------
# Rates
# ---------------------------------------------------------------------------------------------
def benchmark_on(benchmarks: dict[str, list[tuple[int, str]]], name: str,
                 day: dt.date) -> Decimal | None:
    """The benchmark's rate (percent a year) in force on ``day``: its latest fixing on or
    before it; None if it has none."""
    best = None
    for ordinal, rate in benchmarks.get(name, ()):
        if ordinal <= day.toordinal():
            best = rate
        else:
            break
    return None if best is None else Decimal(best)


def effective_rates(spec: SymbolSpec, group: AccountGroup, benchmark: Decimal | None
                    ) -> tuple[Decimal, Decimal]:
    """``(long, short)`` swap values in the symbol's mode units, for accounts of ``group``:
    the spec's own, or with a benchmark the benchmark-plus-markup rates (module docstring).
    A missing benchmark fixing counts as 0 (the markup and borrow fee still apply)."""
    if not spec.swap_benchmark:
        return spec.swap_long, spec.swap_short
    b = benchmark if benchmark is not None else Decimal(0)
    m = group.financing_markup
    return spec.swap_long - (b + m), spec.swap_short + (b - m) - spec.borrow_fee


@dataclass
class Factors:
    """Per (group, symbol, side) exact charge factors, and per symbol the price base and the
    nights of the date (see ``cfd.kernels.financing``)."""

    k_num: np.ndarray  # int64 [G, S, 2]
    k_den: np.ndarray  # int64 [G, S, 2]
    base: np.ndarray  # int8 [S]
    nights: np.ndarray  # int64 [S]
    exact: dict[tuple[int, int, int], Fraction]  # factors too large for int64


def factor(spec: SymbolSpec, rate: Decimal, n: int, conv: Decimal) -> tuple[Fraction, int]:
    """Minor units per (base x volume unit) for ``n`` nights at ``rate``; and the base."""
    return _factor(spec.swap_mode, rate, n, spec.contract_size, conv, spec.digits,
                   spec.swap_year_days)


@lru_cache(maxsize=4096)
def _factor(mode: int, rate: Decimal, n: int, contract_size: Decimal, conv: Decimal,
            digits: int, year_days: int) -> tuple[Fraction, int]:
    per_lot = Fraction(1, VOLUME_SCALE) * MINOR_SCALE * n
    if mode == SwapMode.POINTS:
        point = Fraction(1, 10**digits)
        return (Fraction(rate) * Fraction(contract_size) * point * Fraction(conv)
                * per_lot, BASE_ONE)
    if mode == SwapMode.CURRENCY_DEPOSIT:
        return Fraction(rate) * per_lot, BASE_ONE
    yearly = (Fraction(rate) / 100 / year_days * Fraction(contract_size)
              * Fraction(conv) * per_lot / PRICE_SCALE)
    if mode == SwapMode.INTEREST_OPEN:
        return yearly, BASE_OPEN
    return yearly / 2, BASE_MID2  # at the mid: (bid + ask) / 2


def charge_factors(eng: Engine, day: dt.date, groups: list[str]) -> Factors:
    syms = eng.symbols
    n_s, n_g = len(syms), len(groups)
    k_num = np.zeros((n_g, n_s, 2), dtype=np.int64)
    k_den = np.ones((n_g, n_s, 2), dtype=np.int64)
    base = np.zeros(n_s, dtype=np.int8)
    n_nights = np.zeros(n_s, dtype=np.int64)
    exact: dict[tuple[int, int, int], Fraction] = {}
    cal = default_calendar()
    for s, spec in enumerate(syms.specs):
        if spec.swap_mode == SwapMode.DISABLED:
            continue
        n = nights(cal, int(syms.cols.session[s]), spec.swap_rollover3days, day)
        n_nights[s] = n
        if n == 0:
            continue
        conv = syms.rate(spec.currency_profit, spec)
        bench = benchmark_on(eng.day.benchmarks, spec.swap_benchmark, day) \
            if spec.swap_benchmark else None
        for g, name in enumerate(groups):
            for side, rate in enumerate(effective_rates(spec, eng.config.groups[name], bench)):
                f, base[s] = factor(spec, rate, n, conv)
                if abs(f.numerator) < 2**62 and f.denominator < 2**62:
                    k_num[g, s, side], k_den[g, s, side] = f.numerator, f.denominator
                elif f != 0:
                    exact[(g, s, side)] = f
    return Factors(k_num, k_den, base, n_nights, exact)


def charge_exact(f: Fraction, base: int, volume: int) -> int:
    """One charge with Python integers (the reference rounding)."""
    x = f * base * abs(volume)
    return div_round_half_even(x.numerator, x.denominator)


def realised_share(accrued: int, closed: int, volume: int) -> int:
    """The part of a position's accrued swap that a deal closing ``closed`` of ``volume``
    (both signed alike) realises: all of it on a full close, else pro rata, half to even."""
    if abs(closed) >= abs(volume):
        return accrued
    return div_round_half_even(accrued * abs(closed), abs(volume))
