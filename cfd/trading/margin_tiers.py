"""Margin tiers outside the recompute: the pre-trade projection, order_calc_margin and the
margin a pending order reserves, by the kernels' own per-account loop
(``cfd.kernels.account.account_sums``) and bracket factor (``account.tier_factor``).

A tiered symbol's margin is that of the account's aggregate in it (``cfd.instruments.tiers``),
so a trade changes the account's margin by ``aggregate after - aggregate before``; an order
on its own (order_calc_margin, a pending order's reserve) is margined as an aggregate of its
volume alone, as MT5 margins an order ignoring the open positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cfd.constants import CalcMode
from cfd.instruments.tiers import group_schedule, parse_tiers, tier_rows, tier_table
from cfd.kernels.account import account_sums, scratch, tier_factor
from cfd.kernels.formulas import position_margin
from cfd.kernels.margin import rederive, tiered_tick
from cfd.money import MINOR_SCALE

if TYPE_CHECKING:
    from cfd.engine import Engine
    from cfd.trading.market import Plan


class _TierCache:
    """What :func:`tier_sets` derived, and what it derived it from (held: compared by
    identity, so a replaced symbol table, group or account list is seen at once)."""

    __slots__ = ("base", "names", "groups", "ids", "sets", "set_of", "acc", "out", "tiered")

    def __init__(self, base: tuple, names: list[str], groups: dict, sets: tuple,
                 set_of: dict[str, int]) -> None:
        self.base, self.names, self.groups = base, names, groups
        self.ids = tuple(map(id, groups.values()))
        self.sets, self.set_of = sets, set_of
        self.acc = np.zeros(0, np.int32)
        self.out: tuple = ()
        # per symbol: tiered in some set (what the per-order paths ask)
        self.tiered = (sets[0] != 0).any(axis=0)


def _cache(eng: Engine) -> _TierCache:
    base = eng.symbols.tiers()
    names = eng.accounts.groups
    groups = eng.config.groups
    c: _TierCache | None = eng.__dict__.get("_tier_sets")
    if c is None or c.base is not base or c.names is not names or c.groups is not groups \
            or c.ids != tuple(map(id, groups.values())):
        over = [n for n, g in groups.items() if g.margin_tiers]
        if not over:
            sets = (base[0].reshape(1, -1), base[1].reshape(1, -1), base[2])
        else:
            sets = _override_sets(eng, over)
        c = _TierCache(base, names, groups, sets, {n: i + 1 for i, n in enumerate(over)})
        eng._tier_sets = c
    n_acc = len(names)
    if len(c.acc) < max(n_acc, 1) or not c.out:
        if len(c.acc) < max(n_acc, 1):
            grown = np.zeros(max(n_acc, 1, 2 * len(c.acc)), np.int32)
            grown[:len(c.acc)] = c.acc
            if c.set_of:
                grown[len(c.acc):n_acc] = [c.set_of.get(g, 0)
                                           for g in names[len(c.acc):n_acc]]
            c.acc = grown
        c.out = (*c.sets, c.acc)
    return c


def tier_sets(eng: Engine) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(tier_n, tier_off, table, set of each account)``: the kernels' tier sets
    (``cfd.kernels.account``). Set 0 is the symbols' own schedules; each group overriding
    some (``AccountGroup.margin_tiers``) has a set of its own, its accounts pointing to it.
    Kept until a symbol, a group or the list of accounts changes; new accounts extend it."""
    return _cache(eng).out


