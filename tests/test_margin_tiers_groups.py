"""Margin tiers overridden per account group (``AccountGroup.margin_tiers``): a worked example
differing by group through order_calc_margin and account_info, bad overrides refused, and
the kernels against their references and the incremental ticks on a book with an
overriding group."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.book import BookSpec, build, kernel_args
from cfd.accounts.book import AccountGroup
from cfd.engine import Engine, EngineConfig
from cfd.instruments.spec import SymbolSpec
from cfd.instruments.tiers import group_schedule
from cfd.kernels import reference as R
from cfd.kernels.margin import recompute_detect
from tests.helpers import Book
from tests.test_margin_tiers import CMC, IG, spec

PRO = "pro\\tiers"


def group_book() -> Book:
    groups = dict(EngineConfig().groups)
    # CMC from 5 %, 20 % from 5,000 units; FQT ("F*" too, but the name comes first)
    # without tiers; every other F symbol on a ladder of its own
    groups[PRO] = AccountGroup(name=PRO, margin_tiers={
        "CMC": "0:0.05,5000:0.20", "FQT": "", "F*": "0:0.25,100:0.5"})
    specs = [spec("CMC", CMC), spec("FQT", IG), spec("FOO", "0:0.25,10:0.3"),
             SymbolSpec(name="FLAT")]
    b = Book(Engine(specs=specs, config=EngineConfig(groups=groups)))
    b.account(1001, 100_000_000)
    b.account(4004, 100_000_000, group=PRO)
    b.quote(CMC=(2.75, 2.75), FQT=(30.00, 30.00), FOO=(10.00, 10.00), FLAT=(100.00, 100.00))
    return b


def test_group_schedule_takes_the_name_then_the_first_pattern() -> None:
    over = {"CMC": "a", "FQT": "", "F*": "b", "*": "c"}
    assert [group_schedule(over, s) for s in ("CMC", "FQT", "FOO", "XYZ")] == ["a", "", "b", "c"]
    assert group_schedule({"F*": "b"}, "CMC") is None


def test_a_worked_example_differs_by_group() -> None:
    b = group_book()
    calc = b.eng.order_calc_margin
    # demo: CMC's own ladder, 6,500 units at 2.75 = 1,250 units * 2.75 = 3,437.50
    assert calc(0, "CMC", 6_500, 2.75, 1001) == 3_437.50
    # pro: 5,000 * 5 % + 1,500 * 20 % = 550 units * 2.75 = 1,512.50
    assert calc(0, "CMC", 6_500, 2.75, 4004) == 1_512.50
    # FQT, 1,500 shares at 30.00: IG's tiers 18,600.00; pro: none, 1,500 * 30 * 25 %
    assert calc(0, "FQT", 1_500, 30.00, 1001) == 18_600.00
    assert calc(0, "FQT", 1_500, 30.00, 4004) == 11_250.00
    # FOO, 200 at 10.00: its own 10 * 25 % + 190 * 30 % = 59.5 units -> 595.00; pro's
    # pattern: 100 * 25 % + 100 * 50 % = 75 units -> 750.00
    assert calc(0, "FOO", 200, 10.00, 1001) == 595.00
    assert calc(0, "FOO", 200, 10.00, 4004) == 750.00
    for login, want in ((1001, 3_437.50 + 18_600.00 + 595.00),
                        (4004, 1_512.50 + 11_250.00 + 750.00)):
        assert b.buy(login, "CMC", 4_000).ok and b.buy(login, "CMC", 2_500).ok
        assert b.buy(login, "FQT", 1_500).ok and b.buy(login, "FOO", 200).ok
        assert b.info(login)["margin"] == want
        b.eng.recompute_all()
        assert b.info(login)["margin"] == want


@pytest.mark.parametrize("bad, why", [("0:0.1,0:0.2", "floors must rise"),
                                      ("5:0.1", "start at 0"), ("0:0.2,5:0.1", "not fall"),
                                      ("0.1", "floor:rate")])
def test_a_bad_group_schedule_is_refused(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        AccountGroup(name="x", margin_tiers={"CMC": bad})


@pytest.mark.parametrize("calc_modes", [(2,), (32,), (2, 4, 32)])
def test_kernels_equal_references_with_an_overriding_group(calc_modes) -> None:
    eng = build(BookSpec(positions=3_000, accounts=300, symbols=40, seed=11,
                         calc_modes=calc_modes, tiered_frac=0.5))
    esma = eng.config.groups["retail\\esma"]
    eng.config.groups["retail\\esma"] = replace(esma, margin_tiers={
        "S0000*": "", "*": "0:0.1,3:0.3,9:0.6"})
    eng.recompute_all()
    a = kernel_args(eng)
    assert a["tiers"][0].shape[0] == 2 and a["tiers"][3][:300].any()
    n = a["n_acc"]
    out = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int8))
    recompute_detect(**a, out_profit=out[0], out_margin=out[1], out_margin_maint=out[2],
                     out_state=out[3])
    ref = R.recompute_detect_numpy(**a)
    for got, want in zip(out, ref, strict=True):
        assert np.array_equal(got, want)
    a.pop("n_acc")
    py = R.recompute_detect_python(range(n), **a)
    assert out[1].tolist() == py[1] and out[0].tolist() == py[0]
    ac = eng.accounts.cols
    assert np.array_equal(ac.margin[:n], out[1])
    # ticks: incremental figures agree with a full recompute
    sc = eng.symbols.cols
    rng = np.random.default_rng(3)
    for _ in range(4):
        syms = np.unique(rng.integers(0, 40, 12)).astype(np.int32)
        old_bid, old_ask = sc.bid[syms].copy(), sc.ask[syms].copy()
        sc.bid[syms] = np.maximum(old_bid * rng.uniform(0.7, 1.3) // 10_000 * 10_000, 10_000)
        sc.ask[syms] = sc.bid[syms] + 10_000
        eng.incremental(syms, old_bid, old_ask)
    inc = ac.margin[:n].copy(), ac.margin_maint[:n].copy()
    eng.recompute_all()
    tol = 1e-9 * (1.0 + np.abs(ac.margin[:n]).max())
    assert np.allclose(inc[0], ac.margin[:n], rtol=1e-9, atol=tol)
    assert np.allclose(inc[1], ac.margin_maint[:n], rtol=1e-9, atol=tol)


def test_symbol_info_shows_the_tiers_of_the_asking_accounts_group() -> None:
    from api import records

    b = group_book()
    eng = b.eng
    cmc, fqt = eng.symbols.get("CMC"), eng.symbols.get("FQT")
    assert records.symbol_info(eng, cmc)["margin_tiers"] == CMC
    assert records.symbol_info(eng, cmc, group=records.group_of(eng, 1001))["margin_tiers"] \
        == CMC
    assert records.symbol_info(eng, cmc, group=records.group_of(eng, 4004))["margin_tiers"] \
        == "0:0.05,5000:0.20"
    assert records.symbol_info(eng, fqt, group=PRO)["margin_tiers"] == ""


def test_the_exposure_panel_lists_a_symbols_tiers_and_the_groups_overriding_them() -> None:
    from api.web.backoffice import _tiers_by_symbol

    got = _tiers_by_symbol(group_book().eng)
    assert got["CMC"] == (CMC, "volume", [PRO]) and got["FOO"][2] == [PRO]
    assert got["FLAT"] == ("", "volume", [PRO])  # "F*" gives it a ladder in the group
    assert _tiers_by_symbol(Engine(specs=[spec("CMC", CMC)]))["CMC"] == (CMC, "volume", [])
