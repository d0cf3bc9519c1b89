"""Account groups changed by a journaled command (``SetGroup``, ``cfd.accounts.group_rules``):
a new group, stop-out levels that the group's accounts follow, margin tiers overridden per
group in force at once (with the stop-outs they cause), jurisdiction rules for accounts to
come, the margin mode held while positions are open; bad settings refused with nothing
changed; replay, snapshot, the admin routes and the risk CLI's action."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cfd import commands as C
from cfd.constants import Retcode
from cfd.engine import Engine
from cfd.instruments.spec import SymbolSpec
from risk import actions as A
from tests.helpers import Book, record_journal
from tests.test_api_fixtures import ADMIN, client, rt  # noqa: F401
from tests.test_margin_tiers import CMC, spec

PRO = "pro\\usdt"


def book(eng: Engine | None = None) -> Book:
    b = Book(eng or Engine(specs=[spec("CMC", CMC), SymbolSpec(name="FLAT")]))
    b.quote(CMC=(2.75, 2.75), FLAT=(100.00, 100.00))
    return b


def test_a_new_group_takes_accounts_with_its_levels() -> None:
    b = book()
    res = b.apply(C.SetGroup, group=PRO, changes={"margin_call": 80, "stop_out": 30,
                                                   "blocked_countries": ["US"]})
    assert res.ok and res.data["settings"]["stop_out"] == 30.0 and res.data["accounts"] == 0
    b.account(7, 1_000_000, group=PRO)
    info = b.info(7)
    assert (info["margin_so_call"], info["margin_so_so"]) == (80.0, 30.0)
    refused = b.apply(C.CreateAccount, login=8, group=PRO, leverage=1, country="US")
    assert refused.retcode == Retcode.REJECT and "blocked_countries" in refused.comment


def test_levels_changed_on_the_group_reach_its_accounts() -> None:
    b = book()
    b.account(1, 1_000_000)
    b.account(2, 1_000_000)
    b.apply(C.SetAccountLevels, login=2, stop_out=20.0)
    res = b.apply(C.SetGroup, group="demo\\usdt", changes={"margin_call": 120, "stop_out": 60})
    assert res.ok and res.data["accounts"] == 2
    # as in MT5 the levels are the group's: an account's own are replaced
    assert [b.info(i)["margin_so_so"] for i in (1, 2)] == [60.0, 60.0]
    assert [b.info(i)["margin_so_call"] for i in (1, 2)] == [120.0, 120.0]


def test_tiers_set_on_a_group_apply_at_once_and_stop_out_the_account_they_sink() -> None:
    b = book()
    # 6,500 CMC at 2.75 on CMC's own ladder: 3,437.50 margin (tests.test_margin_tiers)
    b.account(1, 500_000)  # 5,000.00
    assert b.buy(1, "CMC", 6_500).ok
    assert b.info(1)["margin"] == 3_437.50
    assert b.eng.order_calc_margin(0, "CMC", 6_500, 2.75, 1) == 3_437.50
    # the group's ladder: 100 % from the first unit -> 17,875.00, level 28 %: stopped out
    res = b.apply(C.SetGroup, group="demo\\usdt", changes={"margin_tiers": {"CMC": "0:1"}})
    assert res.ok
    assert any(e["kind"] == "stop_out" for e in res.events), res.events
    assert b.positions(1) == []
    # a fresh order is margined on the group's ladder, by order_calc_margin as by the book
    assert b.eng.order_calc_margin(0, "CMC", 100, 2.75, 1) == 275.00


def test_a_tier_change_that_sinks_no_one_moves_the_margin_only() -> None:
    b = book()
    b.account(1, 10_000_000)
    assert b.buy(1, "CMC", 6_500).ok
    assert b.apply(C.SetGroup, group="demo\\usdt",
                   changes={"margin_tiers": {"C*": "0:0.05,5000:0.20"}}).ok
    # 5,000 * 5 % + 1,500 * 20 % = 550 units * 2.75
    assert b.info(1)["margin"] == 1_512.50
    assert b.apply(C.SetGroup, group="demo\\usdt", changes={"margin_tiers": {}}).ok
    assert b.info(1)["margin"] == 3_437.50


def test_new_jurisdiction_rules_list_the_accounts_that_no_longer_meet_them() -> None:
    b = book()
    b.apply(C.CreateAccount, login=1, group="demo\\usdt", leverage=1, country="US")
    b.apply(C.CreateAccount, login=2, group="demo\\usdt", leverage=1, country="DE")
    res = b.apply(C.SetGroup, group="demo\\usdt", changes={"blocked_countries": ["US"]})
    assert res.ok and res.data["nonconforming"] == [1] and "1 no longer" in res.comment
    assert b.eng.accounts.find(1) is not None  # kept, for the broker to act on


def test_the_margin_mode_changes_only_on_an_empty_book() -> None:
    b = book()
    b.account(1, 10_000_000)
    assert b.buy(1, "FLAT", 1).ok
    before = b.eng.state_hash()
    res = b.apply(C.SetGroup, group="demo\\usdt", changes={"margin_mode": 0})
    assert res.retcode == Retcode.INVALID and "account 1 does" in res.comment
    assert b.eng.state_hash() == before
    b.account(2, 0, group="demo\\usdt")
    b3 = book()  # a pending order holds it too
    b3.account(1, 10_000_000)
    assert b3.send(1, action=5, symbol="FLAT", volume=1.0, type=2, price=90.0).ok
    assert "account 1 does" in b3.apply(C.SetGroup, group="demo\\usdt",
                                        changes={"margin_mode": 0}).comment
    b2 = book()
    b2.account(1, 0)
    assert b2.apply(C.SetGroup, group="demo\\usdt", changes={"margin_mode": 0}).ok
    assert b2.info(1)["margin_mode"] == 0


@pytest.mark.parametrize("group, changes, words", [
    (PRO, {}, "settings to change"),
    ("", {"stop_out": 1}, "group name"),
    ("x" * 65, {"stop_out": 1}, "group name"),
    (PRO, {"name": "other"}, "not renamed"),
    (PRO, {"bogus": 1}, "unknown group setting"),
    (PRO, {"stop_out": float("nan")}, "finite"),
    (PRO, {"stop_out": -1}, "finite"),
    (PRO, {"stop_out": "30"}, "finite"),
    (PRO, {"margin_call": 40, "stop_out": 50}, "above the margin-call"),
    (PRO, {"margin_mode": 1}, "netting"),
    (PRO, {"so_mode": True}, "percent"),
    (PRO, {"leverage": 10}, "unknown group setting"),  # an account's, not a group's
    (PRO, {"esma": "yes"}, "true or false"),
    (PRO, {"blocked_countries": "US"}, "alpha-2"),
    (PRO, {"blocked_countries": ["XX"]}, "ISO 3166"),
    (PRO, {"min_margin_rate": {"retail": "2"}}, "[0, 1]"),
    (PRO, {"min_margin_rate": {"vip": "0.2"}}, "client category"),
    (PRO, {"dividend_withholding": "1e400"}, "[0, 100]"),
    (PRO, {"symbol_limits": {"CMC": {"max_volume": "-1"}}}, "max_volume"),
    (PRO, {"symbol_limits": {"CMC": {"max_lots": 1}}}, "unknown limit"),
    (PRO, {"margin_tiers": {"*": "junk"}}, "floor:rate"),
    (PRO, {"margin_tiers": {"*": 5}}, "as text"),
    (PRO, {"commission": {"*": {"per_lot": "-1"}}}, "per_lot"),
    ("demo\\usdt", {"stop_out": 50.0}, "already has"),
])
def test_bad_settings_change_nothing(group: str, changes: dict, words: str) -> None:
    b = book()
    b.account(1, 1_000_000)
    before, groups = b.eng.state_hash(), dict(b.eng.config.groups)
    res = b.apply(C.SetGroup, group=group, changes=changes)
    assert res.refused and words in res.comment, res.comment
    assert b.eng.state_hash() == before and b.eng.config.groups == groups
    assert not b.eng.groups_set


def test_replay_and_snapshot_keep_the_groups() -> None:
    eng = Engine(specs=[spec("CMC", CMC), SymbolSpec(name="FLAT")])
    journal = record_journal(eng)
    b = book(eng)
    b.apply(C.SetGroup, group=PRO, changes={"stop_out": 25, "margin_tiers": {"*": "0:0.5"},
                                            "symbol_limits": {"CMC": {"max_orders": 3}},
                                            "commission": {"*": {"per_lot": "0.02"}}})
    b.account(3, 1_000_000, group=PRO)
    assert b.buy(3, "CMC", 100).ok
    again = Engine(specs=[spec("CMC", CMC), SymbolSpec(name="FLAT")])
    for cmd in journal:
        again.apply(cmd)
    assert again.config.groups[PRO] == b.eng.config.groups[PRO]
    assert again.state_hash() == b.eng.state_hash()
    restored = Engine.from_snapshot(*b.eng.snapshot())
    assert restored.config.groups[PRO] == b.eng.config.groups[PRO]
    assert restored.groups_set == {PRO}
    assert restored.order_calc_margin(0, "CMC", 100, 2.75, 3) == 137.50


def test_the_state_hash_covers_group_rules_and_each_accounts_group() -> None:
    """A standby that missed a SetGroup, or put an account in another group, shows it in
    its state hash (and a snapshot still restores to the same hash)."""
    def fresh() -> Book:
        return book(Engine(specs=[spec("CMC", CMC), SymbolSpec(name="FLAT")]))

    a, b = fresh(), fresh()
    assert a.eng.state_hash() == b.eng.state_hash()
    assert a.apply(C.SetGroup, group=PRO, changes={"stop_out": 30}).ok
    assert a.eng.state_hash() != b.eng.state_hash()
    assert b.apply(C.SetGroup, group=PRO, changes={"stop_out": 30}).ok
    assert a.eng.state_hash() == b.eng.state_hash()
    # the same login, balance and levels, in two groups that differ by name only
    assert b.apply(C.SetGroup, group="pro2\\usdt", changes={"stop_out": 30}).ok
    assert a.apply(C.SetGroup, group="pro2\\usdt", changes={"stop_out": 30}).ok
    a.account(5, 1_000_000, group=PRO)
    b.account(5, 1_000_000, group="pro2\\usdt")
    assert a.eng.state_hash() != b.eng.state_hash()
    restored = Engine.from_snapshot(*a.eng.snapshot())
    assert restored.state_hash() == a.eng.state_hash()


def test_the_risk_action_plays_the_same_command() -> None:
    act = A.set_group(PRO, {"stop_out": 30}, "officer")
    assert act.call == "set_group" and act.args == (PRO, {"stop_out": 30})
    b = book()
    assert b.eng.apply(act.command).ok and b.eng.config.groups[PRO].stop_out == 30.0


def test_admin_routes(client: TestClient) -> None:  # noqa: F811
    listed = client.get("/admin/groups", headers=ADMIN).json()
    assert "retail\\esma" in listed and listed["retail\\esma"]["settings"]["esma"] is True
    r = client.post("/admin/groups", headers=ADMIN,
                    json={"group": PRO, "changes": {"stop_out": 30, "margin_call": 90}})
    assert r.status_code == 200 and r.json()["retcode"] == 10009, r.text
    assert client.get("/admin/groups", headers=ADMIN).json()[PRO]["settings"]["stop_out"] == 30
    bad = client.post("/admin/groups", headers=ADMIN,
                      json={"group": PRO, "changes": {"stop_out": 95}})
    assert bad.status_code == 409 and "above the margin-call" in bad.json()["comment"]
    assert client.post("/admin/groups", headers=ADMIN,
                       json={"group": PRO, "changes": {}}).status_code == 422
    assert client.post("/admin/groups", headers=ADMIN, content=b"{not json",
                       ).status_code in (400, 422)
    assert client.get("/admin/groups").status_code == 401
