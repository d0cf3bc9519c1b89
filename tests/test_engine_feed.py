"""The engine's tick pipeline with price hygiene and trading sessions."""

import numpy as np

from cfd import commands as C
from cfd.constants import Retcode
from cfd.engine import Engine, EngineConfig
from cfd.feed.ticks import TickBatch
from tests.helpers import Book


def test_bad_ticks_are_counted_and_change_no_price():
    b = Book()
    b.quote(AAPL=(230.0, 230.1))
    s = b.eng.symbols.get("AAPL")
    before = b.eng.state_hash()
    for bid, ask in ((float("nan"), 230.0), (230.0, float("inf")), (-1.0, 1.0), (0.0, 1.0),
                     (231.0, 230.0)):
        r = b.quote(AAPL=(bid, ask))
        assert r.data == {"accepted": 0, "rejected": 1}
    assert b.eng.state_hash() == before
    assert b.eng.symbols.cols.bid[s] == 230_000_000
    assert b.eng.rejected_ticks == 5
    assert b.eng.hygiene.stats()["rejected_total"] == 5


def test_unknown_symbol_index_is_rejected_not_a_crash():
    eng = Engine()
    r = eng.apply(C.Ticks(time_msc=1, symbols=(999,), bid=(1.0,), ask=(1.1,)))
    assert r.data["rejected"] == 1
    r = eng.apply(C.Ticks(time_msc=2, symbols=(0,), bid=(1.0, 2.0), ask=(1.1,)))
    assert r.retcode == Retcode.INVALID


def test_unconfirmed_outlier_blocks_stop_out_and_fills_until_confirmed():
    b = Book()
    b.account(1, 100_000)  # 1,000.00 USDT
    b.quote(AAPL=(100.0, 100.0))
    assert b.buy(1, "AAPL", 40.0).ok  # margin 40 * 100 * 0.2 = 800
    # a 30% drop (beyond the 10% band): equity 1,000 - 40 * 30 = -200 would stop out
    b.quote(AAPL=(70.0, 70.0))
    assert len(b.positions(1)) == 1
    assert b.buy(1, "AAPL", 0.1).retcode == Retcode.PRICE_OFF
    b.quote(AAPL=(70.0, 70.0))
    b.quote(AAPL=(70.0, 70.0))  # confirmed by 2 further ticks -> stop-out runs
    assert b.positions(1) == []


def test_unconfirmed_outlier_triggers_no_stop_loss_until_confirmed():
    b = Book()
    b.account(1, 1_000_000)
    b.quote(AAPL=(100.0, 100.0))
    assert b.buy(1, "AAPL", 10.0, sl=90.0).ok
    # a bad print 20% down, then the price is back: the SL never fires
    r = b.quote(AAPL=(80.0, 80.0))
    assert [e["kind"] for e in r.events] == []
    b.quote(AAPL=(99.0, 99.0))
    assert len(b.positions(1)) == 1
    # a real fall: the 20% jump fires the SL once two further ticks confirm it, at 79
    b.quote(AAPL=(80.0, 80.0))
    assert len(b.positions(1)) == 1
    b.quote(AAPL=(79.5, 79.5))
    r = b.quote(AAPL=(79.0, 79.0))
    assert [e["kind"] for e in r.events] == ["sl"]
    assert b.positions(1) == []
    deal = b.last_deal()
    assert deal["reason"] == 4 and deal["price"] == 79_000_000  # DEAL_REASON_SL, at market


def test_tick_batch_command_round_trips_and_applies():
    eng = Engine()
    s = eng.symbols.get("TSLA")
    batch = TickBatch.from_arrays([s, s], [10, 20], [250.0, 251.0], [250.1, 251.1])
    cmd = C.TickBatchCommand(time_msc=20, actor="feed", batch=batch)
    again = C.decode(cmd.kind, cmd.to_payload())
    assert again.batch == batch and again.actor == "feed"
    eng.apply(again)
    assert eng.symbols.cols.bid[s] == 251_000_000 and eng.symbols.cols.tick_msc[s] == 20


