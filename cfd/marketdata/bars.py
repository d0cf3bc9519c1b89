"""MT5 bars and ticks as numpy record arrays, and the one reduction that builds bars.

The dtypes are the MetaTrader5 package's: ``copy_rates_*`` return ``RATE_DTYPE`` records
(time, open, high, low, close, tick_volume, spread, real_volume) and ``copy_ticks_*``
``TICK_DTYPE`` records (time, bid, ask, last, volume, time_msc, flags, volume_real).

Bars are built on bid prices (MT5's ``SYMBOL_CHART_MODE_BID``). One function,
:func:`combine`, folds time-ordered bars that share an open time into one bar (open of the
first, close of the last, high/low extremes, volumes summed, the smallest spread). It makes M1
bars from ticks (each tick a one-tick bar), merges M1 bars stored earlier with new ones, and
builds every higher timeframe from M1 (each bar's time moved to its timeframe's open time).
"""

from __future__ import annotations

import numpy as np

from cfd.marketdata.timeframes import bar_open

RATE_DTYPE = np.dtype([("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                       ("close", "<f8"), ("tick_volume", "<u8"), ("spread", "<i4"),
                       ("real_volume", "<u8")])
TICK_DTYPE = np.dtype([("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"),
                       ("volume", "<u8"), ("time_msc", "<i8"), ("flags", "<u4"),
                       ("volume_real", "<f8")])


def combine(bars: np.ndarray) -> np.ndarray:
    """Fold runs of equal ``time`` in ``bars`` (ordered by time, older first within a time)
    into one bar each."""
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


def m1_from_ticks(ticks: np.ndarray, point: float) -> np.ndarray:
    """M1 bars of one symbol's ticks (``TICK_DTYPE``, in time order); spread in points."""
    one = np.empty(len(ticks), RATE_DTYPE)
    one["time"] = ticks["time_msc"] // 60_000 * 60
    for k in ("open", "high", "low", "close"):
        one[k] = ticks["bid"]
    one["tick_volume"] = 1
    one["spread"] = np.rint((ticks["ask"] - ticks["bid"]) / point) if point else 0
    one["real_volume"] = ticks["volume"]
    return combine(one)


def merge(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """Bars of ``older`` and ``newer`` together (a minute in both is folded, older first)."""
    both = np.concatenate([older.astype(RATE_DTYPE, copy=False),
                           newer.astype(RATE_DTYPE, copy=False)])
    order = np.argsort(both["time"], kind="stable")
    return combine(both[order])


def resample(bars: np.ndarray, timeframe: int) -> np.ndarray:
    """Bars of ``timeframe`` from time-ordered bars of a smaller timeframe (M1 or D1)."""
    moved = np.array(bars, dtype=RATE_DTYPE)
    moved["time"] = bar_open(timeframe, moved["time"])
    return combine(moved)
