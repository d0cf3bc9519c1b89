"""Numba kernels of the risk CLI: account figures, the stress sweep and the gap Monte Carlo.

They reuse the engine's per-position formulas (``cfd.kernels.formulas``) so a stress run
values positions exactly as the engine does. Positions are grouped by account in CSR form:
account ``a`` owns positions ``acc_off[a] : acc_off[a + 1]``. One thread owns one account.
"""

import numba as nb
import numpy as np

from cfd.kernels.formulas import (
    CALC_EXCH_STOCKS,
    RULE_MT5_MONEY,
    deal_profit_minor,
    is_stop_out,
    margin_level,
    margin_price,
    position_margin,
    position_profit,
)

#: Per-account outcome of a stress sweep.
ST_NONE = 0  # not at or below its stop-out level
ST_STOPPED = 1  # positions closed; now above the level or flat
ST_STUCK = 2  # still at or below the level, nothing closable left (halted or closed market)


@nb.njit(cache=True, parallel=True)
def account_figures(acc_off, pos_sym, pos_vol, pos_open, sym_bid, sym_ask, sym_kp, sym_km,
                    sym_mode, acc_lev, out_pos_profit, out_profit, out_margin, out_delta,
                    out_margin_var):
    """Per account: floating profit, initial margin, and their sensitivities to a uniform
    relative price move ``x`` (``profit(x) = profit + x * delta``, ``margin(x) = margin +
    x * margin_var``; ``delta`` is the signed notional in account currency, ``margin_var``
    the EXCH_STOCKS margin that follows the price)."""
    n_acc = len(acc_off) - 1
    for a in nb.prange(n_acc):
        pr = 0.0
        m = 0.0
        d = 0.0
        mv = 0.0
        lev = acc_lev[a]
        for p in range(acc_off[a], acc_off[a + 1]):
            s = pos_sym[p]
            v = pos_vol[p]
            bid = sym_bid[s]
            ask = sym_ask[s]
            pp = position_profit(v, pos_open[p], bid, ask, sym_kp[s])
            out_pos_profit[p] = pp
            pr += pp
            close = bid if v > 0 else ask
            d += float(close) * float(v) * sym_kp[s]
            mp = margin_price(sym_mode[s], v, pos_open[p], bid, ask)
            pm = position_margin(sym_mode[s], v, mp, sym_km[s], lev)
            m += pm
            if sym_mode[s] == CALC_EXCH_STOCKS:
                mv += pm
        out_profit[a] = pr
        out_margin[a] = m
        out_delta[a] = d
        out_margin_var[a] = mv


@nb.njit(cache=True, inline="always")
def _must_close(rule, so_level, so_end, started, equity, margin):
    if is_stop_out(rule, so_level, equity, margin):
        return True
    if started and so_end > so_level and margin > 0.0:
        if rule == RULE_MT5_MONEY:
            return equity <= so_end
        return margin_level(equity, margin) <= so_end
    return False