def test_sessions_close_markets_and_stop_out_waits_for_the_open():
    eng = Engine(config=EngineConfig(sessions=True))
    aapl = eng.symbols.get("AAPL")
    # Tuesday 2026-11-24 15:00 UTC = 10:00 New York: open
    t = int(np.datetime64("2026-11-24T15:00:00", "ms").astype(np.int64))
    eng.apply(C.CreateAccount(time_msc=t, login=1, name="x"))
    eng.apply(C.Deposit(time_msc=t, login=1, amount=100_000))
    eng.apply(C.Ticks.of(t, {aapl: (100.0, 100.0)}))
    r = eng.apply(C.SendOrder(time_msc=t, login=1, request={
        "action": 1, "symbol": "AAPL", "volume": 40.0, "type": 0, "price": 100.0,
        "type_filling": 2}))
    assert r.ok, r
    # 22:00 UTC = 17:00 New York: closed
    t_closed = int(np.datetime64("2026-11-24T22:00:00", "ms").astype(np.int64))
    r = eng.apply(C.SendOrder(time_msc=t_closed, login=1, request={
        "action": 1, "symbol": "AAPL", "volume": 1.0, "type": 0, "price": 100.0,
        "type_filling": 2}))
    assert r.retcode == Retcode.MARKET_CLOSED
    # after-hours quotes below the stop-out: equity 1,000 - 40 * 16 = 360, 45% of 800
    for k in range(3):  # the 16% jump is confirmed by two further ticks
        eng.apply(C.Ticks.of(t_closed + k, {aapl: (84.0, 84.0)}))
    assert len(eng.positions) == 1  # market closed: the stop-out waits
    t_next = int(np.datetime64("2026-11-25T14:31:00", "ms").astype(np.int64))
    res = eng.apply(C.Ticks.of(t_next, {aapl: (84.0, 84.0)}))
    assert len(eng.positions) == 0
    assert any(e["kind"] == "stop_out" for e in res.events)


def test_rounds_keep_each_symbols_ticks_in_order():
    from cfd.feed.ticks import tick_rounds as _rounds

    sym = np.array([3, 1, 3, 3, 2, 1])
    rounds = [r.tolist() for r in _rounds(sym)]
    # round 0: first tick of 3, 1, 2; round 1: second of 3 and 1; round 2: third of 3
    assert rounds == [[0, 1, 4], [2, 5], [3]]
    assert _rounds(np.array([], dtype=np.int64)) == []


def test_every_tick_in_a_batch_runs_the_pipeline():
    b = Book()
    b.account(1, 1_000_000)
    b.quote(AAPL=(100.0, 100.0))
    assert b.buy(1, "AAPL", 1.0, sl=95.0).ok
    s = b.eng.symbols.get("AAPL")
    # one batch: the price dips through the stop loss and comes back
    batch = TickBatch.from_arrays([s, s, s], [b.t + 1] * 3, [99.0, 94.9, 99.0],
                                  [99.0, 94.9, 99.0])
    b.eng.apply(C.TickBatchCommand(time_msc=b.t + 1, batch=batch))
    assert b.positions(1) == []
    # closed at the dip's bid: (94.90 - 100.00) * 1 = -5.10
    assert b.info(1)["balance"] == 10_000.00 - 5.10


def test_accepted_ticks_are_handed_over_as_columns():
    """The effects carry the accepted ticks (snapped to the point grid) as one TickBatch per
    command, with the symbol names their indices refer to; rejected ticks are not there."""
    b = Book()
    b.eng.take_effects()
    s = b.eng.symbols.get("AAPL")
    b.eng.apply(C.Ticks(time_msc=5_000, symbols=(s, s), bid=(230.004, float("nan")),
                        ask=(230.056, 231.0)))
    eff = b.eng.take_effects()
    (got,) = eff.ticks
    assert isinstance(got, TickBatch) and got.symbol.tolist() == [s]
    # 230.004 and 230.056 on AAPL's 0.01 grid: 230.00 and 230.06
    assert (got.bid.tolist(), got.ask.tolist(), got.time_msc.tolist()) == (
        [230.0], [230.06], [5_000])
    assert eff.tick_names[s] == "AAPL"
