"""Durable group commit: acknowledged commands per second through ``Store.append_batch``.

Each synthetic command looks like an acknowledged market order: one journal row (a ~200-byte
payload), and in the query tables one order, one deal, one position upsert, one account
upsert and two ledger postings. A batch is acknowledged when ``append_batch`` returns (the
transaction is committed: fsync on SQLite WAL with synchronous=FULL).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from typing import Any

from cfd.effects import Effects
from cfd.store import JournalEntry, Store

DEFAULT_BATCH_SIZES = (1, 10, 100, 1000)


def _batch(first: int, size: int) -> tuple[list[JournalEntry], Effects]:
    entries = []
    eff = Effects()
    for i in range(first, first + size):
        login = 1_000 + i % 500
        t = 1_700_000_000_000 + i
        entries.append(JournalEntry(kind="order_send", payload=b"x" * 200, time_msc=t,
                                    actor=str(login)))
        eff.orders[i] = {"ticket": i, "login": login, "symbol": "AAPL", "time_setup_msc": t,
                         "time_done_msc": t, "type": 0, "state": 4, "position_id": i,
                         "volume_initial": 10_000, "volume_current": 0,
                         "price_open": 150_000_000}
        eff.deals.append({"ticket": i, "order": i, "login": login, "symbol": "AAPL",
                          "time_msc": t, "type": 0, "entry": 0, "position_id": i,
                          "volume": 10_000, "price": 150_000_000, "commission": -5,
                          "swap": 0, "profit": 0, "fee": 0})
        eff.accounts[login] = {"login": login, "balance": 1_000_000 - i, "credit": 0}
        eff.postings.append({"id": 2 * i, "time_msc": t, "debit": f"client:{login}",
                             "credit": "broker_pl", "amount": 5, "kind": "commission",
                             "login": login, "deal": i})
        eff.postings.append({"id": 2 * i + 1, "time_msc": t, "debit": "external_cash",
                             "credit": "broker_pl", "amount": 0, "kind": "fee",
                             "login": login, "deal": i})
    return entries, eff


def run(n_commands: int, url: str | None = None,
        batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES) -> dict[str, Any]:
    """Acknowledged commands/s for each batch size, on ``url`` (default: a temp SQLite file).

    Each batch size writes ``n_commands`` commands into a fresh store (a fresh SQLite file;
    on another URL the store must be empty, and the sizes share it). Returns
    ``{"url", "machine", "results": [{"batch", "commands", "seconds", "commands_per_s",
    "batch_ms_median", "batch_ms_p99"}]}``.
    """
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        first = 1
        for size in batch_sizes:
            target = url or f"sqlite:///{os.path.join(tmp, f'bench_{size}.sqlite')}"
            store = Store.open(target)
            try:
                batches = [_batch(first + k, min(size, n_commands - k))
                           for k in range(0, n_commands, size)]
                first += n_commands
                lat = []
                t0 = time.perf_counter()
                for entries, eff in batches:
                    b0 = time.perf_counter()
                    store.append_batch(entries, eff)
                    lat.append(time.perf_counter() - b0)
                dt = time.perf_counter() - t0
            finally:
                store.close()
            lat.sort()
            results.append({
                "batch": size, "commands": n_commands, "seconds": dt,
                "commands_per_s": n_commands / dt if dt > 0 else float("inf"),
                "batch_ms_median": 1e3 * statistics.median(lat),
                "batch_ms_p99": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            })
    return {"url": url or "sqlite (temporary file)",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "results": results}
