"""Pending orders, SL/TP and their triggers: numbers with their arithmetic, refusals."""

import math

import pytest

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.constants import DealReason, OrderState, OrderType, Retcode
from cfd.engine import Engine, EngineConfig
from cfd.instruments import sessions
from tests.helpers import Book

PX = 1_000_000  # price units per USD


def pending(b: Book, login: int, **kw):
    req = {"action": 5, "symbol": "AAPL", "volume": 10.0, "type_filling": 2, **kw}
    return b.apply(C.SendOrder, login=login, request=req)


def ext(b: Book):
    return b.eng.pending


def history(b: Book, ticket: int) -> dict:
    return b.eng.order_row(b.eng.orders.by_ticket[ticket])


@pytest.fixture
def book():
    return Book.two_accounts()


def test_buy_limit_reserves_margin_and_fills_at_the_market_on_a_gap(book):
    r = pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.00, sl=220.00, tp=240.00)
    assert r.retcode == Retcode.PLACED and r.data.order > 0
    t = r.data.order
    # margin reserved: 10 lots * 1 share * 229.00 * 0.2 = 458.00
    assert book.info(1001)["margin_initial"] == 458.00
    assert book.info(1001)["margin"] == 0.0
    (row,) = ext(book).orders_of(0)
    assert row["state"] == OrderState.PLACED and row["price_open"] == 229 * PX
    book.quote(AAPL=(229.50, 229.60))  # ask 229.60 > 229.00: nothing
    assert len(ext(book)) == 1
    r = book.quote(AAPL=(228.40, 228.50))  # gap: ask 228.50 <= 229.00
    (ev,) = r.events
    assert ev["kind"] == "order_filled" and ev["order"] == t
    # fills at the market ask 228.50, not at the order price 229.00
    assert ev["price"] == 228_500_000
    (pos,) = book.positions(1001)
    assert pos["price_open"] == 228_500_000 and pos["sl"] == 220 * PX and pos["tp"] == 240 * PX
    assert pos["ticket"] == t  # the position takes the order's ticket
    h = history(book, t)
    assert h["state"] == OrderState.FILLED and h["type"] == OrderType.BUY_LIMIT
    assert h["price_open"] == 229 * PX and h["price_current"] == 228_500_000
    info = book.info(1001)
    # reservation released; position margin 10 * 228.50 * 0.2 = 457.00
    assert info["margin_initial"] == 0.0 and info["margin"] == 457.00


def test_stops_fill_at_the_market(book):
    buy = pending(book, 1001, type=OrderType.BUY_STOP, price=231.00).data.order
    sell = pending(book, 1001, type=OrderType.SELL_STOP, symbol="NVDA", price=139.00,
                   volume=1.0).data.order
    r = book.quote(AAPL=(232.00, 232.10), NVDA=(138.00, 138.02))
    assert [e["order"] for e in r.events] == [buy, sell]  # by ticket
    # BUY STOP at ask 232.10 (gap over 231.00); SELL STOP at bid 138.00 (gap under 139.00)
    assert [e["price"] for e in r.events] == [232_100_000, 138_000_000]


def test_sell_limit_fills_at_bid(book):
    t = pending(book, 1001, type=OrderType.SELL_LIMIT, price=231.00).data.order
    r = book.quote(AAPL=(231.20, 231.30))  # bid 231.20 >= 231.00
    assert r.events[0]["order"] == t and r.events[0]["price"] == 231_200_000
    assert book.positions(1001)[0]["type"] == 1


def test_sl_of_a_long_and_tp_of_a_short(book):
    book.buy(1001, "AAPL", 10.0, sl=225.00)  # opens at ask 230.10
    book.sell(1001, "NVDA", 5.0, tp=135.00)  # opens at bid 140.00
    r = book.quote(AAPL=(224.00, 224.10), NVDA=(134.50, 134.52))
    sl, tp = r.events[:2]
    # SL: bid 224.00 <= 225.00, closed at bid: (224.00 - 230.10) * 10 = -61.00
    assert sl["kind"] == "sl" and sl["price"] == 224 * PX and sl["profit"] == -6_100
    # TP: ask 134.52 <= 135.00, closed at ask: (140.00 - 134.52) * 5 = 27.40
    assert tp["kind"] == "tp" and tp["price"] == 134_520_000 and tp["profit"] == 2_740
    deals = [book.eng.deal_row(i) for i in range(len(book.eng.deals))][-2:]
    assert [d["reason"] for d in deals] == [DealReason.SL, DealReason.TP]
    assert history(book, sl["order"])["reason"] == 4 and history(book, tp["order"])["reason"] == 5
    assert book.positions(1001) == []
    # 10,000.00 - 61.00 + 27.40
    assert book.info(1001)["balance"] == 9_966.40
    assert book.eng.ledger_total() == 0


