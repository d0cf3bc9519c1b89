"""Timing of ``stress`` and ``gap`` on big synthetic books built directly as arrays.

``python -m risk.bench --accounts 1000000 --positions 10000000 --gap-positions 1000000``
prints JSON: seconds per stress scenario (after a warm-up, median of the runs) and for the
gap Monte Carlo, with the thread count. With ``--cluster tcp://host:8786`` (or ``local:2``)
it times only the gap Monte Carlo, here and on that Dask cluster, and checks the losses are
equal. Before timing, the stress kernel is checked against
the gap identity (deficit = -equity for accounts that end flat) on a small book.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from risk.book import synthetic_book
from risk.gaps import GapTable, run_gap, sample_gaps
from risk.stress import run_stress


def _check() -> None:
    book = synthetic_book(2_000, 10_000, seed=1, target_level=(60.0, 400.0))
    g = np.full((len(book.symbols), 1), -0.3)
    st = run_stress(book, g[:, 0], with_exposure=False)
    mc = run_gap(book, g)
    tol = 0.005 * np.abs(book.pos_vol).sum() / 1e4 + 0.01 * st.n_closed.sum()
    assert abs(mc.losses[0] - st.deficit.sum() / 100) <= tol, (mc.losses[0], st.deficit.sum())


def bench_stress(n_accounts: int, n_positions: int, moves: tuple[float, ...] = (-0.1, -0.2, -0.3),
                 seed: int = 7) -> dict[str, Any]:
    t0 = time.perf_counter()
    book = synthetic_book(n_accounts, n_positions, seed=seed)
    build = time.perf_counter() - t0
    ns = len(book.symbols)
    run_stress(book, np.full(ns, -0.01))  # warm-up (compile, caches)
    rows = []
    for m in moves:
        res = run_stress(book, np.full(ns, m))
        s = res.summary()
        rows.append({"move": m, "seconds": round(res.seconds, 3),
                     "stopped": s["accounts_stopped_out"], "deals": s["deals"],
                     "deficit": s["deficit"]})
    secs = [r["seconds"] for r in rows]
    return {"accounts": n_accounts, "positions": n_positions, "build_seconds": round(build, 2),
            "median_seconds": float(np.median(secs)), "min": min(secs), "max": max(secs),
            "scenarios": rows}


def _gap_setup(n_accounts: int, n_positions: int, scenarios: int, seed: int
               ) -> tuple[Any, np.ndarray, float]:
    """A synthetic book, its sampled gap scenarios and the seconds the sampling took, with
    the gap kernel warmed up on the first ten."""
    book = synthetic_book(n_accounts, n_positions, seed=seed)
    table = GapTable.load().select(weekend_only=False)
    t0 = time.perf_counter()
    gaps = sample_gaps(table, book.symbols.names, scenarios, 0.5, seed, mapping={})
    sample = time.perf_counter() - t0
    run_gap(book, gaps[:, :10])  # warm-up
    return book, gaps, sample


def bench_gap(n_accounts: int, n_positions: int, scenarios: int = 10_000, seed: int = 7
              ) -> dict[str, Any]:
    book, gaps, sample = _gap_setup(n_accounts, n_positions, scenarios, seed)
    res = run_gap(book, gaps)
    return {"accounts": n_accounts, "positions": n_positions, "scenarios": scenarios,
            "sample_seconds": round(sample, 3), "seconds": round(res.seconds, 3),
            **{k: v for k, v in res.summary().items() if k != "seconds"}}


def bench_gap_cluster(n_accounts: int, n_positions: int, scenarios: int, address: str,
                      seed: int = 7) -> dict[str, Any]:
    """The gap Monte Carlo here and on a Dask cluster (``address``, or ``local:N`` for a
    LocalCluster of N one-thread worker processes on this machine); the losses must be
    equal."""
    from distributed import Client, LocalCluster

    book, gaps, sample = _gap_setup(n_accounts, n_positions, scenarios, seed)
    here = run_gap(book, gaps)
    cluster = None
    if address.startswith("local:"):
        n = int(address.split(":", 1)[1])
        threads = max(1, (os.cpu_count() or 1) // n)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None,
                               env={"NUMBA_NUM_THREADS": str(threads)})
        address = cluster.scheduler_address
    try:
        with Client(address) as client:
            run_gap(book, gaps[:, :10], client=client)  # warm-up (workers compile)
            workers = len(client.scheduler_info()["workers"])
            there = run_gap(book, gaps, client=client)
    finally:
        if cluster is not None:
            cluster.close()
    assert np.array_equal(here.losses, there.losses), "the cluster's losses differ"
    return {"accounts": n_accounts, "positions": n_positions, "scenarios": scenarios,
            "accounts_at_risk": here.accounts_at_risk, "sample_seconds": round(sample, 2),
            "local_seconds": round(here.seconds, 2), "cluster": address,
            "cluster_workers": workers, "cluster_seconds": round(there.seconds, 2),
            "equal": True, "expected_loss": here.summary()["expected_loss"],
            "var_99_9": here.summary()["var_99_9"]}


def main() -> None:
    import numba

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--accounts", type=int, default=1_000_000)
    p.add_argument("--positions", type=int, default=10_000_000)
    p.add_argument("--gap-accounts", type=int, default=200_000)
    p.add_argument("--gap-positions", type=int, default=1_000_000)
    p.add_argument("--scenarios", type=int, default=10_000)
    p.add_argument("--cluster", default=None,
                   help="Only the gap Monte Carlo, here and on this Dask scheduler "
                   "(tcp://host:8786, or local:N for N worker processes on this machine).")
    a = p.parse_args()
    _check()
    if a.cluster:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "threads": numba.get_num_threads(),
                          "gap": bench_gap_cluster(a.gap_accounts, a.gap_positions,
                                                   a.scenarios, a.cluster)}, indent=2))
        return
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "threads": numba.get_num_threads(),
           "stress": bench_stress(a.accounts, a.positions),
           "gap": bench_gap(a.gap_accounts, a.gap_positions, a.scenarios)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
