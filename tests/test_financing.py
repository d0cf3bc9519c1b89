"""Overnight financing at the rollover: worked examples from the published formulas, the
nights (triple day, holidays, weekends, 24/7), accrual and realisation, idempotency."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.accounts.ledger import FINANCING
from cfd.constants import DealType, MarginMode, Retcode
from cfd.engine import Engine, EngineConfig
from cfd.instruments.sessions import Session, default_calendar
from cfd.instruments.spec import SymbolSpec
from cfd.trading.financing import cutoff_msc, nights
from tests.helpers import Book, record_journal

MON = dt.date(2024, 6, 3)  # a Monday; 2024-06-07 is a Friday


def spec(name: str = "XYZ", **kw) -> SymbolSpec:
    base = dict(name=name, digits=2, contract_size=Decimal(1), volume_min=Decimal("0.1"),
                volume_step=Decimal("0.1"), swap_mode=5, swap_benchmark="SOFR")
    base.update(kw)
    return SymbolSpec(**base)


def groups(**over) -> dict[str, AccountGroup]:
    g = {"retail": AccountGroup(name="retail", financing_markup=Decimal(3)),
         "netting": AccountGroup(name="netting", margin_mode=MarginMode.RETAIL_NETTING,
                                 financing_markup=Decimal(3)),
         "daily": AccountGroup(name="daily", financing_markup=Decimal(3), swap_daily=True)}
    g.update(over)
    return g


class Day(Book):
    """A book whose clock is a New York trading date: ``at(day)`` moves the clock to the
    day's afternoon, ``roll(day)`` applies that day's rollover at 17:00."""

    def __init__(self, specs, grp=None, start=MON):
        super().__init__(Engine(specs, config=EngineConfig(groups=grp or groups())))
        self.at(start)

    def at(self, day: dt.date) -> None:
        self.t = cutoff_msc(day) - 3_600_000  # 16:00 New York

    def roll(self, day: dt.date, **kw):
        self.t = max(self.t, cutoff_msc(day))
        return self.apply(C.Rollover, date=str(day), **kw)

    def bench(self, rate: str, day: str = "2024-01-01", name: str = "SOFR"):
        r = self.apply(C.SetBenchmark, name=name, date=day, rate=rate)
        assert r.ok, r

    def open(self, login, symbol, volume, bid, ask, sell=False, group="retail", cash=10**9):
        if self.eng.accounts.find(login) is None:
            self.account(login, cash, group=group)
        self.quote(**{symbol: (bid, ask)})
        r = (self.sell if sell else self.buy)(login, symbol, volume)
        assert r.ok, r
        return r

    def swap_of(self, login):
        return [p["swap"] for p in self.positions(login)]


# ---------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------
def test_ig_us_shares_benchmark_plus_three_percent():
    # IG: contracts x price x (3% +- SOFR) / 360 per night; SOFR 5.31%
    b = Day([spec("AAPL")])
    b.bench("5.31")
    b.open(1, "AAPL", 100, 229.99, 230.01)  # long 100 at the mid 230.00
    b.open(2, "AAPL", 100, 229.99, 230.01, sell=True)
    assert b.roll(MON).ok
    # long pays 100 x 230.00 x (5.31% + 3%) / 360 = 5.309166.. -> 5.31
    assert b.swap_of(1) == [-531]
    # short receives 100 x 230.00 x (5.31% - 3%) / 360 = 1.475833.. -> 1.48
    assert b.swap_of(2) == [148]
    # the broker's financing account holds what longs paid less what shorts got
    assert int(b.eng.ledger.balance[FINANCING]) == 531 - 148
    assert b.eng.ledger_total() == 0


def test_cmc_interbank_plus_two_and_a_half_on_365_days():
    # CMC: units x 5pm New York mid x (interbank rate +- 2.5%) / 365
    b = Day([spec("MSFT", swap_year_days=365)],
            groups(retail=AccountGroup(name="retail", financing_markup=Decimal("2.5"))))
    b.bench("5.33")
    b.open(1, "MSFT", 50, 399.99, 400.01)
    assert b.roll(MON).ok
    # 50 x 400.00 x (5.33% + 2.5%) / 365 = 20,000 x 0.0783 / 365 = 4.290410.. -> 4.29
    assert b.swap_of(1) == [-429]


def test_ibkr_worked_example_20000_at_6_33_percent():
    # IBKR: 20,000 USD at 6.33% for one night on a 360-day year = 3.516667 USD
    b = Day([spec("JPM")], groups(retail=AccountGroup(name="retail",
                                                      financing_markup=Decimal(1))))
    b.bench("5.33")  # 5.33% + 1% = 6.33%
    b.open(1, "JPM", 100, 199.99, 200.01)  # 100 x 200.00 = 20,000 USD
    assert b.roll(MON).ok
    assert b.swap_of(1) == [-352]  # 3.516667 -> 3.52


def test_short_pays_borrow_fee_and_negative_net_rate():
    # a hard-to-borrow short: B - m - borrow = 5.31 - 3 - 4.5 = -2.19% a year
    b = Day([spec("GME", borrow_fee=Decimal("4.5"))])
    b.bench("5.31")
    b.open(1, "GME", 1000, 24.99, 25.01, sell=True)
    assert b.roll(MON).ok
    # 1000 x 25.00 x -2.19% / 360 = -1.520833.. -> -1.52
    assert b.swap_of(1) == [-152]


def test_mt5_points_mode():
    # points: swap x contract_size x point x lots x nights = -5 x 100 x 0.01 x 10 x 1 = -50.00
    b = Day([spec("PTS", swap_mode=1, swap_benchmark="", swap_long=Decimal(-5),
                  swap_short=Decimal("1.5"), contract_size=Decimal(100))])
    b.open(1, "PTS", 10, 50.00, 50.02)
    b.open(2, "PTS", 2, 50.00, 50.02, sell=True)
    assert b.roll(MON).ok
    assert b.swap_of(1) == [-5000]
    assert b.swap_of(2) == [300]  # 1.5 x 100 x 0.01 x 2 = 3.00


def test_mt5_money_mode_on_the_triple_day():
    # money (deposit currency): swap x lots x nights = -2.5 x 4 x 3 (Friday) = -30.00
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal("-2.5"))])
    friday = MON + dt.timedelta(days=4)
    b.at(friday)
    b.open(1, "MNY", 4, 10.00, 10.02)
    assert b.roll(friday).ok
    assert b.swap_of(1) == [-3000]


def test_mt5_percent_modes_current_and_open_price():
    # percent: swap / 100 / 360 x price x contract_size x lots x nights
    b = Day([spec("CUR", swap_benchmark="", swap_long=Decimal("-3.6")),
             spec("OPN", swap_mode=6, swap_benchmark="", swap_long=Decimal("-3.6"))])
    b.open(1, "CUR", 1000, 100.00, 100.02)
    b.open(2, "OPN", 1000, 100.00, 100.02)  # opened at the ask 100.02
    b.quote(CUR=(120.00, 120.02), OPN=(120.00, 120.02))
    assert b.roll(MON).ok
    # current: 1000 x 120.01 (mid) x 3.6% / 360 = 12.001 -> 12.00
    assert b.swap_of(1) == [-1200]
    # open: 1000 x 100.02 x 3.6% / 360 = 10.002 -> 10.00
    assert b.swap_of(2) == [-1000]


def test_benchmark_fixings_by_date():
    b = Day([spec("AAPL")])
    b.bench("5.00", "2024-01-01")
    b.bench("6.00", "2024-06-04")  # in force from Tuesday
    b.open(1, "AAPL", 360, 99.99, 100.01)  # 36,000 notional: 1 USDT per 1% a night
    assert b.roll(MON).ok
    assert b.swap_of(1) == [-800]  # (5 + 3)% x 36,000 / 360 = 8.00
    assert b.roll(MON + dt.timedelta(days=1)).ok
    assert b.swap_of(1) == [-800 - 900]  # (6 + 3)%: 9.00


# ---------------------------------------------------------------------------------------------
# Nights
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "triple", "expected"), [
    (dt.date(2024, 6, 3), 5, 1),  # Monday
    (dt.date(2024, 6, 7), 5, 3),  # Friday: Friday, Saturday, Sunday
    (dt.date(2024, 6, 8), 5, 0),  # Saturday: no session, nothing
    (dt.date(2024, 3, 28), 5, 4),  # Thursday before Good Friday: 1 + 3 (Fri) + 0 + 0
    (dt.date(2024, 3, 29), 5, 0),  # Good Friday: closed
    (dt.date(2024, 6, 18), 5, 2),  # Tuesday before Juneteenth (Wednesday)
    (dt.date(2024, 6, 5), 3, 3),  # triple Wednesday (FX convention)
    (dt.date(2024, 6, 7), 3, 1),  # ... then Friday carries one night
    (dt.date(2024, 6, 7), -1, 3),  # no triple day: calendar nights
    (dt.date(2024, 5, 24), 5, 4),  # Friday before Memorial Day: Fri 3 + Mon 1
])
def test_nights_follow_the_calendar(day, triple, expected):
    assert nights(default_calendar(), Session.US_REGULAR, triple, day) == expected


def test_a_week_charges_seven_nights_whatever_the_triple_day():
    cal = default_calendar()
    week = [dt.date(2024, 6, 3) + dt.timedelta(days=i) for i in range(7)]
    for triple in (-1, 0, 1, 2, 3, 4, 5, 6):
        total = sum(nights(cal, Session.US_REGULAR, triple, d) for d in week)
        if triple in (0, 6):  # a weekend triple day on a weekday-only market is never seen
            continue
        assert total == 7, triple
    # a 24/7 symbol without a triple day: one night every calendar day
    assert [nights(cal, Session.ALWAYS, -1, d) for d in week] == [1] * 7
    # ... with a triple Friday, Saturday and Sunday are carried by Friday
    assert [nights(cal, Session.ALWAYS, 5, d) for d in week] == [1, 1, 1, 1, 3, 0, 0]


def test_holiday_week_charges_each_night_once():
    # Thursday 2024-03-28 (before Good Friday) to Monday 2024-04-01: 4 nights, charged once
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal(-1))],
            start=dt.date(2024, 3, 28))
    b.open(1, "MNY", 1, 10.00, 10.02)
    assert b.roll(dt.date(2024, 3, 28)).ok
    assert b.swap_of(1) == [-400]  # 4 nights x 1.00
    r = b.roll(dt.date(2024, 3, 31))  # Good Friday, Saturday, Sunday: nothing more
    assert r.ok, r
    assert b.swap_of(1) == [-400]


# ---------------------------------------------------------------------------------------------
# Once per date
# ---------------------------------------------------------------------------------------------
def test_a_date_is_rolled_once_and_only_after_its_close():
    b = Day([spec("AAPL")])
    b.bench("5.31")
    b.open(1, "AAPL", 100, 229.99, 230.01)
    b.t = cutoff_msc(MON) - 2  # the command is stamped 1 ms later: still before 17:00
    h = b.eng.state_hash()
    r = b.apply(C.Rollover, date=str(MON))
    assert r.retcode == Retcode.INVALID and "has not closed yet" in r.comment
    assert b.eng.state_hash() == h
    assert b.roll(MON).ok
    h = b.eng.state_hash()
    for day in (MON, MON - dt.timedelta(days=3)):
        r = b.roll(day)
        assert r.retcode == Retcode.INVALID and "already rolled" in r.comment
        assert b.eng.state_hash() == h
    for bad in ("2024-13-01", "", 20240603, None):
        r = b.apply(C.Rollover, date=bad)
        assert r.retcode == Retcode.INVALID, bad
        assert b.eng.state_hash() == h


def test_missed_dates_are_caught_up_in_order():
    # rolled Monday; the server was down; Thursday's rollover charges Tue, Wed and Thu
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal(-1))])
    b.open(1, "MNY", 1, 10.00, 10.02)
    assert b.roll(MON).ok
    r = b.roll(MON + dt.timedelta(days=3))
    assert r.ok, r
    assert r.data["from"] == "2024-06-04"
    assert b.swap_of(1) == [-400]  # 4 nights x 1.00
    assert len(b.eng.day.log) == 4


def test_snapshot_and_replay_charge_nothing_twice():
    b = Day([spec("AAPL")])
    journal = record_journal(b.eng)
    b.bench("5.31")
    b.open(1, "AAPL", 100, 229.99, 230.01)
    assert b.roll(MON).ok
    live = b.eng.state_hash()
    # replay the journal on a new engine: same state
    replay = Engine([spec("AAPL")], config=EngineConfig(groups=groups()))
    for cmd in journal:
        replay.apply(cmd)
    assert replay.state_hash() == live
    # restore a snapshot: the rollover of the same date is refused, nothing moves
    arrays, meta = b.eng.snapshot()
    again = Engine.from_snapshot(arrays, meta, EngineConfig(groups=groups()))
    assert again.state_hash() == live
    r = again.apply(C.Rollover(time_msc=b.t + 1, date=str(MON)))
    assert r.retcode == Retcode.INVALID
    assert again.state_hash() == live


# ---------------------------------------------------------------------------------------------
# Accrual, realisation, balance booking
# ---------------------------------------------------------------------------------------------
def test_accrued_swap_is_in_equity_and_realised_on_the_closing_deals():
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal("-1.25"))])
    b.open(1, "MNY", 4, 10.00, 10.00, cash=100_000)  # 1,000.00 USDT
    before = b.info(1)
    assert b.roll(MON).ok  # 4 lots x -1.25 = -5.00
    info = b.info(1)
    # MT5: the balance waits for the close; profit and equity carry the swap at once
    assert info["balance"] == before["balance"] == 1000.00
    assert info["equity"] == pytest.approx(before["equity"] - 5.00, abs=1e-9)
    ticket = b.positions(1)[0]["ticket"]
    # close a quarter: 1 of 4 lots realises 5.00 x 1/4 = 1.25
    r = b.sell(1, "MNY", 1, position=ticket)
    assert r.ok, r
    assert b.last_deal()["swap"] == -125
    assert b.swap_of(1) == [-375]
    assert b.info(1)["balance"] == pytest.approx(1000.00 - 1.25)
    # close the rest: the remaining 3.75 reaches the balance on the deal
    assert b.sell(1, "MNY", 3, position=ticket).ok
    assert b.last_deal()["swap"] == -375
    assert b.info(1)["balance"] == pytest.approx(995.00)
    assert b.info(1)["equity"] == pytest.approx(995.00)
    assert b.eng.ledger_total() == 0


def test_netting_reversal_realises_the_whole_swap():
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal(-1),
                  swap_short=Decimal(-1))])
    b.open(1, "MNY", 2, 10.00, 10.00, group="netting")
    assert b.roll(MON).ok
    assert b.swap_of(1) == [-200]
    assert b.sell(1, "MNY", 5).ok  # 2 long -> 3 short: one INOUT deal
    assert b.last_deal()["swap"] == -200
    assert b.swap_of(1) == [0]
    assert b.roll(MON + dt.timedelta(days=1)).ok
    assert b.swap_of(1) == [-300]  # the short pays its own nights


def test_daily_booking_group_books_a_balance_deal():
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal(-2))])
    b.open(1, "MNY", 1, 10.00, 10.00, group="daily", cash=100_000)
    assert b.roll(MON).ok
    assert b.swap_of(1) == [0]
    deal = b.last_deal()
    assert deal["type"] == DealType.CHARGE and deal["swap"] == -200
    assert b.info(1)["balance"] == pytest.approx(998.00)
    assert b.eng.ledger_total() == 0


def test_a_charge_that_crosses_the_stop_out_level_stops_the_account_out():
    b = Day([spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal("-0.2"))])
    b.account(1, 20_000, group="retail")  # 200.00
    b.quote(MNY=(100.00, 100.00))
    assert b.buy(1, "MNY", 5).ok  # margin 5 x 100.00 x 20% = 100.00 (at the open price)
    for px in (92.0, 85.0, 78.0, 72.0, 70.10):  # steps under the 10% outlier filter
        b.quote(MNY=(px, px))
    # equity 200.00 - 5 x (100.00 - 70.10) = 50.50: level 50.5%, above the 50% stop-out
    assert b.info(1)["margin_level"] == pytest.approx(50.5)
    assert b.positions(1)
    r = b.roll(MON)  # 5 x -0.20 = -1.00: equity 49.50, level 49.5% <= 50%
    assert r.ok
    assert any(e["kind"] == "stop_out" for e in r.events)
    assert b.positions(1) == []
    assert b.last_deal()["swap"] == -100
    assert b.eng.ledger_total() == 0


def test_projection_books_nothing():
    b = Day([spec("AAPL")])
    b.bench("5.31")
    b.open(1, "AAPL", 100, 229.99, 230.01)
    h = b.eng.state_hash()
    proj = b.eng.day.projection(MON)
    assert proj["charged"] == 531 and proj["by"][0]["symbol"] == "AAPL"
    assert b.eng.state_hash() == h
    assert b.roll(MON).data["charged"] == 531


def test_benchmark_fixing_refused_for_a_rolled_date_or_bad_input():
    b = Day([spec("AAPL")])
    assert b.roll(MON).ok
    h = b.eng.state_hash()
    for kw in (dict(name="SOFR", date=str(MON), rate="5"),
               dict(name="SOFR", date="2024-07-01", rate="nan"),
               dict(name="SOFR", date="2024-07-01", rate="1e9"),
               dict(name="", date="2024-07-01", rate="5"),
               dict(name="SOFR", date="x", rate="5")):
        r = b.apply(C.SetBenchmark, **kw)
        assert r.retcode == Retcode.INVALID, kw
        assert b.eng.state_hash() == h


def test_swap_fields_of_a_spec_are_validated():
    from cfd.errors import SpecError

    for bad in (dict(swap_mode=2), dict(swap_rollover3days=7), dict(swap_year_days=364),
                dict(swap_mode=4, swap_benchmark="SOFR"), dict(borrow_fee=Decimal(-1))):
        with pytest.raises(SpecError):
            replace(spec(), **bad)


# ---------------------------------------------------------------------------------------------
# Property: any sequence with rollovers keeps the ledger at zero and replays to the same hash
# ---------------------------------------------------------------------------------------------
ops = st.lists(st.one_of(
    st.tuples(st.just("buy"), st.integers(1, 3), st.sampled_from(["AAA", "BBB"]),
              st.integers(1, 50)),
    st.tuples(st.just("sell"), st.integers(1, 3), st.sampled_from(["AAA", "BBB"]),
              st.integers(1, 50)),
    st.tuples(st.just("close"), st.integers(1, 3), st.integers(0, 5), st.integers(1, 50)),
    st.tuples(st.just("tick"), st.sampled_from(["AAA", "BBB"]), st.integers(500, 2000),
              st.just(0)),
    st.tuples(st.just("roll"), st.integers(1, 4), st.just(0), st.just(0)),
), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_rollovers_keep_the_ledger_at_zero_and_replay(seq):
    specs = [spec("AAA"), spec("BBB", swap_mode=4, swap_benchmark="", swap_long=Decimal("-0.37"),
                               swap_short=Decimal("0.11"))]
    grp = groups()
    b = Day(specs, grp)
    journal = record_journal(b.eng)
    b.bench("5.31")
    for login, g in ((1, "retail"), (2, "netting"), (3, "daily")):
        b.account(login, 1_000_000, group=g)
    b.quote(AAA=(10.00, 10.02), BBB=(20.00, 20.04))
    day = MON
    for op, x, y, z in seq:
        if op in ("buy", "sell"):
            (b.buy if op == "buy" else b.sell)(x, y, z / 10)
        elif op == "close":
            pos = b.positions(x)
            if pos:
                p = pos[y % len(pos)]
                vol = min(p["volume"] / 1e4, z / 10)
                (b.sell if p["type"] == 0 else b.buy)(x, p["symbol"], vol,
                                                      position=p["ticket"])
        elif op == "tick":
            b.quote(**{x: (y / 100, y / 100 + 0.02)})
        else:
            day += dt.timedelta(days=x)
            b.roll(day)
            b.at(day)
            b.t = max(b.t, cutoff_msc(day) + 1)
        assert b.eng.ledger_total() == 0
        for login in (1, 2, 3):
            info = b.info(login)
            # equity = MT5 balance + credit + profit, where profit holds the accrued swap
            assert info["equity"] == pytest.approx(info["balance"] + info["credit"]
                                                   + info["profit"], abs=1e-6)
    replay = Engine(specs, config=EngineConfig(groups=grp))
    for cmd in journal:
        replay.apply(cmd)
    assert replay.state_hash() == b.eng.state_hash()


def test_bulk_rows_equal_the_single_row_builders():
    # the rollover builds account and posting rows column-wise: the same rows as one by one
    b = Day([spec("AAPL"), spec("MNY", swap_mode=4, swap_benchmark="", swap_long=Decimal(1))])
    b.bench("5.31")
    b.open(1, "AAPL", 100, 229.99, 230.01)
    b.open(2, "MNY", 3, 10.00, 10.02, group="daily")
    b.apply(C.AdjustCredit, login=1, amount=500)
    assert b.roll(MON).ok
    eng = b.eng
    accs = np.arange(len(eng.accounts))
    assert eng.account_rows(accs) == [eng.account_row(int(a)) for a in accs]
    logins = eng.accounts.cols.login
    n = eng.ledger.postings.size
    assert eng.ledger.rows(0, n, logins) == [eng.ledger.row(i, logins) for i in range(n)]
