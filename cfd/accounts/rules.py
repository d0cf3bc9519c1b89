"""Client categories, jurisdictions and trading limits: the rules a group sets for its
accounts, checked before anything changes (each refusal names its rule).

* Client category (MiFID II): retail, professional, eligible counterparty; kept per account
  (``category`` column, :data:`CATEGORIES` codes).
* Country of residence: ISO 3166-1 alpha-2 (``pycountry``), kept per account as a code
  (:func:`country_code`); a group may allow only some countries or block some (e.g. ``US``:
  US persons).
* Leverage by category: a group's minimum initial margin rate per category for equities
  (symbols under ``Stocks\\``); ESMA retail: 20 %, i.e. at most 5:1. An order opening or
  adding to a position in a symbol margined below it is refused (REJECT).
* Limits per account and symbol (:class:`SymbolLimits`): volume (positions and pending
  orders, LIMIT_VOLUME), position value at the order's price (LIMIT_VOLUME), number of
  positions (LIMIT_POSITIONS) and of pending orders (LIMIT_ORDERS). Orders that only reduce
  or close are never refused by a limit.
* Book-wide: ``EngineConfig.exposure_limits`` caps the clients' net volume per symbol (lots;
  set by the ``SetExposureLimit`` command): an order that takes the net beyond the cap,
  further in that direction, is refused (LIMIT_VOLUME); one that brings it back is always
  accepted.
* Negative balance protection and the close-out rule by category
  (``AccountGroup.rule_for`` / ``nbp_for``): retail always protected, ESMA's close-out in an
  ESMA group; professional clients the group's stop-out, protected per the group.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pycountry

from cfd.constants import CalcMode, Retcode
from cfd.errors import Rejected
from cfd.money import PRICE_SCALE, VOLUME_SCALE

if TYPE_CHECKING:
    from cfd.accounts.book import AccountGroup
    from cfd.engine import Engine
    from cfd.trading.market import Plan

CATEGORIES = ("retail", "professional", "eligible_counterparty")
EQUITY_PATH = "Stocks\\"


@dataclass(frozen=True)
class SymbolLimits:
    """Per account and symbol; 0: no limit. ``max_volume`` in lots, ``max_value`` in the
    account currency (volume x contract size x price)."""

    max_volume: Decimal = Decimal(0)
    max_value: Decimal = Decimal(0)
    max_positions: int = 0
    max_orders: int = 0


def category_code(name: object) -> int:
    if name not in CATEGORIES:
        raise Rejected(Retcode.INVALID, f"client category {name!r} is not one of "
                                        f"{', '.join(CATEGORIES)}")
    return CATEGORIES.index(name)  # type: ignore[arg-type]


def country_code(alpha2: object) -> int:
    """``"DE"`` -> a small integer (0: not declared); refuses what ISO 3166 does not know."""
    if alpha2 == "":
        return 0
    if not isinstance(alpha2, str) or len(alpha2) != 2 or not alpha2.isupper() \
            or pycountry.countries.get(alpha_2=alpha2) is None:
        raise Rejected(Retcode.INVALID, f"country {alpha2!r} is not an ISO 3166-1 alpha-2 "
                                        f"code (e.g. DE, GB)")
    return (ord(alpha2[0]) - 64) * 32 + ord(alpha2[1]) - 64


def country_name(code: int) -> str:
    return "" if code == 0 else chr(code // 32 + 64) + chr(code % 32 + 64)


def check_client(group: AccountGroup, category: int, country: int) -> None:
    """The group's jurisdiction rules for an account of ``category`` from ``country``."""
    cc = country_name(country)
    who = f"{CATEGORIES[category]} client"
    if cc in group.blocked_countries:
        raise Rejected(Retcode.REJECT, f"group {group.name}: clients resident in {cc} are not "
                                       f"accepted (blocked_countries)")
    if group.allowed_countries and cc not in group.allowed_countries:
        where = f"resident in {cc}" if cc else "without a declared country"
        raise Rejected(Retcode.REJECT, f"group {group.name}: a {who} {where} is not accepted "
                       f"(allowed_countries: {', '.join(sorted(group.allowed_countries))})")


def effective_rate(eng: Engine, acc: int, sym: int) -> Fraction:
    """The initial margin rate of ``sym`` for account ``acc`` as the spec sets it (divided by
    the account leverage for CFDLEVERAGE symbols); 1/rate is the leverage offered."""
    spec = eng.symbols.specs[sym]
    rate = Fraction(spec.margin_initial_rate)
    if spec.calc_mode == CalcMode.CFDLEVERAGE:
        rate /= int(eng.accounts.cols.leverage[acc])
    return rate


def check_leverage(eng: Engine, acc: int, sym: int) -> None:
    group = eng.config.groups[eng.accounts.groups[acc]]
    cat = CATEGORIES[int(eng.accounts.cols.category[acc])]
    floor = group.min_margin_rate.get(cat)
    spec = eng.symbols.specs[sym]
    if floor is None or not spec.path.startswith(EQUITY_PATH):
        return
    rate = effective_rate(eng, acc, sym)
    if rate < Fraction(floor):
        raise Rejected(Retcode.REJECT, f"group {group.name}: {cat} clients may hold equities "
                       f"at most {_lev(Fraction(floor))}:1 (margin at least "
                       f"{_pct(Fraction(floor))}); {spec.name} would be "
                       f"{_lev(rate)}:1 (margin {_pct(rate)}) (min_margin_rate)")


def limits_for(group: AccountGroup, symbol: str) -> SymbolLimits | None:
    return group.symbol_limits.get(symbol) or group.symbol_limits.get("*")


