"""The MT5 endpoints through httpx against the real app (in-memory engine)."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from api.mt5 import _records as R
from tests.test_api_fixtures import ADMIN, client, headers, push, rt  # noqa: F401

BUY = {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 230.05,
       "deviation": 20, "type_filling": 2, "magic": 7, "comment": "t"}


def _acc(rt, i=0):  # noqa: F811
    return headers(rt.demo["accounts"][i])


def test_auth_is_required_and_checked(client: httpx.Client, rt) -> None:  # noqa: F811
    assert client.get("/v1/account_info").status_code == 401
    bad = {**_acc(rt), "Authorization": "Bearer wrong"}
    assert client.get("/v1/account_info", headers=bad).status_code == 401
    other = {**_acc(rt), "X-CFD-Login": str(rt.demo["accounts"][1]["login"])}
    assert client.get("/v1/account_info", headers=other).status_code == 401
    assert client.get("/admin/insurance", headers=_acc(rt)).status_code == 401


def test_records_have_mt5_fields_in_order(client: httpx.Client, rt) -> None:  # noqa: F811
    push(client, AAPL=(230.00, 230.05))
    info = client.get("/v1/account_info", headers=_acc(rt)).json()
    assert list(info) == [f for f, _ in R.ACCOUNT_INFO_FIELDS + R.ACCOUNT_INFO_EXTRA]
    assert (info["category"], info["country"]) == ("retail", "")
    assert info["currency"] == "USDT" and info["balance"] == 100000.0
    sym = client.get("/v1/symbol_info/AAPL", headers=_acc(rt)).json()
    assert list(sym) == list(R.SymbolInfo._fields) + [f for f, _ in R.SYMBOL_INFO_EXTRA]
    assert (sym["margin_tiers"], sym["margin_tiers_by"]) == ("", "volume")
    assert (sym["bid"], sym["ask"], sym["digits"], sym["spread"]) == (230.0, 230.05, 2, 5)
    tick = client.get("/v1/symbol_info_tick/AAPL", headers=_acc(rt)).json()
    assert list(tick) == list(R.Tick._fields) and tick["flags"] == 6
    assert client.get("/v1/symbol_info/NOPE", headers=_acc(rt)).status_code == 404


def test_order_send_opens_and_history_finds_it(client: httpx.Client, rt) -> None:  # noqa: F811
    push(client, AAPL=(230.00, 230.05))
    r = client.post("/v1/order_send", headers=_acc(rt), json=BUY).json()
    assert list(r) == list(R.OrderSendResult._fields)
    assert r["retcode"] == 10009 and r["price"] == 230.05 and r["volume"] == 10.0
    assert list(r["request"]) == list(R.TradeRequest._fields)
    pos = client.get("/v1/positions_get", headers=_acc(rt)).json()
    assert len(pos) == 1 and list(pos[0]) == list(R.TradePosition._fields)
    assert pos[0]["ticket"] == r["order"] and pos[0]["magic"] == 7
    push(client, AAPL=(231.00, 231.05))
    pos = client.get("/v1/positions_get", headers=_acc(rt), params={"symbol": "AAPL"}).json()
    # (231.00 - 230.05) * 1 share * 10 lots = 9.50 USDT
    assert pos[0]["profit"] == 9.5 and pos[0]["price_current"] == 231.0
    # MT5 quirk: history_deals_get(ticket=) is the ORDER ticket
    deals = client.get("/v1/history_deals_get", headers=_acc(rt),
                       params={"ticket": r["order"]}).json()
    assert [d["ticket"] for d in deals] == [r["deal"]]
    assert client.get("/v1/history_deals_get", headers=_acc(rt),
                      params={"ticket": r["deal"]}).json() == []
    by_pos = client.get("/v1/history_deals_get", headers=_acc(rt),
                        params={"position": r["order"]}).json()
    assert [d["order"] for d in by_pos] == [r["order"]]
    orders = client.get("/v1/history_orders_get", headers=_acc(rt),
                        params={"ticket": r["order"]}).json()
    assert len(orders) == 1 and list(orders[0]) == list(R.TradeOrder._fields)
    assert orders[0]["state"] == 4  # ORDER_STATE_FILLED
    total = client.get("/v1/history_deals_total", headers=_acc(rt),
                       params={"date_from": 0, "date_to": 2**34}).json()
    assert total["total"] == 2  # the demo deposit and the buy
    # the other account sees none of it
    assert client.get("/v1/positions_get", headers=_acc(rt, 1)).json() == []
    assert client.get("/v1/history_deals_get", headers=_acc(rt, 1),
                      params={"ticket": r["order"]}).json() == []


def test_idempotent_retry_trades_once(client: httpx.Client, rt) -> None:  # noqa: F811
    push(client, AAPL=(230.00, 230.05))
    h = {**_acc(rt), "X-Request-Id": "4242"}
    first = client.post("/v1/order_send", headers=h, json=BUY).json()
    again = client.post("/v1/order_send", headers=h, json=BUY).json()
    assert first == again and first["request_id"] == 4242
    assert client.get("/v1/positions_total", headers=_acc(rt)).json()["total"] == 1
    third = client.post("/v1/order_send", headers={**h, "X-Request-Id": "4243"}, json=BUY)
    assert third.json()["deal"] != first["deal"]


def test_business_rejections_are_results(client: httpx.Client, rt) -> None:  # noqa: F811
    push(client, AAPL=(230.00, 230.05))
    cases = [({"volume": -1.0}, 10014), ({"volume": 1e300}, 10014),
             ({"symbol": "NOPE"}, 10013), ({"price": -5.0}, 10015),
             ({"comment": "x" * 40}, 10013), ({"type": 99}, None)]
    for change, code in cases:
        r = client.post("/v1/order_send", headers=_acc(rt), json={**BUY, **change})
        assert r.status_code == 200, (change, r.text)
        body = r.json()
        assert body["retcode"] != 10009, change
        if code is not None:
            assert body["retcode"] == code, (change, body)
        assert body["comment"]


def test_malformed_requests_are_422(client: httpx.Client, rt) -> None:  # noqa: F811
    h = {**_acc(rt), "Content-Type": "application/json"}
    for raw in ['{"action": 1, "price": NaN}', '{"volume": Infinity}', "{not json",
                '{"action": "buy"}', '{"unknown_key": 1}', "[1, 2]"]:
        r = client.post("/v1/order_send", headers=h, content=raw)
        assert r.status_code == 422, (raw, r.status_code)
    r = client.get("/v1/history_deals_get", headers=_acc(rt))
    assert r.status_code == 422


def test_order_check_and_calc(client: httpx.Client, rt) -> None:  # noqa: F811
    push(client, AAPL=(230.00, 230.05))
    r = client.post("/v1/order_check", headers=_acc(rt), json=BUY).json()
    assert list(r) == list(R.OrderCheckResult._fields)
    # 10 lots * 1 share * 230.05 * margin rate 0.2 = 460.10 USDT
    assert (r["retcode"], r["comment"], r["margin"]) == (0, "Done", 460.1)
    m = client.get("/v1/order_calc_margin", headers=_acc(rt),
                   params={"action": 0, "symbol": "AAPL", "volume": 10, "price": 230.05})
    assert m.json()["value"] == 460.1
    p = client.get("/v1/order_calc_profit", headers=_acc(rt),
                   params={"action": 1, "symbol": "AAPL", "volume": 2, "price_open": 100,
                           "price_close": 90}).json()
    assert p["value"] == 20.0  # a sell: (100 - 90) * 1 share * 2 lots
    bad = client.get("/v1/order_calc_margin", headers=_acc(rt),
                     params={"action": 0, "symbol": "NOPE", "volume": 1, "price": 1}).json()
    assert bad["value"] is None and bad["retcode"] == 10013


def test_symbols_get_group_filter_in_order(client: httpx.Client, rt) -> None:  # noqa: F811
    def names(group: str | None) -> list[str]:
        params = {} if group is None else {"group": group}
        return [s["name"] for s in client.get("/v1/symbols_get", headers=_acc(rt),
                                              params=params).json()]
    everything = names(None)
    assert len(everything) == client.get("/v1/symbols_total",
                                         headers=_acc(rt)).json()["total"]
    assert names("*,!A*") == [n for n in everything if not n.startswith("A")]
    assert names("!A*,*") == everything  # the later * re-includes
    assert names("AAPL,MSFT") == ["AAPL", "MSFT"]
    assert names("*S*,!MS*") == [n for n in everything if "S" in n and not n.startswith("MS")]


def test_symbol_select_marks_symbol(client: httpx.Client, rt) -> None:  # noqa: F811
    r = client.post("/v1/symbol_select", headers=_acc(rt), json={"symbol": "AAPL",
                                                                 "enable": False})
    assert r.json() == {"ok": True}
    assert client.get("/v1/symbol_info/AAPL", headers=_acc(rt)).json()["select"] is False
    assert client.post("/v1/symbol_select", headers=_acc(rt),
                       json={"symbol": "NOPE"}).json() == {"ok": False}


def test_rate_limit_answers_10024() -> None:
    from tests.test_api_fixtures import make_runtime
    from tests.test_api_fixtures import push as push_

    runtime = make_runtime(rate_limit_per_s=0.001, rate_limit_burst=2)
    try:
        with TestClient(runtime.app) as c:
            push_(c, AAPL=(230.00, 230.05))
            h = headers(runtime.demo["accounts"][0])
            codes = [c.post("/v1/order_send", headers=h, json=BUY).json()["retcode"]
                     for _ in range(4)]
            assert codes == [10009, 10009, 10024, 10024]
            assert "cfd_rate_limited_total 2.0" in c.get("/metrics").text
    finally:
        runtime.close()


def test_ticks_and_rates_from_recorded_ticks(client: httpx.Client, rt) -> None:  # noqa: F811
    for k in range(5):
        push(client, AAPL=(230.00 + k, 230.05 + k))
    now = client.get("/v1/symbol_info_tick/AAPL", headers=_acc(rt)).json()["time"]
    today = now // 86_400 * 86_400  # the demo's synthetic history ends the day before
    ticks = client.get("/v1/copy_ticks_range", headers=_acc(rt),
                       params={"symbol": "AAPL", "date_from": today, "date_to": 2**34,
                               "flags": -1}).json()
    assert [t["bid"] for t in ticks] == [230.0, 231.0, 232.0, 233.0, 234.0]
    bars = client.get("/v1/copy_rates_range", headers=_acc(rt),
                      params={"symbol": "AAPL", "timeframe": 16408, "date_from": today,
                              "date_to": 2**34}).json()
    assert len(bars) == 1 and bars[0]["open"] == 230.0 and bars[0]["close"] == 234.0
    assert bars[0]["high"] == 234.0 and bars[0]["tick_volume"] == 5
    assert bars[0]["spread"] == 5
    r = client.get("/v1/copy_rates_range", headers=_acc(rt),
                   params={"symbol": "AAPL", "timeframe": 7, "date_from": 0, "date_to": 1})
    assert r.status_code == 422


def test_metrics_and_docs_served(client: httpx.Client) -> None:  # noqa: F811
    text = client.get("/metrics").text
    for name in ("cfd_http_requests_total", "cfd_engine_batch_seconds", "cfd_stop_outs_total",
                 "cfd_rejected_ticks"):
        assert name in text
    schema = client.get("/openapi.json").json()
    assert "/v1/order_send" in schema["paths"] and "/admin/accounts" in schema["paths"]
    assert client.get("/docs").status_code == 200
