"""Weekend and holiday margin (cfd.trading.weekend): the schedule by the session calendar,
the journaled switch, advance warnings and the stop-out policy."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cfd import commands as C
from cfd.constants import Retcode
from cfd.engine import Engine
from cfd.trading.weekend import MarginSchedule
from tests.helpers import Book

NY = ZoneInfo("America/New_York")


def ny(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=NY).timestamp() * 1000)


@pytest.mark.parametrize("when, expected", [
    # Friday 2026-12-04 closes at 16:00 and reopens Monday 09:30 (65.5 h > 24 h): in force
    # from 14:00 (2 h before), warned from Thursday 14:00 (24 h before that)
    (ny(2026, 12, 3, 13, 59), (False, False)),
    (ny(2026, 12, 3, 14, 0), (False, True)),
    (ny(2026, 12, 4, 13, 59), (False, True)),
    (ny(2026, 12, 4, 15, 0), (True, True)),  # Friday afternoon, New York
    (ny(2026, 12, 5, 12, 0), (True, True)),  # Saturday: closed, until the next open
    (ny(2026, 12, 7, 9, 30), (False, False)),  # Monday's open ends it
    # Tuesday close -> Wednesday open is 17.5 h: the overnight gap, no schedule
    (ny(2026, 12, 8, 15, 0), (False, False)),
    (ny(2026, 12, 9, 2, 0), (False, False)),
    # Wednesday before Thanksgiving (2026-11-26): 16:00 -> Friday 09:30 is 41.5 h
    (ny(2026, 11, 25, 15, 0), (True, True)),
])
def test_window_follows_the_calendar(when: int, expected: tuple[bool, bool]) -> None:
    eng = Engine()
    assert eng.weekend.window(eng.symbols.get("AAPL"), when) == expected


def test_the_clock_proposes_the_friday_afternoon_schedule() -> None:
    eng = Engine()
    cmd = eng.weekend.proposal(ny(2026, 12, 4, 15, 0))
    assert isinstance(cmd, MarginSchedule) and "AAPL" in cmd.active and cmd.actor == "clock"
    assert eng.apply(cmd).ok
    assert eng.weekend.proposal(ny(2026, 12, 4, 15, 30)) is None  # already in force
    assert eng.weekend.proposal(ny(2026, 12, 7, 10, 0)).active == ()  # Monday: lifted


def setup() -> Book:
    b = Book()
    b.quote(AAPL=(100.0, 100.0))
    # AAPL margins at 20%: 10 lots x 1 share x 100.00 x 0.2 = 200.00; x2 = 400.00
    for login, cents in ((1, 20_000), (2, 30_000), (3, 50_000)):
        b.account(login, cents)
        assert b.buy(login, "AAPL", 10.0).ok
    return b


def test_warning_then_switch_then_stop_out_policy() -> None:
    b = setup()
    assert [b.info(x)["margin"] for x in (1, 2, 3)] == [200.0, 200.0, 200.0]
    # warning: at x2 the levels would be 200/400 = 50%, 300/400 = 75%, 500/400 = 125%;
    # margin call at 100%: accounts 1 and 2 are warned, 3 is not; nothing is booked
    h0 = b.eng.state_hash()
    res = b.apply(MarginSchedule, upcoming=("AAPL",), actor="clock")
    assert res.ok
    warned = {e["login"]: e for e in res.events if e["kind"] == "margin_call_warning"}
    assert set(warned) == {1, 2}
    assert warned[2]["margin_scheduled"] == 400.0 and warned[2]["margin_level_scheduled"] == 75.0
    assert b.info(1)["margin"] == 200.0 and b.eng.state_hash() != h0  # only the flags
    # in force: margins double; account 1 at 200/400 = 50% <= stop-out 50% is stopped out
    # like any other account (the policy), 2 (75%) gets a margin call, 3 (125%) nothing
    res = b.apply(MarginSchedule, active=("AAPL",), actor="clock")
    assert res.ok
    assert b.info(1)["margin"] == 0.0 and len(b.eng.positions.of_account(0)) == 0
    assert b.info(2)["margin"] == 400.0 and b.info(3)["margin"] == 400.0
    assert any(e["kind"] == "margin_call" and e["login"] == 2 for e in res.events)
    # a spec change while in force keeps the multiplier: 30% x 2 -> 10 x 100 x 0.6 = 600
    assert b.apply(C.SetSymbol, name="AAPL", changes={"margin_initial_rate": "0.3"}).ok
    assert b.info(3)["margin"] == 600.0
    # lifted at the open: back to 10 x 100 x 0.3 = 300
    assert b.apply(MarginSchedule, actor="clock").ok
    assert b.info(3)["margin"] == 300.0


def test_replay_and_snapshot_agree() -> None:
    b = setup()
    assert b.apply(MarginSchedule, active=("AAPL",), actor="clock").ok
    arrays, meta = b.eng.snapshot()
    back = Engine.from_snapshot(arrays, meta)
    assert back.state_hash() == b.eng.state_hash()
    assert back.account_info(3)["margin"] == 400.0
    cmd = MarginSchedule(time_msc=1, actor="clock", active=("AAPL",), upcoming=("MSFT",))
    assert C.decode(cmd.kind, cmd.to_payload()) == cmd


@pytest.mark.parametrize("kw, code", [({"active": ("NOPE",)}, Retcode.INVALID),
                                      ({"upcoming": (7,)}, Retcode.INVALID),
                                      ({"active": "AAPL"}, Retcode.INVALID),
                                      ({}, Retcode.NO_CHANGES)])
def test_bad_schedule_is_refused_and_changes_nothing(kw: dict, code: int) -> None:
    b = setup()
    before = b.eng.state_hash()
    res = b.apply(MarginSchedule, **kw)
    assert res.refused and res.retcode == code
    assert b.eng.state_hash() == before


def test_symbol_info_shows_the_margin_that_will_apply() -> None:
    from api.records import symbol_info

    b = setup()
    s = b.eng.symbols.get("AAPL")
    # one lot: 1 share x 100.00 x 20% = 20.00 initial, x 10% = 10.00 maintenance
    assert (symbol_info(b.eng, s)["margin_initial"],
            symbol_info(b.eng, s)["margin_maintenance"]) == (20.0, 10.0)
    assert b.apply(MarginSchedule, upcoming=("AAPL",), actor="clock").ok
    assert symbol_info(b.eng, s)["margin_initial"] == 40.0  # x2 from the warning on
    assert b.apply(MarginSchedule, active=("AAPL",), actor="clock").ok
    assert symbol_info(b.eng, s)["margin_initial"] == 40.0


def test_the_demo_server_clock_switches_it_on_a_friday_afternoon() -> None:
    from fastapi.testclient import TestClient

    from api.clock import RolloverClock
    from tests.test_api_fixtures import headers, make_runtime, push

    rt = make_runtime(rollover_clock=False)
    try:
        svc = rt.service
        clock = RolloverClock(svc)
        svc.clock = lambda: ny(2026, 12, 4, 15, 0)  # Friday 15:00, New York
        assert "under the weekend margin" in clock.schedule_step()
        assert clock.schedule_step() is None  # proposed once
        assert svc.read(lambda eng: eng.weekend.active[eng.symbols.get("AAPL")])
        with TestClient(rt.app) as client:
            push(client, AAPL=(229.99, 230.01))
            info = client.get("/v1/symbol_info/AAPL",
                              headers=headers(rt.demo["accounts"][0])).json()
            # AAPL margins at 20%: one lot x 230.01 x 0.2 x 2 = 92.004
            assert info["margin_initial"] == 92.0
        svc.clock = lambda: ny(2026, 12, 7, 10, 0)  # Monday after the open: lifted
        assert "0 symbols under" in clock.schedule_step()
    finally:
        rt.close()
