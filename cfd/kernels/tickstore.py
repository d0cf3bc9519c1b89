"""Kernels of the tick recorder's flush: grouping ticks by symbol, M1 bars and the day's
statistics, each one pass over the columns and without the GIL (``nogil``), so the writer
thread keeps running while the recorder's thread works.

Inputs are plain columns: ``sym`` (int32 symbol indices), ``time_msc`` (int64), ``bid`` and
``ask`` (float64), ``volume`` (int64). "Grouped" columns hold each symbol's ticks together,
symbols in ascending index, each symbol's in arrival order.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def group_order(sym: np.ndarray) -> np.ndarray:
    """The permutation grouping ``sym`` by ascending value, stable (a counting sort)."""
    n = len(sym)
    top = 0
    for i in range(n):
        if sym[i] > top:
            top = sym[i]
    at = np.zeros(top + 2, np.int64)
    for i in range(n):
        at[sym[i] + 1] += 1
    for s in range(top + 1):
        at[s + 1] += at[s]
    order = np.empty(n, np.int64)
    for i in range(n):
        s = sym[i]
        order[at[s]] = i
        at[s] += 1
    return order


@nb.njit(cache=True, nogil=True)
def gather(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``a[order]``, without the GIL."""
    out = np.empty(len(order), a.dtype)
    for i in range(len(order)):
        out[i] = a[order[i]]
    return out


@nb.njit(cache=True, nogil=True)
def m1_bars(sym: np.ndarray, time_msc: np.ndarray, bid: np.ndarray, ask: np.ndarray,
            volume: np.ndarray, points: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                       np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """M1 bars of grouped ticks: a bar per run of ticks sharing symbol and minute. Returns
    the bars' symbol, time (s), open, high, low, close, tick volume, spread (points, the
    smallest; 0 where the point is not positive) and real volume."""
    n = len(sym)
    m = 0
    start = np.empty(n + 1, np.int64)  # each bar's first tick
    minute_end = -1
    for i in range(n):
        t = time_msc[i]
        if i == 0 or sym[i] != sym[i - 1] or t >= minute_end or t < minute_end - 60_000:
            start[m] = i
            m += 1
            minute_end = t - t % 60_000 + 60_000
    start[m] = n
    b_sym = np.empty(m, np.int32)
    b_time = np.empty(m, np.int64)
    b_open = np.empty(m, np.float64)
    b_high = np.empty(m, np.float64)
    b_low = np.empty(m, np.float64)
    b_close = np.empty(m, np.float64)
    b_ticks = np.empty(m, np.uint64)
    b_spread = np.empty(m, np.int32)
    b_real = np.empty(m, np.uint64)
    for j in range(m):
        a, b = start[j], start[j + 1]
        s = sym[a]
        pt = points[s]
        hi = lo = bid[a]
        low_spread = np.iinfo(np.int32).max
        real = np.uint64(0)
        for i in range(a, b):
            px = bid[i]
            hi = max(hi, px)
            lo = min(lo, px)
            spread = np.int32(np.rint((ask[i] - px) / pt)) if pt > 0 else np.int32(0)
            low_spread = min(low_spread, spread)
            real += np.uint64(volume[i])
        b_sym[j] = s
        b_time[j] = time_msc[a] // 60_000 * 60
        b_open[j] = bid[a]
        b_high[j] = hi
        b_low[j] = lo
        b_close[j] = bid[b - 1]
        b_ticks[j] = b - a
        b_spread[j] = low_spread
        b_real[j] = real
    return b_sym, b_time, b_open, b_high, b_low, b_close, b_ticks, b_spread, b_real


@nb.njit(cache=True, nogil=True)
def fold_day(sym: np.ndarray, time_msc: np.ndarray, bid: np.ndarray, ask: np.ndarray,
             day: np.ndarray, first_bid: np.ndarray, bidhigh: np.ndarray, bidlow: np.ndarray,
             askhigh: np.ndarray, asklow: np.ndarray) -> None:
    """Fold grouped ticks into per-symbol day statistics, in place: a symbol's ticks of
    its latest UTC day among them count (ticks may cross midnight); a later day than the
    stored one starts afresh (its first bid, highs and lows)."""
    n = len(sym)
    a = 0
    while a < n:
        s = sym[a]
        b = a
        latest = time_msc[a] // 86_400_000
        while b < n and sym[b] == s:
            d = time_msc[b] // 86_400_000
            if d > latest:
                latest = d
            b += 1
        fresh = latest != day[s]
        if fresh:
            day[s] = latest
            bidhigh[s] = -np.inf
            askhigh[s] = -np.inf
            bidlow[s] = np.inf
            asklow[s] = np.inf
        for i in range(a, b):
            if time_msc[i] // 86_400_000 != latest:
                continue
            if fresh:
                first_bid[s] = bid[i]
                fresh = False
            if bid[i] > bidhigh[s]:
                bidhigh[s] = bid[i]
            if bid[i] < bidlow[s]:
                bidlow[s] = bid[i]
            if ask[i] > askhigh[s]:
                askhigh[s] = ask[i]
            if ask[i] < asklow[s]:
                asklow[s] = ask[i]
        a = b
