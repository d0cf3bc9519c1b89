"""The web package's HTTP side: pages and assets, constants, market state, the back
office's reads, actions with a journaled reason, and the audit trail."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.web.pages import ASSETS
from tests.test_api_fixtures import ADMIN, client, headers, make_runtime, push, rt  # noqa: F401

BUY = {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 230.05,
       "deviation": 20, "type_filling": 2}
STATIC = Path(__file__).resolve().parents[1] / "api" / "web" / "static"


def test_pages_and_assets_are_served_from_the_package(client: TestClient) -> None:  # noqa: F811
    for path, marker in (("/", "CFD web terminal"), ("/backoffice", "CFD back office")):
        r = client.get(path)
        assert r.status_code == 200 and marker in r.text
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "http" not in r.text.replace("http-equiv", "")  # no third-party host
    # every file of static/ is served, and nothing else
    names = sorted(p.name for p in STATIC.iterdir())
    assert sorted(ASSETS) == names and len(names) == 8
    js = client.get("/web/static/terminal.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    again = client.get("/web/static/terminal.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/web/static/nope.js").status_code == 404
    assert client.get("/web/static/..%2Fpages.py").status_code == 404
    for name in names:  # no asset reaches for another host at run time
        text = (STATIC / name).read_text()
        assert "https://" not in text and "http://" not in text, name


def test_constants_name_mt5_numbers(client: TestClient) -> None:  # noqa: F811
    k = client.get("/web/constants.json").json()
    assert k["enums"]["TradeAction"]["DEAL"] == 1 and k["enums"]["OrderType"]["SELL_STOP"] == 5
    assert k["enums"]["DealReason"]["SO"] == 6
    assert k["retcodes"]["10017"] == "Trade is disabled"
    assert k["retcodes"]["10009"] == "Request executed"
    # MT5's TIMEFRAME_* numbers, in order: M1 = 1, H1 = 0x4000 | 1, MN1 = 0xC000 | 1
    assert k["timeframes"]["M1"] == 1 and k["timeframes"]["H1"] == 16385
    assert list(k["timeframes"])[-1] == "MN1" and k["timeframes"]["MN1"] == 49153


def test_market_state_follows_halts_and_trade_mode(client: TestClient, rt) -> None:  # noqa: F811
    h = headers(rt.demo["accounts"][0])
    assert client.get("/web/market").status_code == 401
    states = {m["symbol"]: m for m in client.get("/web/market", headers=h).json()}
    assert states["AAPL"] == {"symbol": "AAPL", "state": "open", "next_open_msc": None}
    client.post("/admin/symbols/AAPL/halt", headers=ADMIN)
    client.patch("/admin/symbols/MSFT", headers=ADMIN, json={"trade_mode": 3})
    states = {m["symbol"]: m["state"] for m in client.get("/web/market", headers=h).json()}
    assert (states["AAPL"], states["MSFT"], states["NVDA"]) == ("halted", "close-only", "open")


def test_market_closed_shows_the_next_session(rt) -> None:  # noqa: F811
    from api.web.market import market_states

    # Saturday 2026-11-28 12:00 UTC: NYSE is closed; it opens Monday 2026-11-30 09:30 New
    # York = 14:30 UTC (EST, UTC-5) = 1,796,049,000,000 ms
    sat = 1_795_867_200_000
    eng = rt.service.engine
    i = eng.symbols.get("AAPL")
    eng.symbols.cols.market_open[i] = False
    rows = {r["symbol"]: r for r in market_states(eng, sat)}
    assert rows["AAPL"]["state"] == "closed"
    assert rows["AAPL"]["next_open_msc"] == 1_796_049_000_000


def test_back_office_reads_need_the_admin_key(client: TestClient, rt) -> None:  # noqa: F811
    h = headers(rt.demo["accounts"][0])
    for path in ("/web/admin/accounts", "/web/admin/accounts/1001", "/web/admin/exposure",
                 "/web/admin/audit", "/web/admin/market"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=h).status_code == 401, path  # a client key is not enough
        assert client.get(path, headers=ADMIN).status_code == 200, path
    assert client.post("/web/admin/actions", headers=h,
                       json={"action": "halt", "symbol": "AAPL", "reason": "x" * 5}
                       ).status_code == 401


def test_accounts_by_margin_level_and_exposure(client: TestClient, rt) -> None:  # noqa: F811
    a, b, _c = rt.demo["accounts"]
    push(client, AAPL=(230.00, 230.05), MSFT=(420.00, 420.10))
    assert client.post("/v1/order_send", headers=headers(a), json=BUY).json()["retcode"] == 10009
    big = {**BUY, "symbol": "MSFT", "type": 1, "price": 420.00, "volume": 1000.0}
    assert client.post("/v1/order_send", headers=headers(b), json=big).json()["retcode"] == 10009
    res = client.get("/web/admin/accounts", headers=ADMIN).json()
    rows = res["rows"]
    assert res["total"] == 3 and res["groups"] == ["demo\\netting", "demo\\usdt"]
    # b: margin 1000 lots * 420.00 * 0.2 = 84,000.00; a: 10 * 230.05 * 0.2 = 460.10;
    # b's level is far lower, so b comes first; the account without margin comes last
    assert [r["login"] for r in rows] == [b["login"], a["login"], 1003]
    assert rows[0]["margin"] == 84000.0 and rows[1]["margin"] == 460.10
    # b: equity 100,000.00 - (420.10 - 420.00) * 1000 = 99,900.00; 99,900 / 84,000 = 118.93%
    assert rows[0]["equity"] == 99900.0 and rows[0]["margin_level"] == 118.93
    assert rows[2]["margin_level"] == 0.0 and rows[2]["margin"] == 0.0
    only = client.get("/web/admin/accounts", headers=ADMIN,
                      params={"group": "demo\\netting"}).json()["rows"]
    assert [r["login"] for r in only] == [1003]
    below = client.get("/web/admin/accounts", headers=ADMIN, params={"below": 200}).json()
    assert [r["login"] for r in below["rows"]] == [b["login"]] and below["total"] == 1
    named = client.get("/web/admin/accounts", headers=ADMIN, params={"search": "netting"})
    assert [r["login"] for r in named.json()["rows"]] == [1003]
    flat = client.get("/web/admin/accounts", headers=ADMIN, params={"include_flat": False})
    assert len(flat.json()["rows"]) == 2
    one = client.get(f"/web/admin/accounts/{a['login']}", headers=ADMIN).json()
    assert one["account"]["login"] == a["login"] and one["group"] == "demo\\usdt"
    assert [p["symbol"] for p in one["positions"]] == ["AAPL"] and one["orders"] == []
    assert [d["type"] for d in one["deals"]] == [2, 0]  # the demo deposit, then the buy
    assert client.get("/web/admin/accounts/999999", headers=ADMIN).status_code == 404
    exp = {r["symbol"]: r for r in client.get("/web/admin/exposure", headers=ADMIN).json()}
    # MSFT short 1000 lots at the ask 420.10: notional 420,100.00, the broker is long it
    assert exp["MSFT"]["short_lots"] == 1000.0 and exp["MSFT"]["net_lots"] == -1000.0
    assert exp["MSFT"]["gross_notional"] == 420100.0 and exp["MSFT"]["broker_notional"] == 420100.0
    # AAPL long 10 lots at the bid 230.00: 2,300.00
    assert exp["AAPL"]["long_notional"] == 2300.0 and exp["AAPL"]["gross_notional"] == 2300.0
    # the symbol's margin tiers (none here) and the groups with their own
    assert (exp["AAPL"]["margin_tiers"], exp["AAPL"]["tier_groups"]) == ("", [])


def test_actions_need_a_reason_and_are_audited(client: TestClient, rt) -> None:  # noqa: F811
    h = headers(rt.demo["accounts"][0])
    push(client, AAPL=(230.00, 230.05))
    act = "/web/admin/actions"
    assert client.post(act, headers=ADMIN, json={"action": "halt", "symbol": "AAPL"}
                       ).status_code == 422  # no reason
    assert client.post(act, headers=ADMIN, json={"action": "halt", "symbol": "AAPL",
                                                 "reason": "no"}).status_code == 422
    assert client.post(act, headers=ADMIN, json={"action": "halt", "reason": "news"}
                       ).status_code == 422  # no symbol
    assert client.post(act, headers=ADMIN, json={"action": "halt", "symbol": "NOPE",
                                                 "reason": "news"}).status_code == 404
    assert client.post(act, headers=ADMIN, json={"action": "explode", "reason": "news"}
                       ).status_code == 422
    for body in ({"action": "set_levels", "stop_out": 60, "reason": "no target"},
                 {"action": "set_levels", "group": "demo\\usdt", "reason": "no level"},
                 {"action": "insurance_topup", "reason": "no amount"}):
        r = client.post(act, headers=ADMIN, json=body)
        assert r.status_code == 422 and body["action"] in r.json()["detail"], r.text
    assert client.post(act, headers=ADMIN, json={"action": "set_levels", "login": 999999,
                                                 "stop_out": 60, "reason": "unknown login"}
                       ).status_code == 404
    assert client.get("/web/admin/audit", headers=ADMIN).json() == []  # nothing was done
    r = client.post(act, headers=ADMIN, json={"action": "halt", "symbol": "AAPL",
                                              "reason": "news pending"})
    assert r.status_code == 200 and r.json()["retcode"] == 10009
    assert client.post("/v1/order_send", headers=h, json=BUY).json()["retcode"] == 10017
    client.post(act, headers=ADMIN, json={"action": "resume", "symbol": "AAPL",
                                          "reason": "news out"})
    client.post(act, headers=ADMIN, json={"action": "close_only", "symbol": "AAPL",
                                          "reason": "delisting"})
    assert client.post("/v1/order_send", headers=h, json=BUY).json()["retcode"] == 10044
    levels = client.post(act, headers=ADMIN, json={"action": "set_levels", "group": "demo\\usdt",
                                                   "margin_call": 120, "stop_out": 60,
                                                   "reason": "volatility"})
    assert levels.json()["retcode"] == 10009
    info = client.get("/v1/account_info", headers=h).json()
    assert (info["margin_so_call"], info["margin_so_so"]) == (120.0, 60.0)
    top = client.post(act, headers=ADMIN, json={"action": "insurance_topup", "amount": "250.50",
                                                "reason": "monthly allocation"})
    assert top.json()["retcode"] == 10009
    assert client.get("/admin/insurance", headers=ADMIN).json()["balance"] == "250.50"
    assert client.post(act, headers=ADMIN, json={"action": "insurance_topup", "amount": "1.234",
                                                 "reason": "bad amount"}).status_code == 422
    trail = client.get("/web/admin/audit", headers=ADMIN).json()
    assert [(t["action"], t["reason"]) for t in trail] == [
        ("insurance_topup", "monthly allocation"), ("set_levels", "volatility"),
        ("close_only", "delisting"), ("resume", "news out"), ("halt", "news pending")]
    assert {t["actor"] for t in trail} == {"admin:admin"}
    assert trail[0]["target"] == "insurance fund" and trail[0]["params"] == {"amount": "250.50"}


def test_audit_trail_reads_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'web.sqlite'}"
    first = make_runtime(in_memory=False, database_url=url)
    try:
        with TestClient(first.app) as c:
            r = c.post("/web/admin/actions", headers=ADMIN,
                       json={"action": "halt", "symbol": "NVDA", "reason": "exchange halt"})
            assert r.json()["retcode"] == 10009
            c.post("/admin/symbols/TSLA/halt", headers=ADMIN)  # another tool, no reason
            trail = c.get("/web/admin/audit", headers=ADMIN).json()
    finally:
        first.close()
    # newest first; the halt sent through /admin is in the trail from the engine's event
    assert [(t["action"], t["target"], t["reason"]) for t in trail] == [
        ("set_market", "TSLA", ""), ("halt", "NVDA", "exchange halt")]
    second = make_runtime(in_memory=False, database_url=url)  # after a restart
    try:
        with TestClient(second.app) as c:
            again = c.get("/web/admin/audit", headers=ADMIN).json()
    finally:
        second.close()
    assert [(t["action"], t["reason"]) for t in again] == [("set_market", ""),
                                                           ("halt", "exchange halt")]


def test_accounts_filter_by_category_and_country(client: TestClient) -> None:  # noqa: F811
    for body in ({"name": "Pro DE", "category": "professional", "country": "DE"},
                 {"name": "Retail GB", "category": "retail", "country": "GB"}):
        r = client.post("/admin/accounts", headers=ADMIN, json=body)
        assert r.status_code == 200, r.text
    res = client.get("/web/admin/accounts", headers=ADMIN).json()
    assert res["countries"] == ["DE", "GB"] and "professional" in res["categories"]
    pro = client.get("/web/admin/accounts", headers=ADMIN,
                     params={"category": "professional"}).json()["rows"]
    assert [(r["name"], r["country"]) for r in pro] == [("Pro DE", "DE")]
    gb = client.get("/web/admin/accounts", headers=ADMIN, params={"country": "GB"}).json()
    assert [r["name"] for r in gb["rows"]] == ["Retail GB"]
    for bad in ({"country": "ZZ"}, {"category": "nobody"}):
        assert client.get("/web/admin/accounts", headers=ADMIN,
                          params=bad).json()["rows"] == []
