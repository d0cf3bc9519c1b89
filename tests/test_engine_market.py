"""Market orders: numbers with their arithmetic, netting and hedging, refusals."""

import math

import pytest

from cfd import commands as C
from cfd.constants import DealEntry, DealReason, DealType, OrderState, Retcode
from cfd.engine import Engine
from cfd.money import PRICE_SCALE, VOLUME_SCALE
from tests.helpers import Book


@pytest.fixture
def book():
    return Book.two_accounts()


def deal_rows(b: Book, login: int) -> list[dict]:
    a = b.eng.accounts.find(login)
    return [b.eng.deal_row(i) for i in range(len(b.eng.deals)) if b.eng.deals.cols.acc[i] == a
            and b.eng.deals.cols.type[i] in (DealType.BUY, DealType.SELL)]


def test_buy_opens_long_at_ask_with_margin_and_spread_loss(book):
    r = book.buy(1001, "AAPL", 10.0)
    assert r.retcode == Retcode.DONE and r.data.price == 230.10
    info = book.info(1001)
    # margin: 10 lots * 1 share * 230.10 * 0.2 = 460.20
    assert info["margin"] == 460.20
    # floating profit: (bid 230.00 - open 230.10) * 10 = -1.00
    assert info["profit"] == -1.00
    # equity = balance + credit + profit = 10,000.00 + 0 - 1.00
    assert info["equity"] == 9_999.00
    # free margin = 9,999.00 - 460.20; level = 9,999.00 / 460.20 * 100
    assert info["margin_free"] == 9_538.80
    assert info["margin_level"] == pytest.approx(9_999.00 / 460.20 * 100)
    (pos,) = book.positions(1001)
    assert pos["type"] == 0 and pos["identifier"] == r.data.order == pos["ticket"]


def test_sell_opens_short_at_bid_and_profits_when_price_falls(book):
    r = book.sell(1001, "NVDA", 20.0)
    assert r.data.price == 140.00
    book.quote(NVDA=(130.00, 130.02))
    # short valued at ask: (140.00 - 130.02) * 20 = 199.60
    assert book.info(1001)["profit"] == 199.60
    pos = book.positions(1001)[0]
    r = book.buy(1001, "NVDA", 20.0, position=pos["ticket"])
    assert r.retcode == Retcode.DONE
    # realised on the OUT deal: (140.00 - 130.02) * 20 = 199.60
    out = deal_rows(book, 1001)[-1]
    assert out["entry"] == DealEntry.OUT and out["profit"] == 19_960
    assert book.info(1001)["balance"] == 10_199.60
    assert book.eng.ledger_total() == 0


def test_partial_close_hedging_books_profit_on_the_closed_part(book):
    book.buy(1001, "AAPL", 10.0)  # at 230.10
    book.quote(AAPL=(231.35, 231.45))
    t = book.positions(1001)[0]["ticket"]
    r = book.sell(1001, "AAPL", 2.5, position=t)
    assert r.retcode == Retcode.DONE
    # (231.35 - 230.10) * 2.5 = 3.125 -> 3.12 (half to even)
    assert deal_rows(book, 1001)[-1]["profit"] == 312
    (pos,) = book.positions(1001)
    assert pos["volume"] == 7.5 * VOLUME_SCALE and pos["ticket"] == t
    # margin of the rest: 7.5 * 230.10 * 0.2 = 345.15
    assert book.info(1001)["margin"] == 345.15


def test_hedging_opposite_order_opens_a_second_position(book):
    book.buy(1001, "AAPL", 1.0)
    book.sell(1001, "AAPL", 1.0)
    assert [p["type"] for p in book.positions(1001)] == [0, 1]
    # both legs margined in full: 1 * 230.10 * 0.2 + 1 * 230.00 * 0.2 = 92.02
    assert book.info(1001)["margin"] == 92.02


