"""Plain references for the margin kernels: pure Python (loops, the kernels' order of
operations, so results agree to the bit) and numpy (vectorised over positions).

Used by the tests (kernel == reference on random books) and by the benchmark suite (checked
before timing, and timed against). Arguments are the kernels' arrays, in the kernels' order.
"""

import numpy as np

from cfd.kernels.formulas import (
    CALC_CFDLEVERAGE,
    CALC_EXCH_STOCKS,
    RULE_MT5_MONEY,
    RULE_MT5_PERCENT,
)
from cfd.kernels.margin import STATE_MARGIN_CALL, STATE_OK, STATE_STOP_OUT

__all__ = ["STATE_MARGIN_CALL", "STATE_OK", "STATE_STOP_OUT"]


# ------------------------------------------------------------------ pure Python
def _position(v, po, bid, ask, kp, km, kmm, mode, lev):
    close = bid if v > 0 else ask
    pp = float(close - po) * float(v) * kp
    mp = close if mode == CALC_EXCH_STOCKS else po
    m = float(abs(v)) * float(mp) * km
    mm = float(abs(v)) * float(mp) * kmm
    if mode == CALC_CFDLEVERAGE:
        m = m / lev
        mm = mm / lev
    return pp, m, mm


def figures_python(balance, credit, profit, margin, minor_scale):
    """``formulas.account_figures`` in Python: (equity, margin) in minor units."""
    return (int(balance) + int(credit) + round(profit * minor_scale),
            round(margin * minor_scale))


def state_python(rule, so, call, equity, margin, minor_scale=100.0):
    """``margin.account_state`` in Python, on Python integers: ``equity`` and ``margin`` in
    minor units, percent levels to hundredths (``equity * 10_000 <= level * 100 *
    margin``), money levels to the cent."""
    if margin <= 0:
        return STATE_OK
    if rule == RULE_MT5_PERCENT:
        so_hit = equity * 10_000 <= round(so * 100.0) * margin
    elif rule == RULE_MT5_MONEY:
        so_hit = equity <= round(so * minor_scale)
    else:
        so_hit = 2 * equity < margin
    if so_hit:
        return STATE_STOP_OUT
    if rule == RULE_MT5_MONEY:
        return STATE_MARGIN_CALL if equity <= round(call * minor_scale) else STATE_OK
    return STATE_MARGIN_CALL if equity * 10_000 <= round(call * 100.0) * margin else STATE_OK


def tier_factor_python(rows, x):
    """``account.tier_factor`` in Python: ``rows`` the symbol's tier rows, ``x`` > 0."""
    k = 0
    for j in range(1, len(rows)):
        if rows[j][0] <= x:
            k = j
    return rows[k][1] - rows[k][2] / x


def recompute_detect_python(accounts, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol,
                            pos_price, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode,
                            tiers, acc_lev, acc_balance, acc_credit, acc_rule, acc_so,
                            acc_call):
    """Full recompute and detection for the account indices ``accounts`` (a sample, or all).
    Returns ``(profit, margin, margin_maint, state)`` lists, one entry per account given.

    Tiers (``cfd.instruments.tiers``; ``tiers`` the tier sets of ``cfd.kernels.account``,
    each account reading its own): the positions of a tiered symbol are margined as
    without tiers and summed per (account, symbol) with the aggregate ``X`` (volume units, or
    the notional); the sum is scaled by the factor of ``X``'s bracket and added after the
    untiered positions, symbols in the order of their first position."""
    sym_bid, sym_ask = sym_bid.tolist(), sym_ask.tolist()
    sym_kp, sym_km, sym_kmm = sym_kp.tolist(), sym_km.tolist(), sym_kmm.tolist()
    sym_mode = sym_mode.tolist()
    table = tiers[2].tolist()
    profits, margins, maints, states = [], [], [], []
    for a in accounts:
        a = int(a)
        k_set = int(tiers[3][a])  # the account's tier set
        tier_n, tier_off = tiers[0][k_set].tolist(), tiers[1][k_set].tolist()
        lev = int(acc_lev[a])
        pr = m = mm = 0.0
        base = int(acc_off[a])
        groups: dict[int, list[float]] = {}  # symbol -> [u, um, x], first-position order
        for k in range(int(acc_cnt[a])):
            p = int(pool[base + k])
            s = int(pos_sym[p])
            v = int(pos_vol[p])
            dp, dm, dmm = _position(v, int(pos_price[p]), sym_bid[s],
                                    sym_ask[s], sym_kp[s], sym_km[s], sym_kmm[s],
                                    sym_mode[s], lev)
            pr += dp
            if s < len(tier_n) and tier_n[s]:
                g = groups.setdefault(s, [0.0, 0.0, 0.0])
                g[0] += dm
                g[1] += dmm
                kx = table[tier_off[s]][3]
                if kx == 0.0:
                    g[2] += float(abs(v))
                else:
                    close = sym_bid[s] if v > 0 else sym_ask[s]
                    mp = close if sym_mode[s] == CALC_EXCH_STOCKS else int(pos_price[p])
                    g[2] += float(abs(v)) * float(mp) * kx
                continue
            m += dm
            mm += dmm
        for s, (u, um, x) in groups.items():
            if x > 0.0:
                f = tier_factor_python(table[tier_off[s]:tier_off[s] + tier_n[s]], x)
                m += u * f
                mm += um * f
        eq_c, m_c = figures_python(acc_balance[a], acc_credit[a], pr, m, minor_scale)
        profits.append(pr)
        margins.append(m)
        maints.append(mm)
        states.append(state_python(int(acc_rule[a]), float(acc_so[a]), float(acc_call[a]),
                                   eq_c, m_c, minor_scale))
    return profits, margins, maints, states


