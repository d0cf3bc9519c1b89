"""Trading accounts in USDT: settings, money (mirrored from the ledger) and the figures the
kernels re-derive (floating profit, margin).

MT5's account figures, in minor units (:meth:`AccountTable.figures`; floats re-derived on
every tick are rounded to the cent half to even, ``formulas.float_to_minor``):
  * equity       = balance + credit + floating profit
  * margin_free  = equity - margin - margin of pending orders (MT5's margin_initial)
  * margin_level = equity / margin * 100, and 0.0 when margin is 0 (no open positions)
Every level and free-margin decision is taken on these integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from cfd.accounts.rules import SymbolLimits
from cfd.constants import MarginMode, StopOutMode
from cfd.kernels.formulas import RULE_ESMA, RULE_MT5_MONEY, RULE_MT5_PERCENT, float_to_minor
from cfd.money import MINOR_SCALE
from cfd.soa import Columns

RETAIL = 0  # rules.CATEGORIES.index("retail")

ACCOUNT_COLUMNS = {
    "login": np.int64,
    "balance": np.int64,  # minor units, = ledger balance of client:<login>
    "credit": np.int64,  # minor units
    "leverage": np.int32,
    "margin_mode": np.int8,  # 0 netting, 2 hedging
    "so_mode": np.int8,  # 0 percent, 1 money
    "so_rule": np.int8,  # kernels.formulas RULE_*
    "so_call": np.float64,  # margin-call level (percent, or money in account currency)
    "so_so": np.float64,  # stop-out level
    "so_end": np.float64,  # hysteresis: once stopping out, close until level > so_end
    "trade_mode": np.int8,  # ACCOUNT_TRADE_MODE
    "trade_allowed": np.bool_,
    "profit": np.float64,  # floating profit, account currency (re-derived)
    "margin": np.float64,  # initial margin of positions (re-derived)
    "margin_maint": np.float64,  # maintenance margin of positions (re-derived)
    "margin_orders": np.float64,  # margin reserved by pending orders
    "mc_flag": np.bool_,  # at or below the margin-call level (an event on each crossing)
    "category": np.int8,  # client category (accounts.rules.CATEGORIES)
    "country": np.int16,  # country of residence (accounts.rules.country_code; 0: none)
}


@dataclass(frozen=True)
class AccountGroup:
    """Settings shared by a group of accounts (MT5 keeps these per group)."""

    name: str = "demo\\usdt"
    margin_mode: int = MarginMode.RETAIL_HEDGING
    so_mode: int = StopOutMode.PERCENT
    margin_call: float = 100.0
    stop_out: float = 50.0
    esma: bool = False  # close out when equity < 50% of initial margin
    stop_out_end: float = 0.0  # hysteresis end level (0: none, stop once above stop_out)
    limit_orders: int = 200
    # overnight financing: the markup (percent a year) over a symbol's benchmark rate, and
    # whether swaps are booked to the balance every night instead of accruing on positions
    financing_markup: Decimal = Decimal(3)
    swap_daily: bool = False
    # corporate actions: withholding tax on dividends paid to longs (percent; 30 for the
    # US rate on non-US residents), and whether a split removes SL/TP (and pending orders)
    # instead of rescaling them
    dividend_withholding: Decimal = Decimal(0)
    split_remove_stops: bool = False
    split_remove_orders: bool = False  # a split removes pending orders instead of rescaling
    # client rules (cfd.accounts.rules): jurisdictions (ISO 3166 alpha-2; empty allowed:
    # any), the minimum initial margin rate for equities per client category, and limits
    # per account and symbol (by symbol name, "*" for every symbol)
    allowed_countries: frozenset[str] = frozenset()
    blocked_countries: frozenset[str] = frozenset()
    min_margin_rate: Mapping[str, Decimal] = field(default_factory=dict)
    symbol_limits: Mapping[str, SymbolLimits] = field(default_factory=dict)
    # commission schedules overriding the symbols' own, by symbol name or "*" (any other)
    # -> CommissionSchedule or its fields as a dict (cfd.trading.commission)
    commission: dict[str, Any] = field(default_factory=dict)
    # by client category (rules.CATEGORIES): retail clients always have negative balance
    # protection and, in an ESMA group, the 50 % close-out; professional clients and eligible
    # counterparties have the group's stop-out levels, and negative balance protection only
    # when ``professional_nbp`` (without it a negative balance stays on the account as a
    # debt of the client)
    professional_nbp: bool = True
    # margin tiers overriding the symbols' own (cfd.instruments.tiers), by symbol name or
    # MT5 group-filter pattern ("*", "US.*,!US.TSLA"; the name first, then the first
    # pattern matching) -> "floor:rate,..." ("" for none); measured as the symbol's
    # ``margin_tiers_by``, scaled from the symbol's margin_initial_rate
    margin_tiers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from cfd.instruments.tiers import check_tiers, parse_tiers
        from cfd.trading.commission import CommissionSchedule

        object.__setattr__(self, "commission", {
            str(k): CommissionSchedule.of(v) for k, v in dict(self.commission).items()})
        tiers = {str(k): str(v).strip() for k, v in dict(self.margin_tiers).items()}
        for key, text in tiers.items():
            sched = parse_tiers(text)
            why = check_tiers(sched, sched[0][1]) if sched else None
            if why:
                raise ValueError(f"group {self.name} margin_tiers[{key!r}]: {why}")
        object.__setattr__(self, "margin_tiers", tiers)

    @property
    def rule(self) -> int:
        if self.esma:
            return RULE_ESMA
        return RULE_MT5_MONEY if self.so_mode == StopOutMode.MONEY else RULE_MT5_PERCENT

    def rule_for(self, category: int) -> int:
        """The close-out rule of an account of this client category: ESMA's 50 % for retail
        clients of an ESMA group, else the group's stop-out (percent or money)."""
        if self.esma and category != RETAIL:
            return RULE_MT5_MONEY if self.so_mode == StopOutMode.MONEY else RULE_MT5_PERCENT
        return self.rule

    def nbp_for(self, category: int) -> bool:
        """Negative balance protection for an account of this client category."""
        return category == RETAIL or self.professional_nbp


