"""The liquidation-loop benchmark: full recompute + stop-out detection (numba, numpy, pure
Python, bandwidth floor), incremental ticks, and crash cascades through the engine's bulk
stop-out path. Every timed kernel is first checked against its reference on the same book."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from benchmarks.book import BookSpec, build, kernel_args, shock
from cfd.kernels import reference as R
from cfd.kernels.bandwidth import stream
from cfd.kernels.margin import recompute_detect, tick_update
from cfd.kernels.sweep import SO_OVERFLOW
from cfd.money import PRICE_SCALE
from cfd.trading import stopout
from cfd.trading.margin_tiers import tier_sets


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return _stats(runs)


def _stats(runs: list[float]) -> dict:
    a = np.array(runs)
    return {"median_s": float(np.median(a)), "min_s": float(a.min()), "max_s": float(a.max()),
            "runs": len(runs)}


def timed_pair(fn: Callable[[], object], ref: Callable[[], object], repeats: int,
               warmup: int = 1) -> tuple[dict, dict, float]:
    """:func:`timed` of ``fn`` and of ``ref`` run in turns (fn, ref, fn, ref, ...), so a
    machine that speeds up or slows down during the runs moves both alike; also the median
    of the per-turn ratios ``fn / ref``."""
    for _ in range(warmup):
        fn()
        ref()
    a, b = [], []
    for _ in range(repeats):
        for f, out in ((fn, a), (ref, b)):
            t0 = time.perf_counter()
            f()
            out.append(time.perf_counter() - t0)
    return _stats(a), _stats(b), float(np.median(np.array(a) / np.array(b)))


def book_spec(positions: int, args) -> BookSpec:
    accounts = max(1, positions // args.positions_per_account)
    symbols = args.symbols or min(5_000, max(1, positions // args.positions_per_symbol))
    return BookSpec(positions=positions, accounts=accounts, symbols=symbols,
                    long_frac=args.long_frac, leverage=args.leverage, seed=args.seed,
                    level_lo=args.level_lo, level_hi=args.level_hi)


# ------------------------------------------------------------------ full recompute
def bench_recompute(eng, repeats: int, py_sample: int) -> dict:
    a = kernel_args(eng)
    n = a["n_acc"]
    n_pos = len(eng.positions)
    out = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int8))

    def kernel():
        return recompute_detect(**a, out_profit=out[0], out_margin=out[1],
                                out_margin_maint=out[2], out_state=out[3])

    n_so = kernel()
    # check before timing: numpy reference (whole book, to the bit), pure Python (sample)
    rows = R.positions_in_account_order(a["acc_off"], a["acc_cnt"], a["pool"], n)
    ref = R.recompute_detect_numpy(**a, rows=rows)
    for got, want, what in ((out[0], ref[0], "profit"), (out[1], ref[1], "margin"),
                            (out[2], ref[2], "maintenance margin"), (out[3], ref[3], "state")):
        if not np.array_equal(got, want):
            raise AssertionError(f"kernel != numpy reference ({what})")
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, min(py_sample, n), replace=False))
    pa = dict(a)
    pa.pop("n_acc")
    py = R.recompute_detect_python(sample, **pa)
    if py[0] != out[0][sample].tolist() or py[3] != out[3][sample].tolist():
        raise AssertionError("kernel != pure Python reference")
    sample_pos = int(a["acc_cnt"][sample].sum())
    res = {"stop_out_accounts": int(n_so), "checked": "numpy (all), python (sample)"}
    # the kernel and the floor in turns (their ratio is what is reported)
    sb = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int8))

    def floor():
        return stream(n_pos, n, a["pool"], a["pos_sym"], a["pos_vol"], a["pos_price"],
                      a["acc_off"], a["acc_cnt"], a["acc_lev"], a["acc_balance"],
                      a["acc_credit"], a["acc_rule"], a["acc_so"], a["acc_call"], *sb)

    res["numba"], res["floor"], res["x_floor_turns"] = timed_pair(kernel, floor, repeats)
    res["numpy"] = timed(lambda: R.recompute_detect_numpy(**a, rows=rows), max(1, repeats // 3))
    res["numpy_incl_gather"] = timed(lambda: R.recompute_detect_numpy(**a),
                                     max(1, repeats // 3), warmup=0)
    t = timed(lambda: R.recompute_detect_python(sample, **pa), 1, warmup=0)
    scale = n_pos / max(sample_pos, 1)
    res["python_scaled"] = {k: v * scale if k.endswith("_s") else v for k, v in t.items()}
    res["python_scaled"]["sample_positions"] = sample_pos
    moved = n_pos * (4 + 4 + 8 + 8) + n * (8 + 4 + 4 + 8 + 8 + 1 + 8 + 8 + 8 * 3 + 1)
    res["bytes"] = moved
    res["floor_gbps"] = moved / res["floor"]["median_s"] / 1e9
    med = res["numba"]["median_s"]
    res["x_floor"] = med / res["floor"]["median_s"]
    res["speedup_numpy"] = res["numpy"]["median_s"] / med
    res["speedup_python"] = res["python_scaled"]["median_s"] / med
    return res


# ------------------------------------------------------------------ incremental tick
def tick_cost(eng, s: int, repeats: int) -> dict:
    ac, sc = eng.accounts.cols, eng.symbols.cols
    bs = eng.positions.by_sym
    syms = np.array([s], np.int32)
    mark = np.zeros(max(len(eng.accounts), 1), np.bool_)
    out = np.empty(max(int(bs.cnt[s]), 1), np.int64)
    seg_acc, seg_vol = eng.positions.symbol_ordered()
    step = 10_000
    tiers = tier_sets(eng)
    times = []
    for i in range(repeats + 3):
        old_b, old_a = sc.bid[syms].copy(), sc.ask[syms].copy()
        d = step if i % 2 == 0 else -step
        sc.bid[s] += d
        sc.ask[s] += d
        t0 = time.perf_counter_ns()
        tick_update(syms, old_b, old_a, bs.off, bs.cnt, seg_acc, seg_vol, sc.bid, sc.ask,
                    sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode, tiers,
                    ac.profit, ac.margin, ac.margin_maint, mark, out)
        if i >= 3:
            times.append(time.perf_counter_ns() - t0)
    a = np.array(times) / 1e3
    return {"symbol_positions": int(bs.cnt[s]), "median_us": float(np.median(a)),
            "min_us": float(a.min()), "max_us": float(a.max())}


def nearest_symbol(eng, target: int) -> int:
    cnt = eng.positions.by_sym.cnt[: len(eng.symbols)]
    return int(np.argmin(np.abs(cnt.astype(np.int64) - target)))


def bench_ticks_vs_symbol(spec: BookSpec, targets: list[int], repeats: int) -> list[dict]:
    eng = build(replace(spec, symbol_skew=1.1))
    out = []
    for t in targets:
        r = tick_cost(eng, nearest_symbol(eng, t), repeats)
        r["target"] = t
        r["book_positions"] = spec.positions
        out.append(r)
    return out


# ------------------------------------------------------------------ crash cascade
def bench_cascade(spec: BookSpec, factor: float, effects: bool, check: bool) -> dict:
    eng = build(spec)
    if check:
        twin = build(spec)
        for e in (eng, twin):
            syms, ob, oa = shock(e, factor)
            e.incremental(syms, ob, oa)
        stopout.sweep_python(twin, np.arange(len(twin.accounts)))
        stopout.sweep_kernel(eng, np.arange(len(eng.accounts)))
        if twin.state_hash() != eng.state_hash():
            raise AssertionError("cascade: kernel path != Python path")
        del twin
        eng = build(spec)
    gc.collect()
    fund0 = eng.insurance_fund
    n_deals0 = len(eng.deals)
    syms, ob, oa = shock(eng, factor)
    t0 = time.perf_counter()
    eng.incremental(syms, ob, oa)  # as the engine's tick pipeline: every symbol moved
    t1 = time.perf_counter()
    todo = stopout.needing_sweep(eng, np.arange(len(eng.accounts)))
    out = stopout.run_kernel(eng, todo)
    t2 = time.perf_counter()
    if (out.status == SO_OVERFLOW).any():
        raise AssertionError("cascade: an amount overflowed int64 (the engine would use Python)")
    booked = stopout.bulk_close(eng, out, np.arange(len(todo)))
    t3 = time.perf_counter()
    if effects:
        stopout.emit_effects(eng, booked)
    t4 = time.perf_counter()
    closes = booked.orders[1] - booked.orders[0]
    comp = sum(e.get("compensation", 0) for e in booked.events)
    return {"shock": factor, "positions": spec.positions, "accounts": spec.accounts,
            "accounts_stopped_out": len(booked.events),
            "deals": len(eng.deals) - n_deals0, "closing_deals": closes,
            "compensated_accounts": sum("compensation" in e for e in booked.events),
            "compensation": comp, "insurance_fund_draw": fund0 - eng.insurance_fund,
            "broker_pl_draw": comp - (fund0 - eng.insurance_fund),
            "recompute_s": t1 - t0, "sweep_kernel_s": t2 - t1, "bulk_booking_s": t3 - t2,
            "deals_total_s": t3 - t0, "effect_rows_s": (t4 - t3) if effects else None,
            "ledger_total": eng.ledger_total(), "checked": check}


# ------------------------------------------------------------------ durable cascade
def _fill_query_tables(store, eng, chunk: int = 500_000) -> float:
    """The store's query tables as the book stands (its accounts; open positions have no
    table), written in bulk as a store kept since the book's first command would hold
    them; seconds."""
    from cfd import bulk_rows
    from cfd.store.writes import ACCOUNTS

    t0 = time.perf_counter()
    n_acc = len(eng.accounts)
    with store.engine.begin() as conn:
        for a in range(0, n_acc, chunk):
            ACCOUNTS.insert_block(conn, bulk_rows.accounts(eng, np.arange(a, min(a + chunk,
                                                                                 n_acc))))
    return time.perf_counter() - t0


def bench_durable_cascade(spec: BookSpec, factor: float, url: str | None = None,
                          fill: bool = True) -> dict:
    """The crash cascade of :func:`bench_cascade`, durable: the shocked quotes journaled as
    a ``Ticks`` command and every deal, order, posting, account and stop-out event stored
    in the same transaction (the history blocks staged as columns, see
    :mod:`cfd.store.staging`), timed from the quotes to the commit; then, apart, the time
    the writer takes to write the staged rows into their tables. ``fill``: the accounts
    table first holds the book's accounts (untimed), as in a store kept from the first
    command."""
    import tempfile

    from benchmarks.durable import scratch_url
    from cfd import commands as C
    from cfd.store import Store
    from cfd.store.journal import JournalEntry

    # the same path on a small book first: numba compiles (or loads) its kernels untimed,
    # those of the whole-book tick too (a small book takes that path only when told to)
    small = replace(spec, positions=20_000, accounts=2_000, symbols=min(spec.symbols, 50))
    bench_cascade(small, factor, effects=True, check=False)
    warm = build(small)
    warm.bulk_tick_min = 0
    warm.incremental(*shock(warm, factor))
    del warm
    eng = build(spec)
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp, scratch_url(url, tmp, "cascade") as target:
        store = Store.open(target)
        try:
            fill_s = _fill_query_tables(store, eng) if fill else 0.0
            eng.take_effects()
            fund0 = eng.insurance_fund
            n_deals0 = len(eng.deals)
            gc.collect()
            syms, ob, oa = shock(eng, factor)
            sc = eng.symbols.cols
            cmd = C.Ticks(time_msc=eng.now_msc, symbols=tuple(syms.tolist()),
                          bid=tuple((sc.bid[syms] / PRICE_SCALE).tolist()),
                          ask=tuple((sc.ask[syms] / PRICE_SCALE).tolist()))
            c0, t0 = time.process_time(), time.perf_counter()
            eng.incremental(syms, ob, oa)
            todo = stopout.needing_sweep(eng, np.arange(len(eng.accounts)))
            out = stopout.run_kernel(eng, todo)
            if (out.status == SO_OVERFLOW).any():
                raise AssertionError("cascade: an amount overflowed int64")
            booked = stopout.bulk_close(eng, out, np.arange(len(todo)))
            c1, t1 = time.process_time(), time.perf_counter()
            stopout.emit_effects(eng, booked)
            effects = eng.take_effects()
            c2, t2 = time.process_time(), time.perf_counter()
            store.append_batch([JournalEntry(kind=type(cmd).__name__,
                                             payload=cmd.to_payload(),
                                             time_msc=cmd.time_msc)], effects)
            c3, t3 = time.process_time(), time.perf_counter()
            staged = store.staged_pending
            store.index_staged()  # the staged history rows into their tables (after the ack)
            t4 = time.perf_counter()
            counts = _table_counts(store)
        finally:
            store.close()
    return {"shock": factor, "positions": spec.positions, "accounts": spec.accounts,
            "url": "sqlite (scratch file)" if url is None else url.split("@")[-1],
            "filled": fill, "fill_s": fill_s,
            "accounts_stopped_out": len(booked.events), "deals": len(eng.deals) - n_deals0,
            "insurance_fund_draw": fund0 - eng.insurance_fund,
            "deals_s": t1 - t0, "effect_rows_s": t2 - t1, "write_commit_s": t3 - t2,
            "end_to_end_s": t3 - t0, "staged": staged, "tables_written_after_s": t4 - t3,
            "cpu_s": {"deals": c1 - c0, "effect_rows": c2 - c1,
                                               "write_commit": c3 - c2, "all": c3 - c0},
            "rows": counts}


def _table_counts(store) -> dict:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("deals", "orders", "postings", "accounts", "events")}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m benchmarks.liquidation", description=__doc__)
    p.add_argument("--durable", action="store_true", required=True,
                   help="the crash cascade through the store, timed to the commit")
    p.add_argument("--positions", type=int, default=10_000_000)
    p.add_argument("--positions-per-account", type=int, default=10)
    p.add_argument("--shock", type=float, default=-30.0, help="percent")
    p.add_argument("--url", default=None, help="store URL (default: a scratch SQLite file)")
    p.add_argument("--no-fill", action="store_true",
                   help="start from empty query tables (no accounts rows)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    acc = max(1, args.positions // args.positions_per_account)
    spec = BookSpec(positions=args.positions, accounts=acc,  # python -m benchmarks' book
                    symbols=min(5_000, max(1, args.positions // 2_000)), long_frac=0.7,
                    leverage=5.0, level_lo=110.0, level_hi=400.0, seed=args.seed)
    r = bench_durable_cascade(spec, 1 + args.shock / 100, args.url, fill=not args.no_fill)
    print(json.dumps(r, indent=2, default=str))
    print(f"{args.shock:+.0f}% cascade, {spec.positions:,} positions / {spec.accounts:,} "
          f"accounts, {r['url']}: {r['accounts_stopped_out']:,} accounts stopped out, "
          f"{r['deals']:,} deals; durable in {r['end_to_end_s']:.2f} s (deals "
          f"{r['deals_s']:.2f} s, effect rows {r['effect_rows_s']:.2f} s, write and commit "
          f"{r['write_commit_s']:.2f} s); process CPU {r['cpu_s']['all']:.2f} s"
          + (f"; staged history rows in their tables {r['tables_written_after_s']:.2f} s "
             "later" if r["staged"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
