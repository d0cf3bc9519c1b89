"""Margin recompute kernels: full (all accounts, one thread per account), per account, and
incremental (only positions of symbols that moved)."""

import numba as nb
import numpy as np

from cfd.kernels.account import (
    account_sums,
    pack_symbols,
    scratch,
    tier_factor,
    tiered_anywhere,
    tiers_of,
    uses_leverage,
)
from cfd.kernels.formulas import (
    CALC_EXCH_STOCKS,
    account_figures,
    is_margin_call,
    is_stop_out,
)


@nb.njit(cache=True, inline="always")
def recompute_account(a, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price, sym_bid,
                      sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers, leverage):
    """Floating profit, initial and maintenance margin of account ``a``
    (``account.account_sums`` over its positions, reading the symbol columns). Returns
    ``(profit, margin, margin_maint)``. (A position's own floating profit is not stored: it
    is derived from the current quote when asked, ``positions.floating_profit``.)"""
    pr, m, mm, _, _ = account_sums(pool, acc_off[a], acc_cnt[a], pos_sym, pos_vol, pos_price,
                                   (sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode),
                                   tiers_of(tiers, a), leverage, scratch())
    return pr, m, mm


#: Accounts per task of the full recompute (each task holds one ``account.scratch``).
CHUNK = 512


