"""An account group's settings as data: read from a dict of changes (the ``SetGroup`` admin
command, journaled like any other) and written back to one (the snapshot, ``GET
/admin/groups``).

A change is checked whole before anything moves: every field known, every value of its
type and range (levels finite, stop-out at or below the margin call, countries ISO 3166-1
alpha-2, margin rates in (0, 1], tier schedules valid), else the command is refused with
the field named. What a change does to the group's accounts (``apply``):

* stop-out settings (``margin_call``, ``stop_out``, ``stop_out_end``, ``so_mode``,
  ``esma``) are the group's, as in MT5: every account of the group takes the new values
  (an account's own levels set by ``SetAccountLevels`` are replaced);
* ``margin_mode`` (netting / hedging) changes only while no account of the group holds a
  position or a pending order;
* margin tiers and rates take effect at once: the book is recomputed and accounts that the
  new margin puts at or below their levels get their margin call or stop-out in the same
  command (the policy of the weekend schedule);
* jurisdiction and category rules apply to accounts created or changed from then on;
  accounts that no longer meet them are kept and listed in the result (``nonconforming``),
  for the broker to act on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from cfd.accounts import rules
from cfd.accounts.book import AccountGroup
from cfd.accounts.rules import SymbolLimits
from cfd.constants import MarginMode, Retcode, StopOutMode
from cfd.errors import Rejected, SpecError

_BOOL = ("esma", "swap_daily", "split_remove_stops", "split_remove_orders",
         "professional_nbp")
_LEVELS = ("margin_call", "stop_out", "stop_out_end")
#: fields whose change re-sets the stop-out columns of every account of the group
STOP_OUT_FIELDS = frozenset({*_LEVELS, "so_mode", "esma"})
FIELDS = tuple(f.name for f in fields(AccountGroup) if f.name != "name")


def _bad(field: str, value: object, want: str) -> Rejected:
    return Rejected(Retcode.INVALID, f"group setting {field}={value!r}: {want}")


def _decimal(field: str, value: object, lo: Decimal, hi: Decimal | None = None) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise _bad(field, value, "a number")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise _bad(field, value, "a number") from None
    if not d.is_finite() or d < lo or (hi is not None and d > hi):
        raise _bad(field, value, f"a finite number in [{lo}, {hi if hi is not None else '...'}]")
    return d


def _int(field: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(field, value, f"an integer in [{lo}, {hi}]")
    return value


def _countries(field: str, value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise _bad(field, value, "a list of ISO 3166-1 alpha-2 codes")
    for c in value:
        if c == "":
            raise _bad(field, value, "a list of ISO 3166-1 alpha-2 codes")
        rules.country_code(c)  # refuses what ISO 3166 does not know
    return frozenset(value)


def _mapping(field: str, value: object) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise _bad(field, value, "an object keyed by name")
    return value


def _min_rates(value: object) -> dict[str, Decimal]:
    out = {}
    for cat, rate in _mapping("min_margin_rate", value).items():
        if cat not in rules.CATEGORIES:
            raise _bad("min_margin_rate", cat, f"a client category ({', '.join(rules.CATEGORIES)})")
        out[cat] = _decimal(f"min_margin_rate[{cat}]", rate, Decimal(0), Decimal(1))
    return out


def _limits(value: object) -> dict[str, SymbolLimits]:
    out = {}
    for sym, lim in _mapping("symbol_limits", value).items():
        lim = _mapping(f"symbol_limits[{sym}]", lim)
        unknown = set(lim) - {"max_volume", "max_value", "max_positions", "max_orders"}
        if unknown:
            raise _bad(f"symbol_limits[{sym}]", sorted(unknown)[0], "an unknown limit")
        where = f"symbol_limits[{sym}]"
        out[sym] = SymbolLimits(
            max_volume=_decimal(f"{where}.max_volume", lim.get("max_volume", 0), Decimal(0)),
            max_value=_decimal(f"{where}.max_value", lim.get("max_value", 0), Decimal(0)),
            max_positions=_int(f"{where}.max_positions", lim.get("max_positions", 0), 0, 10**6),
            max_orders=_int(f"{where}.max_orders", lim.get("max_orders", 0), 0, 10**6))
    return out


def _value(field: str, value: object) -> object:
    """``value`` of ``field`` as the group holds it, or a refusal naming the field."""
    if field in _BOOL:
        if not isinstance(value, bool):
            raise _bad(field, value, "true or false")
        return value
    if field in _LEVELS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise _bad(field, value, "a finite number >= 0")
        return float(value)
    if field == "margin_mode":
        allowed = (MarginMode.RETAIL_NETTING, MarginMode.RETAIL_HEDGING)
        if isinstance(value, bool) or value not in allowed:
            raise _bad(field, value, "0 (netting) or 2 (hedging)")
        return int(value)
    if field == "so_mode":
        if isinstance(value, bool) or value not in (StopOutMode.PERCENT, StopOutMode.MONEY):
            raise _bad(field, value, "0 (percent) or 1 (money)")
        return int(value)
    if field == "limit_orders":
        return _int(field, value, 0, 10**6)
    if field == "financing_markup":
        return _decimal(field, value, Decimal(-100), Decimal(100))
    if field == "dividend_withholding":
        return _decimal(field, value, Decimal(0), Decimal(100))
    if field in ("allowed_countries", "blocked_countries"):
        return _countries(field, value)
    if field == "min_margin_rate":
        return _min_rates(value)
    if field == "symbol_limits":
        return _limits(value)
    if field == "commission":
        return dict(_mapping(field, value))  # checked by the group's own constructor
    if field == "margin_tiers":
        tiers = _mapping(field, value)
        if not all(isinstance(v, str) for v in tiers.values()):
            raise _bad(field, value, 'schedules as text ("floor:rate,...")')
        return dict(tiers)
    raise Rejected(Retcode.INVALID, f"unknown group setting {field!r} (one of "
                                    f"{', '.join(FIELDS)})")


def changed_group(base: AccountGroup | None, name: object, changes: object) -> AccountGroup:
    """The group ``name`` after ``changes`` (from the defaults when it is new)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise Rejected(Retcode.INVALID, f"group name {name!r} must be 1..64 characters")
    if not isinstance(changes, dict) or not changes:
        raise Rejected(Retcode.INVALID, "give the group's settings to change as an object")
    if "name" in changes:
        raise Rejected(Retcode.INVALID, "a group is not renamed")
    values = {k: _value(k, v) for k, v in changes.items()}
    try:
        group = replace(base, **values) if base is not None \
            else AccountGroup(name=name, **values)  # type: ignore[arg-type]
    except (SpecError, TypeError, ValueError, ArithmeticError) as exc:
        raise Rejected(Retcode.INVALID, f"group {name}: {exc}") from None
    if group.stop_out > group.margin_call:
        raise Rejected(Retcode.INVALID, f"group {name}: stop-out level {group.stop_out} is "
                                        f"above the margin-call level {group.margin_call}")
    return group


def to_dict(group: AccountGroup) -> dict[str, Any]:
    """The group's settings as JSON values (:func:`changed_group` reads them back)."""
    out: dict[str, Any] = {}
    for f in FIELDS:
        v = getattr(group, f)
        if isinstance(v, Decimal):
            v = str(v)
        elif isinstance(v, frozenset):
            v = sorted(v)
        elif f == "min_margin_rate":
            v = {k: str(r) for k, r in v.items()}
        elif f == "symbol_limits":
            v = {k: {"max_volume": str(s.max_volume), "max_value": str(s.max_value),
                     "max_positions": s.max_positions, "max_orders": s.max_orders}
                 for k, s in v.items()}
        elif f == "commission":
            v = {k: {n: str(x) if isinstance(x, Decimal) else x for n, x in asdict(s).items()}
                 for k, s in v.items()}
        elif isinstance(v, dict):
            v = dict(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            v = int(v)  # an enum's number
        out[f] = v
    return out
