"""history_deals_get for one account over 30 days, among millions of stored deals (SQLite).

Builds (or reuses) a store whose deals table holds ``--deals`` rows: ``--accounts`` logins,
one year of deals in ticket order (each deal of a random account at a time spread evenly
over the year), written in bulk (indexes dropped during the load and built after, as a
restore would), then ``ANALYZE``. It then asks ``Store.history_deals(login, t, t + 30
days)`` (the store call behind MT5's history_deals_get / the HTTP endpoint) for ``--queries``
random accounts and windows and prints the latency percentiles, the rows returned and the
query plan (it must search ``ix_deals_login_time``); ``api`` times the same request through
``api.history.deals`` (the store call and the MT5 TradeDeal records the endpoint returns);
``store_cpu`` is the store call's CPU time (its wall time less the waits for a core, which
dominate the tail on a loaded machine).

    python -m benchmarks.history_query                    # 10M deals, 10,000 accounts
    python -m benchmarks.history_query --warm             # the file in the page cache first
    python -m benchmarks.history_query --deals 1000000 --db /tmp/h.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from types import SimpleNamespace

import numpy as np

DAY_MS = 86_400_000
T0 = 1_700_000_000_000
SYMBOLS = ("AAPL", "NVDA", "MSFT", "EURUSD", "XAUUSD", "US500", "GER40", "BTCUSD")


def _count(db: str) -> int:
    if not os.path.exists(db):
        return -1
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT count(*) FROM deals").fetchone()[0]
        except sqlite3.OperationalError:
            return -1


def build(db: str, n: int, accounts: int, days: int, seed: int = 7) -> float:
    """Create the store at ``db`` and bulk-load ``n`` deals; returns the seconds taken."""
    from cfd.store import Store

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    Store.open(f"sqlite:///{db}").close()  # the schema, by the store's own migrations
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    idx = con.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND "
                      "tbl_name='deals' AND sql IS NOT NULL").fetchall()
    for name, _ in idx:
        con.execute(f'DROP INDEX "{name}"')
    rng = np.random.default_rng(seed)
    span = days * DAY_MS
    chunk = 200_000
    sql = ('INSERT INTO deals (ticket, "order", login, symbol, time_msc, type, entry, magic, '
           "position_id, reason, volume, price, commission, swap, profit, fee, comment, "
           "external_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    for i0 in range(0, n, chunk):
        m = min(chunk, n - i0)
        ticket = np.arange(i0, i0 + m, dtype=np.int64) + 1
        time_msc = T0 + (ticket * span) // n
        login = rng.integers(0, accounts, m) + 100_000
        sym = rng.integers(0, len(SYMBOLS), m)
        entry = rng.integers(0, 2, m)
        volume = rng.integers(1, 100, m) * 10_000
        price = rng.integers(1_000_000, 500_000_000, m)
        profit = np.where(entry == 1, rng.integers(-50_000, 50_000, m), 0)
        rows = zip(ticket.tolist(), (ticket // 2 + 1).tolist(), login.tolist(),
                   [SYMBOLS[s] for s in sym.tolist()], time_msc.tolist(),
                   (sym % 2).tolist(), entry.tolist(), [0] * m, (ticket // 2 + 1).tolist(),
                   [3] * m, volume.tolist(), price.tolist(), (-(volume // 10_000)).tolist(),
                   [0] * m, profit.tolist(), [0] * m, [""] * m, [""] * m, strict=True)
        con.executemany(sql, rows)
        con.commit()
    for _, create in idx:
        con.execute(create)
    con.execute("ANALYZE")
    con.commit()
    con.close()
    return time.perf_counter() - t0


def query(db: str, n_queries: int, accounts: int, days: int, seed: int = 11) -> dict:
    from api import history
    from cfd.store import Store

    rng = np.random.default_rng(seed)
    logins = (rng.integers(0, accounts, n_queries) + 100_000).tolist()
    starts = (T0 + rng.integers(0, (days - 30) * DAY_MS, n_queries)).tolist()
    with Store.open(f"sqlite:///{db}", read_only=True) as st:
        st.history_deals(logins[0], starts[0], starts[0] + 30 * DAY_MS)  # warm the pool
        with st.engine.connect() as conn:
            plan = [r[-1] for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM deals WHERE login = ? AND time_msc >= ? "
                "AND time_msc <= ? ORDER BY time_msc, ticket",
                (logins[0], starts[0], starts[0] + 30 * DAY_MS)).fetchall()]
        lat, lat_api, cpu, rows = [], [], [], []
        svc = SimpleNamespace(reader=st)  # what api.history reads: the read-only store
        for login, t in zip(logins, starts, strict=True):
            c0 = time.thread_time()
            t0 = time.perf_counter()
            got = st.history_deals(login, t, t + 30 * DAY_MS)
            t1 = time.perf_counter()
            cpu.append(time.thread_time() - c0)
            deals = history.deals(svc, login, t, t + 30 * DAY_MS)  # + the MT5 records
            lat.append(t1 - t0)
            lat_api.append(time.perf_counter() - t1)
            rows.append(len(got))
            assert len(deals) == len(got)
    out = {"queries": n_queries, "rows_mean": round(float(np.mean(rows)), 1)}
    for name, xs in (("store", lat), ("store_cpu", cpu), ("api", lat_api)):
        ms = np.array(xs) * 1e3
        out[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 3),
                     "p99_ms": round(float(np.percentile(ms, 99)), 3),
                     "max_ms": round(float(ms.max()), 3)}
    out["plan"] = plan
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deals", type=int, default=10_000_000)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--db", default="/tmp/cfd_history_query.sqlite",
                    help="the store file (kept and reused when it holds --deals deals)")
    ap.add_argument("--warm", action="store_true",
                    help="read the database file once first (into the OS page cache)")
    a = ap.parse_args(argv)
    out: dict = {"deals": a.deals, "accounts": a.accounts}
    if _count(a.db) != a.deals:
        out["build_s"] = round(build(a.db, a.deals, a.accounts, a.days), 1)
    out["db_mib"] = round(os.path.getsize(a.db) / 2**20)
    if a.warm:  # read the file once: the OS page cache holds it, as on a busy server
        t0 = time.perf_counter()
        with open(a.db, "rb") as f:
            while f.read(1 << 24):
                pass
        out["warm_s"] = round(time.perf_counter() - t0, 1)
    out.update(query(a.db, a.queries, a.accounts, a.days))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
