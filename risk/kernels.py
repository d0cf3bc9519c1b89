"""Numba kernels of the risk CLI: account figures and the gap Monte Carlo (the stress runs
the engine's own stop-out sweep, ``cfd.kernels.sweep``).

They reuse the engine's per-position formulas (``cfd.kernels.formulas``) so a risk run
values positions exactly as the engine does. Positions are grouped by account in CSR form:
account ``a`` owns positions ``acc_off[a] : acc_off[a + 1]``. One thread owns one account.
"""

import numba as nb
import numpy as np

from cfd.kernels.account import account_sums, scratch, tiers_of
from cfd.kernels.formulas import position_profit


@nb.njit(cache=True, parallel=True)
def account_figures(acc_off, pos_sym, pos_vol, pos_open, sym_bid, sym_ask, sym_kp, sym_km,
                    sym_mode, tiers, acc_lev, out_pos_profit, out_profit, out_margin, out_delta,
                    out_margin_var):
    """Per account: floating profit, initial margin, and their sensitivities to a uniform
    relative price move ``x`` (``profit(x) = profit + x * delta``, ``margin(x) = margin +
    x * margin_var``; ``delta`` is the signed notional in account currency, ``margin_var``
    the EXCH_STOCKS margin that follows the price), by the engine's own per-account loop
    (``account.account_sums``; tiers applied). Per position, its floating profit."""
    n_acc = len(acc_off) - 1
    ident = np.arange(len(pos_sym))
    syms = (sym_bid, sym_ask, sym_kp, sym_km, sym_km, sym_mode)
    chunk = 512
    for c in nb.prange((n_acc + chunk - 1) // chunk):
        work = scratch()
        k = 0  # the tier set whose views are at hand
        tt = (tiers[0][0], tiers[1][0], tiers[2])
        for a in range(c * chunk, min(n_acc, (c + 1) * chunk)):
            if tiers[3][a] != k:
                k = tiers[3][a]
                tt = tiers_of(tiers, a)
            start = acc_off[a]
            pr, m, _, mv, d = account_sums(ident, start, acc_off[a + 1] - start, pos_sym,
                                           pos_vol, pos_open, syms, tt, acc_lev[a], work)
            for p in range(start, acc_off[a + 1]):
                s = pos_sym[p]
                out_pos_profit[p] = position_profit(pos_vol[p], pos_open[p], sym_bid[s],
                                                    sym_ask[s], sym_kp[s])
            out_profit[a] = pr
            out_margin[a] = m
            out_delta[a] = d
            out_margin_var[a] = mv


@nb.njit(cache=True, parallel=True)
def gap_losses(acc_list, pair_off, pair_sym, pair_delta, acc_equity, acc_credit, gaps,
               n_chunks, out_loss, work):
    """Insurance-fund loss per Monte Carlo scenario.

    ``gaps`` is ``(n_symbols, n_scenarios)``: the relative price move of each symbol at the
    open. For account ``a`` (``acc_list``), the equity at the open is ``acc_equity[a] +
    sum(pair_delta[k] * gaps[pair_sym[k], j])`` over its (account, symbol) pairs ``k``;
    when that is negative the stop-out closes everything and the balance left below zero,
    ``credit - equity``, is compensated. ``out_loss`` is ``(n_chunks, n_scenarios)``: each
    thread owns one chunk of accounts and one row (summed by the caller). ``work`` (at least
    ``n_chunks x n_scenarios``) holds the running equities: allocated by the caller, once,
    as allocating inside the parallel loop is slow where malloc trims eagerly (Dask workers
    set ``MALLOC_TRIM_THRESHOLD_``).
    """
    n = len(acc_list)
    n_scen = gaps.shape[1]
    step = (n + n_chunks - 1) // n_chunks
    for c in nb.prange(n_chunks):
        e = work[c, :n_scen]
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
