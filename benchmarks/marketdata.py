"""Market-data storage: a row per tick against columnar chunks, and reading bars back.

    python -m benchmarks.marketdata --ticks 1000000 --symbols 500 --bars 100000

* store: ``ticks`` synthetic ticks over ``symbols`` symbols, in flushes of ``flush`` ticks,
  (a) as a row per tick (SQLAlchemy Core executemany into an indexed table, as the journal
  transaction used to write them) and (b) as ``cfd.marketdata`` writes them (a chunk per
  symbol per flush, M1 bars folded per hour); ticks per second of each, on one thread.
* read: ``bars`` M1 bars of one symbol stored, then ``copy_rates_range`` of all of them
  (store call, and the HTTP endpoint's numpy answer through the app in process), and
  ``copy_ticks_range`` of ``bars`` ticks; median of ``--repeats`` after a warm-up, checked
  against the count first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np
from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table

from cfd.feed.ticks import TickBatch
from cfd.marketdata import RATE_DTYPE, MarketData
from cfd.marketdata.bars import m1_by_symbol
from cfd.marketdata.store import chunks_by_symbol
from cfd.store.schema import make_engine

T0_MSC = 1_767_000_000_000


def _flushes(ticks: int, symbols: int, flush: int, seed: int = 7) -> list[TickBatch]:
    rng = np.random.default_rng(seed)
    out, t = [], T0_MSC
    for start in range(0, ticks, flush):
        n = min(flush, ticks - start)
        sym = np.sort(rng.integers(0, symbols, n)).astype(np.int32)
        times = t + np.arange(n) * 2  # 500 ticks per second over the book
        t += 2 * n
        bid = np.round(100 + rng.normal(0, 1, n), 2)
        # on the cent grid, as the engine snaps accepted quotes before they are stored
        out.append(TickBatch.from_arrays(sym, times, bid, np.round(bid + 0.02, 2)))
    return out


def store_rows(url: str, flushes: list[TickBatch], names: tuple[str, ...]) -> float:
    meta = MetaData()
    table = Table("bench_ticks", meta, Column("id", Integer, primary_key=True),
                  Column("symbol", String(64)), Column("time_msc", BigInteger),
                  Column("bid", Float), Column("ask", Float), Column("last", Float),
                  Column("volume", BigInteger), Column("flags", Integer),
                  Index("ix_bench_ticks", "symbol", "time_msc"))
    db = make_engine(url, writer=True)
    meta.create_all(db)
    t = time.perf_counter()
    for b in flushes:
        rows = [{"symbol": names[s], "time_msc": tm, "bid": bi, "ask": a, "last": 0.0,
                 "volume": 0, "flags": 6} for s, tm, bi, a in zip(
                     b.symbol.tolist(), b.time_msc.tolist(), b.bid.tolist(), b.ask.tolist(),
                     strict=True)]
        with db.begin() as conn:
            conn.execute(table.insert(), rows)
    dt = time.perf_counter() - t
    db.dispose()
    return dt


def store_chunks(md: MarketData, flushes: list[TickBatch], names: tuple[str, ...]) -> float:
    points = np.full(len(names), 0.01)
    warm = flushes[0].take(slice(0, 100))  # numba loads (or compiles) the kernels untimed
    warm = warm.take(np.argsort(warm.symbol, kind="stable"))
    chunks_by_symbol(names, warm, points)
    m1_by_symbol(names, warm, points)
    t = time.perf_counter()
    for b in flushes:  # what TickRecorder._flush does, on this thread
        b = b.take(np.argsort(b.symbol, kind="stable"))
        md.write_ticks(chunks_by_symbol(names, b, points), m1_by_symbol(names, b, points))
    return time.perf_counter() - t


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def read_bars(md: MarketData, bars: int, repeats: int) -> dict:
    # ``bars`` M1 bars of one symbol over 24-hour days, stored an hour a row
    m1 = np.zeros(bars, RATE_DTYPE)
    m1["time"] = T0_MSC // 1000 + np.arange(bars) * 60
    m1["open"] = m1["high"] = m1["low"] = m1["close"] = 100.0
    m1["tick_volume"] = 1
    md.write_bars("BARS", 1, m1)
    t0, t1 = int(m1["time"][0]), int(m1["time"][-1])
    assert len(md.rates_range("BARS", 1, t0, t1)) == bars
    out = {"bars": bars, "copy_rates_range_store_ms": _median_ms(
        lambda: md.rates_range("BARS", 1, t0, t1), repeats)}
    out["copy_rates_range_h1_store_ms"] = _median_ms(
        lambda: md.rates_range("BARS", 16385, t0, t1), repeats)
    # as many ticks of one symbol, in chunks of 500 (a flush's share of a busy symbol)
    tk = TickBatch.from_arrays(np.zeros(bars, np.int32), T0_MSC + np.arange(bars) * 250,
                               np.full(bars, 100.0), np.full(bars, 100.02))
    cuts = list(range(0, bars, 500)) + [bars]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        part = tk.take(slice(a, b))
        md.write_ticks(chunks_by_symbol(("TICKS",), part, np.array([0.01])), {})
    t_end = int(tk.time_msc[-1])
    assert len(md.ticks_range("TICKS", T0_MSC, t_end, 10**7)) == bars
    out["copy_ticks_range_store_ms"] = _median_ms(
        lambda: md.ticks_range("TICKS", T0_MSC, t_end, 10**7), repeats)
    return out


def read_http(bars: int, repeats: int) -> dict:
    """copy_rates_range of ``bars`` M1 bars through the HTTP endpoint (numpy answer)."""
    from fastapi.testclient import TestClient

    from api.server import build
    from api.settings import Settings

    rt = build(Settings(demo=True, in_memory=True, feed="none",
                        admin_key="bench-admin-key-0123456789"))
    try:
        md = rt.service.market.store
        m1 = np.zeros(bars, RATE_DTYPE)
        m1["time"] = T0_MSC // 1000 + np.arange(bars) * 60
        m1["open"] = m1["high"] = m1["low"] = m1["close"] = 230.0
        md.write_bars("AAPL", 1, m1)
        acc = rt.demo["accounts"][0]
        h = {"X-CFD-Login": str(acc["login"]), "Authorization": f"Bearer {acc['api_key']}"}
        p = {"symbol": "AAPL", "timeframe": 1, "date_from": int(m1["time"][0]),
             "date_to": int(m1["time"][-1]), "format": "numpy"}
        with TestClient(rt.app) as c:
            got = c.get("/v1/copy_rates_range", headers=h, params=p)
            assert len(np.frombuffer(got.content, RATE_DTYPE)) == bars
            ms = _median_ms(lambda: c.get("/v1/copy_rates_range", headers=h, params=p),
                            repeats)
            p["format"] = "json"
            js = _median_ms(lambda: c.get("/v1/copy_rates_range", headers=h, params=p),
                            max(repeats // 2, 1))
        return {"copy_rates_range_http_numpy_ms": ms, "copy_rates_range_http_json_ms": js}
    finally:
        rt.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.marketdata", description=__doc__)
    p.add_argument("--ticks", type=int, default=1_000_000)
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--flush", type=int, default=250_000, help="ticks per flush")
    p.add_argument("--bars", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--url", help="a PostgreSQL URL (default: SQLite files in a temp dir)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    names = tuple(f"S{i:04d}" for i in range(args.symbols))
    flushes = _flushes(args.ticks, args.symbols, args.flush)
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                 "ticks": args.ticks, "symbols": args.symbols, "flush": args.flush}
    with tempfile.TemporaryDirectory() as d:
        rows_url = args.url or f"sqlite:///{d}/rows.sqlite"
        md = MarketData(args.url or f"sqlite:///{d}/chunks.sqlite")
        out["row_per_tick_ticks_per_s"] = round(args.ticks / store_rows(rows_url, flushes,
                                                                       names))
        out["chunks_ticks_per_s"] = round(args.ticks / store_chunks(md, flushes, names))
        out.update(read_bars(md, args.bars, args.repeats))
        md.close()
    out.update(read_http(args.bars, args.repeats))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:36s} {v:,}" if isinstance(v, int | float) else f"{k:36s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