@nb.njit(cache=True, parallel=True)
def stress_sweep(acc_off, pos_sym, pos_vol, pos_open, pos_ticket, sym_bid, sym_ask, sym_kp,
                 sym_km, sym_mode, sym_knum, sym_kden, sym_closable, sym_comm_lot,
                 sym_comm_min, acc_balance, acc_credit, acc_lev, acc_rule, acc_so, acc_end,
                 minor_scale, out_closed, out_status, out_n_closed, out_balance,
                 out_deficit, out_equity_before, out_level_before, out_equity_after,
                 out_margin_after):
    """The engine's stop-out on a copy, at the (shocked) prices ``sym_bid/sym_ask``.

    Per account: while at or below its stop-out level (above ``so_end`` with hysteresis),
    close the most loss-making closable position (ties: the lowest ticket) at bid (long) or
    ask (short), booking the exact realised profit (``deal_profit_minor``) less commission
    (``max(round(comm_lot * lots), comm_min)``, minor units), and re-derive the account. A
    flat account left with a negative balance is brought to zero (negative balance
    protection): ``out_deficit`` is what the insurance fund (then broker P/L) pays.
    ``out_closed[p]`` is set for each closed position.
    """
    n_acc = len(acc_off) - 1
    for a in nb.prange(n_acc):
        lo = acc_off[a]
        hi = acc_off[a + 1]
        bal = acc_balance[a]
        cash = float(acc_credit[a])
        lev = acc_lev[a]
        n_closed = 0
        status = ST_NONE
        first = True
        left = 0
        equity = 0.0
        margin = 0.0
        while True:
            profit = 0.0
            margin = 0.0
            left = 0
            for p in range(lo, hi):
                if out_closed[p]:
                    continue
                s = pos_sym[p]
                v = pos_vol[p]
                profit += position_profit(v, pos_open[p], sym_bid[s], sym_ask[s], sym_kp[s])
                mp = margin_price(sym_mode[s], v, pos_open[p], sym_bid[s], sym_ask[s])
                margin += position_margin(sym_mode[s], v, mp, sym_km[s], lev)
                left += 1
            equity = (float(bal) + cash) / minor_scale + profit
            if first:
                out_equity_before[a] = equity
                out_level_before[a] = margin_level(equity, margin)
                first = False
            if left == 0 or not _must_close(acc_rule[a], acc_so[a], acc_end[a],
                                            n_closed > 0, equity, margin):
                break
            best = -1
            best_profit = 0.0
            for p in range(lo, hi):
                if out_closed[p] or not sym_closable[pos_sym[p]]:
                    continue
                s = pos_sym[p]
                pp = position_profit(pos_vol[p], pos_open[p], sym_bid[s], sym_ask[s],
                                     sym_kp[s])
                if (best < 0 or pp < best_profit
                        or (pp == best_profit and pos_ticket[p] < pos_ticket[best])):
                    best = p
                    best_profit = pp
            if best < 0:
                status = ST_STUCK
                break
            s = pos_sym[best]
            v = pos_vol[best]
            price = sym_bid[s] if v > 0 else sym_ask[s]
            ok, minor = deal_profit_minor(v, pos_open[best], price, sym_knum[s], sym_kden[s])
            if not ok:
                minor = np.int64(np.round(best_profit * minor_scale))
            comm = 0
            if sym_comm_lot[s] > 0.0 or sym_comm_min[s] > 0:
                comm = max(np.int64(np.round(sym_comm_lot[s] * abs(v))), sym_comm_min[s])
            bal += minor - comm
            out_closed[best] = True
            n_closed += 1
            status = ST_STOPPED
        deficit = 0
        if n_closed > 0 and left == 0 and bal < 0:
            deficit = -bal
            bal = 0
        out_status[a] = status
        out_n_closed[a] = n_closed
        out_balance[a] = bal
        out_deficit[a] = deficit
        out_equity_after[a] = equity if deficit == 0 else (float(bal) + cash) / minor_scale
        out_margin_after[a] = margin


@nb.njit(cache=True, parallel=True)
def gap_losses(acc_list, pair_off, pair_sym, pair_delta, acc_equity, acc_credit, gaps,
               n_chunks, out_loss):
    """Insurance-fund loss per Monte Carlo scenario.

    ``gaps`` is ``(n_symbols, n_scenarios)``: the relative price move of each symbol at the
    open. For account ``a`` (``acc_list``), the equity at the open is ``acc_equity[a] +
    sum(pair_delta[k] * gaps[pair_sym[k], j])`` over its (account, symbol) pairs ``k``;
    when that is negative the stop-out closes everything and the balance left below zero,
    ``credit - equity``, is compensated. ``out_loss`` is ``(n_chunks, n_scenarios)``: each
    thread owns one chunk of accounts and one row (summed by the caller).
    """
    n = len(acc_list)
    n_scen = gaps.shape[1]
    step = (n + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        e = np.empty(n_scen)
        row = out_loss[c]
        for i in range(c * step, min(n, (c + 1) * step)):
            a = acc_list[i]
            e0 = acc_equity[a]
            e[:] = e0
            for k in range(pair_off[a], pair_off[a + 1]):
                g = gaps[pair_sym[k]]
                d = pair_delta[k]
                for j in range(n_scen):
                    e[j] += d * g[j]
            cr = acc_credit[a]
            for j in range(n_scen):
                if e[j] < 0.0:
                    row[j] += cr - e[j]
