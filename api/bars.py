"""Bars (copy_rates_range) from recorded ticks, on bid prices as MT5's BID chart mode."""

from __future__ import annotations

import datetime as dt

H, W, MN = 0x4000, 0x8000, 0xC000
TIMEFRAMES = {1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, H | 1, H | 2, H | 3, H | 4, H | 6, H | 8,
              H | 12, H | 24, W | 1, MN | 1}


def bar_start(timeframe: int, t: int) -> int:
    """Start (seconds) of the bar of ``timeframe`` holding second ``t`` (UTC; weeks begin
    on Sunday as in MT5, months on the 1st)."""
    if timeframe == MN | 1:
        d = dt.datetime.fromtimestamp(t, dt.UTC)
        return int(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp())
    if timeframe == W | 1:
        day = t // 86_400
        return (day - (day + 4) % 7) * 86_400
    size = (timeframe & 16383) * 3600 if timeframe & H else timeframe * 60
    return t - t % size


def rates(ticks: list[dict], timeframe: int, point: float) -> list[dict]:
    """OHLC bars: time, open, high, low, close, tick_volume, spread (points), real_volume."""
    out: list[dict] = []
    cur: dict | None = None
    for tk in ticks:
        t0 = bar_start(timeframe, int(tk["time_msc"]) // 1000)
        bid = float(tk["bid"])
        spread = int(round((float(tk["ask"]) - bid) / point)) if point else 0
        if cur is None or cur["time"] != t0:
            cur = {"time": t0, "open": bid, "high": bid, "low": bid, "close": bid,
                   "tick_volume": 0, "spread": spread, "real_volume": 0}
            out.append(cur)
        cur["high"] = max(cur["high"], bid)
        cur["low"] = min(cur["low"], bid)
        cur["close"] = bid
        cur["tick_volume"] += 1
        cur["spread"] = min(cur["spread"], spread)
    return out
