"""Stop-out sweep kernel (MT5 semantics), one thread per account.

For each account of ``accs`` at or below its stop-out level (``formulas.is_stop_out``; with
hysteresis, until above ``so_end``; ``force`` closes everything closable): pick the most
loss-making closable position (market open, quoted, not halted; ties -> the lowest ticket),
close it at bid (long) / ask (short) with an exact realised profit in minor units
(``formulas.deal_profit_minor``), commission and fee (``charge``), update the account's
balance in the kernel's working copy, re-derive floating profit and margin over the
remaining positions (``account.account_sums``, the loop every recompute runs), repeat.

The kernel mirrors the engine's Python sweep (``cfd.trading.stopout.sweep_python``) step by
step, floats included: it keeps a working copy of the account's segment of the by-account
pool and removes closed positions from it the way ``SegmentedIndex.remove`` does (the last
item moves into the hole), so the sums run in the same order and give the same bits.

Outputs (preallocated by the caller; account ``accs[i]`` owns rows
``out_base[i] : out_base[i] + acc_cnt[accs[i]]``): per close, the position slot, price,
signed volume, profit, commission and fee (minor units), and the margin level, equity and margin
the decision was taken on; per account, the number of closes, the status code, the final
balance, floating profit, margin, maintenance margin and the positions left.
"""

import math

import numba as nb
import numpy as np

from cfd.kernels.account import account_sums, scratch, tiers_of
from cfd.kernels.formulas import (
    RULE_MT5_MONEY,
    account_figures,
    deal_profit_minor,
    div_round_half_even,
    is_stop_out,
    level_at_or_below,
    margin_level,
    money_at_or_below,
    position_profit,
)

#: Status codes per account.
SO_NONE = 0  # not at or below the level: nothing done
SO_DONE = 1  # closed positions; now above the level (or flat)
SO_PENDING = 2  # still at or below the level, nothing closable left (closed markets)
SO_OVERFLOW = 3  # an amount does not fit int64: the caller redoes the account in Python

_INT64_SAFE = 9.0e18


@nb.njit(cache=True, inline="always")
def must_close(force, rule, so_level, so_end, balance, credit, profit, margin, n_left, started,
               minor_scale):
    """The sweep's loop condition (``stopout.must_close`` in Python), decided on the figures
    ``account_info`` shows (``formulas.account_figures``)."""
    if force:
        return margin > 0.0 or n_left > 0
    eq, m = account_figures(balance, credit, profit, margin, minor_scale)
    if is_stop_out(rule, so_level, eq, m, minor_scale):
        return True
    if started and so_end > so_level and m > 0:
        if rule != RULE_MT5_MONEY:
            return level_at_or_below(eq, m, so_end)
        return money_at_or_below(eq, so_end, minor_scale)
    return False


@nb.njit(cache=True, inline="always")
def charge(volume, price, t):
    """Commission (or fee) in minor units of ``volume`` units at ``price`` by the terms row
    ``t = (lot, pct, fixed, den, lo, hi)``: ``clamp(round_half_even((volume * lot + volume *
    price * pct + fixed) / den), lo, hi)`` (``hi`` 0: no maximum), as
    ``cfd.trading.commission.charge_minor``; -1 when it would overflow."""
    lot, pct, fixed, den, lo, hi = t[0], t[1], t[2], t[3], t[4], t[5]
    if volume <= 0 or (lot == 0 and pct == 0 and fixed == 0 and lo == 0):
        return np.int64(0)
    v = float(volume)
    if v * float(lot) + v * float(price) * float(pct) + float(fixed) >= _INT64_SAFE:
        return np.int64(-1)
    c = div_round_half_even(volume * lot + volume * price * pct + fixed, den)
    if c < lo:
        c = lo
    if hi > 0 and c > hi:
        c = hi
    return c


