"""Commission schedules: what a deal is charged, per account group and symbol.

A schedule (a symbol's ``commission_*`` / ``fee_*`` fields, or a group's override in
``AccountGroup.commission``, keyed by symbol name or ``"*"``) charges, in the symbol's
profit currency converted into the account currency, on the volume of a deal that enters
(``charge="entry"``), exits (``"exit"``) or both (``"both"``)::

    commission = clamp(per_lot * lots + per_deal + percent / 100 * notional, minimum, maximum)
    fee        = fee_per_lot * lots + fee_percent / 100 * notional
    notional   = lots * contract_size * deal price

rounded once to the cent half to even (``maximum`` 0: none). A reversal (netting INOUT)
charges the closed part as an exit and the opened part as an entry, in one deal. Both
amounts are booked to the broker (``PostingKind.COMMISSION``), in the deal's ``commission``
and ``fee`` fields.

One formula: :func:`terms` turns a schedule into integers ``(lot, pct, fixed, den, lo, hi)``
with ``charge = clamp(round_half_even((v * lot + v * price * pct + fixed) / den), lo, hi)``
for ``v`` volume units at ``price`` price units; :func:`charge_minor` evaluates it exactly
and ``cfd.kernels.sweep.charge`` evaluates it in int64 for the stop-out sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd.errors import SpecError
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE, div_round_half_even, to_minor

if TYPE_CHECKING:
    from cfd.engine import Engine
    from cfd.trading.market import Leg

CHARGE_SIDES = ("both", "entry", "exit")
ZERO = (0, 0, 0, 1, 0, 0)


@dataclass(frozen=True)
class CommissionSchedule:
    """Amounts in the symbol's profit currency; ``percent`` and ``fee_percent`` of the
    deal's notional (0.1 is 0.1%)."""

    per_lot: Decimal = Decimal(0)
    per_deal: Decimal = Decimal(0)
    percent: Decimal = Decimal(0)
    minimum: Decimal = Decimal(0)
    maximum: Decimal = Decimal(0)  # 0: no maximum
    charge: str = "both"
    fee_per_lot: Decimal = Decimal(0)
    fee_percent: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        for f in ("per_lot", "per_deal", "percent", "minimum", "maximum", "fee_per_lot",
                  "fee_percent"):
            v = getattr(self, f)
            if not isinstance(v, Decimal):
                try:
                    v = Decimal(str(v))
                except Exception:
                    raise SpecError("commission", f, f"{v!r} is not a number") from None
                object.__setattr__(self, f, v)
            if not v.is_finite() or v < 0:
                raise SpecError("commission", f, f"{v} must be a number >= 0")
            if v > 1_000_000:
                raise SpecError("commission", f, f"{v} is out of range")
        if self.percent > 100 or self.fee_percent > 100:
            raise SpecError("commission", "percent", "must be at most 100")
        if self.maximum and self.maximum < self.minimum:
            raise SpecError("commission", "maximum",
                            f"{self.maximum} is below the minimum {self.minimum}")
        if self.charge not in CHARGE_SIDES:
            raise SpecError("commission", "charge",
                            f"{self.charge!r} is not one of {', '.join(CHARGE_SIDES)}")

    @classmethod
    def of(cls, value: CommissionSchedule | dict[str, Any]) -> CommissionSchedule:
        if isinstance(value, CommissionSchedule):
            return value
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError("commission", sorted(unknown)[0], "unknown field")
        return cls(**value)

    @property
    def free(self) -> bool:
        return not (self.per_lot or self.per_deal or self.percent or self.minimum
                    or self.fee_per_lot or self.fee_percent)


_BY_SPEC: dict[int, tuple[Any, CommissionSchedule]] = {}


def symbol_schedule(spec: Any) -> CommissionSchedule:
    """The schedule a symbol's fields describe (specs are immutable: kept per spec)."""
    hit = _BY_SPEC.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    sched = CommissionSchedule(
        per_lot=spec.commission_per_lot, per_deal=spec.commission_per_deal,
        percent=spec.commission_percent, minimum=spec.commission_min,
        maximum=spec.commission_max, charge=spec.commission_charge,
        fee_per_lot=spec.fee_per_lot, fee_percent=spec.fee_percent)
    if len(_BY_SPEC) > 100_000:
        _BY_SPEC.clear()
    _BY_SPEC[id(spec)] = (spec, sched)
    return sched


def schedule_for(eng: Engine, group: str, sym: int) -> CommissionSchedule:
    """The group's override for the symbol (by name, then ``"*"``), else the symbol's."""
    spec = eng.symbols.specs[sym]
    g = eng.config.groups.get(group)
    over = getattr(g, "commission", None) or {}
    hit = over.get(spec.name, over.get("*"))
    return CommissionSchedule.of(hit) if hit is not None else symbol_schedule(spec)


