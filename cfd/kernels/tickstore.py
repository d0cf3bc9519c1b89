"""Kernels of the tick recorder's flush: grouping ticks by symbol, M1 bars and the day's
statistics, each one pass over the columns and without the GIL (``nogil``), so the writer
thread keeps running while the recorder's thread works.

Inputs are plain columns: ``sym`` (int32 symbol indices), ``time_msc`` (int64), ``bid`` and
``ask`` (float64), ``volume`` (int64). "Grouped" columns hold each symbol's ticks together,
symbols in ascending index, each symbol's in arrival order.
"""

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


# ------------------------------------------------------------------ compact tick chunks
# A chunk's body, tick by tick: zigzag varints of the time step (ms), the bid's step and the
# spread (both in the symbol's price steps) and the flags.


@nb.njit(cache=True, nogil=True, inline="always")
def _put(buf: np.ndarray, at: int, v: np.int64) -> int:
    u = np.uint64((v << 1) ^ (v >> 63))  # zigzag
    while u >= 0x80:
        buf[at] = np.uint8((u & 0x7F) | 0x80)
        u >>= np.uint64(7)
        at += 1
    buf[at] = np.uint8(u)
    return at + 1


@nb.njit(cache=True, nogil=True, inline="always")
def _get(buf: np.ndarray, at: int) -> tuple[np.int64, int]:
    u = np.uint64(0)
    shift = np.uint64(0)
    while True:
        b = np.uint64(buf[at])
        at += 1
        u |= (b & np.uint64(0x7F)) << shift
        if b < 0x80:
            break
        shift += np.uint64(7)
    v = np.int64(u >> np.uint64(1)) ^ -np.int64(u & np.uint64(1))
    return v, at


@nb.njit(cache=True, nogil=True)
def encode_chunks(time_msc: np.ndarray, bid: np.ndarray, ask: np.ndarray, flags: np.ndarray,
                  starts: np.ndarray, steps: np.ndarray, scale: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bodies of compact chunks of grouped ticks, group ``g`` being rows
    ``starts[g]:starts[g + 1]`` with price step ``steps[g]`` (price units of ``scale`` per
    1.0). Returns one buffer, each group's end offset in it (bodies back to back) and
    whether the group could be encoded: its bid and ask exactly ``k * step / scale``
    (when not, the group's body is empty and the caller encodes it otherwise)."""
    m = len(starts) - 1
    n = len(time_msc)
    buf = np.empty(n * 40 + 1, np.uint8)  # at most 10 bytes a varint
    ends = np.empty(m, np.int64)
    ok = np.ones(m, np.bool_)
    at = 0
    for g in range(m):
        a, b = starts[g], starts[g + 1]
        step = steps[g]
        for i in range(a, b):  # every price on the grid, exactly?
            ub = np.rint(bid[i] * scale)
            ua = np.rint(ask[i] * scale)
            if (ub / scale != bid[i] or ua / scale != ask[i] or abs(ub) > 2.0**53
                    or abs(ua) > 2.0**53 or np.int64(ub) % step != 0
                    or np.int64(ua) % step != 0):
                ok[g] = False
                break
        if not ok[g]:
            ends[g] = at
            continue
        prev_t = np.int64(0)
        prev_b = np.int64(0)
        for i in range(a, b):
            qb = np.int64(np.rint(bid[i] * scale)) // step
            qa = np.int64(np.rint(ask[i] * scale)) // step
            at = _put(buf, at, time_msc[i] - prev_t)
            at = _put(buf, at, qb - prev_b)
            at = _put(buf, at, qa - qb)
            at = _put(buf, at, np.int64(flags[i]))
            prev_t = time_msc[i]
            prev_b = qb
        ends[g] = at
    return buf[:at], ends, ok


@nb.njit(cache=True, nogil=True)
def decode_chunk(buf: np.ndarray, n: int, step: int, scale: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Inverse of one group of :func:`encode_chunks`: time_msc, bid, ask, flags and the
    bytes read."""
    time_msc = np.empty(n, np.int64)
    bid = np.empty(n, np.float64)
    ask = np.empty(n, np.float64)
    flags = np.empty(n, np.int32)
    at = 0
    t = np.int64(0)
    qb = np.int64(0)
    for i in range(n):
        d, at = _get(buf, at)
        t += d
        d, at = _get(buf, at)
        qb += d
        spread, at = _get(buf, at)
        f, at = _get(buf, at)
        time_msc[i] = t
        bid[i] = (qb * step) / scale
        ask[i] = ((qb + spread) * step) / scale
        flags[i] = np.int32(f)
    return time_msc, bid, ask, flags, at