@nb.njit(cache=True)
def sweep_account(i, a, force, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol,
                  pos_price, pos_ticket, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm,
                  sym_mode, tiers, sym_knum, sym_kden, sym_closable, c_terms, f_terms, acc_trow,
                  acc_balance, acc_credit, acc_profit, acc_margin, acc_maint, acc_lev, acc_rule,
                  acc_so, acc_end, out_base, work, out_n, out_status, out_slot, out_price,
                  out_volume, out_profit, out_comm, out_fee, out_level, out_equity, out_margin,
                  out_balance, out_acc_profit, out_acc_margin, out_acc_maint, out_left):
    base = out_base[i]
    n_left = acc_cnt[a]
    off = acc_off[a]
    bal = acc_balance[a]
    cred = acc_credit[a]
    pr = acc_profit[a]
    m = acc_margin[a]
    mm = acc_maint[a]
    lev = acc_lev[a]
    rule = acc_rule[a]
    so = acc_so[a]
    end = acc_end[a]
    status = SO_NONE
    closed = 0
    eq = (bal + cred) / minor_scale + pr
    if must_close(force, rule, so, end, bal, cred, pr, m, n_left, False, minor_scale):
        sums_work = scratch()
        for k in range(n_left):
            work[base + k] = pool[off + k]
        while True:
            eq = (bal + cred) / minor_scale + pr
            if not must_close(force, rule, so, end, bal, cred, pr, m, n_left, closed > 0,
                              minor_scale):
                status = SO_DONE
                break
            best = -1
            best_p = 0.0
            best_t = np.int64(0)
            for k in range(n_left):
                p = work[base + k]
                s = pos_sym[p]
                if not sym_closable[s]:
                    continue
                pp = position_profit(pos_vol[p], pos_price[p], sym_bid[s], sym_ask[s],
                                     sym_kp[s])
                t = pos_ticket[p]
                if best < 0 or pp < best_p or (pp == best_p and t < best_t):
                    best = k
                    best_p = pp
                    best_t = t
            if best < 0:
                status = SO_PENDING
                break
            p = work[base + best]
            s = pos_sym[p]
            v = pos_vol[p]
            price = sym_bid[s] if v > 0 else sym_ask[s]
            ok, minor = deal_profit_minor(v, pos_price[p], price, sym_knum[s], sym_kden[s])
            tr = acc_trow[a] + s
            c = charge(abs(v), price, c_terms[tr])
            f = charge(abs(v), price, f_terms[tr])
            if not ok or c < 0 or f < 0:
                status = SO_OVERFLOW
                break
            r = base + closed
            out_slot[r] = p
            out_price[r] = price
            out_volume[r] = v
            out_profit[r] = minor
            out_comm[r] = c
            out_fee[r] = f
            out_level[r] = margin_level(eq, m)
            out_equity[r] = eq
            out_margin[r] = m
            closed += 1
            bal += minor - c - f
            last = n_left - 1
            work[base + best] = work[base + last]
            n_left = last
            pr, m, mm, _, _ = account_sums(work, base, n_left, pos_sym, pos_vol, pos_price,
                                           (sym_bid, sym_ask, sym_kp, sym_km, sym_kmm,
                                            sym_mode), tiers_of(tiers, a), lev, sums_work)
    out_n[i] = closed
    out_status[i] = status
    out_balance[i] = bal
    out_acc_profit[i] = pr
    out_acc_margin[i] = m
    out_acc_maint[i] = mm
    out_left[i] = n_left


@nb.njit(cache=True, parallel=True)
def sweep(accs, force, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol, pos_price,
          pos_ticket, sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers, sym_knum,
          sym_kden, sym_closable, c_terms, f_terms, acc_trow, acc_balance, acc_credit,
          acc_profit, acc_margin, acc_maint, acc_lev, acc_rule, acc_so, acc_end, out_base, work,
          out_n, out_status, out_slot, out_price, out_volume, out_profit, out_comm, out_fee,
          out_level, out_equity, out_margin, out_balance, out_acc_profit, out_acc_margin,
          out_acc_maint, out_left):
    """Stop-out sweep over ``accs`` (one thread per account); see the module docstring.
    Reads the engine's arrays, writes only the ``out_*`` arrays and ``work``."""
    for i in nb.prange(len(accs)):
        sweep_account(i, accs[i], force, minor_scale, acc_off, acc_cnt, pool, pos_sym, pos_vol,
                      pos_price, pos_ticket, sym_bid, sym_ask, sym_kp, sym_km,
                      sym_kmm, sym_mode, tiers, sym_knum, sym_kden, sym_closable, c_terms, f_terms,
                      acc_trow, acc_balance, acc_credit, acc_profit, acc_margin, acc_maint,
                      acc_lev, acc_rule, acc_so, acc_end, out_base, work, out_n, out_status,
                      out_slot, out_price, out_volume, out_profit, out_comm, out_fee,
                      out_level, out_equity, out_margin, out_balance, out_acc_profit,
                      out_acc_margin, out_acc_maint, out_left)


@nb.njit(cache=True, parallel=True)
def detect(accs, force, minor_scale, acc_cnt, acc_balance, acc_credit, acc_profit, acc_margin,
           acc_rule, acc_so, acc_end, out_flag):
    """``out_flag[i]``: account ``accs[i]`` must be swept now. Returns how many."""
    n = 0
    for i in nb.prange(len(accs)):
        a = accs[i]
        f = must_close(force, acc_rule[a], acc_so[a], acc_end[a], acc_balance[a],
                       acc_credit[a], acc_profit[a], acc_margin[a], acc_cnt[a], False,
                       minor_scale)
        out_flag[i] = f
        if f:
            n += 1
    return n


