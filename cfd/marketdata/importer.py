"""Import historical bars and ticks from CSV into the market-data store.

    cfd-server import-history nvda.csv --symbol NVDA                 # Yahoo daily bars
    cfd-server import-history aapl-m1.csv --symbol AAPL --timeframe M1
    cfd-server import-history aapl-ticks.csv --symbol AAPL --ticks

Daily bars in Yahoo's columns (``Date,Open,High,Low,Close,Adj Close,Volume``) are stored as
D1 bars: open time 00:00 UTC, Yahoo's split-adjusted Open/High/Low/Close (``Adj Close``,
which is also dividend-adjusted, is not used: MT5 charts are not), ``Volume`` as both
``real_volume`` and ``tick_volume``. Bars in MT5's own column names (``time``, ``open``,
``high``, ``low``, ``close``, optional ``tick_volume``, ``spread``, ``real_volume``; time as
seconds or an ISO date-time in UTC) are stored as M1 or D1. Ticks need ``time_msc`` (or
``time``), ``bid`` and ``ask`` (optional ``last``, ``volume``, ``flags``). Rows already
stored for the same times are folded with the imported ones.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np

from cfd.feed.ticks import TickBatch
from cfd.marketdata.bars import RATE_DTYPE, m1_by_symbol
from cfd.marketdata.store import M1, MarketData, chunks_by_symbol, url_beside
from cfd.marketdata.timeframes import D1

_YAHOO = ("Date", "Open", "High", "Low", "Close", "Volume")


class CsvError(ValueError):
    """A file the importer cannot read, with the line that says why."""


def _seconds(text: str, line: int) -> int:
    text = text.strip()
    try:
        return int(float(text))
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CsvError(f"line {line}: {text!r} is neither seconds nor a date") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp())


def _float(row: dict, key: str, line: int, default: float | None = None) -> float:
    v = row.get(key)
    if v in (None, ""):
        if default is None:
            raise CsvError(f"line {line}: no {key}")
        return default
    try:
        x = float(v)
    except ValueError:
        raise CsvError(f"line {line}: {key} {v!r} is not a number") from None
    if not np.isfinite(x) or x < 0:
        raise CsvError(f"line {line}: {key} {v!r} is not a price or volume")
    return x


def read_bars(text: str) -> np.ndarray:
    """Bars (``RATE_DTYPE``, in time order) from Yahoo's or MT5's columns."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        return np.empty(0, RATE_DTYPE)
    yahoo = all(k in rows[0] for k in _YAHOO)
    names = ("Date", "Open", "High", "Low", "Close") if yahoo else \
        ("time", "open", "high", "low", "close")
    out = np.zeros(len(rows), RATE_DTYPE)
    keep = np.ones(len(rows), bool)
    for i, r in enumerate(rows):
        line = i + 2
        if yahoo and any(r.get(k) in ("null", "") for k in names[1:]):
            keep[i] = False  # Yahoo's rows without prices (holidays, halts)
            continue
        t = _seconds(r.get(names[0]) or "", line)
        o, h, lo, c = (_float(r, k, line) for k in names[1:])
        if not (lo <= min(o, c) and max(o, c) <= h and lo > 0):
            raise CsvError(f"line {line}: low {lo} / high {h} do not hold open {o} "
                               f"and close {c}")
        vol = _float(r, "Volume" if yahoo else "real_volume", line, 0.0)
        out[i] = (t, o, h, lo, c,
                  vol if yahoo else _float(r, "tick_volume", line, 0.0),
                  0 if yahoo else _float(r, "spread", line, 0.0), vol)
    out = out[keep]
    return out[np.argsort(out["time"], kind="stable")]


def read_ticks(text: str) -> TickBatch:
    """Ticks of one symbol (index 0) in time order."""
    rows = list(csv.DictReader(io.StringIO(text)))
    t, bid, ask, last, vol, flags = ([] for _ in range(6))
    for i, r in enumerate(rows):
        line = i + 2
        if r.get("time_msc"):
            t.append(_seconds(r["time_msc"], line))
        else:
            t.append(_seconds(r.get("time") or "", line) * 1000)
        b, a = _float(r, "bid", line), _float(r, "ask", line)
        if not 0 < b <= a:
            raise CsvError(f"line {line}: bid {b} and ask {a} are not a quote")
        bid.append(b)
        ask.append(a)
        last.append(_float(r, "last", line, 0.0))
        vol.append(int(_float(r, "volume", line, 0.0)))
        flags.append(int(_float(r, "flags", line, 6.0)))
    batch = TickBatch.from_arrays(np.zeros(len(t), np.int32), t, bid, ask, last, vol,
                                  flags=flags)
    return batch.sorted_by_time()


def import_file(md: MarketData, path: Path, symbol: str, *, timeframe: int = D1,
                ticks: bool = False, point: float = 0.01) -> int:
    """Store the file's bars or ticks for ``symbol``; returns the rows stored."""
    text = path.read_text()
    if ticks:
        batch = read_ticks(text)
        if len(batch):
            md.write_ticks(chunks_by_symbol((symbol,), batch),
                           m1_by_symbol((symbol,), batch, np.array([point])))
        return len(batch)
    return md.write_bars(symbol, timeframe, read_bars(text))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cfd-server import-history", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="CSV files")
    p.add_argument("--symbol", required=True, help="the symbol the rows belong to")
    p.add_argument("--timeframe", choices=["M1", "D1"], default="D1", help="bars' timeframe")
    p.add_argument("--ticks", action="store_true", help="the files hold ticks")
    p.add_argument("--point", type=float, default=0.01, help="price step (tick spreads)")
    p.add_argument("--database-url", help="the server's store (market data goes beside it)")
    p.add_argument("--marketdata-url", help="the market-data database itself")
    args = p.parse_args(argv)
    from cfd.store.schema import resolve_url

    url = args.marketdata_url or url_beside(resolve_url(args.database_url))
    md = MarketData(url)
    try:
        for f in args.files:
            try:
                n = import_file(md, f, args.symbol, timeframe=M1 if args.timeframe == "M1"
                                else D1, ticks=args.ticks, point=args.point)
            except (OSError, CsvError) as exc:
                print(f"cfd-server import-history: {f}: {exc}")
                return 2
            what = "ticks" if args.ticks else f"{args.timeframe} bars"
            print(f"{f}: {n:,} {what} of {args.symbol} stored in {url}")
    finally:
        md.close()
    return 0