def tick_python(symbols, old_bid, old_ask, sym_off, sym_cnt, seg_acc, seg_vol, sym_bid, sym_ask,
                sym_kp, sym_km, sym_kmm, sym_mode, acc_profit, acc_margin, acc_margin_maint):
    """``margin.tick_update`` in Python (updates the account arrays in place); returns the
    touched account indices (sorted)."""
    touched = set()
    for j, s in enumerate(symbols):
        s = int(s)
        kp, km, kmm = float(sym_kp[s]), float(sym_km[s]), float(sym_kmm[s])
        d_bid = float(int(sym_bid[s]) - int(old_bid[j]))
        d_ask = float(int(sym_ask[s]) - int(old_ask[j]))
        at_market = int(sym_mode[s]) == CALC_EXCH_STOCKS
        for k in range(int(sym_off[s]), int(sym_off[s]) + int(sym_cnt[s])):
            a = int(seg_acc[k])
            v = float(int(seg_vol[k]))
            d = d_bid if v > 0 else d_ask
            acc_profit[a] += d * v * kp
            if at_market:
                acc_margin[a] += abs(v) * d * km
                acc_margin_maint[a] += abs(v) * d * kmm
            touched.add(a)
    return sorted(touched)


def tick_accounts_python(n_acc, acc_off, acc_cnt, pool, pos_sym, pos_vol, symbols, old_bid,
                         old_ask, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode,
                         acc_profit, acc_margin, acc_margin_maint):
    """``margin.tick_update_accounts`` in Python (in place); returns the touched account
    indices (sorted)."""
    moved = {int(s): (float(int(sym_bid[s]) - int(b)), float(int(sym_ask[s]) - int(k)))
             for s, b, k in zip(symbols, old_bid, old_ask, strict=True)}
    touched = []
    for a in range(n_acc):
        hit = False
        base = int(acc_off[a])
        for k in range(base, base + int(acc_cnt[a])):
            p = int(pool[k])
            s = int(pos_sym[p])
            if s not in moved:
                continue
            hit = True
            v = float(int(pos_vol[p]))
            d = moved[s][1 if v < 0 else 0]
            acc_profit[a] += d * v * float(sym_kp[s])
            if int(sym_mode[s]) == CALC_EXCH_STOCKS:
                acc_margin[a] += abs(v) * d * float(sym_km[s])
                acc_margin_maint[a] += abs(v) * d * float(sym_kmm[s])
        if hit:
            touched.append(a)
    return touched


