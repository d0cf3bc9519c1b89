"""Engine memory, snapshot size and start-up time against the number of historical deals.

Each size runs in a fresh process: 100 accounts, then ``deals`` deposits spread over them
through ``Engine.apply`` (each books one balance deal and one ledger posting, as a
back-office cash history does), no open position. Every ``--batch`` commands the engine
trims the history the store would now hold (``Engine.trim_history`` with the marks of the
batch, keeping ``--window`` rows of each kind), as :class:`cfd.store.runner.DurableEngine`
does after each committed batch; the store's own writes are left out (``benchmarks.durable``
measures them), and so is building the effect rows. ``--keep`` keeps every row (the engine
before history left its memory). ``--store`` runs the real loop instead: the commands go
through a :class:`DurableEngine` on a fresh SQLite store (journaled, effect rows written, the
history trimmed by the runner after each committed batch); the process then also holds
SQLAlchemy and the store's connection.

It prints the process RSS, the rows held in memory, the snapshot's array bytes, and the
start-up time: ``Engine.from_snapshot`` + the state hash (start-up without a journal tail),
the median of five.

    python -m benchmarks.history_memory                          # 100k and 10M deals
    python -m benchmarks.history_memory --deals 100000 1000000 --keep
    python -m benchmarks.history_memory --deals 100000 1000000 --store
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time

ACCOUNTS = 100


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _through_store(eng, cmds, window: int, batch: int, url: str) -> None:
    """Submit ``cmds`` in batches to a :class:`DurableEngine` on the store at ``url``."""
    from cfd.store import Store
    from cfd.store.runner import DurableEngine

    durable = DurableEngine(Store.open(url), eng, history_window=window)
    try:
        for i0 in range(0, len(cmds), batch):
            for res in durable.submit(cmds[i0:i0 + batch]):
                if not res.ok:
                    raise RuntimeError(res.comment)
    finally:
        durable.close()


def measure(n_deals: int, window: int, batch: int, keep: bool, url: str | None) -> dict:
    from cfd import commands as C
    from cfd.engine import Engine

    eng = Engine()
    t = 1_700_000_000_000
    setup = [C.CreateAccount(time_msc=t, actor="bench", login=1000 + i, name="b",
                             leverage=100) for i in range(ACCOUNTS)]
    t_build = time.perf_counter()
    if url is not None:  # the real loop: journaled, effect rows stored, trimmed by the runner
        for i0 in range(0, n_deals, 100_000):
            cmds = [C.Deposit(time_msc=t + i, actor="bench", login=1000 + i % ACCOUNTS,
                              amount=100) for i in range(i0, min(n_deals, i0 + 100_000))]
            _through_store(eng, setup + cmds if i0 == 0 else cmds, window, batch, url)
    else:
        for cmd in setup:
            eng.apply(cmd)
        eng.collect_effects = False  # the store's rows are not built (nothing stores them)
        apply = eng.apply
        for i in range(n_deals):
            res = apply(C.Deposit(time_msc=t + i, actor="bench", login=1000 + i % ACCOUNTS,
                                  amount=100))
            if i % batch == batch - 1 and not keep:
                eng.trim_history(eng.history_marks(), window)  # the batch is durable
            if not res.ok:
                raise RuntimeError(res.comment)
    build_s = time.perf_counter() - t_build
    gc.collect()
    rss = rss_kib()
    arrays, meta = eng.snapshot()
    snap_bytes = sum(a.nbytes for a in arrays.values()) + len(json.dumps(meta, default=str))
    want = eng.state_hash()
    times, same = [], True
    for _ in range(5):  # the median of five start-ups (the VM's noise is larger than 10%)
        t0 = time.perf_counter()
        back = Engine.from_snapshot(arrays, meta)
        same = same and back.state_hash() == want
        times.append(time.perf_counter() - t0)
        del back
    restore_s = sorted(times)[2]
    return {"deals": eng.deals.total, "postings": eng.ledger.total_postings,
            "held": {"deals": len(eng.deals), "orders": len(eng.orders),
                     "postings": int(eng.ledger.postings.size)},
            "rss_mib": round(rss / 1024, 1), "snapshot_mib": round(snap_bytes / 2**20, 2),
            "restore_s": round(restore_s, 4), "restored_equal": same,
            "build_s": round(build_s, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, nargs="+", default=[100_000, 10_000_000])
    ap.add_argument("--window", type=int, default=10_000,
                    help="history rows of each kind kept in memory (the runner's default)")
    ap.add_argument("--batch", type=int, default=1_000, help="commands per durable batch")
    ap.add_argument("--keep", action="store_true", help="keep every row (no trimming)")
    ap.add_argument("--store", action="store_true",
                    help="through a DurableEngine on a fresh SQLite store (in a temp dir)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args(argv)
    if a.one is not None:
        if not a.store:
            print(json.dumps(measure(a.one, a.window, a.batch, a.keep, None)))
            return
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/history.sqlite"
            print(json.dumps(measure(a.one, a.window, a.batch, a.keep, url)))
        return
    rows = []
    for n in a.deals:
        cmd = [sys.executable, "-m", "benchmarks.history_memory", "--one", str(n),
               "--window", str(a.window), "--batch", str(a.batch)] + (["--keep"] if a.keep
                                                                      else []) \
            + (["--store"] if a.store else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out))
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        print(json.dumps({f"{k} ratio": round(hi[k] / lo[k], 3) for k in
                          ("rss_mib", "snapshot_mib", "restore_s") if lo[k]}))


if __name__ == "__main__":
    main()