class AccountTable:
    def __init__(self, capacity: int = 1024) -> None:
        self.cols = Columns(ACCOUNT_COLUMNS, capacity)
        self.index: dict[int, int] = {}
        self.names: list[str] = []
        self.groups: list[str] = []

    def __len__(self) -> int:
        return self.cols.size

    def find(self, login: int) -> int | None:
        return self.index.get(login)

    def group_index(self, names: list[str]) -> np.ndarray:
        """Per account, the index of its group in ``names`` (int64; cached, extended as
        accounts are added; ``groups`` is only appended to)."""
        key, done, arr = getattr(self, "_gidx", (None, 0, np.zeros(0, np.int64)))
        n = len(self.groups)
        if key != names:
            done, arr = 0, np.zeros(0, np.int64)
        if done < n:
            pos = {g: i for i, g in enumerate(names)}
            tail = np.fromiter((pos[g] for g in self.groups[done:n]), dtype=np.int64,
                               count=n - done)
            arr = np.concatenate([arr[:done], tail])
            self._gidx = (list(names), n, arr)
        return arr[:n]

    def add(self, login: int, name: str, group: AccountGroup, leverage: int,
            trade_mode: int, category: int = 0, country: int = 0) -> int:
        c = self.cols
        i = c.append_row()
        c.login[i], c.leverage[i] = login, leverage
        c.margin_mode[i], c.so_mode[i] = group.margin_mode, group.so_mode
        c.so_rule[i] = group.rule_for(category)
        c.so_call[i], c.so_so[i] = group.margin_call, group.stop_out
        c.so_end[i] = group.stop_out_end
        c.trade_mode[i], c.trade_allowed[i] = trade_mode, True
        c.category[i], c.country[i] = category, country
        self.index[login] = i
        self.names.append(name)
        self.groups.append(group.name)
        return i

    def figures(self, i: int) -> tuple[int, int, int]:
        """``(equity, margin, margin of pending orders)`` of account ``i`` in minor units,
        as ``account_info`` shows them."""
        c = self.cols
        return (int(c.balance[i]) + int(c.credit[i]) + minor(float(c.profit[i])),
                minor(float(c.margin[i])), minor(float(c.margin_orders[i])))

    def free_margin(self, i: int) -> int:
        """Free margin in minor units: equity - margin - margin of pending orders."""
        eq, m, orders = self.figures(i)
        return eq - m - orders

    def equity(self, i: int) -> float:
        c = self.cols
        return (int(c.balance[i]) + int(c.credit[i])) / MINOR_SCALE + float(c.profit[i])


def minor(x: float) -> int:
    """A re-derived float amount in minor units (``formulas.float_to_minor``)."""
    return int(float_to_minor(x, float(MINOR_SCALE)))
