"""The stress sweep on a copy against the engine's own sweep on the same book."""

from __future__ import annotations

import numpy as np
import pytest

from cfd.money import PRICE_SCALE
from risk.book import Book, shocked_prices
from risk.stress import (
    depeg_symbols,
    parse_percent,
    parse_shocks,
    run_stress,
    scenario_moves,
)
from tests.test_risk_fixtures import SYMBOLS, build_engine


def engine_after_shock(eng, moves):
    """Apply the same shocked prices to the engine itself (a tick batch)."""
    book = Book.from_engine(eng)
    bid, ask = shocked_prices(book.symbols, moves)
    q = {}
    for n in SYMBOLS:
        s = eng.symbols.get(n)
        q[s] = (bid[s] / PRICE_SCALE, ask[s] / PRICE_SCALE)
    from cfd import commands as C

    events = []
    for k in range(3):  # a jump beyond 10% needs two more ticks to confirm (price hygiene)
        events += eng.apply(C.Ticks.of(10**9 + k, q)).events
    return events


@pytest.mark.parametrize("seed,move", [(1, -0.12), (2, -0.25), (5, 0.3), (9, -0.4)])
def test_stress_matches_the_engine_sweep(seed, move):
    eng = build_engine(60, seed=seed, fund=1_000_00)
    from cfd import commands as C

    # a book that charges commission on the stop-out closes: 0.07 USDT per lot, at least
    # 1.00 USDT (odd per-lot amounts round half to even, as the engine books them)
    for name in SYMBOLS:
        assert eng.apply(C.SetSymbol(time_msc=10**9 - 1, name=name, changes={
            "commission_per_lot": "0.07", "commission_min": "1"})).ok
    book = Book.from_engine(eng)
    assert (book.symbols.comm_terms[[book.symbols.index(n) for n in SYMBOLS], 0] > 0).all()
    names = book.symbols.names
    moves = scenario_moves(names, {"TSLA": move * 1.5 if move > -0.6 else move}, all_move=move)
    res = run_stress(book, moves)
    fund_before = eng.insurance_fund
    events = engine_after_shock(eng, moves)
    stopped = {e["login"]: e for e in events if e["kind"] == "stop_out"}
    mine = {int(book.login[a]) for a in res.stopped}
    assert mine == set(stopped)
    for a in res.stopped:
        login = int(book.login[a])
        assert int(res.n_closed[a]) == stopped[login]["positions_closed"]
    n = len(eng.accounts)
    # same balances, to the cent, after stop-out and negative balance protection
    assert np.array_equal(res.balance_after[: n][res.status > 0],
                          eng.accounts.cols.balance[:n][res.status > 0])
    comp = sum(e.get("compensation", 0) for e in stopped.values())
    assert int(res.deficit.sum()) == comp
    s = res.summary()
    # the fund pays first, broker P/L the rest
    assert round(s["from_insurance_fund"] * 100) == fund_before - eng.insurance_fund
    assert eng.ledger.total() == 0
    assert eng.insurance_fund == max(0, fund_before - comp)
    # positions left: those the engine still holds
    assert int((~res.closed).sum()) == len(eng.positions)


def test_a_big_fall_stops_out_and_costs_the_fund():
    eng = build_engine(60, seed=2, fund=1_000_00)
    book = Book.from_engine(eng)
    res = run_stress(book, scenario_moves(book.symbols.names, all_move=-0.5))
    s = res.summary()
    assert s["accounts_stopped_out"] > 0
    assert s["deficit"] > 0
    # the fund holds 1,000.00: it pays min(1,000.00, deficit), broker P/L the rest
    assert s["from_insurance_fund"] == min(1000.0, s["deficit"])
    assert s["from_broker_pl"] == pytest.approx(s["deficit"] - s["from_insurance_fund"])
    # the live engine is untouched
    assert eng.insurance_fund == 1_000_00
    assert Book.from_engine(eng).n_positions == book.n_positions


def test_no_shock_no_stop_out():
    eng = build_engine(30, seed=4)
    book = Book.from_engine(eng)
    res = run_stress(book, np.zeros(len(book.symbols)))
    assert res.summary()["deals"] == 0
    assert np.allclose(res.equity_before, book.figures()["equity"])


def test_parse_shocks_and_percent():
    names = ["NVDA", "AAPL"]
    assert parse_shocks(["NVDA=-25%", "AAPL=+3.5"], names) == {"NVDA": -0.25, "AAPL": 0.035}
    assert parse_percent("-10%") == -0.10
    with pytest.raises(ValueError, match="unknown symbol"):
        parse_shocks(["XXX=-1%"], names)
    with pytest.raises(ValueError, match="expected"):
        parse_shocks(["NVDA-1"], names)
    moves = scenario_moves(names, {"NVDA": -0.25}, all_move=-0.1)
    assert moves.tolist() == [-0.25, -0.1]
    # beta 2.0 x market -10% = -20%; AAPL without a beta moves with the market
    moves = scenario_moves(names, market=-0.1, betas={"NVDA": 2.0})
    assert moves.tolist() == pytest.approx([-0.2, -0.1])


def test_depeg_scales_usd_amounts():
    eng = build_engine(20, seed=6)
    book = Book.from_engine(eng)
    fig = book.figures()
    dep = depeg_symbols(book, 0.2).figures()
    # USDT at 0.80 USD: 1 USD = 1.25 USDT, so margin and P/L in USDT are 1.25 x
    assert np.allclose(dep["margin"], fig["margin"] * 1.25)
    assert np.allclose(dep["profit"], fig["profit"] * 1.25)