def test_netting_adds_reduces_and_reverses(book):
    book.buy(2002, "AAPL", 10.0)  # 10 @ 230.10
    book.quote(AAPL=(232.00, 232.10))
    book.buy(2002, "AAPL", 5.0)  # 5 @ 232.10
    (pos,) = book.positions(2002)
    ident = pos["identifier"]
    # average: (10 * 230.10 + 5 * 232.10) / 15 = 230.766666.. -> 230.766667 (1e-6 grid)
    assert pos["price_open"] == 230_766_667 and pos["volume"] == 15 * VOLUME_SCALE
    book.quote(AAPL=(233.00, 233.10))
    book.sell(2002, "AAPL", 5.0)
    # (233.00 - 230.766667) * 5 = 11.166665 -> 11.17
    assert deal_rows(book, 2002)[-1]["profit"] == 1117
    assert deal_rows(book, 2002)[-1]["entry"] == DealEntry.OUT
    r = book.sell(2002, "AAPL", 25.0)  # reverse: closes 10, opens 15 short
    last = deal_rows(book, 2002)[-1]
    assert last["entry"] == DealEntry.INOUT and last["volume"] == 25 * VOLUME_SCALE
    # profit on the closed 10: (233.00 - 230.766667) * 10 = 22.33333 -> 22.33
    assert last["profit"] == 2233
    (pos,) = book.positions(2002)
    assert pos["type"] == 1 and pos["volume"] == 15 * VOLUME_SCALE
    assert pos["identifier"] == ident and pos["ticket"] == r.data.order != ident
    assert pos["price_open"] == 233_000_000
    # balance: 10,000.00 + 11.17 + 22.33 = 10,033.50
    assert book.info(2002)["balance"] == 10_033.50
    assert book.eng.ledger_total() == 0


def test_netting_close_with_position_ticket_and_closed_ticket(book):
    book.buy(2002, "NVDA", 3.0)
    t = book.positions(2002)[0]["ticket"]
    assert book.sell(2002, "NVDA", 3.0, position=t).retcode == Retcode.DONE
    assert book.positions(2002) == []
    r = book.sell(2002, "NVDA", 3.0, position=t)
    assert r.retcode == Retcode.POSITION_CLOSED and str(t) in r.comment


def test_close_by_books_pair_pl_on_one_deal(book):
    book.buy(1001, "AAPL", 3.0)  # @ 230.10
    book.quote(AAPL=(235.00, 235.10))
    book.sell(1001, "AAPL", 2.0)  # @ 235.00
    long_t, short_t = (p["ticket"] for p in book.positions(1001))
    r = book.send(1001, action=10, position=long_t, position_by=short_t)
    assert r.retcode == Retcode.DONE
    d1, d2 = deal_rows(book, 1001)[-2:]
    assert d1["entry"] == d2["entry"] == DealEntry.OUT_BY
    # long closed at the short's open 235.00: (235.00 - 230.10) * 2 = 9.80; short: 0
    assert (d1["profit"], d2["profit"]) == (980, 0)
    (rest,) = book.positions(1001)
    assert rest["ticket"] == long_t and rest["volume"] == 1 * VOLUME_SCALE
    orders = book.eng.orders
    assert orders.cols.type[len(orders) - 1] == 8 and orders.cols.state[len(orders) - 1] == 4


def test_close_by_refusals(book):
    book.buy(1001, "AAPL", 1.0)
    book.buy(1001, "AAPL", 1.0)
    a, b = (p["ticket"] for p in book.positions(1001))
    assert book.send(1001, action=10, position=a, position_by=b).retcode == Retcode.INVALID
    assert book.send(1001, action=10, position=a, position_by=a).retcode == Retcode.INVALID
    book.buy(2002, "AAPL", 1.0)
    n = book.positions(2002)[0]["ticket"]
    assert book.send(2002, action=10, position=n, position_by=n).retcode == Retcode.INVALID


def test_deviation_requote(book):
    r = book.buy(1001, "AAPL", 1.0, price=229.50, deviation=50)
    # |230.10 - 229.50| = 60 points > 50
    assert r.retcode == Retcode.REQUOTE and r.data.ask == 230.10 and r.data.bid == 230.00
    assert book.buy(1001, "AAPL", 1.0, price=229.50, deviation=60).retcode == Retcode.DONE


@pytest.mark.parametrize("filling", [3, 7, -1])
def test_filling_mode_checked(book, filling):
    assert book.buy(1001, "AAPL", 1.0, type_filling=filling).retcode == Retcode.INVALID_FILL


def test_market_execution_refuses_return(book):
    book.apply(C.SetSymbol, name="AAPL", changes={"execution_mode": 2, "filling_mode": 1})
    assert book.buy(1001, "AAPL", 1.0, type_filling=2).retcode == Retcode.INVALID_FILL
    assert book.buy(1001, "AAPL", 1.0, type_filling=1).retcode == Retcode.INVALID_FILL
    assert book.buy(1001, "AAPL", 1.0, type_filling=0, price=0.0).retcode == Retcode.DONE


def test_no_money(book):
    # 10,000 USDT at 20% margin buys at most ~ 10,000 / (230.10 * 0.2) = 217 lots
    r = book.buy(1001, "AAPL", 300.0)
    assert r.retcode == Retcode.NO_MONEY and "13,806.00" in r.comment  # 300 * 230.10 * 0.2
    assert book.positions(1001) == []


