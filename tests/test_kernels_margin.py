"""Margin kernels against their references on random books: full recompute + detection
(numba == pure Python == numpy, to the bit), incremental ticks (numba == Python == numpy),
and full recompute agreeing with the incremental state after random tick sequences."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.book import BookSpec, build, kernel_args
from cfd.kernels import reference as R
from cfd.kernels.margin import STATE_STOP_OUT, recompute_detect, tick_update
from cfd.trading.margin_tiers import tier_sets
from cfd.trading.positions import floating_profit

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

books = st.builds(
    BookSpec,
    positions=st.integers(0, 300),
    accounts=st.integers(1, 40),
    symbols=st.integers(1, 12),
    long_frac=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
    leverage=st.sampled_from([1.0, 2.0, 5.0, 20.0]),
    seed=st.integers(0, 2**31),
    level_lo=st.just(20.0),
    level_hi=st.just(300.0),
    calc_modes=st.sampled_from([(2,), (4,), (32,), (2, 4, 32)]),
    hedging_frac=st.sampled_from([0.0, 0.5, 1.0]),
    esma_frac=st.sampled_from([0.0, 0.3]),
)


def run_kernel(eng):
    a = kernel_args(eng)
    n = a["n_acc"]
    out = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int8))
    n_so = recompute_detect(**a, out_profit=out[0], out_margin=out[1],
                            out_margin_maint=out[2], out_state=out[3])
    return n_so, out


def test_reference_states_by_rule():
    # figures in cents. percent: 50.00 / 100.00 * 100 = 50% <= 50: stop-out; 80% <= 100:
    # margin call; 100.01 / 100.00 = 100.01% > 100: ok
    assert R.state_python(0, 50.0, 100.0, 5_000, 10_000) == R.STATE_STOP_OUT
    assert R.state_python(0, 50.0, 100.0, 8_000, 10_000) == R.STATE_MARGIN_CALL
    assert R.state_python(0, 50.0, 100.0, 10_001, 10_000) == R.STATE_OK
    # money: equity 30.00 <= 30 stop-out
    assert R.state_python(1, 30.0, 60.0, 3_000, 10_000) == R.STATE_STOP_OUT
    # ESMA: 49.99 < 0.5 * 100.00; 50.00 is not below
    assert R.state_python(2, 50.0, 100.0, 4_999, 10_000) == R.STATE_STOP_OUT
    assert R.state_python(2, 50.0, 100.0, 5_000, 10_000) == R.STATE_MARGIN_CALL
    # no margin: never
    assert R.state_python(0, 50.0, 100.0, -500, 0) == R.STATE_OK


@SETTINGS
@given(spec=books, at_level=st.integers(0, 5))
def test_recompute_detect_equals_references(spec, at_level):
    eng = build(spec)
    ac = eng.accounts.cols
    n = len(eng.accounts)
    # accounts exactly at their level, on the figures account_info shows (cents): money
    # level := equity; percent level := the account's level rounded up to the hundredth
    # (the smallest level a stop-out fires at: equity * 10,000 <= level * 100 * margin)
    idx = eng.positions.by_acc
    with_pos = np.nonzero(idx.cnt[:n] > 0)[0][:at_level]
    for a in with_pos:
        eq_c, m_c, _ = eng.accounts.figures(int(a))
        if ac.so_rule[a] == 1:
            ac.so_so[a] = eq_c / 100
        elif ac.so_rule[a] == 0 and m_c > 0:
            ac.so_so[a] = -(-eq_c * 10_000 // m_c) / 100
    n_so, (pr, m, mm, state) = run_kernel(eng)
    args = kernel_args(eng)
    npr = R.recompute_detect_numpy(**args)
    args.pop("n_acc")
    ppr = R.recompute_detect_python(range(n), **args)
    assert list(pr) == ppr[0] and list(m) == ppr[1] and list(mm) == ppr[2]
    assert list(state) == ppr[3]
    assert np.array_equal(npr[0], pr) and np.array_equal(npr[1], m)
    assert np.array_equal(npr[2], mm) and np.array_equal(npr[3], state)
    assert n_so == int((state == STATE_STOP_OUT).sum())
    for a in with_pos:
        if ac.so_rule[a] != 2 and eng.accounts.figures(int(a))[1] > 0:
            assert state[a] == STATE_STOP_OUT  # exactly at the level: <= fires
    assert (state[idx.cnt[:n] == 0] == 0).all()  # zero margin: never stopped out


@SETTINGS
@given(spec=books, ticks=st.lists(st.tuples(st.integers(0, 2**31), st.floats(0.8, 1.25)),
                                  min_size=1, max_size=8))
def test_incremental_ticks_equal_references_and_full_recompute(spec, ticks):
    eng = build(spec)
    ac, sc, pc = eng.accounts.cols, eng.symbols.cols, eng.positions.cols
    bs = eng.positions.by_sym
    ns, n = len(eng.symbols), len(eng.accounts)
    py = [ac.profit.copy(), ac.margin.copy(), ac.margin_maint.copy()]
    npy = [x.copy() for x in py]
    for seed, factor in ticks:
        rng = np.random.default_rng(seed)
        syms = np.unique(rng.integers(0, ns, rng.integers(1, ns + 1))).astype(np.int32)
        old_bid, old_ask = sc.bid[syms].copy(), sc.ask[syms].copy()
        sc.bid[syms] = np.maximum(old_bid * factor // 10_000 * 10_000, 10_000)
        sc.ask[syms] = sc.bid[syms] + rng.integers(0, 5, len(syms)) * 10_000
        touched = eng.incremental(syms, old_bid, old_ask)
        seg_acc, seg_vol = eng.positions.symbol_ordered()
        common = (syms, old_bid, old_ask, bs.off, bs.cnt, seg_acc, seg_vol, sc.bid, sc.ask,
                  sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode)
        t_py = R.tick_python(*common, *py)
        t_np = R.tick_numpy(*common, *npy)
        assert list(touched) == t_py == list(t_np)
        for ref in (py, npy):
            assert np.array_equal(ref[0], ac.profit)
            assert np.array_equal(ref[1], ac.margin)
            assert np.array_equal(ref[2], ac.margin_maint)
    inc = ac.profit[:n].copy(), ac.margin[:n].copy(), ac.margin_maint[:n].copy()
    _, (pr, m, mm, _) = run_kernel(eng)
    scale = 1.0 + np.abs(m)
    assert np.allclose(inc[0], pr, rtol=1e-9, atol=1e-9 * scale.max())
    assert np.allclose(inc[1], m, rtol=1e-9, atol=1e-9 * scale.max())
    assert np.allclose(inc[2], mm, rtol=1e-9, atol=1e-9 * scale.max())
    # positions' own floating profit (derived from the quote) sums to the accounts' profit
    live = np.nonzero(pc.active[: pc.size])[0]
    per_acc = np.bincount(pc.acc[live], weights=floating_profit(pc, sc, live), minlength=n)
    assert np.allclose(per_acc, pr, rtol=1e-9, atol=1e-9 * scale.max())


@SETTINGS
@given(spec=books, seed=st.integers(0, 2**31), factor=st.floats(0.8, 1.25))
def test_bulk_tick_by_account_equals_reference_and_the_symbol_walk(spec, seed, factor):
    """A move of most of the book is walked by account (``tick_update_accounts``): equal to
    its Python reference to the bit, and to the by-symbol walk and a full recompute within
    float rounding."""
    eng, twin = build(spec), build(spec)
    eng.bulk_tick_min, eng.bulk_tick_share = 0, 0.0  # always by account
    twin.bulk_tick_share = 2.0  # never
    ac, sc, pc = eng.accounts.cols, eng.symbols.cols, eng.positions.cols
    ns, n = len(eng.symbols), len(eng.accounts)
    ref = [ac.profit.copy(), ac.margin.copy(), ac.margin_maint.copy()]
    rng = np.random.default_rng(seed)
    syms = np.unique(rng.integers(0, ns, rng.integers(1, ns + 1))).astype(np.int32)
    old_bid, old_ask = sc.bid[syms].copy(), sc.ask[syms].copy()
    for e in (eng, twin):
        q = e.symbols.cols
        q.bid[syms] = np.maximum(old_bid * factor // 10_000 * 10_000, 10_000)
        q.ask[syms] = q.bid[syms] + np.arange(len(syms)) % 5 * 10_000
    touched = eng.incremental(syms, old_bid, old_ask)
    touched_twin = twin.incremental(syms, old_bid, old_ask)
    bi = eng.positions.by_acc
    t_py = R.tick_accounts_python(n, bi.off, bi.cnt, bi.pool, pc.sym, pc.volume, syms, old_bid,
                                  old_ask, sc.bid, sc.ask, sc.k_profit, sc.k_margin,
                                  sc.k_margin_maint, sc.calc_mode, *ref)
    assert list(touched) == t_py == list(touched_twin)
    assert np.array_equal(ref[0], ac.profit) and np.array_equal(ref[1], ac.margin)
    assert np.array_equal(ref[2], ac.margin_maint)
    _, (pr, m, mm, _) = run_kernel(eng)
    tw = twin.accounts.cols
    tol = 1e-9 * (1.0 + np.abs(m).max())
    for got in ((ac.profit[:n], ac.margin[:n], ac.margin_maint[:n]),
                (tw.profit[:n], tw.margin[:n], tw.margin_maint[:n])):
        assert np.allclose(got[0], pr, rtol=1e-9, atol=tol)
        assert np.allclose(got[1], m, rtol=1e-9, atol=tol)
        assert np.allclose(got[2], mm, rtol=1e-9, atol=tol)


def test_incremental_touches_only_the_ticked_symbol():
    eng = build(BookSpec(positions=2_000, accounts=200, symbols=20, seed=3))
    sc, ac = eng.symbols.cols, eng.accounts.cols
    bs = eng.positions.by_sym
    s = 7
    before = ac.profit.copy()
    old_bid, old_ask = sc.bid[[s]].copy(), sc.ask[[s]].copy()
    sc.bid[s] += 10_000
    sc.ask[s] += 10_000
    seg_acc, seg_vol = eng.positions.symbol_ordered()
    mark = np.zeros(200, np.bool_)
    out = np.empty(200, np.int64)
    n = tick_update(np.array([s], np.int32), old_bid, old_ask, bs.off, bs.cnt, seg_acc,
                    seg_vol, sc.bid, sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint,
                    sc.calc_mode, tier_sets(eng), ac.profit, ac.margin, ac.margin_maint,
                    mark, out)
    holders = set(eng.positions.cols.acc[bs.items(s)].tolist())
    assert sorted(out[:n].tolist()) == sorted(holders)
    assert not mark.any()  # the scratch marks are cleared on return
    changed = set(np.nonzero(ac.profit != before)[0].tolist())
    assert changed and changed <= holders


def test_engine_periodic_check_reports_drift_and_reanchors():
    from tests.helpers import Book

    b = Book()
    b.quote(AAPL=(100.0, 100.02))
    b.account(1, 1_000_000)
    assert b.buy(1, "AAPL", 10.0).ok
    eng = b.eng
    eng.recheck_every = 1  # every tick command
    for px in (100.5, 101.0, 100.25):
        b.quote(AAPL=(px, px + 0.02))
        assert eng.drift < 1e-9
    eng.accounts.cols.profit[0] += 0.5  # corrupt the incremental state
    b.quote(AAPL=(100.75, 100.77))
    assert abs(eng.drift - 0.5) < 1e-9
    assert any(e["kind"] == "recompute_drift" for e in eng.take_effects().events)
    # re-anchored: (100.75 - 100.02) x 10 lots x 1 share = 7.30 USDT
    assert abs(float(eng.accounts.cols.profit[0]) - 7.30) < 1e-9
