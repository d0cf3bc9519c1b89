"""Market data at rest: every accepted tick and the M1 bars built from them.

Storage is columnar chunks in two tables, on SQLite or PostgreSQL (measured against a row
per tick in ``benchmarks.marketdata``; see the README):

* ``md_tick_chunks``: one row per symbol per flush, the flush's ticks of that symbol in the
  compact encoding of :mod:`cfd.marketdata.codec` (about 5 bytes a quote-only tick: time,
  bid and spread as varint steps on the symbol's price grid), or in the journal's column
  encoding (``TickBatch.split_bytes``: 32 bytes a quote-only tick) when its prices are off
  the grid (zlib on top of the latter cost more CPU than the replay could spare), with its
  first and last ``time_msc``;
* ``md_bars``: one row per symbol, timeframe and period: the M1 bars of one hour
  (``period`` = hours since 1970-01-01: a flush rewrites at most a few small rows per
  symbol), or D1 bars of one year (``period`` = the year), as a ``RATE_DTYPE`` array.
  ``synthetic`` marks generated history.

Higher timeframes are built from M1 on read (:func:`cfd.marketdata.bars.resample`); days
without M1 bars are served from D1 bars where there are some. Days of synthetic D1 history
get generated M1 bars (:mod:`cfd.marketdata.synthetic`), so every timeframe answers.

It lives in its own database by default (``<store>.marketdata`` beside an SQLite store; the
same database on PostgreSQL), so tick writes never wait for, or hold up, the journal's lock.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url

from cfd.feed.ticks import TickBatch
from cfd.marketdata import codec, synthetic
from cfd.marketdata.bars import (
    COPY_TICKS_ALL,
    COPY_TICKS_TRADE,
    RATE_DTYPE,
    TICK_DTYPE,
    merge,
    resample,
    select_ticks,
)
from cfd.marketdata.timeframes import D1, TIMEFRAMES, bar_open, seconds

M1 = 1
_DAY = 86_400
_HOUR = 3600
URL_ENV = "CFD_MARKETDATA_URL"

metadata = MetaData()
tick_chunks = Table(
    "md_tick_chunks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("symbol", String(64), nullable=False),
    Column("t_first", BigInteger, nullable=False),
    Column("t_last", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_md_tick_chunks_symbol_last", "symbol", "t_last"),
)
bar_rows = Table(
    "md_bars", metadata,
    Column("symbol", String(64), primary_key=True),
    Column("tf", SmallInteger, primary_key=True),
    Column("period", Integer, primary_key=True),
    Column("synthetic", Boolean, nullable=False, default=False),
    Column("n", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


def url_beside(store_url: str) -> str:
    """The market-data database for a store URL: a sibling file on SQLite, else the same."""
    u = make_url(store_url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return str(u.set(database=f"{u.database}.marketdata"))
    return store_url


def _sqlite_normal_sync(dbapi_conn: Any, _record: Any) -> None:
    """Derived data (the journal holds every tick): WAL with synchronous=NORMAL, which
    survives a process crash and may lose the last commits on power loss."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _ticks(blob: bytes) -> np.ndarray:
    return codec.ticks(blob)


