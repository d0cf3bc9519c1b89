"""MT5 timeframes: the ``TIMEFRAME_*`` numbers and the open time of the bar holding a time.

``TIMEFRAME_M1..M30`` are minutes; hours are ``n | 0x4000``, ``W1`` is ``1 | 0x8000`` and
``MN1`` is ``1 | 0xC000``. Times are UTC seconds; a week opens on Sunday 00:00 and a month
on its 1st, as MT5 charts do.
"""

from __future__ import annotations

import numpy as np

H, W, MN = 0x4000, 0x8000, 0xC000
D1 = H | 24
W1 = W | 1
MN1 = MN | 1
MINUTES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
HOURS = (1, 2, 3, 4, 6, 8, 12, 24)
TIMEFRAMES = frozenset([*MINUTES, *(H | h for h in HOURS), W1, MN1])
_DAY = 86_400


def seconds(timeframe: int) -> int:
    """Nominal length of a bar (a month counts 31 days: an upper bound for windows)."""
    if timeframe == MN1:
        return 31 * _DAY
    if timeframe == W1:
        return 7 * _DAY
    return (timeframe & 0x3FFF) * 3600 if timeframe & H else timeframe * 60


def bar_open(timeframe: int, t: np.ndarray | int) -> np.ndarray:
    """Open time (seconds) of the ``timeframe`` bar holding each second of ``t``."""
    t = np.asarray(t, dtype=np.int64)
    if timeframe == MN1:
        return t.astype("datetime64[s]").astype("datetime64[M]").astype(
            "datetime64[s]").astype(np.int64)
    if timeframe == W1:
        day = t // _DAY
        return (day - (day + 4) % 7) * _DAY  # 1970-01-01 was a Thursday: Sunday is +3
    size = seconds(timeframe)
    return t - t % size
