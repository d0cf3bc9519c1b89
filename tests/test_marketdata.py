"""Market data: bar building, storage (SQLite and PostgreSQL), the recorder, import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cfd.feed.ticks import TickBatch
from cfd.marketdata import RATE_DTYPE, MarketData, synthetic
from cfd.marketdata.bars import combine, m1_by_symbol, merge, resample
from cfd.marketdata.importer import CsvError, import_file, read_bars
from cfd.marketdata.recorder import TickRecorder
from cfd.marketdata.store import chunks_by_symbol
from cfd.marketdata.timeframes import D1, MN1, TIMEFRAMES, W1, bar_open
from tests.store_fixtures import store_url  # noqa: F401

T0 = int(dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC).timestamp())  # a Monday
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def ticks(times_s: list[float], bids: list[float], spread: float = 0.02,
          sym: list[int] | None = None) -> TickBatch:
    n = len(times_s)
    return TickBatch.from_arrays(sym or [0] * n, [int(t * 1000) for t in times_s], bids,
                                 [b + spread for b in bids], volume=[1] * n)


def bars(times: list[int], closes: list[float]) -> np.ndarray:
    out = np.zeros(len(times), RATE_DTYPE)
    out["time"] = times
    out["open"] = out["high"] = out["low"] = out["close"] = closes
    out["tick_volume"] = 1
    return out


@pytest.fixture
def md(store_url: str) -> Iterator[MarketData]:  # noqa: F811
    m = MarketData(store_url)
    yield m
    m.close()


# ---------------------------------------------------------------------------- bars
def test_m1_bars_from_ticks() -> None:
    # 14:30:00 100.00, 14:30:20 101.50, 14:30:59 99.00 -> one bar; 14:31:05 100.25 -> next
    b = m1_by_symbol(("AAPL",), ticks([T0, T0 + 20, T0 + 59, T0 + 65],
                                      [100.0, 101.5, 99.0, 100.25]), np.array([0.01]))["AAPL"]
    assert b["time"].tolist() == [T0, T0 + 60]
    assert (b["open"][0], b["high"][0], b["low"][0], b["close"][0]) == (100.0, 101.5, 99.0,
                                                                         99.0)
    assert b["tick_volume"].tolist() == [3, 1] and b["real_volume"].tolist() == [3, 1]
    assert b["spread"].tolist() == [2, 2]  # 0.02 / point 0.01


def test_columnar_m1_equals_the_record_fold() -> None:
    """m1_by_symbol (columns, many symbols) == combine over one-tick bars, per symbol."""
    rng = np.random.default_rng(3)
    n = 5_000
    sym = np.sort(rng.integers(0, 7, n))
    t = np.concatenate([np.sort(rng.integers(T0 * 1000, (T0 + 900) * 1000, (sym == s).sum()))
                        for s in range(7)])
    bid = np.round(rng.uniform(90, 110, n), 2)
    batch = TickBatch.from_arrays(sym, t, bid, bid + 0.03, volume=rng.integers(0, 9, n))
    names = tuple(f"S{i}" for i in range(7))
    got = m1_by_symbol(names, batch, np.full(7, 0.01))
    for s in range(7):
        one = np.zeros((sym == s).sum(), RATE_DTYPE)
        one["time"] = t[sym == s] // 60_000 * 60
        for k in ("open", "high", "low", "close"):
            one[k] = bid[sym == s]
        one["tick_volume"] = 1
        one["spread"] = 3
        one["real_volume"] = batch.volume[sym == s]
        assert (got[names[s]] == combine(one)).all()


def test_split_bytes_decode_to_the_slices() -> None:
    rng = np.random.default_rng(2)
    n = 1_000
    b = TickBatch.from_arrays(np.sort(rng.integers(0, 5, n)), rng.integers(0, 2**40, n),
                              rng.random(n), rng.random(n) + 1,
                              volume=np.where(rng.random(n) < 0.1, 5, 0))
    cut = np.flatnonzero(np.r_[True, b.symbol[1:] != b.symbol[:-1], True]).tolist()
    parts = b.split_bytes(cut)
    assert len(parts) == 5
    for a, c, blob in zip(cut[:-1], cut[1:], parts, strict=True):
        part = b.take(slice(a, c))
        assert TickBatch.from_bytes(blob) == part
        if part.volume.any():  # the same optional columns: to_bytes' very bytes
            assert blob == part.to_bytes()


def test_merge_equals_sorting_and_folding() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        a = bars(sorted((rng.choice(60, 5, replace=False) * 60).tolist()),
                 rng.uniform(1, 2, 5).round(2).tolist())
        b = bars(sorted((rng.choice(60, 4, replace=False) * 60).tolist()),
                 rng.uniform(1, 2, 4).round(2).tolist())
        both = np.concatenate([a, b])
        assert (merge(a, b) == combine(both[np.argsort(both["time"], kind="stable")])).all()


def test_timeframes_and_resampling() -> None:
    sunday = int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp())
    assert bar_open(W1, T0) == sunday  # weeks open on Sunday 00:00, as MT5's W1
    assert bar_open(MN1, T0) == int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp())
    assert bar_open(0x4001, T0 + 1234) == T0 - 1800  # H1 of 14:30 opens at 14:00
    assert len(TIMEFRAMES) == 21
    # M1 closes 10, 11, 12, 13, 14 from 14:30 to 14:34 -> one M5 bar from 14:30:
    # open 10, high 14, low 10, close 14, 5 ticks
    m5 = resample(bars([T0 + 60 * k for k in range(5)], [10, 11, 12, 13, 14]), 5)
    assert m5[["time", "open", "high", "low", "close"]].tolist() == [(T0, 10, 14, 10, 14)]
    assert m5["tick_volume"].tolist() == [5]


def test_synthetic_intraday_folds_back_into_its_daily_bars() -> None:
    days = synthetic.trading_days(dt.date(2020, 1, 2), dt.date(2020, 1, 10))
    assert len(days) == 7  # Jan 2, 3, 6, 7, 8, 9, 10 (no weekend, no holiday)
    d1 = synthetic.daily_bars("AAPL", days, 300.0)
    assert d1["close"][-1] == 300.0
    m1 = synthetic.intraday("AAPL", d1, 0.01)
    assert len(m1) == 7 * 390  # 09:30-16:00 New York
    assert (synthetic.intraday("AAPL", d1, 0.01) == m1).all()  # seeded: the same bars
    back = resample(m1, D1)
    for k in ("time", "open", "high", "low", "close", "tick_volume"):
        assert (back[k] == d1[k]).all(), k
    jan10 = int(dt.datetime(2020, 1, 10, 14, 30, tzinfo=dt.UTC).timestamp())
    assert m1["time"][-390] == jan10  # EST: the session opens at 14:30 UTC


def test_synthetic_ticks_fold_back_into_their_bars(md: MarketData) -> None:
    days = synthetic.trading_days(dt.date(2020, 1, 6), dt.date(2020, 1, 8))
    md.write_bars("AAPL", D1, synthetic.daily_bars("AAPL", days, 300.0), synthetic_=True)
    jan7 = int(dt.datetime(2020, 1, 7, tzinfo=dt.UTC).timestamp())
    tk = md.ticks_range("AAPL", jan7 * 1000, (jan7 + 86_399) * 1000, 10**6)
    assert len(tk) == 390 * 4 and (np.diff(tk["time_msc"]) > 0).all()
    assert (np.round((tk["ask"] - tk["bid"]) / 0.01) == 1).all()  # spread 1 point
    m1 = md.rates_range("AAPL", 1, jan7, jan7 + 86_399)
    again = m1_by_symbol(("AAPL",), TickBatch.from_arrays(
        np.zeros(len(tk), np.int32), tk["time_msc"], tk["bid"], tk["ask"]), np.array([0.01]))
    for k in ("time", "open", "high", "low", "close"):
        assert (again["AAPL"][k] == m1[k]).all(), k
    # synthetic ticks are quotes: COPY_TICKS_INFO has them all, COPY_TICKS_TRADE none
    assert len(md.ticks_from("AAPL", jan7 * 1000, 100, flags=1)) == 100
    assert len(md.ticks_from("AAPL", 0, 1, flags=2)) == 0
    # the first 10 ticks from Jan 8, 00:00 are that day's session's first 10 (14:30 UTC)
    first = md.ticks_from("AAPL", (jan7 + 86_400) * 1000, 10)
    assert first["time"][0] == jan7 + 86_400 + 14 * 3600 + 1800 and len(first) == 10


# ---------------------------------------------------------------------------- storage
def test_ticks_and_bars_stored_and_read(md: MarketData) -> None:
    b = ticks([T0, T0 + 20, T0 + 59, T0 + 65, T0 + 30], [100.0, 101.5, 99.0, 100.25, 50.0],
              sym=[0, 0, 0, 0, 1])
    b = b.take(np.argsort(b.symbol, kind="stable"))
    names = ("AAPL", "MSFT")
    md.write_ticks(chunks_by_symbol(names, b), m1_by_symbol(names, b, np.full(2, 0.01)))
    got = md.ticks_range("AAPL", T0 * 1000, (T0 + 60) * 1000, 100)
    assert got["bid"].tolist() == [100.0, 101.5, 99.0] and got["flags"].tolist() == [22] * 3
    assert md.ticks_from("AAPL", (T0 + 21) * 1000, 1)["bid"].tolist() == [99.0]
    assert md.ticks_range("MSFT", 0, 2**60, 9)["time"].tolist() == [T0 + 30]
    # a second flush in the same minute folds into the stored bar: 14:31 100.25 then 102
    more = ticks([T0 + 70], [102.0])
    md.write_ticks(chunks_by_symbol(("AAPL",), more),
                   m1_by_symbol(("AAPL",), more, np.array([0.01])))
    m1 = md.rates_range("AAPL", 1, T0, T0 + 3600)
    assert m1[["time", "open", "high", "low", "close"]].tolist() == [
        (T0, 100.0, 101.5, 99.0, 99.0), (T0 + 60, 100.25, 102.0, 100.25, 102.0)]
    assert m1["tick_volume"].tolist() == [3, 2]
    h1 = md.rates_range("AAPL", 0x4001, T0 - 1800, T0)  # the 14:00 bar
    assert h1[["open", "high", "low", "close"]].tolist() == [(100.0, 102.0, 99.0, 102.0)]
    assert md.rates_from("AAPL", 1, T0 + 600, 1)["close"].tolist() == [102.0]
    assert md.rates_from("AAPL", 1, 2**40, 1, skip=1)["close"].tolist() == [99.0]
    assert md.rates_range("NOPE", 1, 0, 2**34).dtype == RATE_DTYPE


def test_daily_history_and_split(md: MarketData, tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                   "2008-10-01,11.00,12.00,10.00,11.50,11.40,1000\n"
                   "2008-10-02,null,null,null,null,null,null\n"
                   "2008-10-03,11.50,11.60,9.00,9.50,9.40,2000\n")
    assert import_file(md, csv, "NVDA") == 2
    d1 = md.rates_range("NVDA", D1, 0, 2**34)
    assert d1[["open", "close", "real_volume"]].tolist() == [(11.0, 11.5, 1000),
                                                             (11.5, 9.5, 2000)]
    # a 2:1 split effective on 2008-10-03 halves the earlier prices, doubles the volume:
    # 11.00 / 2 = 5.50, 11.50 / 2 = 5.75, 1000 * 2 = 2000
    oct3 = int(dt.datetime(2008, 10, 3, tzinfo=dt.UTC).timestamp())
    assert md.adjust_split("NVDA", oct3, 2.0, 2) == 1
    d1 = md.rates_range("NVDA", D1, 0, 2**34)
    assert d1[["open", "close", "real_volume"]].tolist() == [(5.5, 5.75, 2000),
                                                             (11.5, 9.5, 2000)]
    assert md.rates_range("NVDA", W1, 0, 2**34)["high"].tolist() == [11.6]


def test_bad_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="line 2: low 12.0 / high 11.0"):
        read_bars("time,open,high,low,close\n1000,11,11,12,11\n")
    with pytest.raises(CsvError, match="line 3: 'soon' is neither"):
        read_bars("time,open,high,low,close\n60,1,1,1,1\nsoon,1,1,1,1\n")


@pytest.mark.skipif(not (SHARED / "nvda-1999-2014.csv").exists(), reason="no shared data")
def test_import_yahoo_daily_bars(tmp_path: Path) -> None:
    from cfd.marketdata.importer import main

    url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    assert main([str(SHARED / "nvda-1999-2014.csv"), "--symbol", "NVDA",
                 "--marketdata-url", url]) == 0
    md = MarketData(url)
    d1 = md.rates_range("NVDA", D1, 0, 2**34)
    assert len(d1) == 4012 and d1["time"][0] == int(
        dt.datetime(1999, 1, 22, tzinfo=dt.UTC).timestamp())
    assert len(md.rates_range("NVDA", MN1, 0, 2**34)) == 192  # Jan 1999 .. Dec 2014
    md.close()


def test_recorder_stores_and_keeps_day_stats(tmp_path: Path) -> None:
    rec = TickRecorder(MarketData(f"sqlite:///{tmp_path / 'md.sqlite'}"), lambda _n: 0.01,
                       flush_ms=60_000)
    names = ("AAPL", "MSFT")
    rec.record([ticks([T0, T0 + 1], [100.0, 99.0], sym=[0, 1])], names)
    rec.record([ticks([T0 + 2, T0 + 3], [103.0, 101.0], sym=[0, 0])], names)
    assert rec.sync()
    assert rec.stored == 4 and rec.failed is None
    day = rec.day.get("AAPL")
    # first bid 100, bids 100 / 103 / 101: high 103, low 100; asks = bid + 0.02
    assert (day["first_bid"], day["bidhigh"], day["bidlow"], day["askhigh"]) == (
        100.0, 103.0, 100.0, 103.02)
    assert rec.store.ticks_range("AAPL", 0, 2**60, 9)["bid"].tolist() == [100.0, 103.0,
                                                                          101.0]
    rec.close()
    assert not rec.sync(timeout=0.1)  # stopped: readers read what is stored, no hang
