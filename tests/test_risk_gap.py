"""Gap distributions from real bars and the gap Monte Carlo against the stress sweep."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from risk.book import Book
from risk.gaps import (
    GapTable,
    bar_gaps,
    run_gap,
    sample_gaps,
    symbol_map,
)
from risk.stress import run_stress
from tests.test_risk_fixtures import build_engine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_bar_gaps_adjusts_for_splits():
    d = [dt.date(2020, 1, 3), dt.date(2020, 1, 6), dt.date(2020, 1, 7)]
    # a 2:1 split before Jan 6: raw open 51 vs close 100 looks like -49%, but on the adjusted
    # scale (f = adj/close: 0.5 on Jan 3, 1 after) it is 51 / 50 - 1 = +2%
    open_ = np.array([99.0, 51.0, 50.0])
    close = np.array([100.0, 50.0, 52.0])
    adj = np.array([50.0, 50.0, 52.0])
    days, gap, weekend = bar_gaps(d, open_, close, adj)
    assert days == d[1:]
    assert gap == pytest.approx([0.02, 0.0])  # Jan 7: 50 / 50 - 1 = 0
    assert weekend.tolist() == [True, False]  # Fri -> Mon is a weekend gap


def test_packaged_table_matches_the_real_bars():
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent")
    packaged = GapTable.load()
    fresh = GapTable.from_folder(DATA)
    assert packaged.series == fresh.series == ["NVDA", "ORCL", "YHOO"]
    assert np.array_equal(packaged.dates, fresh.dates)
    assert np.allclose(packaged.gaps, fresh.gaps, equal_nan=True, atol=1e-6)
    q = packaged.quantiles()
    # NVDA's worst opening gap in 1999-2014 was 2004-08-06: about -30.6%
    assert q["NVDA"][0] < -0.1
    assert np.nanmin(packaged.gaps[:, 0]) == pytest.approx(-0.3056, abs=1e-3)


def test_symbol_map_covers_the_catalogue():
    from cfd.instruments.spec import load_catalogue

    names = [s.name for s in load_catalogue()]
    mapping = symbol_map()
    assert set(names) <= set(mapping)
    assert {v[0] for v in mapping.values()} <= {"NVDA", "ORCL", "YHOO"}


def test_sampling_keeps_each_marginal_and_correlation():
    table = GapTable.load().select(weekend_only=False)
    names = ["NVDA", "AMD", "KO"]
    g1 = sample_gaps(table, names, 20_000, correlation=1.0, seed=1)
    # correlation 1: NVDA and AMD both map to the NVDA series and move as one
    assert np.array_equal(g1[0], g1[1])
    g0 = sample_gaps(table, names, 20_000, correlation=0.0, seed=1)
    assert abs(np.corrcoef(g0[0], g0[1])[0, 1]) < 0.05
    nvda = table.gaps[:, 0]
    nvda = nvda[~np.isnan(nvda)]
    assert np.quantile(g0[0], 0.01) == pytest.approx(np.quantile(nvda, 0.01), abs=0.01)


def test_gap_losses_equal_the_stress_sweep():
    eng = build_engine(80, seed=11, fund=500_00)
    book = Book.from_engine(eng)
    rng = np.random.default_rng(3)
    gaps = rng.normal(-0.1, 0.15, (len(book.symbols), 12))
    gaps[:, 0] = -0.45  # a crash: several accounts go below zero
    res = run_gap(book, gaps, chunk=5)
    assert res.losses[0] > 0
    for j in range(gaps.shape[1]):
        st = run_stress(book, gaps[:, j], with_exposure=False)
        # the sweep trades at prices rounded to the cent (up to 0.005 per lot off the exact
        # move) and rounds each deal to the cent
        tol = 0.005 * np.abs(book.pos_vol).sum() / 1e4 + 0.01 * st.n_closed.sum()
        assert res.losses[j] == pytest.approx(st.deficit.sum() / 100, abs=tol)
    s = res.summary()
    assert s["worst"] == res.losses.max()
    assert 0 <= s["p_fund_exhausted"] <= 1
