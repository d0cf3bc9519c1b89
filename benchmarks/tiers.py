"""Margin tiers in the benchmark suite: the full recompute + detection on a tiered book
(checked against the references first, like the untiered one), and the incremental tick of a
tiered symbol margined at the market, whose holders' margins the engine moves by their
aggregates (their margin is not linear in the price), against the same symbol untiered."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from types import SimpleNamespace

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


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.tiers``: the full recompute + detection of one book untiered
    and with a share of its symbols tiered, each checked against the references and timed
    against the bandwidth floor in the same process (the suite's book at that size)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.tiers",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--positions", type=int, default=1_000_000)
    p.add_argument("--share", type=float, default=0.5, help="share of symbols with tiers")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--python-sample", type=int, default=1_000)
    a = p.parse_args(argv)
    spec = L.book_spec(a.positions, SimpleNamespace(
        positions_per_account=10, positions_per_symbol=2_000, symbols=0, long_frac=0.7,
        leverage=5.0, seed=1, level_lo=110.0, level_hi=400.0))
    print(f"full recompute + detection, {spec.positions:,} positions / {spec.accounts:,} "
          f"accounts / {spec.symbols:,} symbols (median [min-max])")
    for share in (0.0, a.share):
        r = bench_tiered_recompute(spec, share, a.repeats, a.python_sample)
        k, f = r["numba"], r["floor"]
        print(f"  {share:4.0%} tiered: kernel {k['median_s'] * 1e3:.1f} ms "
              f"[{k['min_s'] * 1e3:.1f}-{k['max_s'] * 1e3:.1f}], floor "
              f"{f['median_s'] * 1e3:.1f} ms (in turns): {r['x_floor']:.2f}x floor, "
              f"{r['x_floor_turns']:.2f}x per turn "
              f"(checked: {r['checked']})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
