"""Trading sessions: when a symbol's market is open.

Kinds (:class:`Session`; the numbers are the indices of ``cfd.instruments.spec.SESSION_KINDS``,
which the symbol table stores as ``int8``):

* ``US_REGULAR`` -- 09:30-16:00 America/New_York, Monday to Friday, NYSE holidays closed,
  13:00 close on early-close days.
* ``US_EXTENDED`` -- 04:00-20:00 New York time on the same days (17:00 on early-close days).
* ``ALWAYS`` -- 24/7.

The NYSE calendar is computed by rule for any year (:func:`nyse_holidays`,
:func:`nyse_early_closes`): New Year's Day (Sunday -> Monday; Saturday is not observed, NYSE
rule 7.2), Martin Luther King Jr. Day (3rd Monday of January, from 1998), Washington's Birthday
(3rd Monday of February), Good Friday, Memorial Day (last Monday of May), Juneteenth (from 2022),
Independence Day, Labor Day (1st Monday of September), Thanksgiving (4th Thursday of November)
and Christmas; fixed-date holidays on a Saturday move to Friday, on a Sunday to Monday.
Early closes (13:00): July 3 and December 24 when they are weekdays and not holidays, and the
day after Thanksgiving. Unscheduled closures (storms, national mourning) come from
``data/us_holidays.csv``.

Session boundaries are turned into UTC milliseconds once per year (zoneinfo handles DST) and
kept as sorted ``opens``/``closes`` arrays, so :meth:`SessionCalendar.open_mask` is one
``searchsorted`` per kind, and the scalar :meth:`SessionCalendar.is_open` answers from the last
interval it looked up.
"""

from __future__ import annotations

import csv
import datetime as dt
from enum import IntEnum
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

import numpy as np

__all__ = [
    "NEVER",
    "NEW_YORK",
    "Session",
    "SessionCalendar",
    "default_calendar",
    "easter_sunday",
    "is_open",
    "next_close",
    "next_open",
    "nyse_early_closes",
    "nyse_holidays",
    "open_mask",
    "special_closures",
]

NEW_YORK = ZoneInfo("America/New_York")
NEVER = int(np.iinfo(np.int64).max)  # next_close of a market that never closes
_MIN_YEAR, _MAX_YEAR = 1900, 2500
_EARLY_CLOSE = dt.time(13, 0)


class Session(IntEnum):
    US_REGULAR = 0
    US_EXTENDED = 1
    ALWAYS = 2


_HOURS = {  # kind -> (open, close, close on an early-close day), New York wall-clock time
    Session.US_REGULAR: (dt.time(9, 30), dt.time(16, 0), _EARLY_CLOSE),
    Session.US_EXTENDED: (dt.time(4, 0), dt.time(20, 0), dt.time(17, 0)),
}


# ---------------------------------------------------------------------------------------------
# The NYSE calendar, by rule
# ---------------------------------------------------------------------------------------------


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous "Meeus/Jones/Butcher" computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-based) given weekday (Monday=0) of a month; n=-1 for the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: dt.date) -> dt.date:
    """Saturday -> Friday before, Sunday -> Monday after."""
    if day.weekday() == 5:
        return day - dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + dt.timedelta(days=1)
    return day


