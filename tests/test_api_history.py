"""history_deals_* / history_orders_* of a server with a store come from the store's query
tables, with the same records the engine's memory gives."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api import history, records
from tests.test_api_fixtures import headers, make_runtime, push


def test_history_from_the_store_equals_the_engines(tmp_path: Path) -> None:
    rt = make_runtime(in_memory=False, database_url=f"sqlite:///{tmp_path / 'cfd.sqlite'}")
    try:
        assert rt.service.reader is not None
        acc, other = rt.demo["accounts"][0], rt.demo["accounts"][1]
        h, login = headers(acc), acc["login"]
        with TestClient(rt.app) as c:
            push(c, AAPL=(230.00, 230.05), MSFT=(420.00, 420.10))
            base = {"action": 1, "deviation": 20, "type_filling": 2}
            buy = c.post("/v1/order_send", headers=h, json={
                **base, "symbol": "AAPL", "volume": 2.0, "type": 0, "price": 230.05}).json()
            c.post("/v1/order_send", headers=h, json={
                **base, "symbol": "MSFT", "volume": 1.0, "type": 1, "price": 420.00})
            push(c, AAPL=(231.00, 231.05))
            close = c.post("/v1/order_send", headers=h, json={
                **base, "symbol": "AAPL", "volume": 2.0, "type": 1, "price": 231.00,
                "position": buy["order"]}).json()
            assert (buy["retcode"], close["retcode"]) == (10009, 10009)
            c.post("/v1/order_send", headers=headers(other), json={
                **base, "symbol": "AAPL", "volume": 1.0, "type": 0, "price": 231.05})

            def q(path: str, **params: object) -> object:
                r = c.get(f"/v1/{path}", headers=h, params=params)
                assert r.status_code == 200, r.text
                return r.json()

            svc = rt.service
            eng = {"deals": svc.read(lambda e: records.history_deals(e, login, 0, 2**62)),
                   "orders": svc.read(lambda e: records.history_orders(e, login, 0, 2**62))}
            deals = q("history_deals_get", date_from=0, date_to=2**34)
            orders = q("history_orders_get", date_from=0, date_to=2**34)
            assert deals == eng["deals"] and orders == eng["orders"]
            # the deposit, the AAPL buy, the MSFT sell and the AAPL close: 4 deals, 3 orders
            assert [d["symbol"] for d in deals] == ["", "AAPL", "MSFT", "AAPL"]
            assert len(orders) == 3
            # (231.00 - 230.05) * 2 lots * 1 share = 1.90 USDT on the closing deal
            assert deals[-1]["profit"] == 1.9
            assert q("history_deals_total", date_from=0, date_to=2**34) == {"total": 4}
            assert q("history_orders_total", date_from=0, date_to=2**34) == {"total": 3}
            by_pos = q("history_deals_get", position=buy["order"])
            assert [d["entry"] for d in by_pos] == [0, 1]  # IN then OUT
            assert q("history_deals_get", ticket=close["order"]) == by_pos[1:]
            assert q("history_orders_get", ticket=buy["order"])[0]["ticket"] == buy["order"]
            assert len(q("history_orders_get", position=buy["order"])) == 2
            assert q("history_deals_get", date_from=0, date_to=2**34, group="MS*") == [
                deals[2]]
            # another account's order and position are not this account's history
            theirs = svc.read(lambda e: records.history_deals(e, other["login"], 0, 2**62))
            assert q("history_deals_get", ticket=theirs[-1]["order"]) == []
            assert history.deals(svc, other["login"], 0, 2**62) == theirs
    finally:
        rt.close()
