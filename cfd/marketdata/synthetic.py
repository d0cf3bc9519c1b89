"""Synthetic price history, labelled as such: for demos and tests, never for real trading.

* :func:`daily_bars`: D1 bars on the US trading days of a date range, a seeded geometric
  random walk that ends at a given price (so history joins the live quotes).
* :func:`intraday`: M1 bars for days of synthetic D1 bars, 390 regular-session minutes
  (09:30-16:00 New York), seeded by symbol and day: the same request always gets the same
  bars, and they fold back into their D1 bar exactly (same open, high, low and close).

* :func:`ticks`: four ticks a generated M1 bar (open, the nearer extreme, the other one,
  close, 15 s apart), so ``copy_ticks_*`` answer on synthetic days too.

All are deterministic and vectorised; nothing here is stored except the D1 bars.
"""

from __future__ import annotations

import datetime as dt
import zlib
from functools import lru_cache

import numpy as np

from cfd.marketdata.bars import RATE_DTYPE, TICK_DTYPE

NEW_YORK = "America/New_York"
SESSION_MINUTES = 390
_DAY = 86_400


def _seed(symbol: str, *extra: int) -> list[int]:
    return [zlib.crc32(symbol.encode()), *extra]


@lru_cache(maxsize=4096)
def _session_open(day: int) -> int:
    """UTC seconds of 09:30 New York on UTC day number ``day``."""
    from zoneinfo import ZoneInfo

    d = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    return int(dt.datetime.combine(d, dt.time(9, 30), tzinfo=ZoneInfo(NEW_YORK)).timestamp())


def trading_days(first: dt.date, last: dt.date) -> np.ndarray:
    """UTC day numbers of the NYSE trading days in ``[first, last]``."""
    from cfd.instruments.sessions import nyse_holidays

    days = np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    closed = set()
    for y in range(first.year, last.year + 1):
        closed.update(nyse_holidays(y))
    keep = (weekday < 5) & ~np.isin(days, np.array(sorted(closed), dtype="datetime64[D]"))
    return days[keep].astype(np.int64)


def daily_bars(symbol: str, days: np.ndarray, end_price: float, *, digits: int = 2,
               vol_annual: float = 0.35, seed: int = 7, volume: int = 1_000_000
               ) -> np.ndarray:
    """D1 bars (open time 00:00 UTC) on ``days``, a random walk whose last close is about
    ``end_price``; spread 1 point."""
    n = len(days)
    rng = np.random.default_rng(_seed(symbol, seed))
    sigma = vol_annual / np.sqrt(252)
    ret = rng.normal(0.0, sigma, n)
    gap = rng.normal(0.0, sigma / 3, n)
    close = end_price * np.exp(np.cumsum(ret) - ret.sum())
    prev = np.r_[close[0] / np.exp(ret[0]), close[:-1]]
    open_ = prev * np.exp(gap)
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    out = np.zeros(n, RATE_DTYPE)
    out["time"] = days * _DAY
    out["open"], out["high"] = np.round(open_, digits), np.round(high, digits)
    out["low"], out["close"] = np.round(low, digits), np.round(close, digits)
    out["high"] = np.maximum.reduce([out["high"], out["open"], out["close"]])
    out["low"] = np.minimum.reduce([out["low"], out["open"], out["close"]])
    out["tick_volume"] = rng.integers(volume // 2, volume * 2, n)
    out["spread"] = 1
    return out


def intraday(symbol: str, d1: np.ndarray, point: float) -> np.ndarray:
    """M1 bars of the regular session of each D1 bar's day, folding back into it."""
    n, m = len(d1), SESSION_MINUTES
    if n == 0:
        return np.empty(0, RATE_DTYPE)
    day = d1["time"] // _DAY
    out = np.zeros((n, m), RATE_DTYPE)
    starts = np.array([_session_open(int(d)) for d in day], dtype=np.int64)
    out["time"] = starts[:, None] + np.arange(m, dtype=np.int64) * 60
    o, h, lo, c = (d1[k][:, None] for k in ("open", "high", "low", "close"))
    # a Brownian bridge from open to close per day, one seeded stream per (symbol, day)
    walk = np.empty((n, m))
    ih, il = np.empty(n, np.int64), np.empty(n, np.int64)
    for i, d in enumerate(day.tolist()):
        rng = np.random.default_rng(_seed(symbol, 1, int(d)))
        walk[i] = np.cumsum(rng.normal(0.0, 1.0, m))
        ih[i], il[i] = rng.choice(m, 2, replace=False)
    k = np.arange(1, m + 1) / m
    bridge = walk - k * walk[:, -1:]
    scale = (h - lo) / 4 / np.maximum(np.abs(bridge).max(axis=1, keepdims=True), 1e-9)
    closes = np.clip(o + (c - o) * k + bridge * scale, lo, h)
    closes[:, -1] = c[:, 0]
    digits = max(int(round(-np.log10(point))), 0) if point > 0 else 2
    closes = np.round(closes, digits)
    opens = np.concatenate([o, closes[:, :-1]], axis=1)
    out["open"], out["close"] = opens, closes
    out["high"] = np.maximum(opens, closes)
    out["low"] = np.minimum(opens, closes)
    rows = np.arange(n)
    out["high"][rows, ih] = h[:, 0]
    out["low"][rows, il] = lo[:, 0]
    vol = d1["tick_volume"].astype(np.uint64)
    out["tick_volume"] = (vol // m)[:, None]
    out["tick_volume"][:, -1] += vol % m  # the day's volume, whole
    out["spread"] = d1["spread"][:, None]
    return out.reshape(-1)


def ticks(m1: np.ndarray, point: float) -> np.ndarray:
    """Quote ticks of M1 bars: at :00 the open, :15 and :30 the low and high (high first
    on a falling bar), :45 the close; ask = bid + the bar's spread (at least a point)."""
    n = len(m1)
    out = np.zeros((n, 4), TICK_DTYPE)
    if n == 0:
        return out.reshape(-1)
    up = (m1["close"] >= m1["open"])[:, None]
    out["bid"] = np.stack([m1["open"], np.where(up[:, 0], m1["low"], m1["high"]),
                           np.where(up[:, 0], m1["high"], m1["low"]), m1["close"]], axis=1)
    out["time_msc"] = m1["time"][:, None] * 1000 + np.arange(4) * 15_000
    out["time"] = out["time_msc"] // 1000
    digits = max(int(round(-np.log10(point))), 0) if point > 0 else 2
    out["ask"] = np.round(out["bid"] + np.maximum(m1["spread"], 1)[:, None] * point, digits)
    out["flags"] = 6  # TICK_FLAG_BID | TICK_FLAG_ASK
    return out.reshape(-1)