@lru_cache(maxsize=1)
def special_closures() -> dict[dt.date, str]:
    """Unscheduled full-day closures from ``data/us_holidays.csv`` (date -> reason)."""
    text = resources.files("cfd.instruments").joinpath("data/us_holidays.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {dt.date.fromisoformat(r["date"]): r["reason"] for r in rows}


@lru_cache(maxsize=256)
def _rule_holidays(year: int) -> dict[dt.date, str]:
    h: dict[dt.date, str] = {}
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year's Day is not observed (NYSE rule 7.2)
        h[_observed(new_year)] = "New Year's Day"
    if year >= 1998:
        h[_nth_weekday(year, 1, 0, 3)] = "Martin Luther King Jr. Day"
    h[_nth_weekday(year, 2, 0, 3)] = "Washington's Birthday"
    h[easter_sunday(year) - dt.timedelta(days=2)] = "Good Friday"
    h[_nth_weekday(year, 5, 0, -1)] = "Memorial Day"
    if year >= 2022:
        h[_observed(dt.date(year, 6, 19))] = "Juneteenth"
    h[_observed(dt.date(year, 7, 4))] = "Independence Day"
    h[_nth_weekday(year, 9, 0, 1)] = "Labor Day"
    h[_nth_weekday(year, 11, 3, 4)] = "Thanksgiving Day"
    h[_observed(dt.date(year, 12, 25))] = "Christmas Day"
    return h


def nyse_holidays(year: int) -> dict[dt.date, str]:
    """Full-day NYSE closures on weekdays of ``year`` (date -> name), rules plus the CSV."""
    h = dict(_rule_holidays(year))
    h.update({d: r for d, r in special_closures().items() if d.year == year})
    return dict(sorted(h.items()))


def nyse_early_closes(year: int) -> dict[dt.date, dt.time]:
    """NYSE 13:00 closes of ``year`` (date -> regular-session close time)."""
    closed = nyse_holidays(year)
    candidates = [
        dt.date(year, 7, 3),
        _nth_weekday(year, 11, 3, 4) + dt.timedelta(days=1),
        dt.date(year, 12, 24),
    ]
    return {d: _EARLY_CLOSE for d in candidates if d.weekday() < 5 and d not in closed}


# ---------------------------------------------------------------------------------------------
# Session tables
# ---------------------------------------------------------------------------------------------


def _msc(day: dt.date, wall: dt.time) -> int:
    """New York wall-clock time on ``day`` -> ms since the epoch (UTC)."""
    return int(dt.datetime.combine(day, wall, tzinfo=NEW_YORK).timestamp() * 1000)


def _year_start_msc(year: int) -> int:
    return _msc(dt.date(year, 1, 1), dt.time(0, 0))


_RANGE_MSC = (_year_start_msc(_MIN_YEAR), _year_start_msc(_MAX_YEAR + 1))


@lru_cache(maxsize=1024)
def _year_table(kind: Session, year: int) -> tuple[np.ndarray, np.ndarray]:
    open_t, close_t, early_t = _HOURS[kind]
    closed = nyse_holidays(year)
    early = nyse_early_closes(year)
    opens, closes = [], []
    day = dt.date(year, 1, 1)
    while day.year == year:
        if day.weekday() < 5 and day not in closed:
            opens.append(_msc(day, open_t))
            closes.append(_msc(day, early_t if day in early else close_t))
        day += dt.timedelta(days=1)
    return np.array(opens, dtype=np.int64), np.array(closes, dtype=np.int64)


class SessionCalendar:
    """Open/closed answers for session kinds, with per-year boundary tables cached.

    Not thread-safe (the engine's single writer owns it); use one instance per thread.
    """

    def __init__(self) -> None:
        # kind -> (first year, last year, opens, closes, covered from msc, covered to msc)
        self._tables: dict[Session, tuple[int, int, np.ndarray, np.ndarray, int, int]] = {}
        # kind -> (from msc, to msc, is_open) of the last interval the scalar path found
        self._last: dict[Session, tuple[int, int, bool]] = {}

    # -- tables ---------------------------------------------------------------------------

    def _table(self, kind: Session, t_lo: int, t_hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Opens/closes covering every instant in ``[t_lo, t_hi]``."""
        tab = self._tables.get(kind)
        if tab is not None and tab[4] <= t_lo and t_hi < tab[5]:
            return tab[2], tab[3]
        if t_lo < _RANGE_MSC[0] or t_hi >= _RANGE_MSC[1]:
            raise ValueError(f"session tables cover years {_MIN_YEAR}-{_MAX_YEAR} only")
        y_lo = dt.datetime.fromtimestamp(t_lo / 1000, NEW_YORK).year
        y_hi = dt.datetime.fromtimestamp(t_hi / 1000, NEW_YORK).year
        if tab is not None:
            y_lo, y_hi = min(y_lo, tab[0]), max(y_hi, tab[1])
        parts = [_year_table(kind, y) for y in range(y_lo, y_hi + 1)]
        opens = np.concatenate([p[0] for p in parts])
        closes = np.concatenate([p[1] for p in parts])
        self._tables[kind] = (
            y_lo, y_hi, opens, closes, _year_start_msc(y_lo), _year_start_msc(y_hi + 1))
        return opens, closes

    def _locate(self, kind: Session, t: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Index of the last session opening at or before ``t`` (-1 if none), tables."""
        opens, closes = self._table(kind, t, t)
        return int(np.searchsorted(opens, t, side="right")) - 1, opens, closes

    # -- queries --------------------------------------------------------------------------

    def is_open(self, kind: int, time_msc: int) -> bool:
        """Whether a ``kind`` market is open at ``time_msc`` (sessions are ``[open, close)``)."""
        kind = Session(kind)
        if kind is Session.ALWAYS:
            return True
        t = int(time_msc)
        last = self._last.get(kind)
        if last is not None and last[0] <= t < last[1]:
            return last[2]
        i, opens, closes = self._locate(kind, t)
        if i >= 0 and t < closes[i]:
            self._last[kind] = (int(opens[i]), int(closes[i]), True)
            return True
        lo = int(closes[i]) if i >= 0 else _year_start_msc(self._tables[kind][0])
        if i + 1 < len(opens):
            self._last[kind] = (lo, int(opens[i + 1]), False)
        return False

    def is_open_array(self, kind: int, time_msc: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`is_open` for one kind and many times."""
        kind = Session(kind)
        t = np.asarray(time_msc, dtype=np.int64)
        if kind is Session.ALWAYS or t.size == 0:
            return np.full(t.shape, kind is Session.ALWAYS, dtype=bool)
        opens, closes = self._table(kind, int(t.min()), int(t.max()))
        i = np.searchsorted(opens, t, side="right") - 1
        return (i >= 0) & (t < closes[np.maximum(i, 0)])

    def open_mask(self, kinds: np.ndarray, time_msc: int | np.ndarray) -> np.ndarray:
        """Open flags for many symbols: ``kinds`` (int8 per symbol) broadcast with the times.

        With a scalar time the answer has one flag per symbol; with times shaped ``(m, 1)``
        and kinds ``(n,)`` it is an ``(m, n)`` grid.
        """
        kinds = np.asarray(kinds)
        if np.ndim(time_msc) == 0:  # one time: one answer per kind, then a table look-up
            if kinds.size and (kinds.min() < 0 or kinds.max() >= len(Session)):
                raise ValueError(f"unknown session kind in {np.unique(kinds)}")
            lut = np.array([self.is_open(kind, int(time_msc)) for kind in Session])
            return lut[kinds]
        k, t = np.broadcast_arrays(kinds, np.asarray(time_msc, dtype=np.int64))
        out = np.zeros(k.shape, dtype=bool)
        for kind in np.unique(k):
            sel = k == kind
            out[sel] = self.is_open_array(int(kind), t[sel])
        return out

    def _current_or_next(self, kind: Session, t: int) -> tuple[int, int]:
        """``(open, close)`` of the session open at ``t``, else of the next one."""
        i, opens, closes = self._locate(kind, t)
        if i >= 0 and t < closes[i]:
            return int(opens[i]), int(closes[i])
        while i + 1 >= len(opens):  # past the table: extend it by a year and look again
            opens, closes = self._table(kind, t, self._tables[kind][5] + 366 * 86_400_000)
        return int(opens[i + 1]), int(closes[i + 1])

    def next_open(self, kind: int, time_msc: int) -> int:
        """``time_msc`` if the market is open then, else the start of the next session."""
        kind = Session(kind)
        t = int(time_msc)
        if kind is Session.ALWAYS:
            return t
        return max(t, self._current_or_next(kind, t)[0])

    def next_close(self, kind: int, time_msc: int) -> int:
        """End of the session open at ``time_msc``, else of the next one (``NEVER`` for 24/7)."""
        kind = Session(kind)
        if kind is Session.ALWAYS:
            return NEVER
        return self._current_or_next(kind, int(time_msc))[1]

    def hours(self, kind: int, day: dt.date) -> tuple[int, int] | None:
        """``(open_msc, close_msc)`` of the session on New York date ``day``, None if closed."""
        kind = Session(kind)
        if kind is Session.ALWAYS:
            return _msc(day, dt.time(0, 0)), _msc(day + dt.timedelta(days=1), dt.time(0, 0))
        opens, closes = _year_table(kind, day.year)
        i = int(np.searchsorted(opens, _msc(day, dt.time(0, 0))))
        if i < len(opens) and opens[i] < _msc(day + dt.timedelta(days=1), dt.time(0, 0)):
            return int(opens[i]), int(closes[i])
        return None


_DEFAULT = SessionCalendar()


def default_calendar() -> SessionCalendar:
    """The module's shared calendar (used by the module-level functions)."""
    return _DEFAULT


def is_open(kind: int, time_msc: int) -> bool:
    return _DEFAULT.is_open(kind, time_msc)


def open_mask(kinds: np.ndarray, time_msc: int | np.ndarray) -> np.ndarray:
    return _DEFAULT.open_mask(kinds, time_msc)


def next_open(kind: int, time_msc: int) -> int:
    return _DEFAULT.next_open(kind, time_msc)


def next_close(kind: int, time_msc: int) -> int:
    return _DEFAULT.next_close(kind, time_msc)