@pytest.mark.parametrize(
    ("volume", "why"),
    [(0.0, "greater than zero"), (-1.0, "greater than zero"), (float("nan"), "finite"),
     (float("inf"), "finite"), (0.05, "minimum"), (1.05, "step"), (1e9, "maximum"),
     (50000.1, "maximum")],
)
def test_invalid_volumes(book, volume, why):
    r = book.buy(1001, "AAPL", volume, price=230.10)
    assert r.retcode == Retcode.INVALID_VOLUME and why in r.comment


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -230.1, 230.105, 0.0])
def test_invalid_prices(book, price):
    assert book.buy(1001, "AAPL", 1.0, price=price).retcode == Retcode.INVALID_PRICE


@pytest.mark.parametrize(("sl", "tp"), [(231.0, 0.0), (0.0, 229.0), (float("nan"), 0.0),
                                        (-5.0, 0.0), (0.0, 230.0)])
def test_invalid_stops(book, sl, tp):
    assert book.buy(1001, "AAPL", 1.0, sl=sl, tp=tp).retcode == Retcode.INVALID_STOPS


def test_valid_stops_stored(book):
    book.buy(1001, "AAPL", 1.0, sl=220.0, tp=240.0)
    pos = book.positions(1001)[0]
    assert (pos["sl"], pos["tp"]) == (220 * PRICE_SCALE, 240 * PRICE_SCALE)


def test_trade_modes(book):
    book.buy(1001, "AAPL", 1.0)
    t = book.positions(1001)[0]["ticket"]
    book.apply(C.SetSymbol, name="AAPL", changes={"trade_mode": 3})
    assert book.buy(1001, "AAPL", 1.0).retcode == Retcode.CLOSE_ONLY
    assert book.sell(1001, "AAPL", 1.0, position=t).retcode == Retcode.DONE
    book.apply(C.SetSymbol, name="AAPL", changes={"trade_mode": 1})
    assert book.sell(1001, "AAPL", 1.0).retcode == Retcode.LONG_ONLY
    assert book.buy(1001, "AAPL", 1.0).retcode == Retcode.DONE
    book.apply(C.SetSymbol, name="AAPL", changes={"trade_mode": 2})
    assert book.buy(1001, "AAPL", 1.0).retcode == Retcode.SHORT_ONLY
    book.apply(C.SetSymbol, name="AAPL", changes={"trade_mode": 0})
    assert book.sell(1001, "AAPL", 1.0).retcode == Retcode.TRADE_DISABLED


def test_market_closed_halt_and_no_quote(book):
    book.apply(C.SetMarket, symbols=("AAPL",), market_open=False)
    assert book.buy(1001, "AAPL", 1.0).retcode == Retcode.MARKET_CLOSED
    book.apply(C.SetMarket, symbols=("AAPL",), market_open=True, halted=True)
    assert book.buy(1001, "AAPL", 1.0).retcode == Retcode.TRADE_DISABLED
    r = book.buy(1001, "TSLA", 1.0, price=250.0)
    assert r.retcode == Retcode.PRICE_OFF and "TSLA" in r.comment


def test_unknown_symbol_ticket_account_and_foreign_position(book):
    assert book.buy(1001, "ZZZZ", 1.0, price=1.0).retcode == Retcode.INVALID
    assert book.sell(1001, "AAPL", 1.0, position=999).retcode == Retcode.INVALID
    assert book.buy(4242, "AAPL", 1.0).retcode == Retcode.INVALID
    book.buy(2002, "AAPL", 1.0)
    foreign = book.positions(2002)[0]["ticket"]
    r = book.sell(1001, "AAPL", 1.0, position=foreign)
    assert r.retcode == Retcode.INVALID and "not found" in r.comment
    assert book.positions(2002)[0]["volume"] == 1 * VOLUME_SCALE


def test_close_volume_and_side_checks(book):
    book.buy(1001, "AAPL", 1.0)
    t = book.positions(1001)[0]["ticket"]
    assert book.sell(1001, "AAPL", 2.0, position=t).retcode == Retcode.INVALID_CLOSE_VOLUME
    assert book.buy(1001, "AAPL", 1.0, position=t).retcode == Retcode.INVALID
    assert book.sell(1001, "NVDA", 1.0, position=t).retcode == Retcode.INVALID


