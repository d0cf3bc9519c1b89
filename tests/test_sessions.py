"""Trading sessions: NYSE calendar by rule, DST, early closes, vectorised masks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfd.instruments.sessions import (
    NEVER,
    NEW_YORK,
    Session,
    SessionCalendar,
    easter_sunday,
    is_open,
    next_close,
    next_open,
    nyse_early_closes,
    nyse_holidays,
    open_mask,
)

D = dt.date
UTC = dt.UTC
REG, EXT, ALW = Session.US_REGULAR, Session.US_EXTENDED, Session.ALWAYS


def ny(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    """New York wall-clock time -> ms since epoch."""
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=NEW_YORK).timestamp() * 1000)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp() * 1000)


def test_session_numbers_match_the_symbol_table() -> None:
    from cfd.instruments.spec import SESSION_KINDS

    assert [Session[name].value for name in SESSION_KINDS] == list(range(len(SESSION_KINDS)))


@pytest.mark.parametrize(
    "year,easter",
    [(2000, D(2000, 4, 23)), (2019, D(2019, 4, 21)), (2024, D(2024, 3, 31)),
     (2025, D(2025, 4, 20)), (2026, D(2026, 4, 5)), (2038, D(2038, 4, 25)),
     (2285, D(2285, 3, 22))],  # 2038: latest possible date; 2285: earliest
)
def test_easter(year: int, easter: dt.date) -> None:
    assert easter_sunday(year) == easter


def test_holidays_2026() -> None:
    assert list(nyse_holidays(2026)) == [
        D(2026, 1, 1), D(2026, 1, 19), D(2026, 2, 16),
        D(2026, 4, 3),  # Good Friday = Easter 2026-04-05 - 2 days
        D(2026, 5, 25), D(2026, 6, 19),
        D(2026, 7, 3),  # July 4 is a Saturday -> observed Friday
        D(2026, 9, 7), D(2026, 11, 26), D(2026, 12, 25),
    ]
    # July 3 is the holiday itself, so no July early close; Nov 27 and Dec 24 (Thursday) are
    assert nyse_early_closes(2026) == {D(2026, 11, 27): dt.time(13), D(2026, 12, 24): dt.time(13)}


def test_holidays_2025_include_the_unscheduled_closure() -> None:
    assert list(nyse_holidays(2025)) == [
        D(2025, 1, 1), D(2025, 1, 9),  # Carter's funeral, from the CSV
        D(2025, 1, 20), D(2025, 2, 17), D(2025, 4, 18), D(2025, 5, 26), D(2025, 6, 19),
        D(2025, 7, 4), D(2025, 9, 1), D(2025, 11, 27), D(2025, 12, 25),
    ]
    assert list(nyse_early_closes(2025)) == [D(2025, 7, 3), D(2025, 11, 28), D(2025, 12, 24)]


def test_observance_rules() -> None:
    h2022 = nyse_holidays(2022)
    assert D(2021, 12, 31) not in nyse_holidays(2021)  # Jan 1 2022 is a Saturday: not observed
    assert D(2022, 6, 20) in h2022  # Juneteenth on a Sunday -> Monday
    assert all(d.month != 6 for d in nyse_holidays(2021))  # no Juneteenth before 2022
    h2027 = nyse_holidays(2027)
    assert D(2027, 6, 18) in h2027  # Juneteenth on a Saturday -> Friday
    assert D(2027, 7, 5) in h2027  # July 4 on a Sunday -> Monday
    assert D(2027, 12, 24) in h2027  # Christmas on a Saturday -> Friday
    assert list(nyse_early_closes(2027)) == [D(2027, 11, 26)]  # Thanksgiving Nov 25 + 1 day
    assert all(d.month != 1 or d.day == 1 for d in nyse_holidays(1997))  # no MLK day yet
    assert D(2012, 10, 29) in nyse_holidays(2012)  # Hurricane Sandy


def test_thanksgiving_2026_and_early_close() -> None:
    assert not is_open(REG, ny(2026, 11, 26, 12))  # Thanksgiving: closed
    assert not is_open(EXT, ny(2026, 11, 26, 12))
    assert is_open(REG, ny(2026, 11, 27, 12, 59))
    assert not is_open(REG, ny(2026, 11, 27, 13, 0))  # early close 13:00 ET
    assert is_open(EXT, ny(2026, 11, 27, 16, 59))
    assert not is_open(EXT, ny(2026, 11, 27, 17, 0))  # extended hours end 17:00 that day
    assert is_open(REG, ny(2026, 11, 25, 15, 59))  # Wednesday before: full day
    assert is_open(ALW, ny(2026, 11, 26, 12))


def test_regular_and_extended_boundaries() -> None:
    tue = (2026, 11, 24)
    assert not is_open(REG, ny(*tue, 9, 29))
    assert is_open(REG, ny(*tue, 9, 30))  # sessions are [open, close)
    assert is_open(REG, ny(*tue, 16) - 1)
    assert not is_open(REG, ny(*tue, 16))
    assert not is_open(EXT, ny(*tue, 3, 59))
    assert is_open(EXT, ny(*tue, 4))
    assert is_open(EXT, ny(*tue, 19, 59))
    assert not is_open(EXT, ny(*tue, 20))


def test_dst_switch_weeks() -> None:
    # DST 2026 starts Sunday March 8: 09:30 EST = 14:30 UTC before, 09:30 EDT = 13:30 UTC after
    assert not is_open(REG, utc(2026, 3, 6, 13, 45))
    assert is_open(REG, utc(2026, 3, 6, 14, 30))
    assert is_open(REG, utc(2026, 3, 9, 13, 30))
    assert not is_open(REG, utc(2026, 3, 9, 20, 0))  # 16:00 EDT = 20:00 UTC
    # DST ends Sunday November 1: Friday Oct 30 opens 13:30 UTC, Monday Nov 2 at 14:30 UTC
    assert is_open(REG, utc(2026, 10, 30, 13, 30))
    assert not is_open(REG, utc(2026, 11, 2, 13, 30))
    assert is_open(REG, utc(2026, 11, 2, 14, 30))
    assert is_open(REG, utc(2026, 11, 2, 20, 59))  # 16:00 EST = 21:00 UTC
    assert not is_open(REG, utc(2026, 11, 2, 21, 0))


def test_weekend_closed_always_open() -> None:
    for h in range(0, 24, 3):
        assert not is_open(REG, ny(2026, 11, 28, h))  # Saturday
        assert not is_open(EXT, ny(2026, 11, 29, h))  # Sunday
        assert is_open(ALW, ny(2026, 11, 29, h))


def test_next_open_and_close() -> None:
    fri_early = ny(2026, 11, 27, 13)
    assert next_open(REG, fri_early) == ny(2026, 11, 30, 9, 30)  # Monday after the weekend
    assert next_close(REG, fri_early) == ny(2026, 11, 30, 16)
    inside = ny(2026, 11, 30, 11)
    assert next_open(REG, inside) == inside
    assert next_close(REG, inside) == ny(2026, 11, 30, 16)
    assert next_close(EXT, ny(2026, 11, 27, 5)) == ny(2026, 11, 27, 17)
    # over New Year: 2027-01-01 is a Friday holiday -> Monday January 4
    assert next_open(REG, ny(2026, 12, 31, 17)) == ny(2027, 1, 4, 9, 30)
    assert next_open(ALW, inside) == inside and next_close(ALW, inside) == NEVER


def test_next_open_past_the_cached_table() -> None:
    cal = SessionCalendar()
    cal.is_open(REG, ny(2026, 12, 31, 12))  # table covers 2026 only
    assert cal.next_open(REG, ny(2026, 12, 31, 17)) == ny(2027, 1, 4, 9, 30)
    assert cal.next_close(REG, ny(2026, 12, 31, 17)) == ny(2027, 1, 4, 16)


def test_open_mask_scalar_and_grid() -> None:
    kinds = np.array([REG, EXT, ALW, REG], dtype=np.int8)
    assert open_mask(kinds, ny(2026, 11, 24, 8)).tolist() == [False, True, True, False]
    times = np.array([[ny(2026, 11, 24, 8)], [ny(2026, 11, 24, 10)], [ny(2026, 11, 28, 10)]])
    grid = open_mask(kinds, times)
    assert grid.shape == (3, 4)
    assert grid.tolist() == [
        [False, True, True, False],  # 08:00: pre-market only
        [True, True, True, True],  # 10:00 Tuesday: all open
        [False, False, True, False],  # Saturday: only 24/7
    ]
    with pytest.raises(ValueError):
        open_mask(np.array([7], dtype=np.int8), ny(2026, 11, 24, 10))
    with pytest.raises(ValueError):
        open_mask(np.array([7], dtype=np.int8), times)


def test_hours_and_range() -> None:
    cal = SessionCalendar()
    assert cal.hours(REG, D(2026, 11, 27)) == (ny(2026, 11, 27, 9, 30), ny(2026, 11, 27, 13))
    assert cal.hours(REG, D(2026, 11, 26)) is None
    assert cal.hours(EXT, D(2026, 11, 28)) is None
    assert cal.hours(ALW, D(2026, 11, 28)) == (ny(2026, 11, 28), ny(2026, 11, 29))
    with pytest.raises(ValueError, match="cover years"):
        cal.is_open(REG, 2**62)
    with pytest.raises(ValueError):
        cal.is_open(9, 0)


def _reference_is_open(kind: Session, t: int) -> bool:
    """Straight from the definition, one datetime at a time."""
    if kind is ALW:
        return True
    local = dt.datetime.fromtimestamp(t / 1000, NEW_YORK)
    day = local.date()
    if day.weekday() >= 5 or day in nyse_holidays(day.year):
        return False
    early = day in nyse_early_closes(day.year)
    start, end = ((dt.time(9, 30), dt.time(13 if early else 16)) if kind is REG
                  else (dt.time(4), dt.time(17 if early else 20)))
    ms = (local.hour * 3600 + local.minute * 60 + local.second) * 1000 + t % 1000
    return (start.hour * 60 + start.minute) * 60_000 <= ms < (end.hour * 60 + end.minute) * 60_000


times_st = st.integers(utc(2000, 1, 1), utc(2040, 1, 1))
kinds_st = st.sampled_from(list(Session))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(kinds_st, times_st), min_size=1, max_size=20))
def test_is_open_matches_reference(queries: list[tuple[Session, int]]) -> None:
    cal = SessionCalendar()  # fresh: exercises the scalar interval cache across calls
    for kind, t in queries:
        expected = _reference_is_open(kind, t)
        assert cal.is_open(kind, t) is expected
        assert cal.is_open(kind, t + 1) is _reference_is_open(kind, t + 1)
        assert bool(cal.is_open_array(kind, np.array([t]))[0]) is expected


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([REG, EXT]), times_st)
def test_next_open_close_properties(kind: Session, t: int) -> None:
    o, c = next_open(kind, t), next_close(kind, t)
    assert t <= o < c
    assert is_open(kind, o) and is_open(kind, c - 1) and not is_open(kind, c)
    if o > t:  # closed at t: closed right up to the open
        assert not is_open(kind, t) and not is_open(kind, o - 1)
    assert c - o <= 16 * 3_600_000  # no session is longer than 04:00-20:00
