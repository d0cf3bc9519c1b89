"""Margin recompute kernels: full (all accounts, one thread per account), per account, and
incremental (only positions of symbols that moved)."""

import numba as nb
import numpy as np

from cfd.kernels.formulas import (
    RULE_ESMA,
    RULE_MT5_PERCENT,
    is_margin_call,
    is_stop_out,
    margin_price,
    position_margin,
    position_profit,
)


@nb.njit(cache=True)
def recompute_account(a, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price, sym_bid,
                      sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, leverage, out_pos_profit):
    """Floating profit, initial and maintenance margin of account ``a``; refreshes the
    per-position profit. Returns ``(profit, margin, margin_maint)``."""
    profit = 0.0
    margin = 0.0
    maint = 0.0
    base = acc_off[a]
    for k in range(acc_cnt[a]):
        p = pool[base + k]
        s = pos_sym[p]
        v = pos_vol[p]
        bid = sym_bid[s]
        ask = sym_ask[s]
        pp = position_profit(v, pos_price[p], bid, ask, sym_kp[s])
        out_pos_profit[p] = pp
        profit += pp
        mp = margin_price(sym_mode[s], v, pos_price[p], bid, ask)
        margin += position_margin(sym_mode[s], v, mp, sym_km[s], leverage)
        maint += position_margin(sym_mode[s], v, mp, sym_kmm[s], leverage)
    return profit, margin, maint


@nb.njit(cache=True, parallel=True)
def recompute_all(n_acc, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price, sym_bid, sym_ask,
                  sym_kp, sym_km, sym_kmm, sym_mode, acc_lev, out_pos_profit, out_profit,
                  out_margin, out_margin_maint):
    """Full recompute: each thread owns whole accounts (no shared-slot reductions)."""
    for a in nb.prange(n_acc):
        pr, m, mm = recompute_account(a, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price,
                                      sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode,
                                      acc_lev[a], out_pos_profit)
        out_profit[a] = pr
        out_margin[a] = m
        out_margin_maint[a] = mm


@nb.njit(cache=True)
def tick_update(symbols, old_bid, old_ask, sym_off, sym_cnt, sym_pool, pos_acc, pos_vol,
                pos_price, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, acc_lev,
                pos_profit, acc_profit, acc_margin, acc_margin_maint, out_touched):
    """Incremental recompute after the prices of ``symbols`` moved from ``old_bid/old_ask``
    (per entry of ``symbols``) to the current ``sym_bid/sym_ask``.

    Touches only positions of those symbols: each position's profit is recomputed and the
    difference added to its account; EXCH_STOCKS margins (margined at the market) follow the
    price. ``out_touched[a]`` is set for every account touched. Returns the number of
    positions visited.
    """
    visited = 0
    for j in range(len(symbols)):
        s = symbols[j]
        bid = sym_bid[s]
        ask = sym_ask[s]
        kp = sym_kp[s]
        at_market = sym_mode[s] == 32
        base = sym_off[s]
        for k in range(sym_cnt[s]):
            p = sym_pool[base + k]
            a = pos_acc[p]
            v = pos_vol[p]
            pp = position_profit(v, pos_price[p], bid, ask, kp)
            acc_profit[a] += pp - pos_profit[p]
            pos_profit[p] = pp
            if at_market:
                lev = acc_lev[a]
                old = old_bid[j] if v > 0 else old_ask[j]
                new = bid if v > 0 else ask
                acc_margin[a] += (position_margin(32, v, new, sym_km[s], lev)
                                  - position_margin(32, v, old, sym_km[s], lev))
                acc_margin_maint[a] += (position_margin(32, v, new, sym_kmm[s], lev)
                                        - position_margin(32, v, old, sym_kmm[s], lev))
            out_touched[a] = True
        visited += sym_cnt[s]
    return visited


def empty_touched(n: int) -> np.ndarray:
    return np.zeros(max(n, 1), dtype=np.bool_)


#: Account states from :func:`recompute_detect`.
STATE_OK = 0
STATE_MARGIN_CALL = 1
STATE_STOP_OUT = 2


@nb.njit(cache=True, inline="always")
def account_state(rule, so_level, call_level, equity, margin):
    """STATE_STOP_OUT when the stop-out rule fires, else STATE_MARGIN_CALL at or below the
    margin-call level (ESMA accounts use the percent margin call), else STATE_OK."""
    if is_stop_out(rule, so_level, equity, margin):
        return STATE_STOP_OUT
    if is_margin_call(rule if rule != RULE_ESMA else RULE_MT5_PERCENT, call_level, equity,
                      margin):
        return STATE_MARGIN_CALL
    return STATE_OK


@nb.njit(cache=True, parallel=True)
def recompute_detect(n_acc, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price,
                     sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, acc_lev, acc_balance,
                     acc_credit, acc_rule, acc_so, acc_call, out_pos_profit, out_profit,
                     out_margin, out_margin_maint, out_state):
    """Full recompute and stop-out / margin-call detection in one pass over the book (one
    thread per account). Returns the number of accounts at or below stop-out."""
    n_so = 0
    for a in nb.prange(n_acc):
        pr, m, mm = recompute_account(a, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price,
                                      sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode,
                                      acc_lev[a], out_pos_profit)
        out_profit[a] = pr
        out_margin[a] = m
        out_margin_maint[a] = mm
        eq = (acc_balance[a] + acc_credit[a]) / minor_scale + pr
        st = account_state(acc_rule[a], acc_so[a], acc_call[a], eq, m)
        out_state[a] = st
        if st == STATE_STOP_OUT:
            n_so += 1
    return n_so