def _override_sets(eng: Engine, over: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    specs = eng.symbols.specs
    own = [tier_rows(parse_tiers(s.margin_tiers), s.margin_tiers_by, s.contract_size)
           if s.margin_tiers else [] for s in specs]
    width = max(len(specs), 1)
    schedules = own + [[]] * (width - len(specs))
    for name in over:
        g = eng.config.groups[name]
        for i, s in enumerate(specs):
            text = group_schedule(g.margin_tiers, s.name)
            if text is None:
                schedules.append(own[i])
            else:
                schedules.append(tier_rows(parse_tiers(text), s.margin_tiers_by,
                                           s.contract_size, s.margin_initial_rate)
                                 if text else [])
        schedules += [[]] * (width - len(specs))
    tier_n, tier_off, table = tier_table(schedules)
    n_sets = len(over) + 1
    return (tier_n[:n_sets * width].reshape(n_sets, width),
            tier_off[:n_sets * width].reshape(n_sets, width), table)


def account_tiers(eng: Engine, acc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tier tuple ``(tier_n, tier_off, table)`` of account ``acc``'s set."""
    t = tier_sets(eng)
    k = int(t[3][acc])
    return t[0][k], t[1][k], t[2]


def rederive_moved(eng: Engine, syms: np.ndarray, states: np.ndarray) -> None:
    """After a tick: the holders of the moved tiered symbols margined at the market,
    re-derived whole (their margin is not linear in the price; ``margin.rederive``);
    ``states`` updated where it covers them."""
    sc, ac, pc = eng.symbols.cols, eng.accounts.cols, eng.positions.cols
    tiers = tier_sets(eng)
    moved = syms[(tiers[0][:, syms] > 0).any(axis=0)
                 & (sc.calc_mode[syms] == CalcMode.EXCH_STOCKS)]
    if len(moved):
        idx = eng.positions.by_acc
        rederive(eng.holders(moved), idx.off, idx.cnt, idx.pool, pc.sym, pc.volume,
                 pc.price_open, sc.bid, sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint,
                 sc.calc_mode, tiers, ac.leverage, float(MINOR_SCALE), ac.balance, ac.credit,
                 ac.so_rule, ac.so_so, ac.so_call, ac.profit, ac.margin, ac.margin_maint,
                 states)


def tick_moved(eng: Engine, syms: np.ndarray, old_bid: np.ndarray, old_ask: np.ndarray,
               seg_acc: np.ndarray, seg_vol: np.ndarray) -> None:
    """After a tick (``tick_update`` has moved the profits): the margins of the holders of
    the moved tiered symbols margined at the market, moved by their aggregate's margin at
    the new price less that at the old (``margin.tiered_tick``: the symbol's positions
    only, in its symbol-ordered segment ``seg_acc``, ``seg_vol``)."""
    sc, ac = eng.symbols.cols, eng.accounts.cols
    tiers = tier_sets(eng)
    pick = (tiers[0][:, syms] > 0).any(axis=0) & (sc.calc_mode[syms] == CalcMode.EXCH_STOCKS)
    if pick.any():
        idx = eng.positions.by_sym
        tiered_tick(syms[pick], old_bid[pick], old_ask[pick], idx.off, idx.cnt, seg_acc,
                    seg_vol, sc.bid, sc.ask, sc.k_margin, sc.k_margin_maint, tiers, ac.margin,
                    ac.margin_maint)


def is_tiered(eng: Engine, sym: int) -> bool:
    """Whether ``sym`` has tiers for any group."""
    return bool(_cache(eng).tiered[sym])


def aggregate_margin(eng: Engine, acc: int, sym: int, volumes: list[int],
                     prices: list[int]) -> float:
    """The margin of positions ``(volume, open price)`` of ``sym`` held by ``acc`` as one
    aggregate, tiers applied (0.0 for none)."""
    n = len(volumes)
    if n == 0:
        return 0.0
    sc = eng.symbols.cols
    _, m, _, _, _ = account_sums(np.arange(n), 0, n, np.full(n, sym, np.int32),
                                 np.array(volumes, np.int64), np.array(prices, np.int64),
                                 (sc.bid, sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint,
                                  sc.calc_mode), account_tiers(eng, acc),
                                 int(eng.accounts.cols.leverage[acc]), scratch())
    return float(m)


def plan_margin(eng: Engine, plan: Plan) -> float:
    """The account's margin after ``plan`` on a tiered symbol: its margin now, less the
    aggregate of its positions in the symbol, plus the aggregate after the plan's legs."""
    pc = eng.positions.cols
    a, s = plan.acc, plan.sym
    slots = [int(p) for p in eng.positions.of_account(a) if int(pc.sym[p]) == s]
    now = {p: (int(pc.volume[p]), int(pc.price_open[p])) for p in slots}
    after = dict(now)
    new = []
    for leg in plan.legs:
        if leg.slot >= 0:
            after.pop(leg.slot, None)
            if leg.new_volume:
                after[leg.slot] = (leg.new_volume, leg.new_price)
        elif leg.new_volume:
            new.append((leg.new_volume, leg.new_price))
    before_v = [v for v, _ in now.values()]
    before_p = [p for _, p in now.values()]
    rows = list(after.values()) + new
    m_before = aggregate_margin(eng, a, s, before_v, before_p)
    m_after = aggregate_margin(eng, a, s, [v for v, _ in rows], [p for _, p in rows])
    return float(eng.accounts.cols.margin[a]) - m_before + m_after


def order_margin(eng: Engine, acc: int, sym: int, volume: int, price: int) -> float:
    """The margin of ``volume`` units at ``price`` on their own: the position margin at
    that price, times the factor of the bracket of the volume (or of its notional at that
    price) for a tiered symbol."""
    sc = eng.symbols.cols
    mode = int(sc.calc_mode[sym])
    m = position_margin(mode, volume, price, float(sc.k_margin[sym]),
                        int(eng.accounts.cols.leverage[acc]))
    tier_n, tier_off, table = account_tiers(eng, acc)
    n = int(tier_n[sym])
    if n == 0 or volume == 0:
        return m
    off = int(tier_off[sym])
    kx = float(table[off, 3])
    x = float(abs(volume)) if kx == 0.0 else float(abs(volume)) * float(price) * kx
    return m * float(tier_factor(table, off, n, x))
