"""Market data functions of the MetaTrader5 package: copy_rates_*, copy_ticks_*,
market_book_*.

Bars and ticks come back as numpy record arrays with MT5's dtypes, read straight from the
server's binary answer (``format=numpy``), so 100k bars cost no JSON. Market depth: the
server synthesises a ladder from the top of book (``symbol_info().bank`` says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from api.mt5._records import BookInfo, build
from api.mt5._transport import call, fail, invalid, is_int, is_str, seconds

RATE_DTYPE = np.dtype([("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                       ("close", "<f8"), ("tick_volume", "<u8"), ("spread", "<i4"),
                       ("real_volume", "<u8")])
TICK_DTYPE = np.dtype([("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"),
                       ("volume", "<u8"), ("time_msc", "<i8"), ("flags", "<u4"),
                       ("volume_real", "<f8")])
_TIMEFRAMES = frozenset([1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30,
                         *(0x4000 | h for h in (1, 2, 3, 4, 6, 8, 12, 24)), 0x8001, 0xC001])
_COPY_FLAGS = (-1, 1, 2)  # COPY_TICKS_ALL, COPY_TICKS_INFO, COPY_TICKS_TRADE
_books: set[str] = set()


def _records(path: str, params: dict, dtype: np.dtype) -> Any:
    data = call("GET", path, raw=True, params={**params, "format": "numpy"})
    if data is None:
        return None
    return np.frombuffer(data, dtype).copy()


def _timeframe(symbol: Any, timeframe: Any) -> bool:
    if not is_str(symbol, "symbol"):
        return False
    if not isinstance(timeframe, int) or timeframe not in _TIMEFRAMES:
        invalid("timeframe")
        return False
    return True


def copy_rates_from(symbol: str, timeframe: int, date_from: Any, count: int) -> Any:
    """``count`` bars opening at or before ``date_from`` (datetime or seconds), oldest
    first."""
    if not _timeframe(symbol, timeframe) or not is_int(count, "count"):
        return None
    t0 = seconds(date_from, "date_from")
    if t0 is None:
        return None
    return _records("/v1/copy_rates_from", {"symbol": symbol, "timeframe": timeframe,
                                            "date_from": t0, "count": count}, RATE_DTYPE)


def copy_rates_from_pos(symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
    """``count`` bars from the ``start_pos``-th bar back (0: the current bar)."""
    if not _timeframe(symbol, timeframe) or not is_int(start_pos, "start_pos") \
            or not is_int(count, "count"):
        return None
    return _records("/v1/copy_rates_from_pos", {"symbol": symbol, "timeframe": timeframe,
                                                "start_pos": start_pos, "count": count},
                    RATE_DTYPE)


def copy_rates_range(symbol: str, timeframe: int, date_from: Any, date_to: Any) -> Any:
    """Bars opening in ``[date_from, date_to]``."""
    if not _timeframe(symbol, timeframe):
        return None
    t0, t1 = seconds(date_from, "date_from"), seconds(date_to, "date_to")
    if t0 is None or t1 is None:
        return None
    return _records("/v1/copy_rates_range", {"symbol": symbol, "timeframe": timeframe,
                                             "date_from": t0, "date_to": t1}, RATE_DTYPE)


def _flags(flags: Any) -> bool:
    if not isinstance(flags, int) or isinstance(flags, bool) or flags not in _COPY_FLAGS:
        invalid("flags")
        return False
    return True


def copy_ticks_from(symbol: str, date_from: Any, count: int, flags: int) -> Any:
    """The first ``count`` ticks at or after ``date_from`` (``COPY_TICKS_ALL``, ``_INFO``:
    bid/ask changes, ``_TRADE``: last/volume changes)."""
    if not is_str(symbol, "symbol") or not is_int(count, "count") or not _flags(flags):
        return None
    t0 = seconds(date_from, "date_from")
    if t0 is None:
        return None
    return _records("/v1/copy_ticks_from", {"symbol": symbol, "date_from": t0,
                                            "count": count, "flags": flags}, TICK_DTYPE)


def copy_ticks_range(symbol: str, date_from: Any, date_to: Any, flags: int) -> Any:
    """Ticks in ``[date_from, date_to]``."""
    if not is_str(symbol, "symbol") or not _flags(flags):
        return None
    t0, t1 = seconds(date_from, "date_from"), seconds(date_to, "date_to")
    if t0 is None or t1 is None:
        return None
    return _records("/v1/copy_ticks_range", {"symbol": symbol, "date_from": t0,
                                             "date_to": t1, "flags": flags}, TICK_DTYPE)


def market_book_add(symbol: str) -> bool:
    """Subscribe to the symbol's market depth (known symbols only)."""
    if not is_str(symbol, "symbol"):
        return False
    if call("GET", f"/v1/symbol_info_tick/{symbol}") is None:
        return False
    _books.add(symbol)
    return True


def market_book_get(symbol: str) -> tuple[BookInfo, ...] | None:
    """The depth of a subscribed symbol: sell levels first, prices descending."""
    if not is_str(symbol, "symbol"):
        return None
    if symbol not in _books:
        fail(-1, f"Terminal: Call failed, market_book_add({symbol!r}) first")
        return None
    d = call("GET", f"/v1/market_book_get/{symbol}")
    return None if d is None else tuple(build(BookInfo, x) for x in d)


def market_book_release(symbol: str) -> bool:
    if not is_str(symbol, "symbol"):
        return False
    if symbol not in _books:
        fail(-1, "Terminal: Call failed")
        return False
    _books.discard(symbol)
    fail(1, "Success")
    return True