def test_sl_tp_run_before_activations(book):
    book.buy(1001, "AAPL", 1.0, sl=229.00)
    t = pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.50, volume=1.0).data.order
    r = book.quote(AAPL=(228.90, 229.00))
    assert [e["kind"] for e in r.events] == ["sl", "order_filled"]
    assert r.events[1]["order"] == t


def test_stop_limit_places_its_limit_order(book):
    t = pending(book, 1001, type=OrderType.BUY_STOP_LIMIT, price=231.00, stoplimit=230.50).data
    t = t.order
    # margin at the limit price: 10 * 230.50 * 0.2 = 461.00
    assert book.info(1001)["margin_initial"] == 461.00
    r = book.quote(AAPL=(231.90, 232.00))  # ask 232.00 >= 231.00: activates
    assert r.events[0]["kind"] == "stop_limit_activated"
    (row,) = ext(book).orders_of(0)
    assert row["ticket"] == t and row["type"] == OrderType.BUY_LIMIT
    assert row["price_open"] == 230_500_000 and book.positions(1001) == []
    r = book.quote(AAPL=(230.30, 230.40))  # ask 230.40 <= 230.50
    assert r.events[0]["kind"] == "order_filled" and r.events[0]["price"] == 230_400_000


def test_specified_expiration_and_day_orders_expire(book):
    now_s = book.t // 1000
    t1 = pending(book, 1001, type=OrderType.BUY_LIMIT, price=200.00, type_time=2,
                 expiration=now_s + 60).data.order
    t2 = pending(book, 1001, type=OrderType.BUY_LIMIT, price=201.00, type_time=1).data.order
    day_end = sessions.next_close(0, book.t)  # the US session close of the placement day
    assert history_free(book) and book.info(1001)["margin_initial"] == pytest.approx(
        (200.00 + 201.00) * 10 * 0.2)  # 400.00 + 402.00
    book.t += 61_000
    r = book.quote(AAPL=(230.00, 230.10))
    assert [e["kind"] for e in r.events] == ["order_expired"]
    assert history(book, t1)["state"] == OrderState.EXPIRED
    assert history(book, t1)["time_done_msc"] == book.t
    assert book.info(1001)["margin_initial"] == 402.00
    book.t = day_end
    book.quote(AAPL=(230.00, 230.10))
    assert history(book, t2)["state"] == OrderState.EXPIRED
    assert book.info(1001)["margin_initial"] == 0.0


def history_free(b: Book) -> bool:
    return all(b.eng.orders.cols.state[: len(b.eng.orders)] != OrderState.PLACED)


def test_modify_and_remove(book):
    t = pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.00).data.order
    mod = {"action": 7, "order": t, "price": 228.00, "sl": 220.00}
    r = book.apply(C.SendOrder, login=1001, request=mod)
    assert r.retcode == Retcode.DONE
    # 10 * 228.00 * 0.2 = 456.00
    assert book.info(1001)["margin_initial"] == 456.00
    h = book.eng.state_hash()
    r = book.apply(C.SendOrder, login=1001, request=mod)
    assert r.retcode == Retcode.NO_CHANGES and book.eng.state_hash() == h
    r = book.apply(C.SendOrder, login=1001, request={"action": 8, "order": t})
    assert r.retcode == Retcode.DONE
    assert history(book, t)["state"] == OrderState.CANCELED
    assert book.info(1001)["margin_initial"] == 0.0
    r = book.apply(C.SendOrder, login=1001, request={"action": 8, "order": t})
    assert r.retcode == Retcode.INVALID and "CANCELED" in r.comment


def test_sltp_on_positions(book):
    r = book.buy(1001, "AAPL", 1.0)
    p = r.data.order
    h = book.eng.state_hash()
    bad = [
        ({"action": 6, "symbol": "AAPL", "sl": 225.0}, Retcode.INVALID),  # hedging: position
        ({"action": 6, "position": p, "sl": 231.0}, Retcode.INVALID_STOPS),  # above bid
        ({"action": 6, "position": p, "tp": 229.0}, Retcode.INVALID_STOPS),  # below bid
        ({"action": 6, "position": p}, Retcode.NO_CHANGES),
        ({"action": 6, "position": p, "sl": math.nan}, Retcode.INVALID_STOPS),
        ({"action": 6, "position": 999, "sl": 225.0}, Retcode.INVALID),
    ]
    for req, code in bad:
        assert book.apply(C.SendOrder, login=1001, request=req).retcode == code, req
    assert book.eng.state_hash() == h
    r = book.apply(C.SendOrder, login=1001, request={"action": 6, "position": p, "sl": 225.0,
                                                      "tp": 240.0})
    assert r.retcode == Retcode.DONE
    (pos,) = book.positions(1001)
    assert (pos["sl"], pos["tp"]) == (225 * PX, 240 * PX)
    # netting: by symbol
    book.sell(2002, "NVDA", 2.0)
    r = book.apply(C.SendOrder, login=2002, request={"action": 6, "symbol": "NVDA",
                                                      "sl": 141.0})
    assert r.retcode == Retcode.DONE
    r = book.quote(NVDA=(140.98, 141.00))  # ask 141.00 >= sl 141.00
    assert r.events[0]["kind"] == "sl" and book.positions(2002) == []


