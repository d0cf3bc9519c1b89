"""Corporate actions at the rollover: NVIDIA's 10-for-1 split of 10 June 2024, a reverse
split, dividends with withholding, a ticker change, a delisting; the calendar's validation;
replay; the split kernel against its reference."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.accounts.ledger import CORPORATE_ACTIONS, TAX_WITHHELD
from cfd.constants import DealReason, DealType, MarginMode, Retcode
from cfd.engine import Engine, EngineConfig
from cfd.instruments.spec import SymbolSpec
from cfd.kernels.corporate import split_positions, split_reference
from cfd.trading.financing import cutoff_msc
from tests.helpers import Book, record_journal

FRI = dt.date(2024, 6, 7)  # NVIDIA traded split-adjusted from Monday 10 June 2024
# NVIDIA's close on 7 June 2024 was 1,208.88 USD; on 10 June it opened at 120.37 USD


def spec(name: str, **kw) -> SymbolSpec:
    return SymbolSpec(**{"name": name, "digits": 2, "volume_min": Decimal("0.1"),
                         "volume_step": Decimal("0.1"), **kw})


def groups() -> dict[str, AccountGroup]:
    return {"hedge": AccountGroup(name="hedge"),
            "net": AccountGroup(name="net", margin_mode=MarginMode.RETAIL_NETTING),
            "retail": AccountGroup(name="retail", dividend_withholding=Decimal(30)),
            "nostops": AccountGroup(name="nostops", split_remove_stops=True,
                                    split_remove_orders=True)}


class Cal(Book):
    def __init__(self, specs):
        super().__init__(Engine(specs, config=EngineConfig(groups=groups())))
        self.t = cutoff_msc(FRI) - 30 * 3_600_000  # Thursday 11:00 New York

    def add(self, **fields):
        return self.apply(C.CorporateAction, op="add", fields=fields)

    def roll(self, day: dt.date):
        self.t = max(self.t, cutoff_msc(day))
        return self.apply(C.Rollover, date=str(day))

    def figures(self, logins):
        return {lg: {k: self.info(lg)[k] for k in ("equity", "margin", "margin_free",
                                                   "margin_level")} for lg in logins}


def nvda_book():
    b = Cal([spec("NVDA"), spec("AAPL")])
    b.account(1, 2_000_000, group="hedge")
    b.account(2, 2_000_000, group="net")
    b.account(3, 500_000, group="hedge")
    b.account(4, 2_000_000, group="nostops")
    b.quote(NVDA=(1208.88, 1209.00), AAPL=(196.89, 196.91))
    assert b.buy(1, "NVDA", 1.3, sl=1100.0, tp=1400.0).ok
    assert b.sell(1, "NVDA", 0.4).ok  # hedged
    assert b.sell(2, "NVDA", 2.7).ok
    assert b.buy(3, "NVDA", 0.7).ok
    assert b.buy(4, "NVDA", 0.5, sl=1000.0).ok
    assert b.buy(1, "AAPL", 3).ok
    r = b.send(3, action=5, symbol="NVDA", volume=0.2, type=2, price=1150.0)  # BUY LIMIT
    assert r.ok, r
    r = b.send(4, action=5, symbol="NVDA", volume=0.3, type=3, price=1300.0)  # SELL LIMIT
    assert r.ok, r
    b.quote(NVDA=(1205.10, 1205.22))  # the close, away from the open prices
    return b


def test_nvidia_split_keeps_every_account_whole():
    b = nvda_book()
    assert b.add(kind="split", symbol="NVDA", ex_date="2024-06-10", ratio="10:1").ok
    logins = (1, 2, 3, 4)
    before = b.figures(logins)
    r = b.roll(FRI)
    assert r.ok, r
    after = b.figures(logins)
    # account 4's group removes pending orders on a split: its SELL LIMIT gives back its
    # reserve, 0.3 x 1,300.00 x 20% = 78.00; account 3's BUY LIMIT follows the share and
    # keeps its reserve (2 lots x 115.00 x 20% = 46.00, as 0.2 x 1,150.00 x 20% before)
    freed = {4: 78.00}
    for lg in logins:
        assert after[lg]["equity"] == pytest.approx(before[lg]["equity"], abs=0.01), lg
        assert after[lg]["margin_free"] == pytest.approx(
            before[lg]["margin_free"] + freed.get(lg, 0.0), abs=0.01), lg
        # margin moves by at most the rounding of the price grid: the level stays put
        assert after[lg]["margin_level"] == pytest.approx(before[lg]["margin_level"],
                                                          rel=1e-6), lg
    assert not [e for e in r.events if e["kind"] in ("stop_out", "margin_call")]
    pos = {p["login"]: p for p in b.positions(1) + b.positions(2) + b.positions(4)
           if p["symbol"] == "NVDA" and p["type"] == (1 if p["login"] == 2 else 0)}
    # 1.3 lots at 1,209.00 -> 13 lots at 120.90; SL 1,100.00 -> 110.00, TP 1,400 -> 140.00
    assert (pos[1]["volume"], pos[1]["price_open"]) == (130_000, 120_900_000)
    assert (pos[1]["sl"], pos[1]["tp"]) == (110_000_000, 140_000_000)
    assert pos[2]["volume"] == 270_000  # 2.7 -> 27 lots, short
    assert pos[4]["sl"] == 0  # this group removes stops on a split
    # the BUY LIMIT of account 3: 0.2 lots at 1,150.00 -> 2 lots at 115.00
    assert [(o["volume_current"], o["price_open"]) for o in b.eng.pending.orders_of(
        b.eng.accounts.find(3))] == [(20_000, 115_000_000)]
    assert len(b.eng.pending) == 1
    # every adjusted position has a SPLIT deal
    deals = [b.eng.deal_row(i) for i in range(len(b.eng.deals))]
    split_deals = [d for d in deals if d["reason"] == DealReason.SPLIT]
    assert len(split_deals) == 5 and all(d["type"] == DealType.CORRECTION for d in split_deals)
    assert b.eng.ledger_total() == 0
    # the quote was rescaled: 1,205.10 / 10 = 120.51; the first tick on Monday is ordinary
    s = b.eng.symbols.get("NVDA")
    assert int(b.eng.symbols.cols.bid[s]) == 120_510_000
    b.t = cutoff_msc(dt.date(2024, 6, 10)) - 7 * 3_600_000  # Monday 10:00
    r = b.quote(NVDA=(120.37, 120.39))
    assert r.data["rejected"] == 0 and bool(b.eng.symbols.cols.confirmed[s])
    assert not [e for e in r.events if e["kind"] in ("stop_out", "margin_call")]
    # and the accounts move with the share as before: the long 13 lots x (120.37 - 120.51)
    # = -1.82, the hedged short 4 lots x (120.52 - 120.39) = +0.52 (ask 1,205.22 / 10)
    assert b.info(1)["equity"] == pytest.approx(after[1]["equity"] - 1.82 + 0.52, abs=0.011)


def test_a_split_with_fractions_settles_them_in_cash():
    # 3:2 split: 0.5 lots -> 0.75 -> 0.7 on the 0.1 grid; the 0.05 lot left over is paid
    # out at the (rescaled) bid: 0.05 lots x 10 shares x (100.00 x 2/3 = 66.67) ...
    b = Cal([spec("XYZ", contract_size=Decimal(10))])
    b.account(1, 1_000_000, group="hedge")
    b.quote(XYZ=(100.00, 100.00))
    assert b.buy(1, "XYZ", 0.5).ok
    b.quote(XYZ=(100.00, 100.00))
    assert b.add(kind="split", symbol="XYZ", ex_date="2024-06-10", ratio="3:2").ok
    before = b.info(1)["equity"]
    assert b.roll(FRI).ok
    p = b.positions(1)[0]
    assert p["volume"] == 7_000 and p["price_open"] == 66_666_667  # 100 x 2/3 half-even
    # profit before: 0. After: (66.67 - 66.666667) x 0.7 lots x 10 = 0.0233 -> the cash
    # settlement is -0.02 so that equity stays 10,000.00 to the cent
    assert b.last_deal()["profit"] == -2
    assert b.info(1)["equity"] == pytest.approx(before, abs=0.01)


def test_reverse_split_closes_positions_below_the_minimum():
    b = Cal([spec("PENNY")])
    b.account(1, 1_000_000, group="hedge")
    b.quote(PENNY=(2.00, 2.02))
    assert b.buy(1, "PENNY", 0.5).ok  # 0.5 / 10 = 0.05 < 0.1: closed at 2.00
    assert b.buy(1, "PENNY", 3.7).ok  # 3.7 / 10 = 0.37 -> 0.3, remainder settled
    b.quote(PENNY=(2.10, 2.12))
    assert b.add(kind="split", symbol="PENNY", ex_date="2024-06-10", ratio="1:10").ok
    before = b.info(1)["equity"]
    assert b.roll(FRI).ok
    pos = b.positions(1)
    assert [p["volume"] for p in pos] == [3_000]
    assert pos[0]["price_open"] == 20_200_000  # 2.02 x 10
    closes = [b.eng.deal_row(i) for i in range(len(b.eng.deals))
              if b.eng.deals.cols.entry[i] == 1]
    assert len(closes) == 1 and closes[0]["reason"] == DealReason.SPLIT
    assert closes[0]["price"] == 2_100_000  # the price before the split
    assert b.info(1)["equity"] == pytest.approx(before, abs=0.01)
    assert b.eng.ledger_total() == 0


def test_dividend_with_withholding_moves_equity_by_the_booked_amounts():
    b = Cal([spec("KO")])
    b.account(1, 1_000_000, group="retail")  # 30% withholding
    b.account(2, 1_000_000, group="hedge")
    b.quote(KO=(62.00, 62.02))
    assert b.buy(1, "KO", 130).ok
    assert b.sell(2, "KO", 77).ok
    assert b.add(kind="dividend", symbol="KO", ex_date="2024-06-10", amount="0.485").ok
    e1, e2 = b.info(1)["equity"], b.info(2)["equity"]
    r = b.roll(FRI)
    assert r.ok
    # long: 130 x 0.485 = 63.05 gross, 30% tax = 18.915 -> 18.92 (half to even on .5? no:
    # 1891.5 cents -> 1892, half to even), net 44.13
    assert b.info(1)["equity"] == pytest.approx(e1 + 63.05 - 18.92, abs=1e-9)
    # short: 77 x 0.485 = 37.345 -> 37.34 (half to even) debited gross
    assert b.info(2)["equity"] == pytest.approx(e2 - 37.34, abs=1e-9)
    types = [(d["login"], d["type"], d["profit"]) for d in
             (b.eng.deal_row(i) for i in range(len(b.eng.deals)))
             if d["type"] in (DealType.DIVIDEND, DealType.TAX)]
    assert sorted(types) == [(1, DealType.DIVIDEND, 6305), (1, DealType.TAX, -1892),
                             (2, DealType.DIVIDEND, -3734)]
    led = b.eng.ledger.balance
    assert int(led[TAX_WITHHELD]) == 1892
    assert int(led[CORPORATE_ACTIONS]) == 3734 - 6305  # the broker paid the net
    assert b.eng.ledger_total() == 0
    up = b.eng.corporate.last_applied()[-1]
    assert (up["paid_to_longs"], up["charged_to_shorts"], up["withheld"],
            up["broker_net"]) == (6305, 3734, 1892, 3734 - 6305)


def test_upcoming_shows_the_cash_effect_before_the_date():
    b = Cal([spec("KO")])
    b.account(1, 1_000_000, group="retail")
    b.quote(KO=(62.00, 62.02))
    assert b.buy(1, "KO", 130).ok
    assert b.add(kind="dividend", symbol="KO", ex_date="2024-06-10", amount="0.485").ok
    h = b.eng.state_hash()
    up = b.eng.corporate.upcoming()
    assert (up[0]["due_to_longs"], up[0]["withholding"]) == (6305, 1892)
    assert b.eng.state_hash() == h


def test_ticker_change_keeps_positions_and_history():
    b = Cal([spec("FB")])
    b.account(1, 1_000_000, group="hedge")
    b.quote(FB=(300.00, 300.02))
    assert b.buy(1, "FB", 1).ok
    assert b.add(kind="ticker", symbol="FB", ex_date="2024-06-10", new_symbol="META").ok
    assert b.roll(FRI).ok
    assert b.eng.symbols.get("FB") is None
    assert [p["symbol"] for p in b.positions(1)] == ["META"]
    assert b.eng.deal_row(len(b.eng.deals) - 1)["symbol"] == "META"
    b.quote(META=(301.00, 301.02))
    ticket = b.positions(1)[0]["ticket"]
    assert b.sell(1, "META", 1, position=ticket).ok
    assert b.positions(1) == []


def test_delisting_close_only_then_settlement():
    b = Cal([spec("GONE")])
    b.account(1, 1_000_000, group="hedge")
    b.quote(GONE=(5.00, 5.02))
    assert b.buy(1, "GONE", 10).ok
    r = b.add(kind="delist", symbol="GONE", ex_date="2024-06-10", settle_date="2024-06-12")
    assert r.ok, r
    assert b.roll(FRI).ok
    assert b.buy(1, "GONE", 1).retcode == Retcode.CLOSE_ONLY
    # the last price is set later by the admin
    aid = r.data["id"]
    assert b.apply(C.CorporateAction, op="amend", id=aid,
                   fields={"last_price": "4.20"}).ok
    assert b.roll(dt.date(2024, 6, 11)).ok
    assert b.positions(1) == []
    last = b.last_deal()
    assert last["price"] == 4_200_000 and last["profit"] == round((4.20 - 5.02) * 10 * 100)
    assert b.buy(1, "GONE", 1).retcode == Retcode.TRADE_DISABLED


def test_bad_actions_are_refused_and_change_nothing():
    b = Cal([spec("XYZ")])
    b.account(1, 100_000, group="hedge")
    h = b.eng.state_hash()
    for fields, why in (
            (dict(kind="split", symbol="XYZ", ex_date="2024-06-10", ratio="0:1"), "greater"),
            (dict(kind="split", symbol="XYZ", ex_date="2024-06-10", ratio="-2:1"), "whole"),
            (dict(kind="split", symbol="XYZ", ex_date="2024-06-10", ratio="1:1"), "nothing"),
            (dict(kind="split", symbol="XYZ", ex_date="2024-06-05", ratio="2:1"), "past"),
            (dict(kind="split", symbol="NOPE", ex_date="2024-06-10", ratio="2:1"), "unknown"),
            (dict(kind="dividend", symbol="XYZ", ex_date="2024-06-10", amount="0.5",
                  currency="EUR"), "conversion rate"),
            (dict(kind="dividend", symbol="XYZ", ex_date="2024-06-10", amount="-1"),
             "positive"),
            (dict(kind="dividend", symbol="XYZ", ex_date="2024-06-10", amount="nan"),
             "positive"),
            (dict(kind="merger", symbol="XYZ", ex_date="2024-06-10"), "kind"),
            (dict(kind="split", symbol="XYZ", ex_date="2024-06-10", ratio="2:1", x=1),
             "no field")):
        r = b.add(**fields)
        assert r.retcode == Retcode.INVALID and why in r.comment, (fields, r.comment)
        assert b.eng.state_hash() == h
    r = b.add(kind="split", symbol="XYZ", ex_date="2024-06-10", ratio="2:1")
    aid = r.data["id"]
    assert b.apply(C.CorporateAction, op="cancel", id=aid).ok
    assert b.apply(C.CorporateAction, op="amend", id=aid,
                   fields={"ratio": "3:1"}).retcode == Retcode.INVALID
    assert b.apply(C.CorporateAction, op="cancel", id=999).retcode == Retcode.INVALID


def test_replay_and_snapshot_apply_each_action_once():
    b = nvda_book()
    journal = record_journal(b.eng)
    assert b.add(kind="split", symbol="NVDA", ex_date="2024-06-10", ratio="10:1").ok
    assert b.add(kind="dividend", symbol="AAPL", ex_date="2024-06-10", amount="0.25").ok
    arrays, meta = b.eng.snapshot()
    assert b.roll(FRI).ok
    live = b.eng.state_hash()
    again = Engine.from_snapshot(arrays, meta, EngineConfig(groups=groups()))
    for cmd in journal[2:]:
        again.apply(cmd)
    assert again.state_hash() == live
    # the same date cannot be rolled again, so nothing is applied twice
    r = again.apply(C.Rollover(time_msc=b.t + 1, date=str(FRI)))
    assert r.retcode == Retcode.INVALID and again.state_hash() == live


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**7, 10**7).filter(bool),
                          st.integers(1, 10**10)), min_size=1, max_size=20),
       st.integers(1, 20), st.integers(1, 20), st.sampled_from([1, 10, 100, 1000]),
       st.integers(1, 10**9), st.integers(0, 10**6), st.integers(1, 10**9),
       st.integers(1, 10**4), st.integers(1, 10**6))
def test_split_kernel_equals_the_reference(rows, n, m, step, bid0, spread, bid1, k_num,
                                           k_den):
    vol = np.array([r[0] for r in rows], np.int64)
    px = np.array([r[1] for r in rows], np.int64)
    out = [np.zeros(len(rows), np.int64) for _ in range(3)]
    status = np.zeros(len(rows), np.int8)
    split_positions(vol, px, n, m, step, bid0, bid0 + spread, bid1, bid1 + spread, k_num,
                    k_den, *out, status)
    ref = split_reference(vol, px, n, m, step, bid0, bid0 + spread, bid1, bid1 + spread,
                          k_num, k_den)
    for i, want in enumerate(ref):
        if status[i] == 0:
            assert (out[0][i], out[1][i], out[2][i]) == want