def terms(eng: Engine, sched: CommissionSchedule, sym: int, entry: bool
          ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(commission terms, fee terms)`` of ``sched`` for an entry (or exit) volume."""
    if sched.free or sched.charge == ("exit" if entry else "entry"):
        return ZERO, ZERO
    spec = eng.symbols.specs[sym]
    rate = Fraction(eng.symbols.rate(spec.currency_profit, spec))
    per_unit = rate * MINOR_SCALE / VOLUME_SCALE  # minor units per volume unit per 1.00
    per_px = per_unit * Fraction(spec.contract_size) / (100 * PRICE_SCALE)

    def pack(lot: Fraction, pct: Fraction, fixed: Fraction, lo: int, hi: int) -> tuple:
        den = math.lcm(lot.denominator, pct.denominator, fixed.denominator)
        out = (int(lot * den), int(pct * den), int(fixed * den), den, lo, hi)
        if any(abs(x) >= 2**62 for x in out):
            raise OverflowError(f"commission terms of {spec.name} do not fit int64")
        return out

    comm = pack(Fraction(sched.per_lot) * per_unit, Fraction(sched.percent) * per_px,
                Fraction(sched.per_deal) * rate * MINOR_SCALE,
                to_minor(Fraction(sched.minimum) * rate),
                to_minor(Fraction(sched.maximum) * rate))
    fee = pack(Fraction(sched.fee_per_lot) * per_unit, Fraction(sched.fee_percent) * per_px,
               Fraction(0), 0, 0)
    return comm, fee


_TERMS: dict[tuple, tuple] = {}


def _terms_cached(eng: Engine, sched: CommissionSchedule, sym: int, entry: bool) -> tuple:
    spec = eng.symbols.specs[sym]
    key = (id(eng.symbols), sym, id(sched), entry, eng.symbols.rates.get(spec.currency_profit))
    hit = _TERMS.get(key)
    if hit is not None and hit[0] is sched and hit[1] is spec:
        return hit[2]
    out = terms(eng, sched, sym, entry)
    if len(_TERMS) > 100_000:
        _TERMS.clear()
    _TERMS[key] = (sched, spec, out)
    return out


def charge_minor(t: tuple[int, ...], volume: int, price: int) -> int:
    """The charge of terms ``t`` on ``volume`` units at ``price`` (exact, minor units)."""
    lot, pct, fixed, den, lo, hi = t
    if volume <= 0 or not (lot or pct or fixed or lo):
        return 0
    c = div_round_half_even(volume * lot + volume * price * pct + fixed, den)
    c = max(c, lo)
    return min(c, hi) if hi > 0 else c


def deal_charges(eng: Engine, acc: int, sym: int, entry_volume: int, exit_volume: int,
                 price: int) -> tuple[int, int]:
    """``(commission, fee)`` in minor units (>= 0) of one deal of account ``acc``."""
    sched = schedule_for(eng, eng.accounts.groups[acc], sym)
    if sched.free:
        return 0, 0
    volume = 0
    if entry_volume and sched.charge != "exit":
        volume += entry_volume
    if exit_volume and sched.charge != "entry":
        volume += exit_volume
    if not volume:
        return 0, 0
    comm, fee = _terms_cached(eng, sched, sym, sched.charge != "exit")
    return charge_minor(comm, volume, price), charge_minor(fee, volume, price)


def charge_leg(eng: Engine, acc: int, sym: int, leg: Leg) -> None:
    """Set ``leg.commission`` and ``leg.fee`` (the closed part exits, the rest enters)."""
    out = abs(leg.closed_volume)
    leg.commission, leg.fee = deal_charges(eng, acc, sym, leg.volume - out, out, leg.price)


def scale_terms(rows: np.ndarray, f: Fraction) -> np.ndarray:
    """Terms rows (R, 6) for amounts worth ``f`` times as much (a currency moved)."""
    out = rows.copy()
    for i, (lot, pct, fixed, den, lo, hi) in enumerate(rows.tolist()):
        parts = [Fraction(x, den) * f for x in (lot, pct, fixed)]
        d = math.lcm(*(p.denominator for p in parts))
        row = [int(p * d) for p in parts] + [d, to_minor(lo * f, 1), to_minor(hi * f, 1)]
        if any(abs(x) >= 2**62 for x in row):
            raise OverflowError("scaled commission terms do not fit int64")
        out[i] = row
    return out


_CACHE: dict[int, tuple] = {}


def exit_terms(eng: Engine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stop-out sweep's terms (its closes are exits): ``(comm (R, 6), fee (R, 6),
    row base per account)``; account ``a`` closing in symbol ``s`` uses row
    ``base[a] + s``. Block 0 holds the symbols' own schedules, one more block per group
    with an override."""
    groups = eng.config.groups
    over = [name for name, g in groups.items() if getattr(g, "commission", None)]
    n_acc = len(eng.accounts)
    key = (tuple(map(id, eng.symbols.specs)), tuple(id(groups[g]) for g in over),
           tuple(eng.symbols.rates.items()), n_acc)
    hit = _CACHE.get(id(eng))
    if hit is not None and hit[0] == key:
        return hit[1]
    ns = max(len(eng.symbols), 1)
    blocks = ["", *over]
    comm = np.tile(np.array(ZERO, np.int64), (ns * len(blocks), 1))
    fee = comm.copy()
    for b, gname in enumerate(blocks):
        for s, spec in enumerate(eng.symbols.specs):
            sched = schedule_for(eng, gname, s) if gname else symbol_schedule(spec)
            comm[b * ns + s], fee[b * ns + s] = terms(eng, sched, s, entry=False)
    base = np.zeros(max(n_acc, 1), np.int64)
    if over:
        where = {g: (b + 1) * ns for b, g in enumerate(over)}
        base[:n_acc] = [where.get(g, 0) for g in eng.accounts.groups]
    out = (comm, fee, base)
    _CACHE[id(eng)] = (key, out)
    return out
