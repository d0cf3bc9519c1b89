"""Market data on the server: the tick recorder behind the service, demo history, and the
answers of the copy_* and market_book_* endpoints.

Records go out as JSON rows (MT5's field names) or, with ``?format=numpy``, as the raw
little-endian bytes of MT5's numpy record dtypes (``RATE_DTYPE`` / ``TICK_DTYPE``, header
``X-Numpy-Dtype``), which ``api.mt5`` reads with ``numpy.frombuffer``: 100k bars in a few
milliseconds instead of a JSON list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from cfd.marketdata import MarketData, synthetic
from cfd.marketdata.recorder import TickRecorder
from cfd.marketdata.store import url_beside
from cfd.marketdata.timeframes import D1

HISTORY_FROM = dt.date(2020, 1, 2)
#: Synthesised market depth: levels per side and the volume (lots) at each level.
BOOK_LEVELS = (10.0, 25.0, 50.0, 100.0, 200.0)
BOOK_DEPTH = len(BOOK_LEVELS)
#: symbol_info().bank (the quotes' feeder) says where market depth comes from
BOOK_SOURCE = "feed quotes; market depth synthesised from the top of book"


def open_recorder(database_url: str | None, marketdata_url: str | None,
                  point_of: Any) -> TickRecorder:
    """The market-data store (``marketdata_url``; else beside the journal's database; in
    memory without a store) and its recorder thread."""
    if marketdata_url:
        url = marketdata_url
    elif database_url:
        url = url_beside(database_url)
    else:
        url = None
    return TickRecorder(MarketData(url), point_of)


def demo_history(svc: Any, today: dt.date) -> int:
    """Synthetic D1 history (labelled synthetic in the store) from 2020 to the day before
    ``today`` for every symbol without history yet, ending at its current price. Returns
    the number of symbols given history."""
    md: MarketData = svc.market.store
    have = set(md.symbols())
    specs = svc.read(lambda eng: [(s.name, s.digits, _price(eng, i))
                                  for i, s in enumerate(eng.symbols.specs)])
    days = synthetic.trading_days(HISTORY_FROM, today - dt.timedelta(days=1))
    made = 0
    for name, digits, price in specs:
        if name in have or not price:
            continue
        md.write_bars(name, D1, synthetic.daily_bars(name, days, price, digits=digits),
                      synthetic_=True)
        made += 1
    return made


def _price(eng: Any, i: int) -> float:
    sc = eng.symbols.cols
    if sc.has_quote[i]:
        return float(sc.bid[i]) / 1e6
    return float(eng.symbols.specs[i].reference_price)


def corporate_action(ev: dict) -> Callable[[Any], int]:
    """What a split or a ticker change does to the stored history (run by the recorder)."""
    if ev["kind"] == "split":
        n, m = (int(x) for x in ev["ratio"].split(":"))
        return lambda store: store.adjust_split(ev["symbol"], ev["time_msc"] // 1000, n / m,
                                                int(ev["digits"]))
    return lambda store: store.rename(ev["from"], ev["to"])


def tick_events(batches: Sequence[Any], names: Sequence[str], symbols: set[str]
                ) -> Iterator[dict]:
    """Websocket tick messages of the subscribed ``symbols`` (MT5 Tick fields)."""
    for b in batches:
        for s, t, bid, ask, last, vol, flags in zip(
                b.symbol.tolist(), b.time_msc.tolist(), b.bid.tolist(), b.ask.tolist(),
                b.last.tolist(), b.volume.tolist(), b.flags.tolist(), strict=True):
            if names[s] in symbols:
                yield {"event": "tick", "symbol": names[s], "time": t // 1000, "bid": bid,
                       "ask": ask, "last": last, "volume": vol, "time_msc": t,
                       "flags": flags, "volume_real": 0.0}


def rows(records: np.ndarray) -> list[dict]:
    """Records as JSON-ready dicts in field order."""
    names = records.dtype.names
    return [dict(zip(names, r, strict=True)) for r in records.tolist()]


def book(bid: float, ask: float, point: float, volume_step: float) -> list[dict]:
    """A ladder synthesised from the top of book: ``len(BOOK_LEVELS)`` levels a point
    apart on each side, with ``BOOK_LEVELS`` lots each (rounded to the volume step); sell
    levels first, prices descending, as MT5's ``market_book_get`` lists them."""
    out = []
    for k in range(len(BOOK_LEVELS) - 1, -1, -1):
        v = _lots(BOOK_LEVELS[k], volume_step)
        out.append({"type": 1, "price": round(ask + k * point, 10), "volume": int(v),
                    "volume_dbl": v})
    for k, lots in enumerate(BOOK_LEVELS):
        v = _lots(lots, volume_step)
        out.append({"type": 2, "price": round(bid - k * point, 10), "volume": int(v),
                    "volume_dbl": v})
    return out


def _lots(lots: float, step: float) -> float:
    return round(max(round(lots / step), 1) * step, 8) if step else lots
