"""The book-wide exposure limit as a journaled command: set, enforced, removed, replayed and
kept in a snapshot; bad input refused and nothing changed; the admin route and the risk
CLI's action."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from cfd import commands as C
from cfd.constants import Retcode
from cfd.engine import Engine
from risk import actions as A
from tests.helpers import Book, record_journal
from tests.test_api_fixtures import ADMIN, client, headers, make_runtime, push, rt  # noqa: F401


def book() -> Book:
    b = Book(Engine())
    b.account(1, 10_000_000)
    b.account(2, 10_000_000)
    b.quote(AAPL=(100.00, 100.00))
    return b


def test_the_limit_is_set_enforced_and_removed() -> None:
    b = book()
    res = b.apply(C.SetExposureLimit, symbol="AAPL", lots="5")
    assert res.ok and res.data == {"AAPL": "5"}
    assert b.eng.config.exposure_limits == {"AAPL": Decimal(5)}
    # clients long 4 lots; 2 more would make the net 6 > 5: refused
    assert b.buy(1, "AAPL", 4).ok
    refused = b.buy(2, "AAPL", 2)
    assert refused.retcode == Retcode.LIMIT_VOLUME and "exposure_limits" in refused.comment
    # a sell brings the net back: always accepted
    assert b.sell(2, "AAPL", 2).ok
    assert b.apply(C.SetExposureLimit, symbol="AAPL", lots="").ok
    assert b.eng.config.exposure_limits == {}
    assert b.buy(2, "AAPL", 20).ok


@pytest.mark.parametrize("kw, code", [
    ({"symbol": "NOPE", "lots": "5"}, Retcode.INVALID),
    ({"symbol": "AAPL", "lots": "-1"}, Retcode.INVALID),
    ({"symbol": "AAPL", "lots": "abc"}, Retcode.INVALID),
    ({"symbol": "AAPL", "lots": "0.000001"}, Retcode.INVALID),  # below the volume grid
    ({"symbol": "AAPL", "lots": "NaN"}, Retcode.INVALID),
    ({"symbol": "AAPL", "lots": ""}, Retcode.NO_CHANGES),  # no limit to remove
])
def test_bad_limits_change_nothing(kw: dict, code: int) -> None:
    b = book()
    before = b.eng.state_hash()
    res = b.apply(C.SetExposureLimit, **kw)
    assert res.retcode == code and res.refused
    assert b.eng.state_hash() == before and b.eng.config.exposure_limits == {}


def test_replay_and_snapshot_keep_the_limit() -> None:
    b = book()
    journal = record_journal(b.eng)
    b.apply(C.SetExposureLimit, symbol="AAPL", lots="5")
    again = Engine()
    for cmd in journal:
        again.apply(cmd)
    assert again.config.exposure_limits == {"AAPL": Decimal(5)}
    arrays, meta = b.eng.snapshot()
    restored = Engine.from_snapshot(arrays, meta)
    assert restored.config.exposure_limits == {"AAPL": Decimal(5)}


def test_the_risk_action_plays_the_same_command() -> None:
    act = A.set_exposure_limit("AAPL", "5", "officer")
    assert act.call == "set_exposure_limit" and act.args == ("AAPL", "5")
    b = book()
    assert b.eng.apply(act.command).ok
    assert b.eng.config.exposure_limits == {"AAPL": Decimal(5)}
    assert "remove" in A.set_exposure_limit("AAPL", "", "officer").title


def test_admin_route(client: TestClient, rt) -> None:  # noqa: F811
    push(client, AAPL=(230.00, 230.05))
    r = client.put("/admin/exposure_limits/AAPL", headers=ADMIN, json={"lots": "3"})
    assert r.status_code == 200 and r.json()["retcode"] == 10009, r.text
    h = headers(rt.demo["accounts"][0])
    buy = {"action": 1, "symbol": "AAPL", "volume": 4.0, "type": 0, "price": 230.05,
           "deviation": 20, "type_filling": 2}
    assert client.post("/v1/order_send", headers=h, json=buy).json()["retcode"] == 10034
    assert client.put("/admin/exposure_limits/AAPL", headers=ADMIN,
                      json={"lots": "-3"}).status_code == 422
    assert client.put("/admin/exposure_limits/NOPE", headers=ADMIN,
                      json={"lots": "3"}).status_code == 404
    assert client.delete("/admin/exposure_limits/AAPL", headers=ADMIN).status_code == 200
    assert client.post("/v1/order_send", headers=h, json=buy).json()["retcode"] == 10009


def test_cfd_risk_exposure_shows_a_limit_set_by_command() -> None:
    from risk.analytics import exposure
    from risk.book import Book as RiskBook

    b = book()
    assert b.buy(1, "AAPL", 2).ok
    b.apply(C.SetExposureLimit, symbol="AAPL", lots="5")
    # the risk CLI reads the server's snapshot: the limit travels in it
    restored = Engine.from_snapshot(*b.eng.snapshot())
    row = next(r for r in exposure(RiskBook.from_engine(restored)) if r["symbol"] == "AAPL")
    # net long 2 lots under a 5-lot cap: 3 lots of headroom
    assert row["limit_lots"] == 5.0 and row["headroom_lots"] == 3.0
