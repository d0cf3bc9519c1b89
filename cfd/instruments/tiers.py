"""Margin tiers by position size: a symbol's schedule of brackets with rising margin rates,
applied marginally (each slice of the position at its bracket's rate).

A schedule is written ``"floor:rate,floor:rate,..."`` in the spec's ``margin_tiers`` (lower
bounds ascending from 0, rates non-decreasing, the first rate the spec's
``margin_initial_rate``); ``margin_tiers_by`` says what the floors measure:

* ``volume``: lots (IG's share tiers, a share CFD of contract size 1: lots = shares);
* ``value``: the notional in the margin currency, ``lots * contract_size * margin price``
  (the crypto venues' risk-limit brackets).

The tier applies to the account's aggregate in the symbol: the net position on a netting
account; on a hedging account every position is margined in full (the engine has no hedged
margin), so the gross volume, long and short. For an aggregate ``X`` in bracket ``n``
(``floor_n <= X``), by the deduction form of the marginal sum::

    margin(X) = X * rate_n - ded_n,   ded_1 = 0,
    ded_n = ded_{n-1} + floor_n * (rate_n - rate_{n-1})

(Binance's ``cum``, Bybit's maintenance-margin deduction). The engine margins the positions
as without tiers (``U``, the margin at the first rate, with the conversion and the leverage
of CFDLEVERAGE), then scales the aggregate by ``margin(X) / (X * rate_1)``; the maintenance
margin is scaled by the same factor.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

import numpy as np

from cfd.money import PRICE_SCALE, VOLUME_SCALE

TIERS_BY = ("volume", "value")

#: Most brackets in a schedule (the kernels pack a symbol's bracket count beside its first
#: row: ``cfd.kernels.account.pack_symbols``).
MAX_TIERS = 64

#: Columns of a row of the tier table (:func:`tier_table`).
T_FLOOR, T_RATE, T_DED, T_KX = 0, 1, 2, 3


def parse_tiers(text: str) -> list[tuple[Decimal, Decimal]]:
    """``"0:0.25,200:0.4"`` -> ``[(0, 0.25), (200, 0.4)]``; ValueError naming the problem."""
    out: list[tuple[Decimal, Decimal]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        floor, sep, rate = part.partition(":")
        if not sep:
            raise ValueError(f"tier {part!r} is not floor:rate")
        try:
            f, r = Decimal(floor.strip()), Decimal(rate.strip())
        except InvalidOperation:
            raise ValueError(f"tier {part!r} is not two numbers") from None
        out.append((f, r))
    return out


def check_tiers(tiers: list[tuple[Decimal, Decimal]], first_rate: Decimal) -> str | None:
    """Why a schedule is not acceptable, or None."""
    if not tiers:
        return None
    if len(tiers) > MAX_TIERS:
        return f"at most {MAX_TIERS} tiers ({len(tiers)} given)"
    if tiers[0][0] != 0:
        return "the first tier must start at 0"
    if tiers[0][1] != first_rate:
        return f"the first tier's rate {tiers[0][1]} must be margin_initial_rate {first_rate}"
    for (f0, r0), (f1, r1) in zip(tiers, tiers[1:], strict=False):
        if f1 <= f0:
            return f"tier floors must rise ({f1} after {f0})"
        if r1 < r0:
            return f"tier rates must not fall ({r1} after {r0})"
    if any(not Decimal(0) < r <= Decimal(100) for _, r in tiers):
        return "tier rates must be in (0, 100]"
    return None


def deductions(tiers: list[tuple[Decimal, Decimal]]) -> list[Fraction]:
    """``ded_n`` of each bracket, exactly (floor units x rate)."""
    out = [Fraction(0)]
    for (_, r0), (f1, r1) in zip(tiers, tiers[1:], strict=False):
        out.append(out[-1] + Fraction(f1) * (Fraction(r1) - Fraction(r0)))
    return out


def tiered_amount(x: Fraction, tiers: list[tuple[Decimal, Decimal]]) -> Fraction:
    """``margin(X) = X * rate_n - ded_n`` exactly (the marginal sum over the brackets)."""
    ded = deductions(tiers)
    n = max(i for i, (f, _) in enumerate(tiers) if Fraction(f) <= x)
    return x * Fraction(tiers[n][1]) - ded[n]


def tier_rows(tiers: list[tuple[Decimal, Decimal]], by: str, contract_size: Decimal,
              base_rate: Decimal | None = None) -> list[tuple[float, float, float, float]]:
    """The kernel rows of one schedule: floor in measure units (volume units, or margin
    currency), ``rate_n / rate_1``, ``ded_n / rate_1`` (measure units), and ``k_x``: 0 for
    volume tiers, else the margin currency per (price unit x volume unit) of the notional.
    ``rate_1`` is the rate the positions are margined at before the factor: the schedule's
    first, or ``base_rate`` (the symbol's, under a group's own schedule)."""
    r1 = Fraction(tiers[0][1] if base_rate is None else base_rate)
    unit = VOLUME_SCALE if by == "volume" else 1
    kx = 0.0 if by == "volume" else float(Fraction(contract_size) / (PRICE_SCALE * VOLUME_SCALE))
    return [(float(Fraction(f) * unit), float(Fraction(r) / r1), float(d * unit / r1), kx)
            for (f, r), d in zip(tiers, deductions(tiers), strict=True)]


def tier_table(schedules: list[list[tuple[float, float, float, float]]]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tier_n, tier_off, table)``: per symbol the number of rows (0: untiered) and the
    first row of its schedule in ``table`` (rows x 4 float64; one zero row when empty).
    Symbols with the same rows share them (a broker has a few ladders for many symbols:
    the table stays small enough to stay in the nearest cache)."""
    n = len(schedules)
    tier_n = np.zeros(max(n, 1), dtype=np.int64)
    tier_off = np.zeros(max(n, 1), dtype=np.int64)
    rows: list[tuple[float, float, float, float]] = []
    first: dict[tuple, int] = {}
    for s, sched in enumerate(schedules):
        tier_n[s] = len(sched)
        if not sched:
            continue
        key = tuple(sched)
        if key not in first:
            first[key] = len(rows)
            rows.extend(sched)
        tier_off[s] = first[key]
    table = np.array(rows or [(0.0, 0.0, 0.0, 0.0)], dtype=np.float64).reshape(-1, 4)
    return tier_n, tier_off, table


def group_schedule(overrides: dict[str, str], symbol: str) -> str | None:
    """A group's schedule for ``symbol`` (``AccountGroup.margin_tiers``): the entry of its
    name, else of the first pattern matching it (MT5's group filter,
    ``cfd.instruments.groups``; ``"*"`` for every symbol); None when no entry applies (the
    symbol's own schedule), "" for an entry without tiers."""
    from cfd.instruments.groups import symbol_in_group

    hit = overrides.get(symbol)
    if hit is not None:
        return hit
    for pattern, sched in overrides.items():
        if symbol_in_group(symbol, pattern):
            return sched
    return None
