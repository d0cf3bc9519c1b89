"""Tick replay through the whole engine pipeline (feeds, pending orders, stops).

A book of ``positions`` positions over ``accounts`` accounts and ``symbols`` symbols, each
account funded to a margin level drawn between ``--level-lo`` and ``--level-hi`` percent (so
some cross the margin-call and stop-out levels as prices move), with ``pending`` pending
orders, then ``ticks`` synthetic ticks (``SyntheticFeed``, seeded) applied as
``TickBatchCommand`` batches: hygiene, triggers, incremental margin and stop-out. Reports
ticks per second with every tick processed in order, and with conflation (each symbol's last
tick per batch), and what the ticks did (stop-outs, margin calls, fills).

    python -m benchmarks.ticks --positions 1000000 --symbols 500 --pending 100000

``--record [URL]``: every-tick replay without, then with, the market-data recorder storing
each accepted tick and its M1 bars (``cfd.marketdata``; a scratch SQLite file unless a URL
is given), and the rate lost to it.
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal

import numpy as np

from cfd import commands as C
from cfd.engine import Engine, EngineConfig
from cfd.feed.sources import SyntheticFeed
from cfd.instruments.spec import SymbolSpec


def build(positions: int, accounts: int, symbols: int, pending: int, seed: int = 7,
          conflate: bool = False, level_lo: float = 52.0, level_hi: float = 400.0,
          record: bool = False) -> tuple[Engine, np.ndarray]:
    rng = np.random.default_rng(seed)
    prices = np.round(rng.uniform(20, 500, symbols), 2)
    specs = [SymbolSpec(name=f"S{i:04d}", reference_price=Decimal(str(prices[i])),
                        session="ALWAYS") for i in range(symbols)]
    eng = Engine(specs, config=EngineConfig(record_ticks=record, conflate_ticks=conflate))
    eng.collect_effects = False
    t = 1_767_000_000_000
    for a in range(accounts):
        eng.apply(C.CreateAccount(time_msc=t, login=100_000 + a, name=""))
    eng.apply(C.Ticks(time_msc=t, symbols=tuple(range(symbols)),
                      bid=tuple(float(p) for p in prices),
                      ask=tuple(float(round(p + 0.01, 2)) for p in prices)))
    # positions straight into the tables (the per-command path is measured elsewhere)
    acc = np.repeat(np.arange(accounts), -(-positions // accounts))[:positions]
    sym = rng.integers(0, symbols, positions)
    side = np.where(rng.random(positions) < 0.7, 1, -1)
    vol = side * rng.integers(1, 20, positions) * 1_000
    pos = eng.positions
    pos.by_acc.ensure_groups(accounts)
    ticket = 1_000_000_000
    for p in range(positions):
        s = int(sym[p])
        px = int(eng.symbols.cols.ask[s] if vol[p] > 0 else eng.symbols.cols.bid[s])
        pos.open(int(acc[p]), s, int(vol[p]), px, ticket + p, t, 0, 0, 0, 3, "")
    eng.recompute_all()
    # fund each account to its starting margin level
    ac = eng.accounts.cols
    level = rng.uniform(level_lo, level_hi, accounts) / 100.0
    need = np.ceil((ac.margin[:accounts] * level - ac.profit[:accounts]) * 100).astype(np.int64)
    for a, amount in enumerate(need.tolist()):
        eng.apply(C.Deposit(time_msc=t, login=100_000 + a, amount=max(amount, 100)))
    # pending orders far from the market: BUY LIMIT 30% below
    n = 0
    a = 0
    while n < pending:
        s = int(rng.integers(0, symbols))
        px = round(float(prices[s]) * 0.7, 2)
        r = eng.apply(C.SendOrder(time_msc=t, login=100_000 + a % accounts, request={
            "action": 5, "symbol": specs[s].name, "volume": 0.1, "type": 2, "price": px,
            "type_filling": 2}))
        a += 1
        n += 1 if r.ok else 0
    return eng, prices


def run(positions: int = 200_000, accounts: int = 20_000, symbols: int = 500,
        pending: int = 20_000, ticks: int = 500_000, batch: int = 10_000, seed: int = 7,
        conflate: bool = False, level_lo: float = 52.0, level_hi: float = 400.0,
        record: str | None = None) -> dict:
    """``record``: a market-data URL ("" for a scratch file) to store the ticks in."""
    t0 = time.perf_counter()
    eng, prices = build(positions, accounts, symbols, pending, seed, conflate, level_lo,
                        level_hi, record is not None)
    recorder = None
    if record is not None:
        from cfd.marketdata import MarketData
        from cfd.marketdata.recorder import TickRecorder

        recorder = TickRecorder(MarketData(record or None), lambda _name: 0.01)
    eng.take_effects()
    built = time.perf_counter() - t0
    # the ticks span one trading day (6.5 hours): each symbol is quoted every
    # 23,400 s / (ticks / symbols), moving with 40% annual volatility
    step_ms = max(1, int(23_400_000 * symbols / max(ticks, 1)))
    feed = SyntheticFeed([s.name for s in eng.symbols.specs], prices + 0.005, seed=seed,
                         vol_annual=0.4, tick_interval_ms=step_ms, start_msc=eng.now_msc + 1)
    batches = []
    made = 0
    while made < ticks:
        b = feed.next_batch(max(1, batch // symbols))
        batches.append(b)
        made += len(b)
    eng.apply(C.TickBatchCommand(time_msc=int(batches[0].time_msc[-1]), batch=batches[0]))
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    n = 0
    kinds: dict[str, int] = {}
    rejected = 0
    for b in batches[1:]:
        r = eng.apply(C.TickBatchCommand(time_msc=int(b.time_msc[-1]), batch=b))
        if recorder is not None:
            eff = eng.take_effects()
            recorder.record(eff.ticks, eff.tick_names)
        n += len(b)
        rejected += r.data["rejected"]
        for e in r.events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    dt = time.perf_counter() - t1
    cpu = time.process_time() - cpu1  # every thread of the process (numba's too)
    stored = drain = rec_cpu = None
    if recorder is not None:
        assert recorder.sync(timeout=600)
        drain = round(time.perf_counter() - t1 - dt, 3)
        stored = recorder.stored
        rec_cpu = round(recorder.cpu_s, 3)
        recorder.close()
    return {"recorded": record is not None, "stored_ticks": stored, "drain_s": drain,
            "process_cpu_s": round(cpu, 3), "recorder_cpu_s": rec_cpu,
            "positions": positions, "accounts": accounts, "symbols": symbols,
            "pending": len(eng.pending), "ticks": n, "batch": batch,
            "conflate": conflate, "seconds": round(dt, 3), "ticks_per_s": round(n / dt),
            "build_s": round(built, 1), "open_positions_after": len(eng.positions),
            "events": dict(sorted(kinds.items())), "rejected_ticks": rejected,
            "ledger_total": eng.ledger_total()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ticks", description=__doc__)
    p.add_argument("--positions", type=int, default=200_000)
    p.add_argument("--accounts", type=int, default=0, help="default: positions / 10")
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--pending", type=int, default=20_000)
    p.add_argument("--ticks", type=int, default=500_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--level-lo", type=float, default=52.0, help="lowest starting level, %%")
    p.add_argument("--level-hi", type=float, default=400.0, help="highest starting level, %%")
    p.add_argument("--record", nargs="?", const="", default=None, metavar="URL",
                   help="every tick without, then with, storing the ticks (default: a "
                        "scratch SQLite file)")
    p.add_argument("--repeat", type=int, default=1, help="with --record: alternate the two "
                   "runs this many times and compare medians")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = []
    modes = [(False, None), (False, args.record)] * args.repeat if args.record is not None \
        else [(False, None), (True, None)]
    for conflate, record in modes:
        out.append(run(args.positions, args.accounts or max(args.positions // 10, 1),
                       args.symbols, args.pending, args.ticks, args.batch, conflate=conflate,
                       level_lo=args.level_lo, level_hi=args.level_hi, record=record))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in out:
            mode = "conflated (last tick per symbol per batch)" if r["conflate"] \
                else "every tick in order"
            if r["recorded"]:
                mode += (f", every accepted tick stored ({r['stored_ticks']:,} ticks; "
                         f"the recorder caught up {r['drain_s']} s after the last batch)")
            print(f"{r['ticks']:,} ticks, {r['symbols']} symbols, {r['positions']:,} positions, "
                  f"{r['pending']:,} pending orders, batches of {r['batch']:,}: "
                  f"{r['ticks_per_s']:,} ticks/s ({mode}); events {r['events']}, "
                  f"{r['open_positions_after']:,} positions left")
    if args.record is not None and not args.json:
        base = int(np.median([r["ticks_per_s"] for r in out if not r["recorded"]]))
        rec = int(np.median([r["ticks_per_s"] for r in out if r["recorded"]]))
        n = out[1]["ticks"]
        cpu = np.median([r["recorder_cpu_s"] for r in out if r["recorded"]]) / n * 1e6
        eng = np.median([r["process_cpu_s"] for r in out if not r["recorded"]]) / n * 1e6
        print(f"storing the ticks: {rec:,} vs {base:,} ticks/s, medians of {args.repeat} "
              f"({(rec - base) / base * 100:+.1f}%); CPU per tick: the recorder thread "
              f"{cpu:.2f} us, the replay without it {eng:.2f} us ({cpu / eng * 100:.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
