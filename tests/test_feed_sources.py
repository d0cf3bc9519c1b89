"""Tick sources: synthetic feed, replay (ticks and daily bars), push queue, pacing."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfd.constants import TickFlag
from cfd.feed.sources import MS_PER_YEAR, PushSource, ReplayFeed, SyntheticFeed, paced
from cfd.feed.ticks import FLAG_QUOTE, TickBatch
from cfd.instruments.sessions import NEW_YORK, Session, open_mask

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
REG, EXT, ALW = Session.US_REGULAR, Session.US_EXTENDED, Session.ALWAYS


def ny(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=NEW_YORK).timestamp() * 1000)


def _feed(seed: int = 7, **kw) -> SyntheticFeed:
    args = dict(symbol_names=["AAA", "BBB", "CCC"], start_prices=[100.0, 25.5, 1000.0],
                seed=seed, vol_annual=[0.3, 0.5, 0.2], jump_prob=0.01, jump_size=0.03,
                market_corr=0.4, spread_bps=10.0, tick_interval_ms=60_000, digits=[2, 2, 1],
                sessions=[REG, EXT, REG], gap_jump_prob=0.3)
    args.update(kw)
    return SyntheticFeed(**args)


# -- synthetic -------------------------------------------------------------------------------


def test_synthetic_is_reproducible_and_batch_size_free() -> None:
    a = _feed().next_batch(2_000)
    assert a == _feed().next_batch(2_000)
    assert a != _feed(seed=8).next_batch(2_000)
    f = _feed()
    # 2000 steps of one minute cross nights and a weekend: skipped closed time, same ticks
    parts = [f.next_batch(n) for n in (1, 999, 333, 667)]
    assert TickBatch.concat(parts) == a


def test_synthetic_respects_sessions_and_skips_closed_time() -> None:
    f = _feed(tick_interval_ms=300_000)  # five-minute steps
    b = f.next_batch(1_000)
    kinds = f.kinds[b.symbol]
    assert open_mask(kinds, b.time_msc).all()  # every tick in an open session
    assert np.all(np.diff(b.time_msc) >= 0)
    # first tick: the default start, Monday 2026-01-05 09:30 New York, every symbol open
    assert b.time_msc[:3].tolist() == [ny(2026, 1, 5, 9, 30)] * 3
    # Friday 20:00 close of the extended session -> Monday 04:00: nothing in between
    fri, mon = ny(2026, 1, 9, 20), ny(2026, 1, 12, 4)
    assert not np.any((b.time_msc >= fri) & (b.time_msc < mon))
    assert mon in b.time_msc.tolist()


def test_synthetic_gap_only_at_reopen() -> None:
    # no diffusion, no intraday jumps, a sure 10% log-jump at each reopen
    f = SyntheticFeed(["X"], [100.0], seed=1, vol_annual=0.0, jump_prob=0.0,
                      spread_bps=10.0, sessions=[REG], tick_interval_ms=1_800_000,
                      gap_jump_prob=1.0, gap_jump_size=0.1)
    b = f.next_batch(40)  # 30-minute steps: 13 a day (09:30 .. 15:30)
    day = (b.time_msc - b.time_msc[0]) // 86_400_000
    first = b.take(day == 0)
    # mid 100, half-spread 100 * 10 bps / 2 = 0.05: bid 99.95, ask 100.05 all day long
    assert set(first.bid.tolist()) == {99.95} and set(first.ask.tolist()) == {100.05}
    assert len(first) == 13  # 09:30 + 12 half hours up to 15:30
    for d in (1, 2, 3):
        prices = b.bid[day == d]
        assert len(set(prices.tolist())) == 1  # flat within the day
    assert len({float(b.bid[day == d][0]) for d in range(4)}) == 4  # moved at each open


def test_synthetic_full_correlation_moves_together() -> None:
    f = SyntheticFeed(["A", "B"], [50.0, 50.0], seed=3, vol_annual=0.4, market_corr=1.0,
                      digits=4)
    b = f.next_batch(500)
    assert np.array_equal(b.bid[b.symbol == 0], b.bid[b.symbol == 1])


def test_synthetic_volatility_and_correlation_match_parameters() -> None:
    n = 20_000
    f = SyntheticFeed(["A", "B"], [1e4, 1e4], seed=11, vol_annual=[0.2, 0.6], market_corr=0.5,
                      digits=6, spread_bps=0.0, tick_interval_ms=1_000)
    b = f.next_batch(n)
    r = np.diff(np.log(np.stack([b.bid[b.symbol == 0], b.bid[b.symbol == 1]])), axis=1)
    # sigma * sqrt(1 s / 1 year): 0.2 * sqrt(1000 / 31,557,600,000) = 3.56e-5
    expected = np.array([0.2, 0.6]) * np.sqrt(1_000 / MS_PER_YEAR)
    assert np.allclose(r.std(axis=1), expected, rtol=0.03)  # 20,000 draws: se ~0.5%
    # market_corr 0.5 for both: corr = sqrt(0.5 * 0.5) = 0.5
    assert abs(np.corrcoef(r)[0, 1] - 0.5) < 0.03


def test_synthetic_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        SyntheticFeed(["A"], [0.0])
    with pytest.raises(ValueError):
        SyntheticFeed(["A"], [1.0], market_corr=1.5)
    with pytest.raises(ValueError):
        SyntheticFeed(["A", "B"], [1.0, 2.0, 3.0])


def test_synthetic_run_and_batches() -> None:
    seen: list[int] = []
    total = _feed().run(lambda b: seen.append(len(b)), n_batches=3, batch_ticks=100)
    assert total == sum(seen) and len(seen) == 3
    assert [len(b) for b in _feed().batches(100, n_batches=3)] == seen


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    vol=st.floats(0.0, 3.0),
    jump_prob=st.floats(0.0, 0.5),
    jump_size=st.floats(0.0, 1.0),
    corr=st.floats(0.0, 1.0),
    spread=st.floats(0.0, 500.0),
    digits=st.lists(st.integers(0, 5), min_size=3, max_size=3),
    start=st.lists(st.floats(0.01, 1e5), min_size=3, max_size=3),
    sessions=st.lists(st.sampled_from(list(Session)), min_size=3, max_size=3),
    interval=st.sampled_from([1, 1_000, 3_600_000]),
)
def test_synthetic_prices_positive_on_grid_reproducible(
    seed, vol, jump_prob, jump_size, corr, spread, digits, start, sessions, interval
) -> None:
    def make() -> SyntheticFeed:
        return SyntheticFeed(["A", "B", "C"], start, seed=seed, vol_annual=vol,
                             jump_prob=jump_prob, jump_size=jump_size, market_corr=corr,
                             spread_bps=spread, digits=digits, sessions=sessions,
                             tick_interval_ms=interval, gap_jump_prob=0.5, gap_jump_size=0.5)
    b = make().next_batch(200)
    assert b == make().next_batch(200)
    scale = 10.0 ** np.array(digits)[b.symbol]
    for px in (b.bid, b.ask):
        assert np.all(px > 0) and np.all(np.isfinite(px))
        assert np.array_equal(np.rint(px * scale) / scale, px)  # exactly on the point grid
    assert np.all(b.bid <= b.ask)
    assert np.all(np.diff(b.time_msc) >= 0)
    assert open_mask(np.array(sessions, dtype=np.int8)[b.symbol], b.time_msc).all()


# -- replay ----------------------------------------------------------------------------------


def test_replay_tick_csv_names_iso_times_and_order(tmp_path: Path) -> None:
    p = tmp_path / "ticks.csv"
    p.write_text(
        "time,symbol,bid,ask,last,volume\n"
        "2026-11-24T15:00:01,MSFT,420.10,420.20,,\n"
        "2026-11-24T15:00:00.500,AAPL,230.00,230.05,230.02,100\n"
        "1795532400.25,AAPL,230.01,230.06,,\n"  # epoch seconds: 2026-11-24T15:00:00.250Z
    )
    r = ReplayFeed.from_tick_csv(p, symbols=["AAPL", "MSFT"])
    assert len(r) == 3
    b = r.next_batch(10)
    t0 = int(dt.datetime(2026, 11, 24, 15, tzinfo=dt.UTC).timestamp() * 1000)
    assert b.time_msc.tolist() == [t0 + 250, t0 + 500, t0 + 1_000]  # sorted by time
    assert b.symbol.tolist() == [0, 0, 1]
    assert b.bid.tolist() == [230.01, 230.00, 420.10]
    # BID|ASK = 0x06; with last and volume + LAST 0x08 + VOLUME 0x10 = 0x1E
    assert b.flags.tolist() == [0x06, 0x1E, 0x06]
    assert b.volume.tolist() == [0, 100, 0]
    assert r.exhausted and len(r.next_batch(5)) == 0
    r.rewind()
    assert r.remaining == 3


def test_replay_tick_csv_time_msc_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("time_msc,symbol,bid,ask,flags\n5,1,1.0,1.1,2\n4,0,2.0,2.1,\n")
    b = ReplayFeed.from_tick_csv(p).next_batch(9)
    assert b.time_msc.tolist() == [4, 5] and b.flags.tolist() == [FLAG_QUOTE, 2]
    bad = tmp_path / "bad.csv"
    bad.write_text("time_msc,symbol,bid,ask\n1,A,1.0,1.1\n2,ZZZ,1.0,1.1\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        ReplayFeed.from_tick_csv(bad, symbols={"A": 0})
    nohdr = tmp_path / "n.csv"
    nohdr.write_text("when,symbol,bid,ask\n1,0,1,1\n")
    with pytest.raises(ValueError, match="columns"):
        ReplayFeed.from_tick_csv(nohdr)


def test_replay_bars_early_close_day(tmp_path: Path) -> None:
    p = tmp_path / "bars.csv"
    p.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2026-11-25,12,12.5,10,10.5,10.5,8\n"
        "2026-11-26,null,null,null,null,null,null\n"
        "2026-11-27,10,12,9.5,11,11,10\n"
    )
    r = ReplayFeed.from_bar_csv(p, symbol=4, digits=2, spread_bps=10.0)
    assert len(r) == 8  # two good rows x 4 ticks; the null row is skipped
    b = r.next_batch(8)
    wed, fri = b.take(slice(0, 4)), b.take(slice(4, 8))
    # Wednesday, falling bar nearer its high (12.5 - 12 = 0.5 < 12 - 10 = 2): O, H, L, C
    assert wed.bid.tolist() == [12.0, 12.5, 10.0, 10.5]
    # 09:30-16:00 = 390 min: ticks at +0, +130, +260 min and 15:59
    assert wed.time_msc.tolist() == [ny(2026, 11, 25, 9, 30), ny(2026, 11, 25, 11, 40),
                                     ny(2026, 11, 25, 13, 50), ny(2026, 11, 25, 15, 59)]
    # Friday after Thanksgiving closes 13:00: 210 min -> +0, +70, +140 min and 12:59;
    # O - L = 0.5 < H - O = 2: the low comes first
    assert fri.time_msc.tolist() == [ny(2026, 11, 27, 9, 30), ny(2026, 11, 27, 10, 40),
                                     ny(2026, 11, 27, 11, 50), ny(2026, 11, 27, 12, 59)]
    assert fri.bid.tolist() == [10.0, 9.5, 12.0, 11.0]
    # ask = bid + max(1 point, 10 bps): 10.00 * 0.001 = 0.01 -> 10.01; 12 * 0.001 = 0.012 -> 12.01
    assert fri.ask.tolist() == [10.01, 9.51, 12.01, 11.01]
    assert fri.last.tolist() == fri.bid.tolist()
    assert fri.volume.tolist() == [2, 2, 2, 4]  # 10 // 4 = 2 each, remainder 2 on the close
    assert wed.volume.tolist() == [2, 2, 2, 2]  # 8 // 4 = 2
    assert np.all(fri.flags == int(TickFlag.BID | TickFlag.ASK | TickFlag.LAST | TickFlag.VOLUME))
    only_fri = ReplayFeed.from_bar_csv(p, symbol=4, start=dt.date(2026, 11, 26))
    assert len(only_fri) == 4


def test_replay_bars_tie_rule(tmp_path: Path) -> None:
    p = tmp_path / "tie.csv"
    p.write_text("Date,Open,High,Low,Close,Volume\n2026-11-24,10,11,9,10.5,0\n"
                 "2026-11-23,10,11,9,9.5,0\n")
    b = ReplayFeed.from_bar_csv(p, symbol=0).next_batch(8)
    # both bars 1.00 from each extreme: rising bar low first, falling bar high first
    assert b.bid.tolist() == [10.0, 11.0, 9.0, 9.5, 10.0, 9.0, 11.0, 10.5]


@pytest.mark.skipif(not (DATA / "nvda-1999-2014.csv").exists(), reason="shared data absent")
def test_replay_real_daily_bars() -> None:
    r = ReplayFeed.from_bar_csv(DATA / "nvda-1999-2014.csv", symbol=0, digits=2)
    assert len(r) == 4 * 4_012  # 4,012 rows in the README, four ticks each
    t = r.ticks
    assert np.all(t.bid > 0) and np.all(t.ask > t.bid) and np.all(np.diff(t.time_msc) > 0)
    # 1999-01-22: O 1.750000 H 1.953125 L 1.552083 C 1.640625 -> O-L 0.198 < H-O 0.203
    assert t.bid[:4].tolist() == [1.75, 1.55, 1.95, 1.64]
    # 2001-09-17 is the first session after the 9/11 closure: it opens at 09:30
    first_after = ny(2001, 9, 17, 9, 30)
    assert first_after in t.time_msc.tolist()
    assert not np.any((t.time_msc > ny(2001, 9, 10, 16)) & (t.time_msc < first_after))
    both = ReplayFeed.merge([r, ReplayFeed.from_bar_csv(DATA / "orcl-1995-2014.csv", 1)])
    assert len(both) == 4 * (4_012 + 5_036)
    assert np.all(np.diff(both.ticks.time_msc) >= 0)


def test_paced_sleeps_at_speed() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    feed = ReplayFeed(TickBatch.from_arrays([0] * 4, [0, 1_000, 3_000, 7_000], [1.0] * 4,
                                            [1.0] * 4))
    out = list(feed.batches(batch_ticks=2, speed=2.0, clock=lambda: now[0], sleep=sleep))
    assert [len(b) for b in out] == [2, 2]
    # batch 1 ends at 1,000 ms of feed time -> due 0.5 s after start at speed 2;
    # batch 2 ends at 7,000 ms -> due 3.5 s after start, 3.0 s after the first sleep
    assert slept == [0.5, 3.0]
    assert [len(b) for b in paced(iter([TickBatch.empty()]), None)] == [0]


# -- push ------------------------------------------------------------------------------------


def test_push_source_order_flags_and_partial_drain() -> None:
    q = PushSource(clock_msc=lambda: 42)
    q.post(0, 1.0, 1.1)
    q.post(1, 2.0, 2.1, time_msc=7, last=2.05, volume=3)
    q.post_batch(TickBatch.from_arrays([2, 2], [8, 9], [3.0, 3.1], [3.2, 3.3]))
    q.post(0, 1.2, 1.3, time_msc=10)
    assert len(q) == 5
    first = q.drain(max_ticks=3)
    assert first.symbol.tolist() == [0, 1, 2] and first.time_msc.tolist() == [42, 7, 8]
    assert first.flags.tolist() == [0x06, 0x1E, 0x06]  # 0x06 | LAST 0x08 | VOLUME 0x10
    assert len(q) == 2
    rest = q.drain()
    assert rest.symbol.tolist() == [2, 0] and rest.bid.tolist() == [3.1, 1.2]
    assert len(q) == 0 and len(q.drain()) == 0


def test_push_source_threads() -> None:
    q = PushSource(clock_msc=lambda: 0)
    assert q.wait(timeout=0.01) is False

    def producer(k: int) -> None:
        for i in range(500):
            q.post(k, float(i + 1), float(i + 1), time_msc=i)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    assert q.wait(timeout=5.0) is True
    for th in threads:
        th.join()
    b = q.drain()
    assert len(b) == 2_000  # 4 producers x 500
    for k in range(4):
        assert b.time_msc[b.symbol == k].tolist() == list(range(500))  # each producer in order
