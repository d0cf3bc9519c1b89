"""The memory-bandwidth floor: a kernel that streams exactly the arrays the full recompute +
detection reads and writes (per position: pool slot, symbol, volume, open price in; per
account: segment, leverage, balance, credit, rule and levels in; profit, margin, maintenance
margin and state out) with next to no arithmetic (integer sums, which the compiler may
vectorise). No recompute over the
same book can be faster than this on the same machine, so the benchmark reports the
recompute's time as a multiple of it."""

import numba as nb
import numpy as np


@nb.njit(cache=True, parallel=True)
def stream(n_pos, n_acc, pool, pos_sym, pos_vol, pos_price, acc_off, acc_cnt, acc_lev,
           acc_balance, acc_credit, acc_rule, acc_so, acc_call, out_profit, out_margin,
           out_maint, out_state):
    """Reads every input element once and writes every output element once (in chunks, one
    chunk per task). Returns a checksum so nothing is optimised away."""
    chunk = 1 << 16
    n_chunks = (n_pos + chunk - 1) // chunk
    total = 0.0
    for c in nb.prange(n_chunks):
        lo = c * chunk
        hi = min(lo + chunk, n_pos)
        isum = np.int64(0)
        for i in range(lo, hi):
            isum += pos_vol[i] + pos_price[i] + pool[i] + pos_sym[i]
        total += float(isum)
    n_chunks = (n_acc + chunk - 1) // chunk
    for c in nb.prange(n_chunks):
        lo = c * chunk
        hi = min(lo + chunk, n_acc)
        acc = 0.0
        for a in range(lo, hi):
            x = float(acc_off[a] + acc_cnt[a] + acc_lev[a] + acc_rule[a])
            y = float(acc_balance[a] + acc_credit[a]) + acc_so[a] + acc_call[a]
            out_profit[a] = x
            out_margin[a] = y
            out_maint[a] = x
            out_state[a] = np.int8(1) if y > x else np.int8(0)
            acc += y
        total += acc
    return total
