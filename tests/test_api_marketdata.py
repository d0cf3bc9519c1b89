"""The market-data endpoints: copy_rates_*, copy_ticks_*, market_book_get, over HTTP."""

from __future__ import annotations

import httpx
import numpy as np

from api.bars import BOOK_DEPTH
from cfd.marketdata import RATE_DTYPE, TICK_DTYPE
from tests.test_api_fixtures import client, headers, push, rt  # noqa: F401

D1, H1, M1 = 16408, 16385, 1


def _get(client: httpx.Client, rt, path: str, **params) -> httpx.Response:  # noqa: F811
    return client.get(f"/v1/{path}", headers=headers(rt.demo["accounts"][0]), params=params)


def test_demo_history_and_both_formats(client: httpx.Client, rt) -> None:  # noqa: F811
    got = _get(client, rt, "copy_rates_from_pos", symbol="AAPL", timeframe=D1, start_pos=0,
               count=10)
    assert got.status_code == 200 and len(got.json()) == 10  # synthetic history from 2020
    raw = _get(client, rt, "copy_rates_from_pos", symbol="AAPL", timeframe=D1, start_pos=0,
               count=10, format="numpy")
    arr = np.frombuffer(raw.content, RATE_DTYPE)
    assert raw.headers["X-Count"] == "10" and arr["close"].tolist() == [
        r["close"] for r in got.json()]
    # the first bar of the history: 2020-01-02, the first trading day of 2020
    first = _get(client, rt, "copy_rates_from", symbol="AAPL", timeframe=D1,
                 date_from=1577923200, count=5).json()
    assert [r["time"] for r in first] == [1577923200]


def test_ticks_flags_and_bars_from_pushed_ticks(client: httpx.Client, rt) -> None:  # noqa: F811
    for k in range(3):
        push(client, MSFT=(420.0 + k, 420.1 + k))
    t0 = _get(client, rt, "symbol_info_tick/MSFT").json()["time"] - 5
    info = _get(client, rt, "copy_ticks_from", symbol="MSFT", date_from=t0, count=10,
                flags=1).json()
    assert [t["bid"] for t in info] == [420.0, 421.0, 422.0]  # COPY_TICKS_INFO: quotes
    trade = _get(client, rt, "copy_ticks_from", symbol="MSFT", date_from=t0, count=10,
                 flags=2).json()
    assert trade == []  # COPY_TICKS_TRADE: the feed carries no last/volume
    raw = _get(client, rt, "copy_ticks_range", symbol="MSFT", date_from=t0,
               date_to=t0 + 60, format="numpy")
    assert np.frombuffer(raw.content, TICK_DTYPE)["ask"].tolist() == [420.1, 421.1, 422.1]
    h1 = _get(client, rt, "copy_rates_range", symbol="MSFT", timeframe=H1,
              date_from=t0 // 3600 * 3600, date_to=t0 + 60).json()
    # open 420.00, high 422.00, low 420.00, close 422.00 over 3 ticks; spread 10 points
    assert [(b["open"], b["high"], b["low"], b["close"], b["tick_volume"], b["spread"])
            for b in h1] == [(420.0, 422.0, 420.0, 422.0, 3, 10)]
    info = _get(client, rt, "symbol_info/MSFT").json()
    assert (info["bidhigh"], info["bidlow"]) == (422.0, 420.0)
    push(client, MSFT=(425.0, 425.1))  # not stored yet: the current quote widens the range
    info = _get(client, rt, "symbol_info/MSFT").json()
    assert (info["bidhigh"], info["bidlow"], info["askhigh"]) == (425.0, 420.0, 425.1)


def test_bad_requests_are_4xx(client: httpx.Client, rt) -> None:  # noqa: F811
    assert _get(client, rt, "copy_rates_range", symbol="AAPL", timeframe=7, date_from=0,
                date_to=1).status_code == 422  # 7 is no TIMEFRAME_*
    assert _get(client, rt, "copy_rates_from", symbol="NOPE", timeframe=M1, date_from=0,
                count=1).status_code == 404
    assert _get(client, rt, "copy_ticks_from", symbol="AAPL", date_from=0, count=-1
                ).status_code == 422
    assert _get(client, rt, "copy_ticks_range", symbol="AAPL", date_from=0, date_to=1,
                flags=3).status_code == 422
    assert _get(client, rt, "copy_rates_from", symbol="AAPL", timeframe=M1, date_from=0,
                count=1, format="csv").status_code == 422
    assert _get(client, rt, "market_book_get/NOPE").status_code == 404


def test_market_book_is_a_ladder_from_the_top_of_book(client: httpx.Client, rt) -> None:  # noqa: F811
    assert _get(client, rt, "market_book_get/NVDA").json() == []  # no quote yet
    push(client, NVDA=(140.00, 140.02))
    book = _get(client, rt, "market_book_get/NVDA").json()
    assert len(book) == 2 * BOOK_DEPTH
    # sells from ask + 4 points down to the ask, then buys from the bid down
    assert [(b["type"], b["price"]) for b in book] == [
        (1, 140.06), (1, 140.05), (1, 140.04), (1, 140.03), (1, 140.02),
        (2, 140.0), (2, 139.99), (2, 139.98), (2, 139.97), (2, 139.96)]
    assert [b["volume_dbl"] for b in book[BOOK_DEPTH:]] == [10.0, 25.0, 50.0, 100.0, 200.0]
    info = _get(client, rt, "symbol_info/NVDA").json()
    assert info["ticks_bookdepth"] == BOOK_DEPTH and "synthesised" in info["bank"]


def test_client_records_and_timeframes_equal_the_engines() -> None:
    # api.mt5 keeps its own copies (the client installs without the engine): the same
    from api.mt5 import _market as mt5_market
    from cfd.marketdata.timeframes import TIMEFRAMES

    assert mt5_market.RATE_DTYPE == RATE_DTYPE and mt5_market.TICK_DTYPE == TICK_DTYPE
    assert mt5_market._TIMEFRAMES == TIMEFRAMES
