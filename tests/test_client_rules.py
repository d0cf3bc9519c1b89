"""Client categories, jurisdictions and limits (cfd.accounts.rules): each refusal names its
rule, carries MT5's retcode and changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.accounts.rules import SymbolLimits
from cfd.constants import Retcode
from cfd.engine import Engine, EngineConfig
from tests.helpers import Book

LIMITED = AccountGroup(name="pro\\limited", allowed_countries=frozenset({"DE", "GB"}),
                       symbol_limits={"*": SymbolLimits(max_volume=Decimal(10),
                                                        max_value=Decimal(3000),
                                                        max_positions=2, max_orders=1)})


def book(**config) -> Book:
    cfg = EngineConfig(**config)
    cfg.groups[LIMITED.name] = LIMITED
    b = Book(Engine(config=cfg))
    b.quote(AAPL=(100.0, 100.0), MSFT=(50.0, 50.0))
    return b


def unchanged(b: Book, fn) -> None:
    """``fn()`` is refused and leaves the state hash as it was."""
    before = b.eng.state_hash()
    res = fn()
    assert not res.ok and res.refused, res
    assert b.eng.state_hash() == before
    return res


def create(b: Book, login: int, group: str, **kw):
    return b.apply(C.CreateAccount, login=login, name="x", group=group, **kw)


def test_us_retail_client_cannot_join_the_esma_group() -> None:
    b = book()
    res = unchanged(b, lambda: create(b, 1, "retail\\esma", country="US"))
    assert res.retcode == Retcode.REJECT and "blocked_countries" in res.comment
    assert b.eng.accounts.find(1) is None
    assert create(b, 2, "retail\\esma", country="FR").ok


@pytest.mark.parametrize("kw, word", [({"country": "XX"}, "ISO 3166"),
                                      ({"country": "de"}, "ISO 3166"),
                                      ({"country": 49}, "ISO 3166"),
                                      ({"category": "whale"}, "client category")])
def test_bad_category_or_country_is_refused(kw: dict, word: str) -> None:
    b = book()
    res = unchanged(b, lambda: create(b, 1, "demo\\usdt", **kw))
    assert res.retcode == Retcode.INVALID and word in res.comment


def test_allowed_countries_refuse_others_and_the_undeclared() -> None:
    b = book()
    assert "allowed_countries" in unchanged(b, lambda: create(b, 1, LIMITED.name,
                                                              country="FR")).comment
    assert "without a declared country" in unchanged(b, lambda: create(b, 1,
                                                                       LIMITED.name)).comment
    assert create(b, 1, LIMITED.name, country="GB", category="professional").ok


def test_set_client_is_journaled_and_checked() -> None:
    b = book()
    assert create(b, 1, "retail\\esma", country="FR").ok
    h0 = b.eng.state_hash()
    # moving to the US breaks the group's blocked list: refused, nothing changes
    res = unchanged(b, lambda: b.apply(C.SetClient, login=1, country="US", actor="kyc"))
    assert "blocked_countries" in res.comment
    res = b.apply(C.SetClient, login=1, category="professional", actor="kyc")
    assert res.ok and b.eng.state_hash() != h0  # the category is part of the state hash
    assert b.apply(C.SetClient, login=1, category="professional").retcode == Retcode.NO_CHANGES
    # replay of the journal and a snapshot agree on it
    arrays, meta = b.eng.snapshot()
    assert Engine.from_snapshot(arrays, meta).state_hash() == b.eng.state_hash()
    cmd = C.SetClient(time_msc=5, actor="kyc", login=1, category="retail", country="DE")
    assert C.decode(cmd.kind, cmd.to_payload()) == cmd


def test_esma_retail_cannot_hold_a_10_to_1_stock_position() -> None:
    b = book()
    assert b.apply(C.SetSymbol, name="MSFT", changes={"margin_initial_rate": "0.1",
                                                      "margin_maintenance_rate": "0.05"}).ok
    b.account(1, 1_000_000, group="retail\\esma")
    assert create(b, 2, "retail\\esma", category="professional").ok
    assert b.apply(C.Deposit, login=2, amount=1_000_000).ok
    # MSFT margins at 10% (10:1); ESMA retail may hold equities at 20% (5:1) at most
    res = unchanged(b, lambda: b.buy(1, "MSFT", 1.0))
    assert res.retcode == Retcode.REJECT
    assert "at most 5:1" in res.comment and "10:1" in res.comment and "min_margin_rate" in \
        res.comment
    # a pending order is refused by the same rule
    unchanged(b, lambda: b.send(1, action=5, symbol="MSFT", volume=1.0, type=2, price=40.0))
    # AAPL at 20% (5:1) is allowed; a professional client may take MSFT at 10:1
    assert b.buy(1, "AAPL", 1.0).ok
    assert b.buy(2, "MSFT", 1.0).ok


def test_account_limits_per_symbol() -> None:
    b = book()
    assert create(b, 1, LIMITED.name, country="DE").ok
    assert b.apply(C.Deposit, login=1, amount=10_000_000).ok
    # at 100.00 a lot (1 share) is worth 100: max_volume 10 binds before max_value 3,000
    assert b.buy(1, "AAPL", 8.0).ok  # 8 lots, worth 800
    res = unchanged(b, lambda: b.buy(1, "AAPL", 3.0))  # 8 + 3 = 11 > 10 lots
    assert res.retcode == Retcode.LIMIT_VOLUME and "max_volume" in res.comment
    assert b.buy(1, "AAPL", 2.0).ok  # 8 + 2 = 10 lots: at the limit, allowed
    res = unchanged(b, lambda: b.buy(1, "AAPL", 0.1))
    assert res.retcode == Retcode.LIMIT_VOLUME  # 10.1 > 10
    # max_positions 2 per symbol (hedging: each buy opens one): the third is refused
    assert b.buy(1, "MSFT", 1.0).ok
    assert b.buy(1, "MSFT", 1.0).ok
    res = unchanged(b, lambda: b.buy(1, "MSFT", 1.0))
    assert res.retcode == Retcode.LIMIT_POSITIONS and "max_positions" in res.comment
    # closing is never refused by a limit
    ticket = int(b.eng.positions.cols.ticket[b.eng.positions.of_account(0)[0]])
    assert b.sell(1, "AAPL", 8.0, position=ticket).ok


def test_value_and_order_limits() -> None:
    b = book()
    assert create(b, 1, LIMITED.name, country="DE").ok
    assert b.apply(C.Deposit, login=1, amount=10_000_000).ok
    for _ in range(3):  # a jump: confirmed by the further ticks
        b.quote(MSFT=(400.0, 400.0))
    # 8 lots x 1 share x 400.00 = 3,200 > max_value 3,000 (volume 8 <= 10 passes)
    res = unchanged(b, lambda: b.buy(1, "MSFT", 8.0))
    assert res.retcode == Retcode.LIMIT_VOLUME and "max_value" in res.comment
    assert b.buy(1, "MSFT", 7.0).ok  # 7 x 400 = 2,800
    # orders count with the positions, valued at the order's price:
    # a BUY LIMIT of 0.5 at 390: (7 + 0.5) x 390 = 2,925 <= 3,000
    assert b.send(1, action=5, symbol="MSFT", volume=0.5, type=2, price=390.0).ok
    # another 0.1 at 380: (7.5 + 0.1) x 380 = 2,888 passes by value, but max_orders is 1
    res = unchanged(b, lambda: b.send(1, action=5, symbol="MSFT", volume=0.1, type=2,
                                      price=380.0))
    assert res.retcode == Retcode.LIMIT_ORDERS and "max_orders" in res.comment


def test_book_net_exposure_limit() -> None:
    b = book(exposure_limits={"AAPL": Decimal(5)})
    b.account(1, 10_000_000)
    b.account(2, 10_000_000)
    assert b.buy(1, "AAPL", 4.0).ok  # clients net long 4 lots
    res = unchanged(b, lambda: b.buy(2, "AAPL", 1.5))  # 4 + 1.5 = 5.5 > 5
    assert res.retcode == Retcode.LIMIT_VOLUME and "exposure_limits" in res.comment
    assert b.buy(2, "AAPL", 1.0).ok  # 5 lots: at the limit
    assert b.sell(2, "AAPL", 3.0).ok  # reduces the net (5 - 3 = 2): always allowed
    assert b.sell(2, "AAPL", 7.0).ok  # net 2 - 7 = -5: at the short limit
    res = unchanged(b, lambda: b.sell(1, "AAPL", 0.1))  # -5.1: beyond it, short side
    assert "short" in res.comment


def test_risk_exposure_shows_the_limit_and_headroom() -> None:
    from risk.analytics import exposure
    from risk.book import Book as RiskBook

    b = book(exposure_limits={"AAPL": Decimal(5)})
    b.account(1, 10_000_000)
    assert b.buy(1, "AAPL", 4.0).ok
    assert b.buy(1, "MSFT", 1.0).ok
    rows = {r["symbol"]: r for r in exposure(RiskBook.from_engine(b.eng))}
    # clients net long 4 lots of a 5-lot cap: 1 lot of headroom
    assert (rows["AAPL"]["limit_lots"], rows["AAPL"]["headroom_lots"]) == (5.0, 1.0)
    assert rows["MSFT"]["limit_lots"] is None and rows["MSFT"]["headroom_lots"] is None


def test_admin_api_sets_category_and_country() -> None:
    from fastapi.testclient import TestClient

    from tests.test_api_fixtures import ADMIN, make_runtime

    rt = make_runtime(rollover_clock=False)
    try:
        with TestClient(rt.app) as client:
            body = {"group": "retail\\esma", "country": "US", "login": 777}
            r = client.post("/admin/accounts", headers=ADMIN, json=body)
            assert r.status_code == 409 and "blocked_countries" in r.json()["comment"]
            assert rt.service.read(lambda eng: eng.accounts.find(777)) is None
            r = client.post("/admin/accounts", headers=ADMIN,
                            json={**body, "country": "FR", "category": "professional"})
            assert r.status_code == 200, r.text
            bad = client.post("/admin/accounts", headers=ADMIN,
                              json={**body, "login": 778, "category": "whale"})
            assert bad.status_code == 422
            r = client.patch("/admin/accounts/777/client", headers=ADMIN, json={"country": "US"})
            assert r.status_code == 409 and "blocked_countries" in r.json()["comment"]
            r = client.patch("/admin/accounts/777/client", headers=ADMIN,
                             json={"category": "retail"})
            assert r.status_code == 200 and r.json()["retcode"] == 10009
            assert rt.service.read(lambda eng: int(eng.accounts.cols.category[
                eng.accounts.find(777)])) == 0
    finally:
        rt.close()
