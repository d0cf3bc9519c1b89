"""``python -m benchmarks``: the liquidation-loop benchmark suite.

    python -m benchmarks                      # default sizes, a few minutes
    python -m benchmarks --sizes 10000000     # 10M positions / 1M accounts / 5k symbols
    python -m benchmarks --json out.json --plot out.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace

import numba
import numpy as np

from benchmarks import liquidation as L
from benchmarks.corporate import bench_corporate
from benchmarks.rollover import bench_rollover
from benchmarks.tiers import bench_tiered_recompute, bench_tiered_tick


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                   help="book sizes in positions")
    p.add_argument("--positions-per-account", type=int, default=10)
    p.add_argument("--positions-per-symbol", type=int, default=2_000,
                   help="sets the symbol count (at most 5,000) unless --symbols is given")
    p.add_argument("--symbols", type=int, default=0)
    p.add_argument("--long-frac", type=float, default=0.7, help="share of long positions")
    p.add_argument("--leverage", type=float, default=5.0, help="margin rate = 1 / leverage")
    p.add_argument("--level-lo", type=float, default=110.0, help="lowest starting level, %%")
    p.add_argument("--level-hi", type=float, default=400.0, help="highest starting level, %%")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--python-sample", type=int, default=5_000,
                   help="accounts timed in pure Python (scaled to the book)")
    p.add_argument("--threads", type=int, default=0, help="numba threads (0: all)")
    p.add_argument("--tick-targets", type=int, nargs="+",
                   default=[10, 100, 500, 2_000, 10_000, 50_000])
    p.add_argument("--shocks", type=float, nargs="+", default=[-10.0, -30.0],
                   help="crash cascades, percent")
    p.add_argument("--no-effects", action="store_true",
                   help="skip building effect rows after the cascade")
    p.add_argument("--tiered", type=float, default=0.5,
                   help="share of symbols with margin tiers in the tiered book (0: skip it)")
    p.add_argument("--json", metavar="PATH", help="write results as JSON ('-': stdout)")
    p.add_argument("--plot", metavar="PATH", help="write a PNG of time against book size")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(x.split()[1] for x in f if x.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": numba.get_num_threads(),
            "memory_gib": round(mem / 2**30, 1), "python": sys.version.split()[0],
            "numpy": np.__version__, "numba": numba.__version__,
            "platform": platform.platform()}


def fmt_t(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def spread(d: dict) -> str:
    return f"{fmt_t(d['median_s'])} [{fmt_t(d['min_s'])}-{fmt_t(d['max_s'])}]"


def report(res: dict) -> str:
    m = res["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, numba threads {m['threads']}, "
             f"{m['memory_gib']} GiB; python {m['python']}, numpy {m['numpy']}, "
             f"numba {m['numba']}", "",
             "full recompute + stop-out detection (median [min-max])"]
    for r in res["recompute"]:
        b = r["book"]
        lines += [f"  {b['positions']:,} positions / {b['accounts']:,} accounts / "
                  f"{b['symbols']:,} symbols (checked: {r['checked']})",
                  f"    numba kernel     {spread(r['numba'])}",
                  f"    bandwidth floor  {spread(r['floor'])}  "
                  f"({r['floor_gbps']:.1f} GB/s over {r['bytes'] / 1e6:.0f} MB)",
                  f"    numpy reference  {spread(r['numpy'])}  "
                  f"(+gather {fmt_t(r['numpy_incl_gather']['median_s'])})",
                  f"    pure Python      {fmt_t(r['python_scaled']['median_s'])}  (scaled from "
                  f"a {r['python_scaled']['sample_positions']:,}-position sample)",
                  f"    kernel = {r['x_floor']:.2f}x floor, {r['speedup_numpy']:.1f}x faster "
                  f"than numpy, {r['speedup_python']:.0f}x faster than Python; "
                  f"{r['stop_out_accounts']:,} accounts at/below stop-out"]
    for r in res.get("recompute_tiered", []):
        b = r["book"]
        lines += [f"  tiered book ({b['tiered_share']:.0%} of symbols with margin tiers, half "
                  f"by volume, half by value): {b['positions']:,} positions "
                  f"(checked: {r['checked']})",
                  f"    numba kernel     {spread(r['numba'])}",
                  f"    bandwidth floor  {spread(r['floor'])}",
                  f"    kernel = {r['x_floor']:.2f}x floor, {r['speedup_numpy']:.1f}x faster "
                  f"than numpy"]
    t = res.get("tiered_tick")
    if t:
        lines += ["", "incremental tick of an EXCH_STOCKS symbol, engine path (median [min-max])"]
        for name in ("untiered", "tiered"):
            r = t[name]
            lines.append(f"  {name:9} {r['symbol_positions']:,} positions, {r['holders']:,} "
                         f"holders: {r['median_us']:.1f} us [{r['min_us']:.1f}-"
                         f"{r['max_us']:.1f}]" + ("  (holders moved by their aggregate)"
                                                    if name == "tiered" else ""))
    lines += ["", "incremental tick (kernel time, one symbol)"]
    for r in res["ticks_vs_symbol"]:
        lines.append(f"  book {r['book_positions']:,}: {r['symbol_positions']:>7,} positions in "
                     f"the symbol: {r['median_us']:.1f} us [{r['min_us']:.1f}-"
                     f"{r['max_us']:.1f}]")
    for r in res["ticks_vs_book"]:
        lines.append(f"  flat: book {r['book_positions']:>11,}, {r['symbol_positions']:,} "
                     f"positions in the symbol: {r['median_us']:.1f} us "
                     f"[{r['min_us']:.1f}-{r['max_us']:.1f}]")
    lines += ["", "crash cascade (engine bulk path)"]
    for r in res["cascade"]:
        eff = "" if r["effect_rows_s"] is None else f", effect rows +{fmt_t(r['effect_rows_s'])}"
        lines.append(
            f"  {r['shock'] * 100 - 100:+.0f}% on {r['positions']:,}: "
            f"{r['accounts_stopped_out']:,} accounts stopped out, {r['deals']:,} deals "
            f"({r['closing_deals']:,} closes), insurance fund "
            f"-{r['insurance_fund_draw'] / 100:,.2f}, broker P/L "
            f"-{r['broker_pl_draw'] / 100:,.2f}; deals in "
            f"{fmt_t(r['deals_total_s'])} (incremental recompute {fmt_t(r['recompute_s'])}, sweep "
            f"{fmt_t(r['sweep_kernel_s'])}, booking {fmt_t(r['bulk_booking_s'])}){eff}")
    c = res.get("corporate")
    if c:
        lines += ["", f"corporate actions on {c['symbol']}, held by {c['symbol_positions']:,} of "
                  f"{c['positions']:,} positions (checked against the reference on "
                  f"{c['checked_positions']:,}), each a rollover computed, booked and journaled:",
                  f"  split 10:1   {fmt_t(c['split_s'])}  (query-table rows "
                  f"+{fmt_t(c['split_rows_s'])})",
                  f"  dividend     {fmt_t(c['dividend_s'])}  (query-table rows "
                  f"+{fmt_t(c['dividend_rows_s'])})"]
    lines += ["", "rollover (overnight financing of every position, Friday: 3 nights)"]
    for r in res.get("rollover", []):
        eff = "" if r["effect_rows_s"] is None else \
            f", query-table rows +{fmt_t(r['effect_rows_s'])}"
        lines.append(
            f"  {r['positions']:,} positions / {r['accounts']:,} accounts: computed, booked "
            f"and journaled in {fmt_t(r['apply_s'])}{eff} ({r['charged_positions']:,} "
            f"positions charged, "
            f"{r['postings']:,} postings, {r['stop_outs']:,} stop-outs; charged "
            f"{r['charged'] / 100:,.2f}, paid {r['paid'] / 100:,.2f}; checked against the "
            f"reference on {r['checked_positions']:,} positions)")
    return "\n".join(lines)


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["recompute"]
    x = [r["book"]["positions"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("numba", "numba kernel"), ("floor", "bandwidth floor"),
                       ("numpy", "numpy reference"), ("python_scaled", "pure Python (scaled)")):
        ax.plot(x, [r[key]["median_s"] for r in rows], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("positions")
    ax.set_ylabel("full recompute + detection, s (median)")
    m = res["machine"]
    ax.set_title(f"{m['cores']} cores, {m['threads']} numba threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        numba.set_num_threads(args.threads)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr,
                                                                 flush=True))
    res: dict = {"machine": machine(), "args": vars(args), "recompute": [],
                 "ticks_vs_symbol": [], "ticks_vs_book": [], "cascade": [], "rollover": []}
    t_start = time.perf_counter()
    for n in args.sizes:
        spec = L.book_spec(n, args)
        say(f"[{time.perf_counter() - t_start:6.1f}s] building {n:,} positions")
        eng = L.build(spec)
        say(f"[{time.perf_counter() - t_start:6.1f}s] recompute")
        r = L.bench_recompute(eng, args.repeats, args.python_sample)
        r["book"] = {"positions": spec.positions, "accounts": spec.accounts,
                     "symbols": spec.symbols}
        res["recompute"].append(r)
        flat = L.tick_cost(eng, L.nearest_symbol(eng, args.positions_per_symbol),
                           args.repeats * 30)
        flat["book_positions"] = n
        res["ticks_vs_book"].append(flat)
        del eng
        say(f"[{time.perf_counter() - t_start:6.1f}s] rollover")
        res["rollover"].append(bench_rollover(spec, not args.no_effects))
        for pct in args.shocks:
            say(f"[{time.perf_counter() - t_start:6.1f}s] cascade {pct:+.0f}%")
            res["cascade"].append(L.bench_cascade(spec, 1 + pct / 100, not args.no_effects,
                                                  check=n <= 200_000))
    spec = L.book_spec(max(args.sizes), args)
    if args.tiered > 0:
        say(f"[{time.perf_counter() - t_start:6.1f}s] tiered book")
        res["recompute_tiered"] = [bench_tiered_recompute(spec, args.tiered, args.repeats,
                                                          args.python_sample)]
        res["tiered_tick"] = bench_tiered_tick(spec, args.positions_per_symbol,
                                               args.repeats * 10)
    say(f"[{time.perf_counter() - t_start:6.1f}s] corporate actions on the most held symbol")
    res["corporate"] = bench_corporate(replace(spec, symbol_skew=1.15))
    say(f"[{time.perf_counter() - t_start:6.1f}s] ticks vs positions in the symbol")
    res["ticks_vs_symbol"] = L.bench_ticks_vs_symbol(spec, args.tick_targets, args.repeats * 30)
    res["elapsed_s"] = time.perf_counter() - t_start
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    if args.json == "-":
        print(json.dumps(res, indent=1))
    else:
        print(report(res))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
    if args.plot:
        plot(res, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