def _lev(rate: Fraction) -> str:
    return f"{float(1 / rate):g}"


def _pct(rate: Fraction) -> str:
    return f"{float(rate * 100):g}%"


def _account_in_symbol(eng: Engine, acc: int, sym: int) -> tuple[int, int, int, int]:
    """``(positions, |volume| of positions, pending orders, their volume)`` of ``acc`` in
    ``sym`` (volumes in units)."""
    pc = eng.positions.cols
    slots = eng.positions.of_account(acc)
    mine = slots[pc.sym[slots] == sym]
    po, book = eng.pending.cols, eng.pending.by_acc
    oslots = book.items(acc) if acc < book.n_groups else np.zeros(0, dtype=np.int64)
    omine = oslots[po.sym[oslots] == sym]
    return (len(mine), int(np.abs(pc.volume[mine]).sum()), len(omine),
            int(po.volume_current[omine].sum()))


def _value(eng: Engine, sym: int, volume: int, price: int) -> Fraction:
    spec = eng.symbols.specs[sym]
    return (Fraction(volume, VOLUME_SCALE) * Fraction(spec.contract_size)
            * Fraction(price, PRICE_SCALE))


def check_account_limits(eng: Engine, acc: int, sym: int, add_volume: int, price: int,
                         new_position: bool, new_order: bool) -> None:
    """Limits of account ``acc`` in ``sym`` once ``add_volume`` more (units) is held or
    ordered at ``price``."""
    group = eng.config.groups[eng.accounts.groups[acc]]
    lim = limits_for(group, eng.symbols.specs[sym].name)
    if lim is None:
        return
    name = eng.symbols.specs[sym].name
    n_pos, vol_pos, n_ord, vol_ord = _account_in_symbol(eng, acc, sym)
    total = vol_pos + vol_ord + add_volume
    if lim.max_volume and Fraction(total, VOLUME_SCALE) > Fraction(lim.max_volume):
        raise Rejected(Retcode.LIMIT_VOLUME, f"group {group.name}: {name} positions and "
                       f"orders would be {total / VOLUME_SCALE:g} lots, the limit is "
                       f"{lim.max_volume} (max_volume)")
    if lim.max_value:
        value = _value(eng, sym, total, price)
        if value > Fraction(lim.max_value):
            raise Rejected(Retcode.LIMIT_VOLUME, f"group {group.name}: {name} positions and "
                           f"orders would be worth {float(value):,.2f}, the limit is "
                           f"{lim.max_value} (max_value)")
    if new_position and lim.max_positions and n_pos >= lim.max_positions:
        raise Rejected(Retcode.LIMIT_POSITIONS, f"group {group.name}: the account has "
                       f"{n_pos} {name} positions, the limit is {lim.max_positions} "
                       f"(max_positions)")
    if new_order and lim.max_orders and n_ord >= lim.max_orders:
        raise Rejected(Retcode.LIMIT_ORDERS, f"group {group.name}: the account has {n_ord} "
                       f"{name} pending orders, the limit is {lim.max_orders} (max_orders)")


def net_volume(eng: Engine, sym: int) -> int:
    """The clients' net volume in ``sym`` (units; > 0: clients long, the broker short)."""
    slots = eng.positions.of_symbol(sym)
    return int(eng.positions.cols.volume[slots].sum())


def check_exposure(eng: Engine, sym: int, delta: int) -> None:
    """The book-wide net exposure limit of ``sym`` after the clients' net changes by
    ``delta`` units."""
    name = eng.symbols.specs[sym].name
    limit = eng.config.exposure_limits.get(name)
    if limit is None or delta == 0:
        return
    net = net_volume(eng, sym)
    after = net + delta
    if abs(after) > abs(net) and Fraction(abs(after), VOLUME_SCALE) > Fraction(limit):
        side = "long" if after > 0 else "short"
        raise Rejected(Retcode.LIMIT_VOLUME, f"{name}: the clients' net {side} exposure "
                       f"would be {abs(after) / VOLUME_SCALE:g} lots, the book limit is "
                       f"{limit} (exposure_limits)")


@cache
def _opening_actions() -> tuple[str, ...]:
    from cfd.trading.market import ADD, OPEN, REVERSE  # (market imports this module)

    return OPEN, ADD, REVERSE


def check_plan(eng: Engine, plan: Plan) -> None:
    """A market order's plan against the rules (called once it is projected)."""
    opens = _opening_actions()
    opening = [leg for leg in plan.legs if leg.action in opens]
    if not opening:
        return
    pc = eng.positions.cols
    # the clients' net change and the volume the account adds in the symbol (a reversal
    # closes the old side and holds the new one)
    delta = sum(leg.new_volume - (int(pc.volume[leg.slot]) if leg.slot >= 0 else 0)
                for leg in plan.legs)
    added = sum(abs(leg.new_volume) - (abs(int(pc.volume[leg.slot])) if leg.slot >= 0 else 0)
                for leg in opening)
    check_leverage(eng, plan.acc, plan.sym)
    check_account_limits(eng, plan.acc, plan.sym, max(added, 0), plan.price,
                         new_position=any(leg.slot < 0 for leg in opening), new_order=False)
    check_exposure(eng, plan.sym, delta)


def check_pending(eng: Engine, acc: int, sym: int, volume: int, price: int) -> None:
    """A new pending order (it reserves volume of the account's limits; the book's net
    exposure is checked when it fills)."""
    check_leverage(eng, acc, sym)
    check_account_limits(eng, acc, sym, volume, price, new_position=False, new_order=True)