@nb.njit(cache=True, parallel=True)
def recompute_all(n_acc, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price, sym_bid, sym_ask,
                  sym_kp, sym_km, sym_kmm, sym_mode, tiers, acc_lev, out_profit, out_margin,
                  out_margin_maint):
    """Full recompute: each task owns whole accounts, :data:`CHUNK` at a time (no shared-slot
    reductions); the symbols are read from one packed row each (``account.pack_symbols``)."""
    symtab = pack_symbols(sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers)
    lev_any = uses_leverage(sym_mode)
    for c in nb.prange((n_acc + CHUNK - 1) // CHUNK):
        work = scratch()
        k = 0  # the tier set whose views are at hand (made again only when it changes)
        rows, tt = symtab[0], (tiers[0][0], tiers[1][0], tiers[2])
        for a in range(c * CHUNK, min(n_acc, (c + 1) * CHUNK)):
            if tiers[3][a] != k:
                k = tiers[3][a]
                rows, tt = symtab[k], tiers_of(tiers, a)
            pr, m, mm, _, _ = account_sums(pool, acc_off[a], acc_cnt[a], pos_sym, pos_vol,
                                           pos_price, rows, tt, acc_lev[a], work, lev_any)
            out_profit[a] = pr
            out_margin[a] = m
            out_margin_maint[a] = mm


@nb.njit(cache=True)
def rederive(accs, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price, sym_bid, sym_ask,
             sym_kp, sym_km, sym_kmm, sym_mode, tiers, acc_lev, minor_scale, acc_balance,
             acc_credit, acc_rule, acc_so, acc_call, acc_profit, acc_margin, acc_margin_maint,
             out_state):
    """Re-derive the figures of ``accs`` from their positions (the incremental path's answer
    for tiered symbols margined at the market, whose margin is not linear in the price);
    when ``out_state`` covers the account, its :func:`account_state` too. Sequential: a
    tick's latency, not a thread team's start, for the usual few thousand holders."""
    work = scratch()
    syms = (sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode)
    for i in range(len(accs)):
        a = accs[i]
        pr, m, mm, _, _ = account_sums(pool, acc_off[a], acc_cnt[a], pos_sym, pos_vol,
                                       pos_price, syms, tiers_of(tiers, a), acc_lev[a], work)
        acc_profit[a] = pr
        acc_margin[a] = m
        acc_margin_maint[a] = mm
        if a < len(out_state):
            eq, mc = account_figures(acc_balance[a], acc_credit[a], pr, m, minor_scale)
            out_state[a] = account_state(acc_rule[a], acc_so[a], acc_call[a], eq, mc,
                                         minor_scale)


@nb.njit(cache=True)
def tick_update(symbols, old_bid, old_ask, sym_off, sym_cnt, seg_acc, seg_vol, sym_bid, sym_ask,
                sym_kp, sym_km, sym_kmm, sym_mode, tiers, acc_profit, acc_margin,
                acc_margin_maint, mark, out_touched):
    """Incremental recompute after the prices of ``symbols`` moved from ``old_bid/old_ask``
    (per entry of ``symbols``) to the current ``sym_bid/sym_ask``.

    Walks only the positions of those symbols, in the symbol-ordered copy of their account
    and volume (``seg_acc``, ``seg_vol``: slot ``sym_off[s] + k`` is the k-th position of
    symbol ``s``), so the reads are sequential and the cost grows with the positions of the
    moved symbols, not with the book. Each account gets the change of its floating profit,
    ``(new close - old close) * volume * k_profit``; EXCH_STOCKS margins (margined at the
    market) follow the price the same way.

    The accounts touched are written to ``out_touched`` (first touch order) with the help of
    ``mark`` (all False on entry and on return); returns how many.
    """
    n = 0
    for j in range(len(symbols)):
        s = symbols[j]
        kp = sym_kp[s]
        d_bid = float(sym_bid[s] - old_bid[j])
        d_ask = float(sym_ask[s] - old_ask[j])
        at_market = sym_mode[s] == CALC_EXCH_STOCKS and not tiered_anywhere(tiers, s)
        km = sym_km[s]
        kmm = sym_kmm[s]
        base = sym_off[s]
        for k in range(base, base + sym_cnt[s]):
            a = seg_acc[k]
            v = float(seg_vol[k])
            d = d_bid if v > 0 else d_ask
            acc_profit[a] += d * v * kp
            if at_market:
                acc_margin[a] += abs(v) * d * km
                acc_margin_maint[a] += abs(v) * d * kmm
            if not mark[a]:
                mark[a] = True
                out_touched[n] = a
                n += 1
    for i in range(n):
        mark[out_touched[i]] = False
    return n


@nb.njit(cache=True)
def tiered_tick(symbols, old_bid, old_ask, sym_off, sym_cnt, seg_acc, seg_vol, sym_bid,
                sym_ask, sym_km, sym_kmm, tiers, acc_margin, acc_margin_maint):
    """The margin move of the holders of ``symbols``, tiered and margined at the market
    (EXCH_STOCKS), after their prices moved from ``old_bid/old_ask`` to ``sym_bid/sym_ask``
    (:func:`tick_update` moves the profits). The symbol's part of an account's margin is
    ``B * k_margin * f(X)`` (``account.account_sums``) with ``B = sum(|v| * close)`` over
    its positions in the symbol and ``X`` the tier measure (``sum |v|``, or ``B * k_x``);
    each holder's ``B`` and volume at the old and the new prices are summed over the
    symbol's segment (sequential reads; the holders found by a small open-addressed table
    of the segment's size), and ``(B_new * f(X_new) - B_old * f(X_old)) * k`` added."""
    tier_n, tier_off, table, acc_set = tiers
    for j in range(len(symbols)):
        s = symbols[j]
        cnt = sym_cnt[s]
        if cnt == 0:
            continue
        size = 2
        while size < 2 * cnt:
            size *= 2
        key = np.full(size, -1, np.int64)
        row = np.empty(size, np.int64)
        accs = np.empty(cnt, np.int64)
        agg = np.zeros((cnt, 3))
        ng = 0
        bid, ask = float(sym_bid[s]), float(sym_ask[s])
        obid, oask = float(old_bid[j]), float(old_ask[j])
        base = sym_off[s]
        for k in range(base, base + cnt):
            a = seg_acc[k]
            h = (a * 0x9E3779B1) & (size - 1)
            while key[h] != a and key[h] >= 0:
                h = (h + 1) & (size - 1)
            if key[h] < 0:
                key[h] = a
                row[h] = ng
                accs[ng] = a
                ng += 1
            g = row[h]
            v = seg_vol[k]
            av = abs(float(v))
            agg[g, 0] += av * (obid if v > 0 else oask)
            agg[g, 1] += av * (bid if v > 0 else ask)
            agg[g, 2] += av
        km, kmm = sym_km[s], sym_kmm[s]
        for i in range(ng):
            b_old, b_new, vol = agg[i, 0], agg[i, 1], agg[i, 2]
            if vol <= 0.0:
                continue
            a = accs[i]
            k = acc_set[a]
            off, n = tier_off[k, s], tier_n[k, s]
            if n == 0:  # untiered in the account's set
                d = b_new - b_old
            else:
                kx = table[off, 3]
                x_old = vol if kx == 0.0 else b_old * kx
                x_new = vol if kx == 0.0 else b_new * kx
                d = (b_new * tier_factor(table, off, n, x_new)
                     - b_old * tier_factor(table, off, n, x_old))
            acc_margin[a] += d * km
            acc_margin_maint[a] += d * kmm


@nb.njit(cache=True)
def pack_moves(n_sym, symbols, old_bid, old_ask, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm,
               sym_mode, tiers):
    """One row per symbol for :func:`tick_update_accounts`: moved (1.0 / 0.0), bid move, ask
    move (price units), k_profit, k_margin, k_margin_maint, margined at the market (1.0 /
    0.0; untiered: tiered holders are re-derived, :func:`rederive`); 64 bytes, one cache line
    per position's symbol."""
    t = np.zeros((n_sym, 8))
    for j in range(len(symbols)):
        s = symbols[j]
        t[s, 0] = 1.0
        t[s, 1] = float(sym_bid[s] - old_bid[j])
        t[s, 2] = float(sym_ask[s] - old_ask[j])
    for s in range(n_sym):
        t[s, 3] = sym_kp[s]
        t[s, 4] = sym_km[s]
        t[s, 5] = sym_kmm[s]
        t[s, 6] = 1.0 if sym_mode[s] == CALC_EXCH_STOCKS and not tiered_anywhere(tiers, s) \
            else 0.0
    return t


@nb.njit(cache=True, parallel=True)
def tick_update_accounts(n_acc, acc_off, acc_cnt, pool, pos_sym, pos_vol, moves, minor_scale,
                         acc_balance, acc_credit, acc_rule, acc_so, acc_call, acc_profit,
                         acc_margin, acc_margin_maint, out_state):
    """The incremental recompute of :func:`tick_update` walked the other way round, for a
    move of most of the book: one thread per account (no shared-slot reductions), each
    position of a moved symbol adding ``d * volume * k_profit`` where ``d`` is its symbol's
    bid move (longs) or ask move (shorts), from the rows of :func:`pack_moves`. The same
    float operations per position as :func:`tick_update`, summed in account order.

    Detection in the same pass: ``out_state[a]`` is the :func:`account_state` of every
    account holding a moved symbol, -1 for the others."""
    for a in nb.prange(n_acc):
        touched = False
        at_market = False  # margins are read and written only when a position moves them
        pr = acc_profit[a]
        m = 0.0
        mm = 0.0
        base = acc_off[a]
        for k in range(base, base + acc_cnt[a]):
            p = pool[k]
            s = pos_sym[p]
            if moves[s, 0] != 0.0:
                touched = True
                vi = pos_vol[p]
                v = float(vi)
                d = moves[s, 1 + np.intp(vi < 0)]
                pr += d * v * moves[s, 3]
                if moves[s, 6] != 0.0:
                    if not at_market:
                        at_market = True
                        m = acc_margin[a]
                        mm = acc_margin_maint[a]
                    m += abs(v) * d * moves[s, 4]
                    mm += abs(v) * d * moves[s, 5]
        if touched:
            acc_profit[a] = pr
            if at_market:
                acc_margin[a] = m
                acc_margin_maint[a] = mm
            else:
                m = acc_margin[a]
            eq, mc = account_figures(acc_balance[a], acc_credit[a], pr, m, minor_scale)
            out_state[a] = account_state(acc_rule[a], acc_so[a], acc_call[a], eq, mc,
                                         minor_scale)
        else:
            out_state[a] = -1


@nb.njit(cache=True)
def gather_segments(groups, off, cnt, pool, src, dst):
    """``dst[off[g] + k] = src[pool[off[g] + k]]`` for the live slots of ``groups`` (refreshes
    a symbol-ordered copy of a position column)."""
    for i in range(len(groups)):
        g = groups[i]
        for k in range(off[g], off[g] + cnt[g]):
            dst[k] = src[pool[k]]


#: Account states from :func:`recompute_detect`.
STATE_OK = 0
STATE_MARGIN_CALL = 1
STATE_STOP_OUT = 2


@nb.njit(cache=True, inline="always")
def account_state(rule, so_level, call_level, equity, margin, minor_scale):
    """STATE_STOP_OUT when the stop-out rule fires, else STATE_MARGIN_CALL at or below the
    margin-call level (ESMA accounts use the percent margin call), else STATE_OK; equity and
    margin in minor units (``formulas.account_figures``)."""
    if is_stop_out(rule, so_level, equity, margin, minor_scale):
        return STATE_STOP_OUT
    if is_margin_call(rule, call_level, equity, margin, minor_scale):
        return STATE_MARGIN_CALL
    return STATE_OK


@nb.njit(cache=True, parallel=True)
def recompute_detect(n_acc, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price,
                     sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers, acc_lev,
                     acc_balance, acc_credit, acc_rule, acc_so, acc_call, out_profit,
                     out_margin, out_margin_maint, out_state):
    """Full recompute and stop-out / margin-call detection in one pass over the book (each
    task owns :data:`CHUNK` accounts). Returns the number of accounts at or below
    stop-out."""
    symtab = pack_symbols(sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers)
    lev_any = uses_leverage(sym_mode)
    n_so = 0
    for c in nb.prange((n_acc + CHUNK - 1) // CHUNK):
        work = scratch()
        hits = 0
        k = 0  # the tier set whose views are at hand (made again only when it changes)
        rows, tt = symtab[0], (tiers[0][0], tiers[1][0], tiers[2])
        for a in range(c * CHUNK, min(n_acc, (c + 1) * CHUNK)):
            if tiers[3][a] != k:
                k = tiers[3][a]
                rows, tt = symtab[k], tiers_of(tiers, a)
            pr, m, mm, _, _ = account_sums(pool, acc_off[a], acc_cnt[a], pos_sym, pos_vol,
                                           pos_price, rows, tt, acc_lev[a], work, lev_any)
            out_profit[a] = pr
            out_margin[a] = m
            out_margin_maint[a] = mm
            eq, mc = account_figures(acc_balance[a], acc_credit[a], pr, m, minor_scale)
            st = account_state(acc_rule[a], acc_so[a], acc_call[a], eq, mc, minor_scale)
            out_state[a] = st
            if st == STATE_STOP_OUT:
                hits += 1
        n_so += hits
    return n_so


@nb.njit(cache=True)
def stop_out_hits(accs, minor_scale, acc_balance, acc_credit, acc_profit, acc_margin, acc_rule,
                  acc_so, out):
    """The accounts of ``accs`` at or below their stop-out level (``formulas.is_stop_out``),
    written to ``out`` in order; returns how many."""
    n = 0
    for i in range(len(accs)):
        a = accs[i]
        eq, m = account_figures(acc_balance[a], acc_credit[a], acc_profit[a], acc_margin[a],
                                minor_scale)
        if is_stop_out(acc_rule[a], acc_so[a], eq, m, minor_scale):
            out[n] = a
            n += 1
    return n


@nb.njit(cache=True)
def margin_calls(accs, minor_scale, acc_balance, acc_credit, acc_profit, acc_margin, acc_rule,
                 acc_call, mc_flag, out):
    """Margin-call flags of ``accs`` (ESMA accounts use the percent rule): sets ``mc_flag``
    and writes to ``out`` the accounts whose flag has just been raised (one event per
    crossing); returns how many."""
    n = 0
    for i in range(len(accs)):
        a = accs[i]
        eq, m = account_figures(acc_balance[a], acc_credit[a], acc_profit[a], acc_margin[a],
                                minor_scale)
        mc = is_margin_call(acc_rule[a], acc_call[a], eq, m, minor_scale)
        if mc and not mc_flag[a]:
            out[n] = a
            n += 1
        mc_flag[a] = mc
    return n


@nb.njit(cache=True)
def apply_states(states, mc_flag, out_hit, out_raised):
    """The levels as the whole-book walk judged them (``states``: :func:`account_state` per
    account, -1 for the untouched): accounts at stop-out go to ``out_hit``; for the other
    touched accounts the margin-call flag follows the state, and those whose flag has just
    been raised go to ``out_raised`` (ascending). Returns ``(n_hit, n_raised)``."""
    nh = 0
    nr = 0
    for a in range(len(states)):
        st = states[a]
        if st < 0:
            continue
        if st == STATE_STOP_OUT:
            out_hit[nh] = a
            nh += 1
        else:
            mc = st == STATE_MARGIN_CALL
            if mc and not mc_flag[a]:
                out_raised[nr] = a
                nr += 1
            mc_flag[a] = mc
    return nh, nr
