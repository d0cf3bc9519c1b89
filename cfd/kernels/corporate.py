"""Corporate actions on every position of a symbol, exact, in one pass.

A split of ratio ``n:m`` (``n`` new shares for ``m`` old: NVIDIA's 10-for-1 is 10:1, a 1-for-10
reverse split 1:10) turns a position of signed volume ``v`` opened at ``p`` into

* volume ``v' = sign(v) * floor(|v| * n / m / step) * step`` (on the volume grid),
* open price ``p' = p * m / n`` rounded half to even on the price grid,

and settles in cash what the grids cannot hold, so that the position's floating profit at the
quotes before the split (``close``) and after (``close'``, the rescaled quote) is unchanged:

    cash = (close - p) * v * k  -  (close' - p') * v' * k     (minor units, half to even)

with ``k = k_num / k_den`` minor units per (price unit x volume unit). A long closes at bid,
a short at ask. ``status`` is 0, or ``OVERFLOW`` where an intermediate would not fit in int64
(the caller computes that row with Python integers).
"""

import numba as nb

from cfd.kernels.formulas import div_round_half_even

OVERFLOW = 1
_INT64_SAFE = 9.0e18


@nb.njit(cache=True)
def split_positions(volume, price_open, n, m, step, bid0, ask0, bid1, ask1, k_num, k_den,
                    out_volume, out_price, out_cash, out_status):
    for i in range(len(volume)):
        v = volume[i]
        p = price_open[i]
        out_status[i] = 0
        av = abs(v)
        if float(av) * float(n) >= _INT64_SAFE or float(p) * float(m) >= _INT64_SAFE:
            out_status[i] = OVERFLOW
            continue
        units = (av * n) // m
        nv = (units // step) * step
        if v < 0:
            nv = -nv
        np_ = div_round_half_even(p * m, n)
        c0 = bid0 if v > 0 else ask0
        c1 = bid1 if v > 0 else ask1
        a = float(c0 - p) * float(v)
        b = float(c1 - np_) * float(nv)
        if (abs(a) + abs(b)) * abs(float(k_num)) >= _INT64_SAFE:
            out_status[i] = OVERFLOW
            continue
        diff = (c0 - p) * v - (c1 - np_) * nv
        out_volume[i] = nv
        out_price[i] = np_
        out_cash[i] = div_round_half_even(diff * k_num, k_den)


def split_reference(volume, price_open, n, m, step, bid0, ask0, bid1, ask1, k_num, k_den):
    """Pure-Python reference: lists ``(volume', price', cash)`` with Python integers."""
    out = []
    for v, p in zip(volume, price_open, strict=True):
        v, p = int(v), int(p)
        nv = (abs(v) * n // m) // step * step * (1 if v > 0 else -1)
        q, r = divmod(p * m, n)
        if 2 * r > n or (2 * r == n and q % 2 == 1):
            q += 1
        c0 = bid0 if v > 0 else ask0
        c1 = bid1 if v > 0 else ask1
        num = ((c0 - p) * v - (c1 - q) * nv) * k_num
        cq, cr = divmod(num, k_den)
        if 2 * cr > k_den or (2 * cr == k_den and cq % 2 == 1):
            cq += 1
        out.append((nv, q, cq))
    return out


@nb.njit(cache=True)
def per_share_amounts(volume, k_num, k_den, out_amount, out_status):
    """``|volume| * k_num / k_den`` minor units, half to even, per position (dividends)."""
    for i in range(len(volume)):
        av = abs(volume[i])
        out_status[i] = 0
        if float(av) * abs(float(k_num)) >= _INT64_SAFE:
            out_status[i] = OVERFLOW
            out_amount[i] = 0
            continue
        out_amount[i] = div_round_half_even(av * k_num, k_den)
