"""The stop-out sweep kernel on random array books: after a crash the kernel path and the
Python reference sweep leave the same state hash; after a sweep every account is flat, holds
only positions it cannot close (closed or halted markets) or is above its stop-out level;
the comment formatter matches Python's; an amount that overflows int64 falls back to Python.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.book import BookSpec, build, shock
from cfd.kernels.sweep import SO_OVERFLOW, format_so_comments
from cfd.trading import stopout

books = st.builds(
    BookSpec,
    positions=st.integers(0, 250),
    accounts=st.integers(1, 30),
    symbols=st.integers(1, 10),
    long_frac=st.sampled_from([0.5, 0.8, 1.0]),
    leverage=st.sampled_from([2.0, 5.0, 20.0]),
    seed=st.integers(0, 2**31),
    level_lo=st.just(60.0),
    level_hi=st.just(250.0),
    calc_modes=st.sampled_from([(2,), (2, 4, 32)]),
    hedging_frac=st.sampled_from([0.0, 0.5, 1.0]),
    esma_frac=st.sampled_from([0.0, 0.3]),
    insurance_fund=st.sampled_from([0, 5_000, 10**9]),
)


def crash(eng, factor, closed, seed, hysteresis, force):
    rng = np.random.default_rng(seed)
    sc = eng.symbols.cols
    ns = len(eng.symbols)
    if closed:
        shut = rng.random(ns) < 0.3
        sc.market_open[:ns] = ~shut
        sc.halted[:ns] = rng.random(ns) < 0.1
    ac = eng.accounts.cols
    n = len(eng.accounts)
    if hysteresis:
        ac.so_end[:n] = np.where(rng.random(n) < 0.5, 90.0, 0.0)
    syms, old_bid, old_ask = shock(eng, factor)
    eng.incremental(syms, old_bid, old_ask)
    accs = np.arange(n, dtype=np.int64)
    if force:
        accs = accs[rng.random(n) < 0.2]
    return accs


def twin(spec, factor, closed, seed, hysteresis, force):
    out = []
    for path in (stopout.sweep_python, stopout.sweep_kernel):
        eng = build(spec)
        accs = crash(eng, factor, closed, seed, hysteresis, force)
        events = path(eng, accs, force)
        out.append((eng, events))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=books, factor=st.sampled_from([0.5, 0.7, 0.85, 0.95, 1.2]), closed=st.booleans(),
       seed=st.integers(0, 2**31), hysteresis=st.booleans(), force=st.booleans())
@example(spec=BookSpec(positions=200, accounts=20, symbols=3, long_frac=1.0, leverage=20.0,
                       level_lo=60.0, level_hi=120.0, insurance_fund=5_000),
         factor=0.5, closed=False, seed=1, hysteresis=True, force=False)
def test_kernel_sweep_equals_python_sweep_and_leaves_no_account_below(spec, factor, closed,
                                                                     seed, hysteresis, force):
    (py, ev_py), (nb, ev_nb) = twin(spec, factor, closed, seed, hysteresis, force)
    assert ev_py == ev_nb
    assert py.state_hash() == nb.state_hash()
    assert nb.ledger_total() == 0 and py.ledger_total() == 0
    ac, sc, pc = nb.accounts.cols, nb.symbols.cols, nb.positions.cols
    closable = sc.market_open & sc.has_quote & ~sc.halted
    swept = {e["login"] for e in ev_nb}
    for a in range(len(nb.accounts)):
        slots = nb.positions.of_account(a)
        if len(slots) == 0:
            assert int(ac.balance[a]) >= 0 or int(ac.login[a]) not in swept
            continue
        if not closable[pc.sym[slots]].any():
            continue  # only positions it cannot close: waits for the open
        if force:
            assert int(ac.login[a]) not in swept or not closable[pc.sym[slots]].any()
            continue
        assert not stopout.must_close(nb, a, False, False), a


def test_a_crash_stops_accounts_out_and_draws_the_insurance_fund():
    spec = BookSpec(positions=3_000, accounts=300, symbols=30, long_frac=1.0, leverage=10.0,
                    level_lo=60.0, level_hi=150.0, insurance_fund=1_000_000, seed=5)
    (py, ev_py), (nb, ev_nb) = twin(spec, 0.7, False, 0, False, False)
    assert len(ev_nb) > 50
    assert any("compensation" in e for e in ev_nb)
    assert py.state_hash() == nb.state_hash()
    assert nb.insurance_fund < 1_000_000


def test_overflowing_profit_falls_back_to_python():
    spec = BookSpec(positions=40, accounts=4, symbols=2, long_frac=1.0, leverage=5.0, seed=9,
                    level_lo=60.0, level_hi=80.0)
    engines = []
    for path in (stopout.sweep_python, stopout.sweep_kernel):
        eng = build(spec)
        pc = eng.positions.cols
        p = int(eng.positions.of_account(0)[0])
        pc.volume[p] = 10**14  # 10 billion lots: (close - open) * volume * k_num > int64
        eng.recompute_all()
        accs = crash(eng, 0.7, False, 0, False, False)
        if path is stopout.sweep_kernel:
            todo = stopout.needing_sweep(eng, accs)
            out = stopout.run_kernel(eng, todo)
            assert SO_OVERFLOW in out.status[todo == 0]
        path(eng, accs, False)
        engines.append(eng)
    assert engines[0].state_hash() == engines[1].state_hash()


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-1e14, 1e14, allow_nan=False), y=st.floats(-1e6, 1e6, allow_nan=False))
def test_comment_formatter_matches_python(x, y):
    level, equity, margin = np.array([x, y]), np.array([y, x]), np.array([abs(x), 0.0])
    buf = np.zeros((2, 72), np.uint8)
    ok = np.zeros(2, np.bool_)
    format_so_comments(level, equity, margin, buf, ok)
    assert ok.all()
    got = buf.view("S72").ravel().astype("U72").tolist()
    assert got == [f"so: {a:.2f}%/{b:.2f}/{c:.2f}" for a, b, c in zip(level, equity, margin,
                                                                        strict=True)]
    assert stopout.so_comments(level, equity, margin) == [
        stopout.so_comment(a, b, c) for a, b, c in zip(level, equity, margin, strict=True)]
