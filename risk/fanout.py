"""``stress`` and ``gap`` on a Dask distributed cluster (``cfd-risk stress|gap --cluster
tcp://host:8786``).

The work splits where the arithmetic is independent, so the cluster's answer is the local one
to the last bit:

* gap: scenarios are independent. The client keeps the sampling (one random stream, as
  locally), sends each worker the small :class:`~risk.gaps.GapInputs` once and blocks of
  whole kernel chunks of scenarios; each block runs the same ``scenario_losses`` loop as a
  local run, with the kernel's fixed account blocks, so every loss is the same float.
* stress: accounts are independent (each account's stop-out reads only its own positions
  and the shocked prices). The book is cut into account ranges of about
  ``positions_per_block`` positions, each swept by ``run_stress`` on a worker; the client
  joins the per-account results and derives the exposure left.

Workers need this package installed (``pip install cfd-engine`` on each worker machine);
nothing else is shared with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from risk.book import Book
from risk.gaps import GapInputs, scenario_losses
from risk.stress import StressResult, remaining_exposure, run_stress

#: At most this many scenario chunks per gap task (50 x 1000 scenarios x 25 symbols of
#: gaps is 10 MB sent per task).
MAX_CHUNKS_PER_TASK = 50
#: Positions per stress task by default (a few hundred MB of book copies per task at most).
STRESS_POSITIONS_PER_BLOCK = 2_000_000


#: Seconds to wait for the scheduler before giving up.
CONNECT_TIMEOUT = 10.0


def connect(address: str) -> Any:
    """A client of the scheduler at ``address`` (``tcp://host:8786``)."""
    from distributed import Client

    return Client(address, timeout=CONNECT_TIMEOUT)


def _workers(client: Any) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def gap_blocks(n_scen: int, chunk: int, workers: int, block: int | None = None
               ) -> list[tuple[int, int]]:
    """Scenario ranges of the gap tasks: whole chunks (``block`` scenarios, rounded up to a
    multiple of ``chunk``; by default about two tasks per worker, at most
    ``MAX_CHUNKS_PER_TASK`` chunks)."""
    if block is None:
        chunks = -(-n_scen // chunk)
        block = min(MAX_CHUNKS_PER_TASK, max(1, -(-chunks // (2 * workers)))) * chunk
    block = -(-max(block, 1) // chunk) * chunk
    return [(s, min(s + block, n_scen)) for s in range(0, n_scen, block)]


def gap_on_cluster(client: Any, inp: GapInputs, gaps: np.ndarray, chunk: int,
                   progress: Callable[[int], None] | None = None,
                   block: int | None = None) -> np.ndarray:
    """Losses per scenario computed on the cluster (see the module docstring)."""
    from distributed import as_completed

    n_scen = gaps.shape[1]
    losses = np.zeros(n_scen)
    ranges = gap_blocks(n_scen, chunk, _workers(client), block)
    if not ranges:
        return losses
    shared = client.scatter(inp, broadcast=True)
    where, futs = {}, []
    for a, b in ranges:
        part = client.scatter(np.ascontiguousarray(gaps[:, a:b]))
        fut = client.submit(scenario_losses, shared, part, chunk, pure=False)
        where[fut.key] = (a, b)
        futs.append(fut)
    for fut in as_completed(futs):
        a, b = where[fut.key]
        losses[a:b] = fut.result()
        if progress is not None:
            progress(b - a)
    return losses


def account_blocks(book: Book, positions_per_block: int) -> list[tuple[int, int]]:
    """Account ranges holding about ``positions_per_block`` positions each (an account is
    never split)."""
    n = book.n_accounts
    if n == 0:
        return []
    cuts = np.searchsorted(book.acc_off[1:], np.arange(positions_per_block, book.n_positions,
                                                       positions_per_block), side="left") + 1
    edges = np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def stress_on_cluster(client: Any, book: Book, moves: np.ndarray,
                      with_exposure: bool = True,
                      positions_per_block: int = STRESS_POSITIONS_PER_BLOCK) -> StressResult:
    """``run_stress`` with the accounts swept on the cluster (see the module docstring)."""
    import time

    from risk.book import shocked_prices

    t0 = time.perf_counter()
    ranges = account_blocks(book, positions_per_block)
    futs = [client.submit(run_stress, book.accounts(a, b), moves, False, pure=False)
            for a, b in ranges]
    parts: list[StressResult] = client.gather(futs)
    if not parts:
        return run_stress(book, moves, with_exposure)

    def join(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    res = StressResult(moves=np.asarray(moves), status=join("status"),
                       n_closed=join("n_closed"), closed=join("closed"),
                       balance_after=join("balance_after"), deficit=join("deficit"),
                       equity_before=join("equity_before"), level_before=join("level_before"),
                       equity_after=join("equity_after"), fund_before=book.insurance_fund)
    if with_exposure:
        res.exposure = remaining_exposure(book, res.closed, *shocked_prices(book.symbols,
                                                                            moves))
    res.seconds = time.perf_counter() - t0
    return res
