"""The rollover phase: overnight financing of the whole book, computed, booked and journaled.

The book's symbols get swaps in the stock-CFD form (INTEREST_CURRENT at a SOFR benchmark plus
the group markup, a borrow fee on a tenth of them) and a few in MT5's POINTS and
CURRENCY_DEPOSIT modes. Before timing, the kernel's charges are checked against the pure
Python reference (every position of a sample of accounts, exact integers). Timed: the
``Rollover`` command through ``Engine.apply`` (factors, the numba charge kernel, the
accruals, one posting per account, the stop-out check of the accounts it moved), and
separately the store's effect rows and the journal row of the command.
"""

from __future__ import annotations

import datetime as dt
import gc
import time

import numpy as np

from benchmarks.book import BookSpec, build
from cfd import commands as C
from cfd.accounts.ledger import client_ledger
from cfd.kernels.financing import swap_charges_reference
from cfd.trading.financing import cutoff_msc

DAY = dt.date(2024, 6, 7)  # a Friday: three nights


def prepare(spec: BookSpec):
    eng = build(spec)
    specs = eng.symbols.specs
    for i, s in enumerate(specs):
        if i % 50 == 1:
            ch = {"swap_mode": 1, "swap_long": "-7.5", "swap_short": "2.25"}
        elif i % 50 == 2:
            ch = {"swap_mode": 4, "swap_long": "-0.35", "swap_short": "-0.1"}
        else:
            ch = {"swap_mode": 5, "swap_benchmark": "SOFR",
                  "borrow_fee": "3.5" if i % 10 == 3 else "0"}
        eng.symbols.replace(i, s.with_changes(**ch))
    t = cutoff_msc(DAY) - 1000
    eng.apply(C.SetBenchmark(time_msc=t, actor="bench", name="SOFR", date="2024-01-01",
                             rate="5.31"))
    return eng


def check(eng, sample_accounts: int = 2_000) -> int:
    """Kernel charges == the Python reference on every position of a sample of accounts."""
    ch = eng.day.charges(DAY)
    pc, sc = eng.positions.cols, eng.symbols.cols
    idx = eng.positions.by_acc
    n_acc = len(eng.accounts)
    accs = np.linspace(0, n_acc - 1, min(sample_accounts, n_acc)).astype(np.int64)
    rows = []
    for a in accs.tolist():
        for p in idx.pool[idx.off[a]: idx.off[a] + idx.cnt[a]].tolist():
            rows.append((p, a, int(pc.sym[p]), int(pc.volume[p]), int(pc.price_open[p])))
    ref = swap_charges_reference(rows, ch.group_of, ch.factors.base, sc.bid, sc.ask,
                                 ch.factors.k_num, ch.factors.k_den)
    bad = [p for p, want in ref.items() if int(ch.amount[p]) != want]
    if bad:
        raise AssertionError(f"rollover: kernel != reference at {len(bad)} positions")
    eng.day.projection(DAY)  # warm-up: every kernel of the command compiled or loaded
    return len(rows)


def bench_rollover(spec: BookSpec, effects: bool = True) -> dict:
    eng = prepare(spec)
    checked = check(eng)
    gc.collect()
    cmd = C.Rollover(time_msc=cutoff_msc(DAY) + 1, actor="bench", date=str(DAY))
    eng.take_effects()
    eng.collect_effects = False  # rows for the query tables are timed apart, below
    p0 = eng.ledger.postings.size
    t0 = time.perf_counter()
    res = eng.apply(cmd)
    payload = cmd.to_payload()  # the journal row: the command itself
    t1 = time.perf_counter()
    if not res.ok:
        raise AssertionError(f"rollover refused: {res.comment}")
    n_post = eng.ledger.postings.size - p0
    if effects:  # what the rollover hands the store for its query tables
        lp = eng.ledger.postings
        accs = np.unique(np.concatenate([lp.src[p0:p0 + n_post], lp.dst[p0:p0 + n_post]]))
        accs = (accs[accs >= client_ledger(0)] - client_ledger(0)) // 2
        eng.account_rows(accs)
        eng.ledger.rows(p0, p0 + n_post, eng.accounts.cols.login)
    t2 = time.perf_counter()
    if eng.ledger_total() != 0:
        raise AssertionError("rollover: the ledger does not sum to zero")
    data = res.data
    return {"positions": spec.positions, "accounts": spec.accounts, "symbols": spec.symbols,
            "checked_positions": checked, "charged": data["charged"], "paid": data["paid"],
            "charged_positions": data["positions"], "postings": n_post,
            "stop_outs": sum(e.get("kind") == "stop_out" for e in res.events),
            "apply_s": t1 - t0, "effect_rows_s": (t2 - t1) if effects else None,
            "journal_bytes": len(payload), "effects": effects}