def test_malformed_requests_and_comment(book):
    for req in ({"action": 1, "symbol": 5}, {"action": "x"}, {"volume": "1"},
                {"bogus": 1}, {"action": 1.5}):
        assert book.send(1001, **req).retcode == Retcode.INVALID
    r = book.buy(1001, "AAPL", 1.0, comment="x" * 32)
    assert r.retcode == Retcode.INVALID and "31" in r.comment
    assert book.send(1001, action=1, symbol="AAPL", volume=1.0, type=2).retcode == \
        Retcode.INVALID_ORDER


def test_refused_commands_change_nothing(book):
    book.buy(1001, "AAPL", 1.0)
    before = book.eng.state_hash()
    book.buy(1001, "AAPL", 1e9)
    book.sell(1001, "AAPL", 5.0, position=book.positions(1001)[0]["ticket"])
    book.apply(C.Withdraw, login=1001, amount=10**12)
    book.apply(C.Deposit, login=1001, amount=-5)
    book.quote(AAPL=(float("nan"), 1.0))
    book.quote(AAPL=(231.0, 230.0))
    assert book.eng.state_hash() == before


def test_orders_and_deals_recorded_as_mt5(book):
    r = book.buy(1001, "AAPL", 2.0, magic=77, comment="hello")
    c = book.eng.orders.cols
    i = book.eng.orders.by_ticket[r.data.order]
    assert c.state[i] == OrderState.FILLED and c.magic[i] == 77
    d = book.eng.deal_row(book.eng.deals.by_ticket[r.data.deal])
    assert d["order"] == r.data.order and d["position_id"] == r.data.order
    assert d["reason"] == DealReason.EXPERT and d["comment"] == "hello"
    assert d["time_msc"] == book.t


def test_commission_is_charged_per_deal(book):
    book.apply(C.SetSymbol, name="AAPL", changes={"commission_per_lot": "0.04",
                                                  "commission_min": "1.00"})
    book.buy(1001, "AAPL", 10.0)  # 10 * 0.04 = 0.40 < min 1.00 -> 1.00
    book.buy(1001, "AAPL", 50.0)  # 50 * 0.04 = 2.00
    deals = deal_rows(book, 1001)
    assert [d["commission"] for d in deals] == [-100, -200]
    # balance 10,000.00 - 1.00 - 2.00
    assert book.info(1001)["balance"] == 9_997.00
    assert book.eng.ledger_total() == 0


def test_order_check_shows_account_after_trade(book):
    chk = book.eng.order_check(1001, {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0,
                                      "price": 230.10, "deviation": 5, "type_filling": 2})
    assert chk.retcode == 0 and chk.comment == "Done"
    # as after the trade: margin 460.20, profit -1.00, equity 9,999.00
    assert (chk.margin, chk.profit, chk.equity, chk.balance) == (460.20, -1.00, 9_999.00,
                                                                10_000.00)
    assert chk.margin_free == 9_538.80
    assert book.positions(1001) == []
    bad = book.eng.order_check(1001, {"action": 1, "symbol": "AAPL", "volume": 1e6, "type": 0})
    assert bad.retcode == Retcode.INVALID_VOLUME


def test_order_calc_margin_and_profit_per_calc_mode(book):
    eng = book.eng
    # CFD: 2 * 230.00 * 0.2 = 92.00
    assert eng.order_calc_margin(0, "AAPL", 2.0, 230.0, login=1001) == 92.00
    book.account(3003, 0, leverage=10)
    eng.apply(C.SetSymbol(time_msc=book.tick(), name="MSFT",
                          changes={"calc_mode": 4, "margin_initial_rate": "1"}))
    # CFDLEVERAGE: 2 * 420.00 / 10 * 1 = 84.00
    assert eng.order_calc_margin(0, "MSFT", 2.0, 420.0, login=3003) == 84.00
    # profit: (231.01 - 230.00) * 1.5 = 1.515 -> 1.52; sell is the negative
    assert eng.order_calc_profit(0, "AAPL", 1.5, 230.00, 231.01) == 1.52
    assert eng.order_calc_profit(1, "AAPL", 1.5, 230.00, 231.01) == -1.52


def test_exch_stocks_margin_follows_the_market(book):
    book.apply(C.SetSymbol, name="NVDA", changes={"calc_mode": 32})
    book.buy(1001, "NVDA", 10.0)  # at 140.02, margined at bid 140.00: 10 * 140 * 0.2 = 280
    assert book.info(1001)["margin"] == 280.00
    book.quote(NVDA=(150.00, 150.02))
    # 10 * 150.00 * 0.2 = 300.00
    assert book.info(1001)["margin"] == 300.00
    book.eng.recompute_all()
    assert book.info(1001)["margin"] == 300.00


