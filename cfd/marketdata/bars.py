"""MT5 bars and ticks as numpy record arrays, and the one reduction that builds bars.

The dtypes are the MetaTrader5 package's: ``copy_rates_*`` return ``RATE_DTYPE`` records
(time, open, high, low, close, tick_volume, spread, real_volume) and ``copy_ticks_*``
``TICK_DTYPE`` records (time, bid, ask, last, volume, time_msc, flags, volume_real).

Bars are built on bid prices (MT5's ``SYMBOL_CHART_MODE_BID``). One function,
:func:`combine`, folds time-ordered bars that share an open time into one bar (open of the
first, close of the last, high/low extremes, volumes summed, the smallest spread). It merges
M1 bars stored earlier with new ones and builds every higher timeframe from M1 (each bar's
time moved to its timeframe's open time); :func:`m1_by_symbol` is its twin on tick columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cfd.constants import TickFlag
from cfd.kernels.tickstore import m1_bars
from cfd.marketdata.timeframes import bar_open

RATE_DTYPE = np.dtype([("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                       ("close", "<f8"), ("tick_volume", "<u8"), ("spread", "<i4"),
                       ("real_volume", "<u8")])
TICK_DTYPE = np.dtype([("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"),
                       ("volume", "<u8"), ("time_msc", "<i8"), ("flags", "<u4"),
                       ("volume_real", "<f8")])


def combine(bars: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """Fold runs of equal ``time`` in ``bars`` (and ``more``, appended: all ordered by time,
    older first within a time) into one bar each."""
    if more:
        bars = np.concatenate([bars, *more])
    n = len(bars)
    if n == 0:
        return np.empty(0, RATE_DTYPE)
    t = bars["time"]
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    if len(starts) == n:
        return np.array(bars, dtype=RATE_DTYPE)
    ends = np.r_[starts[1:], n] - 1
    out = np.empty(len(starts), RATE_DTYPE)
    out["time"] = t[starts]
    out["open"] = bars["open"][starts]
    out["close"] = bars["close"][ends]
    out["high"] = np.maximum.reduceat(bars["high"], starts)
    out["low"] = np.minimum.reduceat(bars["low"], starts)
    out["tick_volume"] = np.add.reduceat(bars["tick_volume"], starts)
    out["spread"] = np.minimum.reduceat(bars["spread"], starts)
    out["real_volume"] = np.add.reduceat(bars["real_volume"], starts)
    return out


def m1_by_symbol(names: Sequence[str], ticks: Any, points: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """M1 bars of many symbols' ticks at once. ``ticks``: columns (a ``TickBatch``) grouped
    by ascending symbol index (into ``names`` and ``points``), each symbol's ticks in time
    order. One pass over the columns (a kernel, without the GIL), a bar per run of ticks
    sharing symbol and minute: the same fold as :func:`combine`, without a record per
    tick (``tests/test_marketdata.py`` holds them equal)."""
    if not len(ticks.symbol):
        return {}
    pt = np.ascontiguousarray(points, dtype=np.float64)
    s, *cols = m1_bars(ticks.symbol, ticks.time_msc, ticks.bid, ticks.ask, ticks.volume, pt)
    bars = np.empty(len(s), RATE_DTYPE)
    for name, col in zip(RATE_DTYPE.names, cols, strict=True):
        bars[name] = col
    cut = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True]).tolist()
    return {names[int(s[a])]: bars[a:b] for a, b in zip(cut[:-1], cut[1:], strict=True)}


def as_ticks(batch: Any) -> np.ndarray:
    """``TickBatch`` columns as MT5 ``TICK_DTYPE`` records."""
    out = np.empty(len(batch.symbol), TICK_DTYPE)
    out["time_msc"] = batch.time_msc
    out["time"] = batch.time_msc // 1000
    out["bid"], out["ask"], out["last"] = batch.bid, batch.ask, batch.last
    out["volume"], out["flags"] = batch.volume, batch.flags
    out["volume_real"] = batch.volume_real
    return out


def merge(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """Bars of ``older`` and ``newer`` together (a minute in both is folded, older first)."""
    if not len(older) or not len(newer):
        return np.concatenate([older, newer]).astype(RATE_DTYPE, copy=False)
    t_new = newer["time"]
    if t_new[0] >= older["time"][-1] and (len(t_new) < 2 or np.all(t_new[1:] > t_new[:-1])):
        # the usual case (bars arriving in time order): fold at most the one shared minute
        shared = int(t_new[0] == older["time"][-1])
        k = len(older)
        out = np.empty(k + len(newer) - shared, RATE_DTYPE)
        out[:k] = older
        out[k - shared:] = newer
        if shared:  # time, open, high, low, close, tick_volume, spread, real_volume
            a, b = older[-1].item(), newer[0].item()
            out[k - 1] = (b[0], a[1], max(a[2], b[2]), min(a[3], b[3]), b[4], a[5] + b[5],
                          min(a[6], b[6]), a[7] + b[7])
        return out
    both = np.concatenate([older, newer])
    order = np.argsort(both["time"], kind="stable")
    return combine(both[order])


def resample(bars: np.ndarray, timeframe: int) -> np.ndarray:
    """Bars of ``timeframe`` from time-ordered bars of a smaller timeframe (M1 or D1)."""
    moved = np.array(bars, dtype=RATE_DTYPE)
    moved["time"] = bar_open(timeframe, moved["time"])
    return combine(moved)


COPY_TICKS_ALL, COPY_TICKS_INFO, COPY_TICKS_TRADE = -1, 1, 2


def select_ticks(ticks: np.ndarray, flags: int) -> np.ndarray:
    """``COPY_TICKS_INFO`` (1): ticks changing bid or ask; ``COPY_TICKS_TRADE`` (2): ticks
    changing last or volume; ``COPY_TICKS_ALL`` (-1): all."""
    if flags == COPY_TICKS_INFO:
        return ticks[(ticks["flags"] & int(TickFlag.BID | TickFlag.ASK)) != 0]
    if flags == COPY_TICKS_TRADE:
        return ticks[(ticks["flags"] & int(TickFlag.LAST | TickFlag.VOLUME)) != 0]
    return ticks