def test_bad_requests_change_nothing(book):
    t = pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.00).data.order
    h = book.eng.state_hash()
    now_s = book.t // 1000
    cases = [
        (dict(type=OrderType.BUY_LIMIT, price=math.nan), Retcode.INVALID_PRICE),
        (dict(type=OrderType.BUY_LIMIT, price=231.00), Retcode.INVALID_PRICE),  # above ask
        (dict(type=OrderType.BUY_STOP, price=229.00), Retcode.INVALID_PRICE),  # below ask
        (dict(type=OrderType.SELL_LIMIT, price=229.00), Retcode.INVALID_PRICE),
        (dict(type=OrderType.SELL_STOP, price=231.00), Retcode.INVALID_PRICE),
        (dict(type=OrderType.BUY_LIMIT, price=229.001), Retcode.INVALID_PRICE),  # off grid
        (dict(type=OrderType.BUY_LIMIT, price=229.0, sl=math.inf), Retcode.INVALID_STOPS),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, sl=229.5), Retcode.INVALID_STOPS),
        (dict(type=OrderType.SELL_LIMIT, price=231.0, tp=232.0), Retcode.INVALID_STOPS),
        (dict(type=OrderType.BUY_STOP_LIMIT, price=231.0), Retcode.INVALID_PRICE),  # stoplimit
        (dict(type=OrderType.BUY_STOP_LIMIT, price=231.0, stoplimit=231.5),
         Retcode.INVALID_PRICE),
        (dict(type=OrderType.BUY, price=229.0), Retcode.INVALID_ORDER),
        (dict(type=9, price=229.0), Retcode.INVALID_ORDER),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, type_time=2, expiration=now_s - 1),
         Retcode.INVALID_EXPIRATION),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, type_time=2), Retcode.INVALID_EXPIRATION),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, type_time=7), Retcode.INVALID_EXPIRATION),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, volume=0.05), Retcode.INVALID_VOLUME),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, type_filling=3), Retcode.PLACED),
        (dict(type=OrderType.BUY_STOP, price=231.0, type_filling=3), Retcode.INVALID_FILL),
        (dict(type=OrderType.BUY_LIMIT, price=229.0, volume=500.0), Retcode.NO_MONEY),
    ]
    for kw, code in cases:
        r = pending(book, 1001, **kw)
        assert r.retcode == code, (kw, r.comment)
        if code != Retcode.PLACED:
            assert book.eng.state_hash() == h, kw
        else:
            book.apply(C.SendOrder, login=1001, request={"action": 8, "order": r.data.order})
            h = book.eng.state_hash()
    for req in ({"action": 7, "order": 12345, "price": 228.0},
                {"action": 8, "order": 12345},
                {"action": 7, "order": t, "price": math.nan},
                {"action": 7, "order": t, "price": 231.0}):
        r = book.apply(C.SendOrder, login=1001, request=req)
        assert r.retcode in (Retcode.INVALID, Retcode.INVALID_PRICE), req
    # another account's order: "not found", untouched
    for req in ({"action": 8, "order": t}, {"action": 7, "order": t, "price": 228.0}):
        assert book.apply(C.SendOrder, login=2002, request=req).retcode == Retcode.INVALID
    assert book.eng.state_hash() == h


def test_market_state_and_trade_mode_refusals(book):
    h = book.eng.state_hash()
    book.apply(C.SetSymbol, name="AAPL", changes={"trade_mode": 1})  # LONG ONLY
    r = pending(book, 1001, type=OrderType.SELL_LIMIT, price=231.0)
    assert r.retcode == Retcode.LONG_ONLY
    assert pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.0).retcode == Retcode.PLACED
    book.apply(C.SetSymbol, name="AAPL", changes={"trade_mode": 4})
    book.apply(C.SetMarket, symbols=("NVDA",), market_open=False)
    r = pending(book, 1001, type=OrderType.BUY_LIMIT, symbol="NVDA", price=139.0)
    assert r.retcode == Retcode.MARKET_CLOSED
    r = pending(book, 1001, type=OrderType.BUY_LIMIT, symbol="MSFT", price=100.0)
    assert r.retcode == Retcode.PRICE_OFF  # no quote yet
    assert h != book.eng.state_hash()


