"""Rollover, benchmark fixings and the financing report through the admin API; the server's
clock starts each date's rollover once."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from api.clock import RolloverClock
from cfd.trading.financing import cutoff_msc
from tests.test_api_fixtures import ADMIN, headers, make_runtime, push

BUY = {"action": 1, "symbol": "AAPL", "volume": 100.0, "type": 0, "price": 230.01,
       "deviation": 20, "type_filling": 2}


def test_rollover_benchmark_and_report_through_the_api() -> None:
    rt = make_runtime(rollover_clock=False)
    try:
        with TestClient(rt.app) as client:
            h = headers(rt.demo["accounts"][0])
            push(client, AAPL=(229.99, 230.01))
            assert client.post("/v1/order_send", headers=h, json=BUY).json()["retcode"] \
                == 10009
            # the demo seeds SOFR 4.33% from 2020-01-01; replace it from June 2024
            r = client.post("/admin/benchmarks", headers=ADMIN,
                            json={"name": "SOFR", "date": "2024-06-01", "rate": "5.31"})
            assert r.status_code == 200, r.text
            info = client.get("/v1/symbol_info/AAPL", headers=h).json()
            assert info["swap_mode"] == 5 and info["swap_rollover3days"] == 5
            # the effective rates of the next rollover: long -(5.31 + 3), short 5.31 - 3
            assert info["swap_long"] == -8.31 and info["swap_short"] == 2.31
            report = client.get("/admin/financing", headers=ADMIN).json()
            assert report["rolled_through"] is None
            r = client.post("/admin/rollover", headers=ADMIN, json={"date": "2024-06-03"})
            assert r.status_code == 200, r.text
            # 100 x 230.00 (mid) x 8.31% / 360 = 5.309166.. -> 5.31 charged
            assert r.json()["data"]["charged"] == 531
            pos = client.get("/v1/positions_get", headers=h).json()
            assert [p["swap"] for p in pos] == [-5.31]
            again = client.post("/admin/rollover", headers=ADMIN, json={"date": "2024-06-03"})
            assert again.status_code == 409 and "already rolled" in again.json()["comment"]
            report = client.get("/admin/financing", headers=ADMIN).json()
            assert report["rolled_through"] == "2024-06-03"
            assert report["last"][-1]["by"][0] == {
                "symbol": "AAPL", "group": "demo\\usdt", "nights": 1, "positions": 1,
                "charged": 531, "paid": 0}
            assert report["next"]["date"] == "2024-06-04"
            assert report["financing_account"] == 531
            for bad in ({"date": "June 3"}, {"date": "2024-06-04", "x": 1}):
                assert client.post("/admin/rollover", headers=ADMIN,
                                   json=bad).status_code == 422
            assert client.post("/admin/rollover", json={}).status_code == 401
            bad_rate = client.post("/admin/benchmarks", headers=ADMIN,
                                   json={"name": "SOFR", "date": "2025-01-01", "rate": "abc"})
            assert bad_rate.status_code == 409
    finally:
        rt.close()


def test_the_clock_rolls_each_due_date_once() -> None:
    rt = make_runtime(rollover_clock=False)
    try:
        svc = rt.service
        friday = dt.date(2024, 6, 7)
        svc.clock = lambda: cutoff_msc(friday) - 60_000  # 16:59 New York, Friday
        clock = RolloverClock(svc)
        assert clock.step() is not None  # Thursday is due (the first rollover)
        assert svc.read(lambda eng: eng.day.rolled_through) == dt.date(2024, 6, 6).toordinal()
        assert clock.step() is None  # Friday not yet
        svc.clock = lambda: cutoff_msc(friday) + 1
        assert "rolled 2024-06-07" in clock.step()
        assert clock.step() is None
        # Monday evening after a weekend with the server down: Sat, Sun, Mon in one command
        svc.clock = lambda: cutoff_msc(dt.date(2024, 6, 10)) + 5_000
        assert "rolled 2024-06-08 .. 2024-06-10" in clock.step()
        assert clock.step() is None
    finally:
        rt.close()