@nb.njit(cache=True, parallel=True)
def remove_positions(slots, pos_acc, pos_sym, acc_place, sym_place, acc_off, acc_cnt,
                     acc_pool, sym_off, sym_cnt, sym_pool):
    """Remove closed positions from the by-account and by-symbol indices, in order, exactly
    as ``PositionTable.close`` does one at a time (the last item moves into the hole).
    A removal touches only its own account's (or symbol's) segment and places, so the
    by-account index and the even and odd symbols' segments are three independent walks,
    in parallel (each still in order): the by-symbol ones are cache misses at random
    places of the book."""
    for part in nb.prange(3):
        for j in range(len(slots)):
            p = slots[j]
            if part == 0:
                _swap_remove(acc_pool, acc_off, acc_cnt, acc_place, pos_acc[p], acc_place[p])
            elif pos_sym[p] % 2 == part - 1:
                _swap_remove(sym_pool, sym_off, sym_cnt, sym_place, pos_sym[p], sym_place[p])


@nb.njit(cache=True, inline="always")
def _swap_remove(pool, off, cnt, place_of, group, place):
    """``SegmentedIndex.remove``: the group's last item moves into the hole at ``place``."""
    last = cnt[group] - 1
    base = off[group]
    if place != last:
        moved = pool[base + last]
        pool[base + place] = moved
        place_of[moved] = place
    pool[base + last] = -1
    cnt[group] = last


@nb.njit(cache=True, inline="always")
def _put_fixed2(x, buf, row, pos):
    """Write ``f"{x:.2f}"`` (Python's exact, round-half-even formatting) into ``buf[row]``
    from ``pos``; returns the new position, or -1 when ``x`` is out of range."""
    if not np.isfinite(x) or abs(x) >= 1.0e15:
        return -1
    neg = math.copysign(1.0, x) < 0.0
    ax = abs(x)
    q = np.int64(0)
    if ax != 0.0:
        mf, ex = math.frexp(ax)
        mant = np.int64(mf * 9007199254740992.0)  # 2**53: exact
        e = ex - 53
        if e >= 0:
            q = (mant << e) * 100
        else:
            sh = -e
            if sh <= 62:
                num = mant * 100
                q = num >> sh
                r = num - (q << sh)
                half = np.int64(1) << (sh - 1)
                if r > half or (r == half and q % 2 == 1):
                    q += 1
    if neg:
        buf[row, pos] = 45  # '-'
        pos += 1
    ip = q // 100
    fp = q % 100
    nd = 1
    t = ip // 10
    while t > 0:
        nd += 1
        t //= 10
    for k in range(nd - 1, -1, -1):
        buf[row, pos + k] = 48 + ip % 10
        ip //= 10
    pos += nd
    buf[row, pos] = 46  # '.'
    buf[row, pos + 1] = 48 + fp // 10
    buf[row, pos + 2] = 48 + fp % 10
    return pos + 3


@nb.njit(cache=True, parallel=True)
def format_so_comments(level, equity, margin, out_buf, out_ok):
    """``f"so: {level:.2f}%/{equity:.2f}/{margin:.2f}"`` into rows of ``out_buf`` (uint8,
    zero-filled; the caller cuts to the comment width); ``out_ok[i]`` False when a value
    is out of range (the caller formats that row in Python)."""
    w = out_buf.shape[1]
    for i in nb.prange(len(level)):  # (rows apart: in parallel)
        out_buf[i, 0] = 115  # 's'
        out_buf[i, 1] = 111  # 'o'
        out_buf[i, 2] = 58  # ':'
        out_buf[i, 3] = 32  # ' '
        pos = _put_fixed2(level[i], out_buf, i, 4)
        ok = pos >= 0 and pos + 2 <= w
        if ok:
            out_buf[i, pos] = 37  # '%'
            out_buf[i, pos + 1] = 47  # '/'
            pos = _put_fixed2(equity[i], out_buf, i, pos + 2)
            ok = pos >= 0 and pos + 1 <= w
        if ok:
            out_buf[i, pos] = 47
            pos = _put_fixed2(margin[i], out_buf, i, pos + 1)
            ok = pos >= 0
        out_ok[i] = ok


@nb.njit(cache=True)
def apply_postings(balance, src, dst, amount):
    """``balance[src] -= amount; balance[dst] += amount`` for each posting, in order."""
    for i in range(len(amount)):
        balance[src[i]] -= amount[i]
        balance[dst[i]] += amount[i]
