"""Sustained acknowledged market orders through the engine's own durable command loop.

``DurableEngine.submit(batch)`` applies real :class:`cfd.commands.SendOrder` market orders
(and, now and then, a tick batch) on many accounts, journals the batch with its effects in one
transaction (group commit: WAL fsync on SQLite with synchronous=FULL) and returns; only then
is a batch acknowledged. Batches are formed as a command loop would: up to ``batch`` commands
or ``window_ms`` of arrivals, whichever comes first (the benchmark offers load faster than the
loop drains it, so batches are full).

    python -m benchmarks.durable                       # temporary SQLite file
    python -m benchmarks.durable --url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from cfd import commands as C

T0 = 1_700_000_000_000


def _prices(n_sym: int, rng: random.Random) -> dict[int, tuple[float, float]]:
    out = {}
    for s in range(n_sym):
        mid = round(rng.uniform(50, 500), 2)
        out[s] = (mid, round(mid + 0.02, 2))
    return out


def _setup(durable: Any, n_accounts: int, quotes: dict[int, tuple[float, float]]) -> int:
    """Accounts with money, and a first quote on every symbol; returns the next time."""
    t = T0
    logins = range(1001, 1001 + n_accounts)
    cmds: list[Any] = []
    for login in logins:
        t += 1
        cmds.append(C.CreateAccount(time_msc=t, actor="admin", login=login, name=str(login)))
        cmds.append(C.Deposit(time_msc=t, actor="admin", login=login, amount=100_000_000_00))
        if len(cmds) >= 2000:
            durable.submit(cmds)
            cmds = []
    t += 1
    cmds.append(C.Ticks.of(t, quotes))
    durable.submit(cmds)
    return t


def make_orders(n: int, n_accounts: int, quotes: dict[int, tuple[float, float]],
                names: list[str], t: int, rng: random.Random, tick_every: int = 0
                ) -> list[Any]:
    """``n`` market orders (BUY/SELL, random account and symbol) with a tick batch every
    ``tick_every`` commands (0: none)."""
    out: list[Any] = []
    n_sym = len(quotes)
    for i in range(n):
        t += 1
        if tick_every and i % tick_every == tick_every - 1:
            moved = {}
            for s in rng.sample(range(n_sym), min(5, n_sym)):
                bid, _ = quotes[s]
                bid = round(max(1.0, bid + rng.choice((-0.05, -0.01, 0.01, 0.05))), 2)
                moved[s] = quotes[s] = (bid, round(bid + 0.02, 2))
            out.append(C.Ticks.of(t, moved))
            continue
        login = 1001 + rng.randrange(n_accounts)
        s = rng.randrange(n_sym)
        side = rng.randrange(2)
        bid, ask = quotes[s]
        req = {"action": 1, "symbol": names[s], "volume": rng.choice((0.1, 0.5, 1.0)),
               "type": side, "price": ask if side == 0 else bid, "deviation": 1000}
        out.append(C.SendOrder(time_msc=t, actor=str(login), login=login, request=req))
    return out


@contextlib.contextmanager
def scratch_url(url: str | None, tmp: str, name: str) -> Iterator[str]:
    """A fresh store location: a SQLite file in ``tmp`` (no url), a new PostgreSQL schema
    (dropped afterwards) for a PostgreSQL url, else ``url`` as it is."""
    if not url:
        yield f"sqlite:///{os.path.join(tmp, name + '.sqlite')}"
        return
    if not url.startswith("postgresql"):
        yield url
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}
                                              ).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(n_orders: int = 100_000, url: str | None = None, *, n_accounts: int = 10_000,
        batch: int = 1000, window_ms: float = 5.0, tick_every: int = 0, seed: int = 1,
        pipeline: int = 0, profile: str | None = None) -> dict[str, Any]:
    """Acknowledged orders/s through ``DurableEngine.submit`` on ``url`` (default: a fresh
    temporary SQLite file; a PostgreSQL URL must point at an empty store).

    Returns ``{"name": "durable", "url", "orders", "commands", "batches", "seconds",
    "orders_per_s", "commands_per_s", "batch_ms_median", "batch_ms_p99", "engine_s",
    "store_s", "engine_us_per_order", "store_us_per_order", "retcodes", ...}``;
    ``batch_ms_*`` is the acknowledgement latency of a batch (from forming it to its
    commit); ``cpu_us_per_order`` the process's CPU time per order. ``pipeline``: 0
    commits each batch before the next is applied (``submit``); k > 0 lets the engine
    apply the next batch while up to k batches commit in the journal writer thread
    (``submit_async``). ``profile``: write cProfile stats of the timed loop there. The
    process's start-up heap is frozen (``gc.freeze()``, as ``recover`` does) before the
    timed loop.
    """
    from cfd.store import Store
    from cfd.store.runner import DurableEngine, EngineApi

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, scratch_url(url, tmp, "durable") as target:
        store = Store.open(target)
        durable = None
        try:
            api = EngineApi()
            durable = DurableEngine(store, api.new(), api=api)
            names = [s.name for s in durable.engine.symbols.specs]
            quotes = _prices(len(names), rng)
            t = _setup(durable, n_accounts, quotes)
            cmds = make_orders(n_orders, n_accounts, quotes, names, t, rng, tick_every)
            n_send = sum(isinstance(c, C.SendOrder) for c in cmds)
            lat: list[float] = []
            retcodes: dict[int, int] = {}
            prof = None
            if profile:
                import cProfile
                prof = cProfile.Profile()
                prof.enable()
            gc.collect()
            gc.freeze()  # as after recover(): start-up state is not rescanned by the GC
            durable.engine_seconds = durable.store_seconds = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            i = 0
            inflight: list[tuple[float, Any]] = []

            def ack(fut: Any, b0: float) -> None:
                for r in fut.result():
                    retcodes[r.retcode] = retcodes.get(r.retcode, 0) + 1
                lat.append(time.perf_counter() - b0)

            while i < len(cmds):
                # the loop takes what arrived: up to `batch` commands or `window_ms` worth
                b0 = time.perf_counter()
                chunk = cmds[i:i + batch]
                i += len(chunk)
                if pipeline:
                    inflight.append((b0, durable.submit_async(chunk, depth=pipeline)))
                    while inflight and (len(inflight) > pipeline or inflight[0][1].done()):
                        t_b, fut = inflight.pop(0)
                        ack(fut, t_b)
                else:
                    results = durable.submit(chunk)
                    lat.append(time.perf_counter() - b0)
                    for r in results:
                        retcodes[r.retcode] = retcodes.get(r.retcode, 0) + 1
            for t_b, fut in inflight:
                ack(fut, t_b)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            if prof is not None:
                prof.disable()
                prof.dump_stats(profile)
            eng_s = durable.engine_seconds
            store_s = durable.store_seconds
            n_pos = len(durable.engine.positions)
        finally:
            if durable is not None:
                durable.close()
            else:
                store.close()
            gc.unfreeze()
    lat.sort()
    return {
        "name": "durable", "url": url or "sqlite (temporary file)",
        "orders": n_send, "commands": len(cmds), "batches": len(lat), "batch": batch,
        "pipeline": pipeline,
        "window_ms": window_ms, "accounts": n_accounts, "seconds": dt,
        "orders_per_s": n_send / dt, "commands_per_s": len(cmds) / dt,
        "batch_ms_median": 1e3 * statistics.median(lat),
        "batch_ms_p99": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "engine_s": eng_s, "store_s": store_s,
        # the writer's own time per order: applying (with the journal payloads and the
        # effect rows) and storing (journal rows, query tables, commit)
        "engine_us_per_order": 1e6 * eng_s / max(n_send, 1),
        "store_us_per_order": 1e6 * store_s / max(n_send, 1),
        # the process's CPU (all its threads) per order: what another process on the same
        # cores does not get; the wall figures above also hold the commits' fsync waits
        "cpu_us_per_order": 1e6 * cpu / max(n_send, 1),
        "open_positions": n_pos,
        "retcodes": {str(k): v for k, v in sorted(retcodes.items())},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="store URL (default: temporary SQLite)")
    ap.add_argument("-n", "--orders", type=int, default=100_000)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--tick-every", type=int, default=0)
    ap.add_argument("--pipeline", type=int, default=0,
                    help="batches committing while the next is applied (0: none)")
    ap.add_argument("--profile", default=None, help="write cProfile stats to this file")
    a = ap.parse_args(argv)
    print(json.dumps(run(a.orders, a.url, n_accounts=a.accounts, batch=a.batch,
                         tick_every=a.tick_every, pipeline=a.pipeline, profile=a.profile),
                     indent=2))


if __name__ == "__main__":
    main()