def _join_ticks(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(b):
        return a
    both = np.concatenate([a, b]) if len(a) else b
    return both[np.argsort(both["time_msc"], kind="stable")]


def _between(bars: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """The bars (in time order) opening in ``[t0, t1]``: a view, no copy."""
    a, b = np.searchsorted(bars["time"], [t0, t1 + 1])
    return bars[a:b]


def _bars(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, RATE_DTYPE) if blob else np.empty(0, RATE_DTYPE)


class MarketData:
    """Tick and bar history of every symbol (thread-safe: one connection per call)."""

    def __init__(self, url: str | None = None) -> None:
        from cfd.store.schema import make_engine

        self._tmp: str | None = None
        self._latest: dict[tuple[int, str, int], np.ndarray] = {}
        self._latest_period: dict[str, int] = {}
        if url is None:  # a scratch database, removed on close
            self._tmp = tempfile.mkdtemp(prefix="cfd-marketdata-")
            url = f"sqlite:///{os.path.join(self._tmp, 'marketdata.sqlite')}"
        self.url = url
        self.db = make_engine(url, writer=False)
        if self.db.dialect.name == "sqlite":
            event.listen(self.db, "connect", _sqlite_normal_sync)
        metadata.create_all(self.db, checkfirst=True)

    def close(self) -> None:
        self.db.dispose()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ------------------------------------------------------------------ writes
    def write_ticks(self, chunks: dict[str, tuple[int, int, int, bytes]],
                    m1_by_symbol: dict[str, np.ndarray]) -> None:
        """One transaction: each symbol's ticks as a chunk (``chunks_by_symbol``), its M1
        bars merged into the stored hours."""
        rows = [(sym, t0, t1, n, blob) for sym, (t0, t1, n, blob) in chunks.items()]
        with self.db.begin() as conn:
            if rows:  # the driver's executemany: many rows, no per-row processing
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                conn.exec_driver_sql(
                    "INSERT INTO md_tick_chunks (symbol, t_first, t_last, n, data) "
                    f"VALUES ({', '.join([mark] * 5)})", rows)
            self._merge_bars(conn, M1, m1_by_symbol, synthetic=False)

    def write_bars(self, symbol: str, timeframe: int, bars: np.ndarray, *,
                   synthetic_: bool = False) -> int:
        """Store imported (or generated) M1 or D1 bars, merged with what is stored."""
        if timeframe not in (M1, D1):
            raise ValueError("bars are stored as M1 or D1 (higher timeframes are built)")
        bars = np.sort(np.asarray(bars, RATE_DTYPE), order="time", kind="stable")
        with self.db.begin() as conn:
            self._merge_bars(conn, timeframe, {symbol: bars}, synthetic=synthetic_)
        return len(bars)

    @staticmethod
    def _period(timeframe: int, t: np.ndarray) -> np.ndarray:
        if timeframe == M1:
            return t // _HOUR
        return t.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970

    def _merge_bars(self, conn: Any, timeframe: int, by_symbol: dict[str, np.ndarray],
                    synthetic: bool) -> None:
        parts: dict[tuple[str, int], np.ndarray] = {}
        for sym, bars in by_symbol.items():
            if not len(bars):
                continue
            times = bars["time"]
            if timeframe == M1 and times[0] // _HOUR == times[-1] // _HOUR:  # the usual flush
                parts[(sym, int(times[0] // _HOUR))] = bars
                continue
            per = self._period(timeframe, times)
            cut = [0, *(np.flatnonzero(per[1:] != per[:-1]) + 1).tolist(), len(per)]
            for a, b in zip(cut[:-1], cut[1:], strict=True):
                parts[(sym, int(per[a]))] = bars[a:b]
        if not parts:
            return
        t = bar_rows.c
        # the rows being written to (each symbol's latest hour) are kept in memory: the
        # recorder's flushes do not read back what they wrote the flush before
        old = {k: v for k in parts if (v := self._latest.get((timeframe, *k))) is not None}
        missing = [k for k in parts if k not in old]
        periods = sorted({k[1] for k in missing})
        if missing:
            for r in conn.execute(select(t.symbol, t.period, t.data).where(
                    t.tf == timeframe, t.period.in_(periods))):
                if (r.symbol, r.period) in parts and (r.symbol, r.period) not in old:
                    old[(r.symbol, r.period)] = _bars(r.data)
        out = []
        for key, new in parts.items():
            merged = merge(old[key], new) if key in old else new
            self._remember(timeframe, key, merged)
            out.append((key[0], timeframe, key[1], synthetic, len(merged),
                        np.ascontiguousarray(merged).tobytes()))
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(  # SQLite 3.24+ and PostgreSQL alike
            "INSERT INTO md_bars (symbol, tf, period, synthetic, n, data) "
            f"VALUES ({', '.join([mark] * 6)}) ON CONFLICT (symbol, tf, period) DO UPDATE "
            "SET synthetic = excluded.synthetic, n = excluded.n, data = excluded.data", out)

    def _remember(self, timeframe: int, key: tuple[str, int], bars: np.ndarray) -> None:
        """Keep each symbol's latest period in memory (replaced once a later one comes)."""
        if timeframe != M1:
            return
        prev = self._latest_period.get(key[0])
        if prev is not None and prev > key[1]:
            return
        if prev is not None and prev != key[1]:
            self._latest.pop((timeframe, key[0], prev), None)
        self._latest_period[key[0]] = key[1]
        self._latest[(timeframe, *key)] = bars

    def adjust_split(self, symbol: str, effective: int, ratio: float, digits: int) -> int:
        """A split (``ratio`` new shares per old one: 4 for 4:1, 0.1 for 1:10 reverse)
        effective at ``effective`` (seconds): prices of bars and ticks before it divided by
        ``ratio`` (rounded to ``digits``), real volumes multiplied by it, in one
        transaction; returns the rows rewritten."""
        if not ratio > 0:
            raise ValueError(f"split ratio must be positive, got {ratio}")
        t, c = bar_rows.c, tick_chunks.c
        n = 0
        with self.db.begin() as conn:
            for r in conn.execute(select(t.tf, t.period, t.data).where(t.symbol == symbol)):
                bars = _bars(r.data).copy()
                before = bars["time"] < effective
                if not before.any():
                    continue
                for k in ("open", "high", "low", "close"):
                    bars[k][before] = np.round(bars[k][before] / ratio, digits)
                bars["real_volume"][before] = np.rint(bars["real_volume"][before] * ratio)
                conn.execute(bar_rows.update().where(
                    t.symbol == symbol, t.tf == r.tf, t.period == r.period).values(
                    data=bars.tobytes()))
                n += 1
            for r in conn.execute(select(c.id, c.data).where(
                    c.symbol == symbol, c.t_first < effective * 1000)):
                b = codec.columns(r.data)
                before = b.time_msc < effective * 1000
                cols = {k: getattr(b, k).copy() for k in TickBatch.__dataclass_fields__}
                for k in ("bid", "ask", "last"):
                    cols[k][before] = np.round(cols[k][before] / ratio, digits)
                cols["volume"][before] = np.rint(cols["volume"][before] * ratio)
                conn.execute(tick_chunks.update().where(c.id == r.id).values(
                    data=TickBatch(**cols).to_bytes()))
                n += 1
        self._latest = {k: v for k, v in self._latest.items() if k[1] != symbol}
        self._latest_period.pop(symbol, None)
        return n

    def rename(self, old: str, new: str) -> int:
        """A ticker change: the stored bars and ticks follow the instrument to its new
        name; returns the rows moved."""
        n = 0
        with self.db.begin() as conn:
            for table in (bar_rows, tick_chunks):
                n += conn.execute(table.update().where(table.c.symbol == old)
                                  .values(symbol=new)).rowcount
        self._latest = {k: v for k, v in self._latest.items() if k[1] != old}
        self._latest_period.pop(old, None)
        return n

    # ------------------------------------------------------------------ ticks
    def ticks_range(self, symbol: str, t0_msc: int, t1_msc: int, limit: int,
                    point: float = 0.01, flags: int = COPY_TICKS_ALL) -> np.ndarray:
        """Ticks with ``t0 <= time_msc <= t1`` of the kind ``flags`` selects
        (``COPY_TICKS_*``), oldest first, at most ``limit``: stored ones, and on days of
        synthetic history, ticks generated from its M1 bars (quotes: INFO, not TRADE)."""
        c = tick_chunks.c
        stmt = (select(c.data).where(c.symbol == symbol, c.t_last >= t0_msc,
                                     c.t_first <= t1_msc).order_by(c.t_first, c.id))
        stored = self._collect(stmt, t0_msc, t1_msc, limit, flags)
        fake = self._fake_ticks(symbol, t0_msc, t1_msc, limit, point, flags)
        return _join_ticks(stored, fake)[:limit]

    def ticks_from(self, symbol: str, t0_msc: int, count: int, point: float = 0.01,
                   flags: int = COPY_TICKS_ALL) -> np.ndarray:
        """The first ``count`` ticks (of the kind ``flags`` selects) at or after ``t0``."""
        c = tick_chunks.c
        stmt = (select(c.data).where(c.symbol == symbol, c.t_last >= t0_msc)
                .order_by(c.t_first, c.id))
        stored = self._collect(stmt, t0_msc, 2**62, count, flags)
        fake = self._fake_ticks(symbol, t0_msc, 2**62, count, point, flags)
        return _join_ticks(stored, fake)[:count]

    def _fake_ticks(self, symbol: str, t0_msc: int, t1_msc: int, limit: int, point: float,
                    flags: int) -> np.ndarray:
        """The first ``limit`` synthetic ticks in ``[t0, t1]``, generated a window at a
        time (widened until it holds them or passes the history)."""
        b = self.bounds(symbol)
        if b is None or limit <= 0 or flags == COPY_TICKS_TRADE:  # quotes only
            return np.empty(0, TICK_DTYPE)
        t1_msc = min(t1_msc, (b[1] + _DAY) * 1000)
        span = (limit // (4 * synthetic.SESSION_MINUTES) + 2) * _DAY * 1000
        while True:
            end = min(t0_msc + span, t1_msc)
            fake = self.synthetic_ticks(symbol, t0_msc, end, point)
            if len(fake) >= limit or end >= t1_msc:
                return fake[:limit]
            span *= 4

    def synthetic_ticks(self, symbol: str, t0_msc: int, t1_msc: int, point: float
                        ) -> np.ndarray:
        """Ticks generated from the synthetic M1 bars in ``[t0, t1]`` (ms): four a bar."""
        t0, t1 = t0_msc // 60_000 * 60, t1_msc // 1000
        with self.db.connect() as conn:
            stored = self._stored(conn, symbol, M1, t0 // _HOUR, t1 // _HOUR)
            fake = self._synthetic_m1(conn, symbol, t0, t1, point, stored)
        tk = synthetic.ticks(fake, point)
        return tk[(tk["time_msc"] >= t0_msc) & (tk["time_msc"] <= t1_msc)]

    def _collect(self, stmt: Any, t0: int, t1: int, limit: int, flags: int) -> np.ndarray:
        out: list[np.ndarray] = []
        have = 0
        with self.db.connect() as conn:
            for (blob,) in conn.execute(stmt.execution_options(yield_per=64)):
                tk = _ticks(blob)
                tk = select_ticks(tk[(tk["time_msc"] >= t0) & (tk["time_msc"] <= t1)], flags)
                out.append(tk)
                have += len(tk)
                if have >= limit:
                    break
        if not out:
            return np.empty(0, TICK_DTYPE)
        return np.concatenate(out)[:limit]

    # ------------------------------------------------------------------ bars
    def _stored(self, conn: Any, symbol: str, timeframe: int, p0: int, p1: int,
                synthetic_only: bool = False) -> np.ndarray:
        """The stored bars of periods ``p0..p1``, in time order (the rows' bytes joined
        once: no array per row)."""
        t = bar_rows.c
        stmt = select(t.data).where(t.symbol == symbol, t.tf == timeframe, t.period >= p0,
                                    t.period <= p1)
        if synthetic_only:
            stmt = stmt.where(t.synthetic.is_(True))
        blobs = conn.execute(stmt.order_by(t.period)).scalars().all()
        return _bars(b"".join(blobs))

    def _synthetic_m1(self, conn: Any, symbol: str, t0: int, t1: int, point: float,
                      stored_m1: np.ndarray) -> np.ndarray:
        """Generated M1 bars of the days of synthetic D1 history in ``[t0, t1]`` that have
        no stored M1 bars."""
        y0, y1 = self._period(D1, np.array([t0, t1]))
        d1 = self._stored(conn, symbol, D1, int(y0), int(y1), synthetic_only=True)
        d1 = _between(d1, t0 // _DAY * _DAY, t1)
        d1 = d1[~np.isin(d1["time"] // _DAY, np.unique(stored_m1["time"] // _DAY))]
        return synthetic.intraday(symbol, d1, point)

    def m1(self, symbol: str, t0: int, t1: int, point: float = 0.01) -> np.ndarray:
        """M1 bars opening in ``[t0, t1]``: stored ones, and generated ones on days of
        synthetic D1 history without stored M1 bars."""
        with self.db.connect() as conn:
            m1 = self._stored(conn, symbol, M1, t0 // _HOUR, t1 // _HOUR)
            fake = self._synthetic_m1(conn, symbol, t0, t1, point, m1)
        if len(fake):
            m1 = merge(m1, fake)
        return _between(m1, t0, t1)

    def daily(self, symbol: str, t0: int, t1: int, point: float = 0.01) -> np.ndarray:
        """D1 bars opening in ``[t0, t1]``: from M1 where there are M1 bars, else stored
        D1 bars (imported or synthetic)."""
        with self.db.connect() as conn:
            from_m1 = resample(self._stored(conn, symbol, M1, t0 // _HOUR, t1 // _HOUR), D1)
            y0, y1 = self._period(D1, np.array([t0, t1]))
            d1 = self._stored(conn, symbol, D1, int(y0), int(y1))
        d1 = d1[~np.isin(d1["time"], from_m1["time"])]
        both = np.concatenate([d1, from_m1])
        both = both[np.argsort(both["time"], kind="stable")]
        return _between(both, t0, t1)

    def rates_range(self, symbol: str, timeframe: int, t0: int, t1: int,
                    point: float = 0.01) -> np.ndarray:
        """Bars of ``timeframe`` opening in ``[t0, t1]`` (seconds), oldest first."""
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe {timeframe} is not an MT5 TIMEFRAME_*")
        t1_end = int(bar_open(timeframe, t1)) + seconds(timeframe) - 1
        t0_open = int(bar_open(timeframe, t0))
        if timeframe == M1:
            out = self.m1(symbol, t0_open, t1_end, point)
        elif timeframe >= D1:
            out = resample(self.daily(symbol, t0_open, t1_end, point), timeframe)
        else:
            out = resample(self.m1(symbol, t0_open, t1_end, point), timeframe)
        return _between(out, t0, t1)

    def bounds(self, symbol: str) -> tuple[int, int] | None:
        """Open times (seconds) of the first and last stored bar of ``symbol``."""
        t = bar_rows.c
        with self.db.connect() as conn:
            lo = conn.execute(select(func.min(t.period), func.max(t.period)).where(
                t.symbol == symbol, t.tf == M1)).one()
            yl = conn.execute(select(func.min(t.period), func.max(t.period)).where(
                t.symbol == symbol, t.tf == D1)).one()
            ends = []
            for tf, (a, b) in ((M1, lo), (D1, yl)):
                if a is None:
                    continue
                first = self._edge(conn, symbol, tf, a, 0)
                last = self._edge(conn, symbol, tf, b, -1) + (_DAY - 60 if tf == D1 else 0)
                ends.append((first, last))
        if not ends:
            return None
        return min(e[0] for e in ends), max(e[1] for e in ends)

    @staticmethod
    def _edge(conn: Any, symbol: str, tf: int, period: int, i: int) -> int:
        t = bar_rows.c
        blob = conn.execute(select(t.data).where(and_(
            t.symbol == symbol, t.tf == tf, t.period == period))).scalar_one()
        return int(_bars(blob)["time"][i])

    def rates_from(self, symbol: str, timeframe: int, t_end: int, count: int,
                   point: float = 0.01, skip: int = 0) -> np.ndarray:
        """The ``count`` bars opening at or before ``t_end`` (after leaving out the
        ``skip`` latest), oldest first: a window widened backwards until it holds them."""
        b = self.bounds(symbol)
        if b is None or count <= 0:
            return np.empty(0, RATE_DTYPE)
        t_end = min(t_end, b[1])
        need = count + skip
        span = max(seconds(timeframe) * need * 2, 3 * _DAY)
        while True:
            t0 = max(t_end - span, b[0])
            out = self.rates_range(symbol, timeframe, t0, t_end, point)
            if len(out) >= need or t0 <= b[0]:
                break
            span *= 4
        end = len(out) - skip
        return out[max(end - count, 0):max(end, 0)]

    def symbols(self) -> list[str]:
        with self.db.connect() as conn:
            return sorted(conn.execute(select(bar_rows.c.symbol).distinct()).scalars())


def chunks_by_symbol(names: Sequence[str], ticks: TickBatch, points: np.ndarray | None = None
                     ) -> dict[str, tuple[int, int, int, bytes]]:
    """Each symbol's ticks (columns grouped by ascending symbol index, each symbol's in
    time order) as (first time_msc, last time_msc, count, bytes): with ``points`` (each
    symbol index's point) in the compact encoding (:mod:`cfd.marketdata.codec`), else in
    the journal's tick encoding (``TickBatch.split_bytes``)."""
    if points is not None:
        return codec.encode(names, ticks, points)
    s, t = ticks.symbol, ticks.time_msc
    cut = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True]).tolist()
    blobs = ticks.split_bytes(cut)
    return {names[int(s[a])]: (int(t[a]), int(t[b - 1]), b - a, blob)
            for a, b, blob in zip(cut[:-1], cut[1:], blobs, strict=True)}
