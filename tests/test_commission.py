"""Commission schedules: per lot, per deal, percent of notional, min/max, entry/exit sides,
group overrides and a venue's fee, worked out by hand; the stop-out kernel charges what the
Python path charges; bad schedules are refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.accounts.ledger import BROKER_PL, PostingKind
from cfd.constants import DealType, Retcode
from cfd.engine import Engine, EngineConfig
from cfd.errors import SpecError
from cfd.money import PRICE_SCALE, VOLUME_SCALE
from cfd.trading import stopout
from cfd.trading.commission import CommissionSchedule
from tests.helpers import Book
from tests.test_stopout_kernel import Twin


@pytest.fixture
def book():
    return Book.two_accounts()  # AAPL 230.00/230.10, NVDA 140.00/140.02; 10,000.00 each


def schedule(b: Book, symbol: str, **changes) -> None:
    r = b.apply(C.SetSymbol, name=symbol, changes={k: str(v) for k, v in changes.items()})
    assert r.retcode == Retcode.DONE, r


def trades(b: Book, login: int) -> list[dict]:
    a = b.eng.accounts.find(login)
    dc = b.eng.deals.cols
    return [b.eng.deal_row(i) for i in range(len(b.eng.deals)) if dc.acc[i] == a
            and dc.type[i] in (DealType.BUY, DealType.SELL)]


def charged(b: Book, login: int) -> list[tuple[int, int]]:
    return [(d["commission"], d["fee"]) for d in trades(b, login)]


def close_all(b: Book, login: int) -> None:
    for p in b.positions(login):
        side = b.sell if p["type"] == 0 else b.buy
        assert side(login, p["symbol"], p["volume"] / VOLUME_SCALE, position=p["ticket"]).ok


def test_per_lot_with_a_minimum_on_entry_and_exit(book):
    schedule(book, "AAPL", commission_per_lot="0.04", commission_min="1.00")
    book.buy(1001, "AAPL", 10.0)  # 10 x 0.04 = 0.40 < min 1.00 -> 1.00
    book.buy(1001, "AAPL", 50.0)  # 50 x 0.04 = 2.00
    close_all(book, 1001)  # the exits: 1.00 and 2.00 again
    assert charged(book, 1001) == [(-100, 0), (-200, 0), (-100, 0), (-200, 0)]
    # balance: 10,000.00 - 2 x (1.00 + 2.00) + spread losses (-0.10 x 60 lots = -6.00)
    assert book.info(1001)["balance"] == 10_000.00 - 6.00 - 6.00
    assert book.eng.ledger_total() == 0


def test_per_deal_whatever_the_volume(book):
    schedule(book, "NVDA", commission_per_deal="2.50")
    book.buy(1001, "NVDA", 1.0)  # 2.50
    book.buy(1001, "NVDA", 50.0)  # 2.50
    assert charged(book, 1001) == [(-250, 0), (-250, 0)]


def test_percent_of_notional_with_a_maximum(book):
    schedule(book, "AAPL", commission_percent="0.1", commission_max="5.00")
    book.buy(1001, "AAPL", 10.0)  # 10 x 1 share x 230.10 = 2,301.00 x 0.1% = 2.301 -> 2.30
    book.buy(1001, "AAPL", 30.0)  # 6,903.00 x 0.1% = 6.903 > max 5.00 -> 5.00
    book.sell(1001, "AAPL", 5.0)  # at bid 230.00: 1,150.00 x 0.1% = 1.15
    assert charged(book, 1001) == [(-230, 0), (-500, 0), (-115, 0)]
    assert book.eng.ledger_total() == 0


def test_entry_only_exit_only_and_a_netting_reversal(book):
    schedule(book, "AAPL", commission_per_lot="0.10", commission_charge="entry")
    book.buy(1001, "AAPL", 10.0)  # entry: 10 x 0.10 = 1.00
    close_all(book, 1001)  # exit: nothing
    assert charged(book, 1001) == [(-100, 0), (0, 0)]
    # netting 2002: buy 10 (entry 1.00), then sell 25: 10 close (free) and 15 open a short
    # in one INOUT deal: 15 x 0.10 = 1.50
    book.buy(2002, "AAPL", 10.0)
    book.sell(2002, "AAPL", 25.0)
    assert charged(book, 2002) == [(-100, 0), (-150, 0)]
    schedule(book, "AAPL", commission_charge="exit")
    book.buy(2002, "AAPL", 5.0)  # closes 5 of the short: exit 5 x 0.10 = 0.50
    book.buy(2002, "AAPL", 20.0)  # closes 10, opens 10 long: exit part 10 x 0.10 = 1.00
    assert charged(book, 2002)[2:] == [(-50, 0), (-100, 0)]
    assert book.eng.ledger_total() == 0


def test_a_venue_fee_is_booked_apart_to_the_broker(book):
    # a fee of 0.01 per lot plus 0.00278% of the notional (an SEC-style fee), commission 0.05
    schedule(book, "AAPL", commission_per_lot="0.05", fee_per_lot="0.01", fee_percent="0.00278")
    broker0 = int(book.eng.ledger.balance[BROKER_PL])
    check = book.eng.order_check(1001, {"action": 1, "symbol": "AAPL", "volume": 10.0,
                                        "type": 0, "price": 230.10, "type_filling": 2})
    book.buy(1001, "AAPL", 10.0)
    # commission 10 x 0.05 = 0.50; fee 10 x 0.01 + 2,301.00 x 0.0000278 = 0.10 + 0.0639678
    # = 0.1639678 -> 0.16
    assert charged(book, 1001) == [(-50, -16)]
    assert (check.commission, check.fee) == (0.50, 0.16)
    assert book.info(1001)["balance"] == 10_000.00 - 0.50 - 0.16
    assert int(book.eng.ledger.balance[BROKER_PL]) - broker0 == 66
    kinds = book.eng.ledger.postings.kind[: book.eng.ledger.postings.size]
    assert (kinds == PostingKind.COMMISSION).sum() == 2
    assert book.eng.ledger_total() == 0


def test_order_check_shows_the_charge_before_the_order(book):
    schedule(book, "NVDA", commission_per_lot="0.02", commission_min="0.50")
    req = {"action": 1, "symbol": "NVDA", "volume": 100.0, "type": 0, "price": 140.02,
           "type_filling": 2}
    res = book.eng.order_check(1001, req)
    # 100 x 0.02 = 2.00 (above the minimum 0.50); MT5's fields first, then ours
    assert res.retcode == 0 and res.commission == 2.00 and res.fee == 0.0
    assert list(res.to_dict())[:9] == ["retcode", "balance", "equity", "profit", "margin",
                                       "margin_free", "margin_level", "comment", "request"]
    assert res.balance == 10_000.00 - 2.00
    # a pending order: charged as an entry at its price, 1 x 0.02 = 0.02 -> the minimum 0.50
    pend = book.eng.order_check(1001, {"action": 5, "symbol": "NVDA", "volume": 1.0,
                                       "type": 2, "price": 130.00, "type_filling": 2})
    assert pend.retcode == 0 and pend.commission == 0.50
    book.send(1001, **req)
    assert charged(book, 1001) == [(-200, 0)]


def test_a_group_override_beats_the_symbol_schedule():
    pro = AccountGroup(name="pro\\usdt", commission={
        "AAPL": {"per_lot": "0.01"}, "*": CommissionSchedule(per_deal="1.00")})
    cfg = EngineConfig()
    cfg.groups["pro\\usdt"] = pro
    b = Book(Engine(config=cfg))
    b.account(1, 1_000_000)
    b.account(2, 1_000_000, group="pro\\usdt")
    b.quote(AAPL=(230.00, 230.10), NVDA=(140.00, 140.02))
    schedule(b, "AAPL", commission_per_lot="0.10")
    for login in (1, 2):
        b.buy(login, "AAPL", 10.0)
        b.buy(login, "NVDA", 10.0)
    # retail: AAPL 10 x 0.10 = 1.00, NVDA has no schedule -> 0
    assert charged(b, 1) == [(-100, 0), (0, 0)]
    # pro: AAPL 10 x 0.01 = 0.10, NVDA by "*": 1.00 a deal
    assert charged(b, 2) == [(-10, 0), (-100, 0)]
    assert b.eng.ledger_total() == 0


@pytest.mark.parametrize("changes, field", [
    ({"commission_per_lot": "-1"}, "commission_per_lot"),
    ({"commission_percent": "-0.1"}, "commission_percent"),
    ({"commission_min": "5", "commission_max": "2"}, "commission_max"),
    ({"commission_charge": "open"}, "commission_charge"),
    ({"fee_per_lot": "-0.01"}, "fee_per_lot"),
])
def test_bad_schedules_are_refused_and_change_nothing(book, changes, field):
    before = book.eng.state_hash()
    r = book.apply(C.SetSymbol, name="AAPL", changes=changes)
    assert r.retcode == Retcode.INVALID and field in r.comment
    assert book.eng.state_hash() == before


def test_bad_group_schedules_are_refused():
    with pytest.raises(SpecError, match="charge"):
        AccountGroup(commission={"*": {"charge": "sometimes"}})
    with pytest.raises(SpecError, match="maximum"):
        AccountGroup(commission={"AAPL": {"minimum": "3", "maximum": "1"}})
    with pytest.raises(SpecError, match="per_lot"):
        CommissionSchedule(per_lot="-0.5")
    with pytest.raises(SpecError, match="unknown field"):
        AccountGroup(commission={"*": {"per_lots": "1"}})


def _stop_out_twin(charge: str) -> Twin:
    cfg = EngineConfig()
    cfg.groups["pro\\usdt"] = replace(AccountGroup(name="pro\\usdt"), commission={
        "*": {"per_lot": "0.02", "percent": "0.05", "minimum": "1.00", "maximum": "3.00",
              "charge": charge, "fee_percent": "0.001"}})
    tw = Twin()
    tw.py, tw.nb = Engine(config=cfg), Engine(config=cfg)
    tw.py.stop_out = lambda accs, force=False: stopout.sweep_python(tw.py, accs, force)
    tw.nb.stop_out = lambda accs, force=False: stopout.sweep_kernel(tw.nb, accs, force)
    tw.do(C.Ticks, symbols=(tw.py.symbols.get("AAPL"), tw.py.symbols.get("TSLA")),
          bid=(100.0, 200.0), ask=(100.0, 200.0))
    tw.do(C.SetSymbol, name="TSLA", changes={"commission_per_deal": "0.75",
                                             "commission_percent": "0.02",
                                             "fee_per_lot": "0.005"})
    for login, group in ((7, "pro\\usdt"), (8, "demo\\usdt")):
        tw.do(C.CreateAccount, login=login, name=str(login), group=group)
        tw.do(C.Deposit, login=login, amount=150_000)  # 1,500.00
        for sym, px, vol in (("AAPL", 100.0, 30.0), ("TSLA", 200.0, 10.0)):
            tw.do(C.SendOrder, login=login, request={
                "action": 1, "symbol": sym, "volume": vol, "type": 0, "price": px,
                "deviation": 10, "type_filling": 2})
    return tw


@pytest.mark.parametrize("charge", ["both", "entry", "exit"])
def test_stop_out_closes_charge_what_the_python_path_charges(charge):
    tw = _stop_out_twin(charge)  # Twin.do compares effects and state hashes at each step
    # each account: 1,500.00, margin 30 x 100 x 20% + 10 x 200 x 20% = 1,000.00; moves of
    # under 10% (no outlier confirmation needed)
    tw.quote({"AAPL": 92.0, "TSLA": 184.0})  # loss 240 + 160: level ~110%
    tw.quote({"AAPL": 85.0, "TSLA": 170.0})  # loss 450 + 300: level ~75%
    assert tw.stop_outs == 0
    # loss 660 + 440: level ~40% <= 50%: close AAPL (the bigger loss), then equity ~400
    # over margin 400 is ~100%: done
    tw.quote({"AAPL": 78.0, "TSLA": 156.0})
    assert tw.stop_outs == 2
    eng = tw.nb
    dc = eng.deals.cols
    so = {int(dc.acc[i]): eng.deal_row(i) for i in range(len(eng.deals)) if dc.reason[i] == 6}
    assert len(so) == 2
    pro, retail = so[eng.accounts.find(7)], so[eng.accounts.find(8)]
    assert pro["symbol"] == retail["symbol"] == "AAPL" and pro["price"] == 78 * PRICE_SCALE
    if charge == "entry":
        assert (pro["commission"], pro["fee"]) == (0, 0)
    else:
        # 30 lots at 78.00, notional 2,340.00: 30 x 0.02 + 2,340.00 x 0.05% = 0.60 + 1.17
        # = 1.77 (within 1.00 .. 3.00); fee 2,340.00 x 0.001% = 0.0234 -> 0.02
        assert (pro["commission"], pro["fee"]) == (-177, -2)
    assert (retail["commission"], retail["fee"]) == (0, 0)  # AAPL has no schedule
    assert eng.ledger_total() == 0 and tw.py.ledger_total() == 0


def test_kernel_and_python_charge_the_tsla_schedule_alike():
    tw = _stop_out_twin("both")
    tw.quote({"AAPL": 100.0, "TSLA": 184.0})
    tw.quote({"AAPL": 100.0, "TSLA": 166.0})
    tw.quote({"AAPL": 100.0, "TSLA": 150.0})
    # loss 10 x 50 = 500 of 1,500.00, margin 1,000.00: level ~100%; force the close
    tw.do(C.ForceStopOut, login=8)
    eng = tw.nb
    dc = eng.deals.cols
    rows = [eng.deal_row(i) for i in range(len(eng.deals)) if dc.reason[i] == 6]
    tsla = [d for d in rows if d["symbol"] == "TSLA"]
    # retail, TSLA's own schedule: 10 lots at 150.00: 0.75 + 0.02% x 1,500.00 = 0.75 + 0.30
    # = 1.05; fee 10 x 0.005 = 0.05
    assert [(d["commission"], d["fee"]) for d in tsla] == [(-105, -5)]
    assert eng.ledger_total() == 0