# ------------------------------------------------------------------ numpy
def positions_in_account_order(acc_off, acc_cnt, pool, n_acc):
    """``(account of each row, position slot of each row)`` walking every account's
    segment in order."""
    cnt = acc_cnt[:n_acc].astype(np.int64)
    acc = np.repeat(np.arange(n_acc, dtype=np.int64), cnt)
    within = np.arange(len(acc), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return acc, pool[acc_off[:n_acc][acc] + within]


def recompute_detect_numpy(n_acc, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol,
                           pos_price, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode,
                           tiers, acc_lev, acc_balance, acc_credit, acc_rule, acc_so, acc_call,
                           rows=None):
    """Full recompute and detection, vectorised: per-position terms as whole-array
    expressions, per-account sums with ``np.bincount`` (which adds in row order, as the
    kernel does). ``rows`` may pass ``positions_in_account_order`` precomputed. Returns
    ``(profit, margin, margin_maint, state)``."""
    acc, p = rows if rows is not None else positions_in_account_order(acc_off, acc_cnt, pool,
                                                                      n_acc)
    s = pos_sym[p]
    v = pos_vol[p]
    po = pos_price[p]
    close = np.where(v > 0, sym_bid[s], sym_ask[s])
    pp = (close - po).astype(np.float64) * v.astype(np.float64) * sym_kp[s]
    mode = sym_mode[s]
    mp = np.where(mode == CALC_EXCH_STOCKS, close, po)
    base = np.abs(v).astype(np.float64) * mp.astype(np.float64)
    lev = np.where(mode == CALC_CFDLEVERAGE, acc_lev[acc].astype(np.float64), 1.0)
    m = base * sym_km[s] / lev
    mm = base * sym_kmm[s] / lev
    profit = np.bincount(acc, weights=pp, minlength=n_acc)
    tier_n = tiers[0]
    k_set = tiers[3][acc]
    tiered = tier_n[k_set, s] > 0 if tier_n.any() else None
    if tiered is None or not tiered.any():
        margin = np.bincount(acc, weights=m, minlength=n_acc)
        maint = np.bincount(acc, weights=mm, minlength=n_acc)
    else:
        # (float even when no row is untiered: bincount of nothing is int)
        margin = np.bincount(acc[~tiered], weights=m[~tiered], minlength=n_acc).astype(float)
        maint = np.bincount(acc[~tiered], weights=mm[~tiered], minlength=n_acc).astype(float)
        _add_tiered(tiers, acc[tiered], s[tiered], base[tiered], m[tiered], mm[tiered],
                    np.abs(v[tiered]).astype(np.float64), margin, maint, k_set[tiered])
    state = detect_numpy(minor_scale, acc_balance[:n_acc], acc_credit[:n_acc], profit, margin,
                         acc_rule[:n_acc], acc_so[:n_acc], acc_call[:n_acc])
    return profit, margin, maint, state


def _add_tiered(tiers, acc, s, base, m, mm, av, margin, maint, k_set):
    """The tiered rows (in account order; ``k_set`` their account's tier set) summed per
    (account, symbol) in row order, scaled by their bracket's factor and added to the
    accounts in first-row order (in place)."""
    tier_off, table = tiers[1], tiers[2]
    n_sym = int(s.max()) + 1
    key = acc * n_sym + s
    uniq, first, grp = np.unique(key, return_index=True, return_inverse=True)
    n = len(uniq)
    u = np.bincount(grp, weights=m, minlength=n)
    um = np.bincount(grp, weights=mm, minlength=n)
    kx = table[tier_off[k_set, s], 3]
    x = np.bincount(grp, weights=np.where(kx == 0.0, av, base * kx), minlength=n)
    gs, gk = s[first], k_set[first]
    off, cnt = tier_off[gk, gs], tiers[0][gk, gs]
    k = off.copy()
    for j in range(1, int(cnt.max())):
        hit = (j < cnt) & (table[np.minimum(off + j, len(table) - 1), 0] <= x)
        k = np.where(hit, off + j, k)
    f = table[k, 1] - table[k, 2] / x
    order = np.argsort(first, kind="stable")
    np.add.at(margin, acc[first][order], (u * f)[order])
    np.add.at(maint, acc[first][order], (um * f)[order])


def detect_numpy(minor_scale, balance, credit, profit, margin, rule, so, call):
    """Account states (``STATE_*``) from equity and margin, vectorised, on minor units
    (int64) as ``state_python``."""
    eq = balance + credit + np.rint(profit * minor_scale).astype(np.int64)
    m = np.rint(margin * minor_scale).astype(np.int64)
    has = m > 0

    def at_or_below(level):
        return eq * 10_000 <= np.rint(level * 100.0).astype(np.int64) * m

    def money_at_or_below(level):
        return eq <= np.rint(level * minor_scale).astype(np.int64)

    so_hit = np.where(rule == RULE_MT5_PERCENT, at_or_below(so),
                      np.where(rule == RULE_MT5_MONEY, money_at_or_below(so), 2 * eq < m)) & has
    mc = np.where(rule == RULE_MT5_MONEY, money_at_or_below(call), at_or_below(call)) & has
    return np.where(so_hit, STATE_STOP_OUT, np.where(mc, STATE_MARGIN_CALL, STATE_OK)
                    ).astype(np.int8)


def tick_numpy(symbols, old_bid, old_ask, sym_off, sym_cnt, seg_acc, seg_vol, sym_bid, sym_ask,
               sym_kp, sym_km, sym_kmm, sym_mode, acc_profit, acc_margin, acc_margin_maint):
    """``margin.tick_update`` vectorised (in place); returns the touched account indices.
    Sums per account with ``np.add.at`` (unbuffered, in row order)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    cnt = sym_cnt[symbols].astype(np.int64)
    j = np.repeat(np.arange(len(symbols)), cnt)
    within = np.arange(len(j), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    k = sym_off[symbols][j] + within
    s = symbols[j]
    a = seg_acc[k]
    v = seg_vol[k].astype(np.float64)
    d = np.where(v > 0, (sym_bid[s] - old_bid[j]).astype(np.float64),
                 (sym_ask[s] - old_ask[j]).astype(np.float64))
    np.add.at(acc_profit, a, d * v * sym_kp[s])
    ex = sym_mode[s] == CALC_EXCH_STOCKS
    if ex.any():
        av, dx = np.abs(v[ex]), d[ex]
        np.add.at(acc_margin, a[ex], av * dx * sym_km[s[ex]])
        np.add.at(acc_margin_maint, a[ex], av * dx * sym_kmm[s[ex]])
    return np.unique(a)
