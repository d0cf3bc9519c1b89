"""Margin tiers in the benchmark suite: the full recompute + detection on a tiered book
(checked against the references first, like the untiered one), and the incremental tick of a
tiered symbol margined at the market, whose holders' margins the engine moves by their
aggregates (their margin is not linear in the price), against the same symbol untiered."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from benchmarks import liquidation as L
from benchmarks.book import BookSpec, build


def bench_tiered_recompute(spec: BookSpec, share: float, repeats: int, py_sample: int
                           ) -> dict:
    eng = build(replace(spec, tiered_frac=share))
    r = L.bench_recompute(eng, repeats, py_sample)
    r["book"] = {"positions": spec.positions, "accounts": spec.accounts,
                 "symbols": spec.symbols, "tiered_share": share}
    return r


def _engine_tick(eng, s: int, repeats: int) -> dict:
    """``Engine.incremental`` for one symbol moving a cent up and down (the tick path as the
    engine runs it, the tiered holders' margins included)."""
    sc = eng.symbols.cols
    syms = np.array([s], np.int32)
    times = []
    for i in range(repeats + 3):
        old_b, old_a = sc.bid[syms].copy(), sc.ask[syms].copy()
        d = 10_000 if i % 2 == 0 else -10_000
        sc.bid[s] += d
        sc.ask[s] += d
        t0 = time.perf_counter_ns()
        eng.incremental(syms, old_b, old_a)
        if i >= 3:
            times.append(time.perf_counter_ns() - t0)
    a = np.array(times) / 1e3
    return {"symbol_positions": int(eng.positions.by_sym.cnt[s]),
            "holders": int(len(eng.holders(syms))), "median_us": float(np.median(a)),
            "min_us": float(a.min()), "max_us": float(a.max())}


def bench_tiered_tick(spec: BookSpec, target: int, repeats: int) -> dict:
    """One EXCH_STOCKS symbol holding about ``target`` positions, untiered and tiered."""
    out = {}
    for name, share in (("untiered", 0.0), ("tiered", 1.0)):
        eng = build(replace(spec, calc_modes=(32,), tiered_frac=share))
        out[name] = _engine_tick(eng, L.nearest_symbol(eng, target), repeats)
        del eng
    return out