def test_limit_orders_per_account():
    groups = {"small": AccountGroup(name="small", limit_orders=2)}
    b = Book(Engine(config=EngineConfig(groups=groups)))
    b.account(7, 1_000_000, group="small")
    b.quote(AAPL=(230.00, 230.10))
    for px in (229.0, 228.0):
        assert pending(b, 7, type=OrderType.BUY_LIMIT, price=px, volume=1.0).retcode == 10008
    h = b.eng.state_hash()
    assert pending(b, 7, type=OrderType.BUY_LIMIT, price=227.0, volume=1.0).retcode == \
        Retcode.LIMIT_ORDERS
    assert b.eng.state_hash() == h


def test_reserved_margin_counts_against_market_orders(book):
    # 10,000.00 free; BUY LIMIT 200 lots at 200.00 reserves 200 * 200.00 * 0.2 = 8,000.00
    assert pending(book, 1001, type=OrderType.BUY_LIMIT, price=200.0, volume=200.0).ok
    # a market buy of 50 AAPL needs 50 * 230.10 * 0.2 = 2,301.00 > 10,000 - 8,000 - 5.00 spread
    r = book.buy(1001, "AAPL", 50.0)
    assert r.retcode == Retcode.NO_MONEY
    assert book.buy(1001, "AAPL", 40.0).retcode == Retcode.DONE  # 1,840.80: fits


def test_triggered_order_without_margin_is_canceled(book):
    t = pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.0, volume=200.0).data.order
    # 200 * 229.00 * 0.2 = 9,160.00 reserved; then a loss eats the equity
    book.buy(1001, "NVDA", 10.0)  # 10 * 140.02 * 0.2 = 280.04 margin
    book.apply(C.Withdraw, login=1001, amount=50_000)  # 500.00 out: 9,500 - 9,160 - 280 > 0
    r = book.quote(AAPL=(228.0, 228.1), NVDA=(100.0, 100.02))  # NVDA loss: 400.20
    ev = [e for e in r.events if e["kind"] == "order_canceled"]
    assert ev and ev[0]["order"] == t and ev[0]["retcode"] == Retcode.REJECT_CANCEL
    assert ev[0]["cause"] == Retcode.NO_MONEY
    assert history(book, t)["state"] == OrderState.CANCELED
    assert book.info(1001)["margin_initial"] == 0.0


def test_netting_fill_adds_to_the_position(book):
    book.buy(2002, "AAPL", 10.0)  # at 230.10
    pending(book, 2002, type=OrderType.BUY_LIMIT, price=229.0, volume=10.0)
    book.quote(AAPL=(228.0, 228.1))
    (pos,) = book.positions(2002)
    # average (230.10 * 10 + 228.10 * 10) / 20 = 229.10
    assert pos["volume"] == 200_000 and pos["price_open"] == 229_100_000


def test_order_check_includes_the_reservation(book):
    req = {"action": 5, "symbol": "AAPL", "volume": 10.0, "type": 2, "price": 229.0,
           "type_filling": 2}
    h = book.eng.state_hash()
    res = book.eng.order_check(1001, req)
    # 10 * 229.00 * 0.2 = 458.00; free 10,000.00 - 458.00
    assert res.retcode == 0 and res.margin == 458.00 and res.margin_free == 9_542.00
    assert book.eng.order_check(1001, {**req, "price": 231.0}).retcode == Retcode.INVALID_PRICE
    assert book.eng.state_hash() == h


def test_snapshot_round_trip_keeps_the_book(book):
    pending(book, 1001, type=OrderType.BUY_LIMIT, price=229.0, type_time=1, comment="x")
    pending(book, 2002, type=OrderType.SELL_STOP_LIMIT, symbol="NVDA", price=139.0,
            stoplimit=139.5)
    arrays, meta = book.eng.snapshot()
    eng2 = Engine.from_snapshot(arrays, meta)
    assert eng2.state_hash() == book.eng.state_hash()
    assert eng2.account_info(1001)["margin_initial"] == 458.00
    b2 = Book(eng2)
    b2.t = book.t
    r1 = book.quote(AAPL=(228.0, 228.1), NVDA=(138.0, 138.02))
    r2 = b2.quote(AAPL=(228.0, 228.1), NVDA=(138.0, 138.02))
    assert r1.events == r2.events and len(r1.events) == 2
    assert eng2.state_hash() == book.eng.state_hash()
