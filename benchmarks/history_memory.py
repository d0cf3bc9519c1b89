"""Engine memory, snapshot size and restore time against the number of historical deals.

Each size runs in a fresh process: 100 accounts, then ``deals`` deposits spread over them
through ``Engine.apply`` (each books one balance deal and one ledger posting, as a
back-office cash history does), no open position. It prints the process RSS, the snapshot's
array bytes, and the time of ``Engine.from_snapshot`` + the state hash (start-up without a
journal tail). With history out of the writer's memory these stay flat as ``deals`` grows;
while the engine keeps every row they grow with it.

    python -m benchmarks.history_memory                 # 100k and 1M deals
    python -m benchmarks.history_memory --deals 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ACCOUNTS = 100


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(n_deals: int) -> dict:
    from cfd import commands as C
    from cfd.engine import Engine

    eng = Engine()
    t = 1_700_000_000_000
    for i in range(ACCOUNTS):
        eng.apply(C.CreateAccount(time_msc=t, actor="bench", login=1000 + i, name="b",
                                  leverage=100))
    for i in range(n_deals):
        res = eng.apply(C.Deposit(time_msc=t + i, actor="bench", login=1000 + i % ACCOUNTS,
                                  amount=100))
        assert res.ok, res.comment
    rss = rss_kib()
    arrays, meta = eng.snapshot()
    snap_bytes = sum(a.nbytes for a in arrays.values()) + len(json.dumps(meta, default=str))
    t0 = time.perf_counter()
    back = Engine.from_snapshot(arrays, meta)
    same = back.state_hash() == eng.state_hash()
    restore_s = time.perf_counter() - t0
    return {"deals": len(eng.deals), "postings": int(eng.ledger.postings.size),
            "rss_mib": round(rss / 1024, 1), "snapshot_mib": round(snap_bytes / 2**20, 1),
            "restore_s": round(restore_s, 3), "restored_equal": same}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args(argv)
    if a.one is not None:
        print(json.dumps(measure(a.one)))
        return
    rows = []
    for n in a.deals:
        out = subprocess.run([sys.executable, "-m", "benchmarks.history_memory", "--one",
                              str(n)], check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out))
        print(json.dumps(rows[-1]))
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        print(json.dumps({k: round(hi[k] / lo[k], 2) for k in
                          ("rss_mib", "snapshot_mib", "restore_s") if lo[k]}))


if __name__ == "__main__":
    main()
