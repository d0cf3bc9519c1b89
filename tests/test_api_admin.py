"""Admin endpoints, demo discovery, WebSocket streams, durability across a restart."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from api.settings import Settings
from cfd.engine import Engine
from tests.test_api_fixtures import ADMIN, client, headers, make_runtime, push, rt  # noqa: F401

BUY = {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 230.05,
       "deviation": 20, "type_filling": 2}


def test_create_account_money_and_key(client: TestClient) -> None:  # noqa: F811
    r = client.post("/admin/accounts", headers=ADMIN,
                    json={"name": "Alice", "group": "demo\\usdt", "leverage": 50})
    assert r.status_code == 200, r.text
    acc = r.json()
    assert acc["login"] > 1003 and len(acc["api_key"]) > 20
    h = headers(acc)
    assert client.get("/v1/account_info", headers=h).json()["leverage"] == 50
    base = f"/admin/accounts/{acc['login']}"
    assert client.post(f"{base}/deposit", headers=ADMIN,
                       json={"amount": "1000.50"}).json()["retcode"] == 10009
    assert client.post(f"{base}/withdraw", headers=ADMIN,
                       json={"amount": "0.50"}).json()["retcode"] == 10009
    assert client.post(f"{base}/credit", headers=ADMIN,
                       json={"amount": "25.00"}).json()["retcode"] == 10009
    info = client.get("/v1/account_info", headers=h).json()
    # 1000.50 - 0.50 = 1000.00 balance; credit 25.00; equity 1025.00
    assert (info["balance"], info["credit"], info["equity"]) == (1000.0, 25.0, 1025.0)
    too_much = client.post(f"{base}/withdraw", headers=ADMIN, json={"amount": "5000.00"})
    assert too_much.status_code == 409 and too_much.json()["retcode"] == 10019
    dup = client.post("/admin/accounts", headers=ADMIN, json={"login": acc["login"]})
    assert dup.status_code == 409
    assert client.post(f"{base}/deposit", headers=ADMIN,
                       json={"amount": "1.234"}).status_code == 422
    assert client.post("/admin/accounts/999999/deposit", headers=ADMIN,
                       json={"amount": "1.00"}).status_code == 404
    rotated = client.post(f"{base}/api_key", headers=ADMIN).json()
    assert client.get("/v1/account_info", headers=h).status_code == 401
    assert client.get("/v1/account_info", headers=headers(rotated)).status_code == 200


def test_halt_resume_levels_stop_out(client: TestClient, rt) -> None:  # noqa: F811
    h = headers(rt.demo["accounts"][0])
    push(client, AAPL=(230.00, 230.05))
    assert client.post("/admin/symbols/AAPL/halt", headers=ADMIN).json()["retcode"] == 10009
    assert client.post("/v1/order_send", headers=h, json=BUY).json()["retcode"] == 10017
    assert client.get("/v1/symbol_info/AAPL", headers=h).json()["trade_mode"] == 0
    client.post("/admin/symbols/AAPL/resume", headers=ADMIN)
    assert client.post("/v1/order_send", headers=h, json=BUY).json()["retcode"] == 10009
    assert client.post("/admin/symbols/NOPE/halt", headers=ADMIN).status_code == 404
    r = client.patch("/admin/symbols/AAPL", headers=ADMIN, json={"margin_initial_rate": "0.5"})
    assert r.json()["retcode"] == 10009
    # 10 lots * 230.05 * 0.5 = 1,150.25 USDT
    assert client.get("/v1/account_info", headers=h).json()["margin"] == 1150.25
    bad = client.patch("/admin/symbols/AAPL", headers=ADMIN, json={"margin_initial_rate": "-1"})
    assert bad.status_code == 409 and bad.json()["retcode"] == 10013
    lv = client.post("/admin/levels", headers=ADMIN,
                     json={"login": rt.demo["accounts"][0]["login"], "margin_call": 80,
                           "stop_out": 40})
    assert lv.json()["retcode"] == 10009
    info = client.get("/v1/account_info", headers=h).json()
    assert (info["margin_so_call"], info["margin_so_so"]) == (80.0, 40.0)
    assert client.post("/admin/levels", headers=ADMIN, json={}).status_code == 409
    so = client.post(f"/admin/accounts/{rt.demo['accounts'][0]['login']}/stop_out",
                     headers=ADMIN)
    assert so.json()["retcode"] == 10009
    assert client.get("/v1/positions_total", headers=h).json()["total"] == 0
    deals = client.get("/v1/history_deals_get", headers=h,
                       params={"date_from": 0, "date_to": 2**34}).json()
    assert deals[-1]["reason"] == 6 and deals[-1]["entry"] == 1  # DEAL_REASON_SO, OUT
    assert "cfd_stop_outs_total 1.0" in client.get("/metrics").text


def test_insurance_ticks_snapshot(client: TestClient) -> None:  # noqa: F811
    assert client.get("/admin/insurance", headers=ADMIN).json() == {"balance": "0.00"}
    client.post("/admin/insurance/topup", headers=ADMIN, json={"amount": "1000.00"})
    assert client.get("/admin/insurance", headers=ADMIN).json() == {"balance": "1000.00"}
    r = client.post("/admin/ticks", headers=ADMIN, json=[
        {"symbol": "AAPL", "bid": 230.0, "ask": 230.05},
        {"symbol": "MSFT", "bid": 421.0, "ask": 420.0},  # crossed
        {"symbol": "AAPL", "bid": -1.0, "ask": 2.0},  # non-positive
        {"symbol": "NOPE", "bid": 1.0, "ask": 2.0},  # unknown
    ])
    assert r.json() == {"accepted": 1, "rejected": 3}
    nan = client.post("/admin/ticks", headers={**ADMIN, "Content-Type": "application/json"},
                      content='[{"symbol": "AAPL", "bid": NaN, "ask": 1.0}]')
    assert nan.status_code in (200, 422)
    assert "cfd_rejected_ticks 3.0" in client.get("/metrics").text or nan.status_code == 200
    blob = client.get("/admin/snapshot", headers=ADMIN)
    assert blob.headers["content-type"] == "application/octet-stream"
    with np.load(io.BytesIO(blob.content), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    eng = Engine.from_snapshot(arrays, meta)
    assert eng.insurance_fund == 100_000 and len(eng.accounts) == 3
    assert client.get("/admin/snapshot").status_code == 401


def test_demo_credentials_only_on_demo() -> None:
    runtime = make_runtime(demo=False)
    try:
        with TestClient(runtime.app) as c:
            assert c.get("/demo/credentials").status_code == 404
    finally:
        runtime.close()
    runtime = make_runtime()
    try:
        with TestClient(runtime.app) as c:
            body = c.get("/demo/credentials").json()
            assert body["admin_key"] and len(body["accounts"]) == 3
        with TestClient(runtime.app, client=("203.0.113.5", 5000)) as c:
            assert c.get("/demo/credentials").status_code == 404
    finally:
        runtime.close()


def test_websocket_streams(client: TestClient, rt) -> None:  # noqa: F811
    acc = rt.demo["accounts"][0]
    with client.websocket_connect("/ws/ticks?symbols=AAPL") as ticks, \
            client.websocket_connect("/ws/account", headers=headers(acc)) as mine:
        push(client, AAPL=(230.00, 230.05), MSFT=(420.0, 420.1))
        t = ticks.receive_json()
        assert (t["event"], t["symbol"], t["bid"], t["ask"]) == ("tick", "AAPL", 230.0, 230.05)
        client.post("/v1/order_send", headers=headers(acc), json=BUY)
        got = [mine.receive_json() for _ in range(2)]
        assert {m["event"] for m in got} == {"deal", "order"}
        deal = next(m for m in got if m["event"] == "deal")
        assert deal["symbol"] == "AAPL" and deal["volume"] == 10.0
    with client.websocket_connect(
            "/ws/account", headers={"X-CFD-Login": "1001", "Authorization": "Bearer x"}) as ws:
        # refused with a reason a browser can read, then closed (policy violation)
        assert ws.receive_json() == {"event": "error",
                                     "message": "unknown login or wrong API key"}
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_settings_refuse_default_secrets() -> None:
    for bad in ({}, {"admin_key": "admin"}, {"admin_key": "short"},
                {"admin_keys": "alice:changeme"}):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, **bad)
    ok = Settings(_env_file=None, admin_keys="alice:0123456789abcdefXYZ,bob:zyx9876543210abcdef")
    assert set(ok.admins()) == {"alice", "bob"}
    assert Settings(_env_file=None, demo=True).admin_key  # demo makes one up


def test_store_keeps_keys_positions_and_idempotency(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cfd.sqlite'}"
    first = make_runtime(in_memory=False, database_url=url)
    try:
        with TestClient(first.app) as c:
            acc = first.demo["accounts"][0]
            push(c, AAPL=(230.00, 230.05))
            created = c.post("/admin/accounts", headers=ADMIN, json={"name": "Bob"}).json()
            h = {**headers(created), "X-Request-Id": "77"}
            c.post(f"/admin/accounts/{created['login']}/deposit", headers=ADMIN,
                   json={"amount": "10000.00"})
            sent = c.post("/v1/order_send", headers=h, json=BUY).json()
            assert sent["retcode"] == 10009
            now = c.get("/v1/symbol_info_tick/AAPL", headers=headers(acc)).json()["time"]
            ticks = c.get("/v1/copy_ticks_range", headers=headers(acc),  # after the demo's
                          params={"symbol": "AAPL", "date_from": now,    # synthetic history
                                  "date_to": 2**34}).json()
            assert len(ticks) == 1 and ticks[0]["bid"] == 230.0
    finally:
        first.close()
    second = make_runtime(in_memory=False, database_url=url)
    try:
        with TestClient(second.app) as c:
            pos = c.get("/v1/positions_get", headers=h).json()
            assert [p["ticket"] for p in pos] == [sent["order"]]
            again = c.post("/v1/order_send", headers=h, json=BUY).json()
            assert again == sent  # the retry after a restart did not trade again
            assert c.get("/v1/positions_total", headers=h).json()["total"] == 1
            # the demo accounts were reused, with fresh keys
            assert [a["login"] for a in second.demo["accounts"]] == [1001, 1002, 1003]
    finally:
        second.close()
