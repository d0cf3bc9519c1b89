"""The corporate-actions calendar through the admin API: add, amend, cancel, import, list,
and the split applied by a rollover."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from cfd.trading.financing import cutoff_msc, trading_date
from tests.test_api_fixtures import ADMIN, headers, make_runtime, push


def monday_ahead(svc) -> dt.date:
    """A Monday at least two weeks after the server's trading date (ex-dates in the future
    whatever day the tests run)."""
    ex = trading_date(svc.clock()) + dt.timedelta(days=14)
    while ex.weekday() != 0:
        ex += dt.timedelta(days=1)
    return ex


BUY = {"action": 1, "symbol": "NVDA", "volume": 1.3, "type": 0, "price": 1209.00,
       "deviation": 20, "type_filling": 2}


def test_calendar_through_the_api() -> None:
    rt = make_runtime(rollover_clock=False)
    try:
        with TestClient(rt.app) as client:
            svc = rt.service
            # dates ahead of the server's clock: an ex-date two weeks out and the session day
            # before it, whose rollover applies the split
            ex = monday_ahead(svc)
            nvda = svc.read(lambda eng: eng.symbols.get("NVDA"))
            eff = svc.read(lambda eng: eng.corporate.effect_day(nvda, ex))
            h = headers(rt.demo["accounts"][0])
            push(client, NVDA=(1208.88, 1209.00))
            assert client.post("/v1/order_send", headers=h, json=BUY).json()["retcode"] \
                == 10009
            r = client.post("/admin/corporate_actions", headers=ADMIN,
                            json={"kind": "split", "symbol": "NVDA", "ex_date": str(ex),
                                  "ratio": "10:1"})
            assert r.status_code == 200, r.text
            split_id = r.json()["data"]["id"]
            bad = client.post("/admin/corporate_actions", headers=ADMIN,
                              json={"kind": "split", "symbol": "NVDA",
                                    "ex_date": str(ex), "ratio": "0:1"})
            assert bad.status_code == 409 and "greater than zero" in bad.json()["comment"]
            day2 = ex + dt.timedelta(days=1)
            csv_text = ("kind,symbol,ex_date,amount,ratio\n"
                        f"dividend,NVDA,{day2},0.01,\n"
                        f"dividend,NOPE,{day2},0.01,\n")
            r = client.post("/admin/corporate_actions/import", headers={
                **ADMIN, "content-type": "text/csv"}, content=csv_text)
            assert r.status_code == 200, r.text
            assert r.json()["added"] == 1
            assert "unknown symbol" in r.json()["results"][1]["comment"]
            assert client.post("/admin/corporate_actions/import", headers={
                **ADMIN, "content-type": "application/json"},
                content=b"{not json").status_code == 422
            listing = client.get("/admin/corporate_actions", headers=ADMIN).json()
            assert [a["kind"] for a in listing["actions"]] == ["split", "dividend"]
            div = listing["upcoming"][1]
            assert div["due_to_longs"] == 1  # 1.3 lots x 0.01 = 0.013 -> 0.01
            amend = client.patch(f"/admin/corporate_actions/{div['id']}", headers=ADMIN,
                                 json={"amount": "0.02"})
            assert amend.status_code == 200, amend.text
            assert client.delete(f"/admin/corporate_actions/{div['id']}",
                                 headers=ADMIN).status_code == 200
            svc.clock = lambda: cutoff_msc(eff) + 60_000
            r = client.post("/admin/rollover", headers=ADMIN, json={"date": str(eff)})
            assert r.status_code == 200 and r.json()["data"]["corporate_actions"] == [split_id]
            pos = client.get("/v1/positions_get", headers=h).json()
            assert [(p["volume"], p["price_open"]) for p in pos] == [(13.0, 120.9)]
            again = client.patch(f"/admin/corporate_actions/{split_id}", headers=ADMIN,
                                 json={"ratio": "2:1"})
            assert again.status_code == 409 and "applied" in again.json()["comment"]
            listing = client.get("/admin/corporate_actions", headers=ADMIN).json()
            assert listing["last_applied"][-1]["kind"] == "split"
    finally:
        rt.close()


def test_stored_history_follows_a_split_and_a_ticker_change() -> None:
    rt = make_runtime(rollover_clock=False)
    try:
        with TestClient(rt.app) as client:
            svc = rt.service
            h = headers(rt.demo["accounts"][0])
            d1 = {"timeframe": 16408, "start_pos": 0, "count": 3}

            def closes(symbol: str) -> list[float]:
                svc.market.sync()
                r = client.get("/v1/copy_rates_from_pos", headers=h,
                               params={"symbol": symbol, **d1})
                return [b["close"] for b in r.json()] if r.status_code == 200 else []

            before = closes("AAPL")
            assert len(before) == 3
            ex = monday_ahead(svc)
            aapl = svc.read(lambda eng: eng.symbols.get("AAPL"))
            eff = svc.read(lambda eng: eng.corporate.effect_day(aapl, ex))
            for fields in ({"kind": "split", "symbol": "AAPL", "ex_date": str(ex),
                            "ratio": "4:1"},
                           {"kind": "ticker", "symbol": "AAPL",
                            "ex_date": str(ex + dt.timedelta(days=1)), "new_symbol": "AAPL2"}):
                r = client.post("/admin/corporate_actions", headers=ADMIN, json=fields)
                assert r.status_code == 200, r.text
            svc.clock = lambda: cutoff_msc(ex) + 60_000  # the Monday after: both are due
            r = client.post("/admin/rollover", headers=ADMIN, json={"date": str(eff)})
            assert r.status_code == 200, r.text
            r = client.post("/admin/rollover", headers=ADMIN, json={"date": str(ex)})
            assert r.status_code == 200, r.text
            # the daily bars before the split are divided by 4 (to the cent) and now live
            # under the new name
            assert closes("AAPL") == []
            assert closes("AAPL2") == pytest.approx([c / 4 for c in before], abs=0.0051)
    finally:
        rt.close()