def test_withdrawal_cannot_leave_free_margin_below_zero(book):
    book.buy(1001, "AAPL", 200.0)  # margin 200 * 230.10 * 0.2 = 9,204.00, profit -20.00
    # free margin = 10,000.00 - 20.00 - 9,204.00 = 776.00
    assert book.info(1001)["margin_free"] == 776.00
    r = book.apply(C.Withdraw, login=1001, amount=77_601)
    assert r.retcode == Retcode.NO_MONEY
    assert book.apply(C.Withdraw, login=1001, amount=77_600).retcode == Retcode.DONE
    assert book.info(1001)["balance"] == 9_224.00


def test_credit_counts_in_equity(book):
    assert book.apply(C.AdjustCredit, login=1001, amount=50_000).ok
    info = book.info(1001)
    assert info["credit"] == 500.00 and info["equity"] == 10_500.00
    assert book.apply(C.AdjustCredit, login=1001, amount=-60_000).retcode == Retcode.NO_MONEY
    assert book.eng.ledger_total() == 0


def test_deterministic_replay_gives_same_hash():
    def run() -> Engine:
        b = Book()
        b.account(1, 500_000)
        b.account(2, 500_000, group="demo\\netting")
        b.quote(AAPL=(100.0, 100.1), TSLA=(200.0, 200.2))
        b.buy(1, "AAPL", 5.0)
        b.sell(2, "TSLA", 3.0)
        b.quote(AAPL=(101.0, 101.1), TSLA=(199.0, 199.2))
        b.buy(2, "TSLA", 6.0)
        return b.eng

    e1, e2 = run(), run()
    assert e1.state_hash() == e2.state_hash()
    arrays, meta = e1.snapshot()
    e3 = Engine.from_snapshot(arrays, meta)
    assert e3.state_hash() == e1.state_hash()
    assert math.isclose(e3.account_info(2)["equity"], e1.account_info(2)["equity"])


def test_withdrawal_counts_margin_reserved_by_pending_orders(book):
    r = book.send(1001, action=5, symbol="AAPL", volume=200.0, type=2, price=200.0,
                  type_filling=2)
    assert r.retcode == Retcode.PLACED
    # reserved: 200 * 200.00 * 0.2 = 8,000.00; free margin 10,000.00 - 8,000.00 = 2,000.00
    assert book.info(1001)["margin_initial"] == 8_000.00
    assert book.apply(C.Withdraw, login=1001, amount=200_001).retcode == Retcode.NO_MONEY
    assert book.apply(C.Withdraw, login=1001, amount=200_000).retcode == Retcode.DONE


def test_stop_out_removes_pending_orders_first(book):
    assert book.send(1001, action=5, symbol="NVDA", volume=1.0, type=2, price=100.0,
                     type_filling=2).retcode == Retcode.PLACED
    assert book.buy(1001, "AAPL", 200.0).ok  # margin 200 * 230.10 * 0.2 = 9,204.00
    # equity falls to 50% of the margin: 10,000 - 200 * (230.10 - bid) <= 4,602 -> bid 203.11
    book.quote(AAPL=(207.0, 207.1))
    book.quote(AAPL=(207.0, 207.1))
    book.quote(AAPL=(203.0, 203.1))
    assert book.positions(1001) == []
    assert len(book.eng.pending) == 0
    assert book.info(1001)["margin_initial"] == 0.0


def test_journal_payloads_round_trip_even_with_nan():
    cmd = C.SendOrder(time_msc=5, login=1, request={"action": 1, "volume": float("nan"),
                                                    "price": float("inf"), "symbol": "AAPL"})
    again = C.decode(cmd.kind, cmd.to_payload())
    assert math.isnan(again.request["volume"]) and again.request["price"] == float("inf")
    ok = C.Deposit(time_msc=6, login=1, amount=100, comment="x")
    assert C.decode(ok.kind, ok.to_payload()) == ok


def test_waiting_stop_out_proceeds_when_a_halt_is_lifted(book):
    assert book.buy(1001, "AAPL", 200.0).ok  # margin 9,204.00
    book.apply(C.SetMarket, symbols=("AAPL",), halted=True)
    for _ in range(3):  # a confirmed fall to 203: level below 50%, but the symbol is halted
        book.quote(AAPL=(203.0, 203.1))
    assert len(book.positions(1001)) == 1
    r = book.apply(C.SetMarket, symbols=("AAPL",), halted=False)
    assert book.positions(1001) == []
    assert any(e["kind"] == "stop_out" for e in r.events)
