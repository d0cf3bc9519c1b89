"""Recovery: snapshot write and load at 10M positions, and replay of a 1M-command journal.

* :func:`run_snapshot` builds a big engine directly in its struct-of-arrays tables (10M
  positions over 1M accounts and 25 symbols by default), then times ``eng.snapshot()`` +
  ``Store.save_snapshot`` (write) and ``Store.latest_snapshot`` + ``Engine.from_snapshot`` +
  the state-hash check (load, as :func:`cfd.store.runner.recover` does it).
* :func:`run_replay` journals ``n_commands`` commands (market orders on many accounts and
  tick batches) without a snapshot, then times :func:`cfd.store.runner.recover`.
* :func:`run` does both.

    python -m benchmarks.recovery                      # both, temporary SQLite files
    python -m benchmarks.recovery snapshot --positions 10000000 --accounts 1000000
    python -m benchmarks.recovery replay --commands 1000000 --url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks.durable import T0, make_orders, scratch_url
from cfd import commands as C
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE


def _segments(groups: np.ndarray, n_groups: int, idx: Any) -> np.ndarray:
    """Fill a SegmentedIndex ``idx`` with items 0..len(groups)-1 grouped by ``groups``
    (each segment exactly full); returns each item's place in its group."""
    n = len(groups)
    order = np.argsort(groups, kind="stable").astype(np.int32)
    cnt = np.bincount(groups, minlength=n_groups).astype(np.int32)
    off = np.zeros(n_groups, dtype=np.int64)
    np.cumsum(cnt[:-1], out=off[1:])
    idx.ensure_groups(n_groups)
    idx.off[:n_groups] = off
    idx.cnt[:n_groups] = cnt
    idx.cap[:n_groups] = cnt
    pool = np.full(max(2 * n, 1024), -1, dtype=np.int32)
    pool[:n] = order
    idx.pool = pool
    idx.end = n
    place = np.empty(n, dtype=np.int32)
    place[order] = np.arange(n, dtype=np.int64) - np.repeat(off, cnt)
    return place


def build_engine(n_positions: int = 10_000_000, n_accounts: int = 1_000_000,
                 seed: int = 1) -> Any:
    """An engine holding ``n_positions`` open positions over ``n_accounts`` hedging accounts
    and every symbol of the catalogue, written straight into its tables (a deposit posting
    per account, a position per slot; no orders or deals history)."""
    from cfd.accounts.book import AccountGroup
    from cfd.accounts.ledger import EXTERNAL_CASH, N_HOUSE, PostingKind
    from cfd.engine import FIRST_ORDER_TICKET, Engine

    rng = np.random.default_rng(seed)
    eng = Engine()
    n_sym = len(eng.symbols)
    mids = rng.uniform(50, 500, n_sym).round(2)
    eng.apply(C.Ticks.of(T0, {s: (float(m), float(m) + 0.02) for s, m in enumerate(mids)}))
    eng.take_effects()

    # accounts, their ledger and a deposit posting each
    grp = AccountGroup()
    ac = eng.accounts.cols
    ac.reserve(n_accounts)
    ac.size = n_accounts
    logins = np.arange(1001, 1001 + n_accounts, dtype=np.int64)
    deposit = 1_000_000 * MINOR_SCALE
    ac.login[:n_accounts] = logins
    ac.balance[:n_accounts] = deposit
    ac.leverage[:n_accounts] = 1
    ac.margin_mode[:n_accounts] = grp.margin_mode
    ac.so_mode[:n_accounts] = grp.so_mode
    ac.so_rule[:n_accounts] = grp.rule
    ac.so_call[:n_accounts] = grp.margin_call
    ac.so_so[:n_accounts] = grp.stop_out
    ac.so_end[:n_accounts] = grp.stop_out_end
    ac.trade_allowed[:n_accounts] = True
    eng.accounts.index = dict(zip(logins.tolist(), range(n_accounts), strict=True))
    eng.accounts.names = [str(x) for x in logins.tolist()]
    eng.accounts.groups = [grp.name] * n_accounts
    led = eng.ledger
    led.ensure_clients(n_accounts)
    led.balance[N_HOUSE: N_HOUSE + 2 * n_accounts: 2] = deposit
    led.balance[EXTERNAL_CASH] -= deposit * n_accounts
    lp = led.postings
    lp.reserve(n_accounts)
    lp.size = n_accounts
    lp.id[:n_accounts] = np.arange(1, n_accounts + 1)
    lp.time_msc[:n_accounts] = T0
    lp.src[:n_accounts] = EXTERNAL_CASH
    lp.dst[:n_accounts] = N_HOUSE + 2 * np.arange(n_accounts)
    lp.amount[:n_accounts] = deposit
    lp.kind[:n_accounts] = int(PostingKind.DEPOSIT)
    led.comments = [""] * n_accounts
    led.next_id = n_accounts + 1
    eng.positions.by_acc.ensure_groups(n_accounts)

    # positions
    pos = eng.positions
    pc = pos.cols
    n = n_positions
    pc.reserve(n)
    pc.size = n
    acc = (np.arange(n, dtype=np.int64) * n_accounts // max(n, 1)).astype(np.int32)
    sym = rng.integers(0, n_sym, n, dtype=np.int32)
    side = np.where(rng.random(n) < 0.5, 1, -1)
    vol = rng.integers(1, 11, n) * (VOLUME_SCALE // 10)
    px = np.round(mids[sym] * (1 + rng.normal(0, 0.01, n)), 2)
    tickets = FIRST_ORDER_TICKET + np.arange(n, dtype=np.int64)
    pc.active[:n] = True
    pc.acc[:n] = acc
    pc.sym[:n] = sym
    pc.volume[:n] = side * vol
    pc.price_open[:n] = np.round(px * PRICE_SCALE).astype(np.int64)
    pc.ticket[:n] = tickets
    pc.identifier[:n] = tickets
    pc.time_msc[:n] = T0 + np.arange(n)
    pc.time_update_msc[:n] = pc.time_msc[:n]
    pc.reason[:n] = 3
    pc.acc_place[:n] = _segments(acc, n_accounts, pos.by_acc)
    pc.sym_place[:n] = _segments(sym, n_sym, pos.by_sym)
    pos.by_ticket = dict(zip(tickets.tolist(), range(n), strict=True))
    pos.comments = [""] * pc.capacity
    pos.external_ids = [""] * pc.capacity
    eng.next_order = int(FIRST_ORDER_TICKET + n)
    eng.recompute_all()
    return eng


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def run_snapshot(n_positions: int = 10_000_000, n_accounts: int = 1_000_000,
                 url: str | None = None) -> dict[str, Any]:
    """Snapshot write and load seconds for a big engine (see the module docstring).

    Returns ``{"name": "snapshot", "positions", "accounts", "build_s", "take_s", "save_s",
    "write_s", "read_s", "restore_s", "hash_s", "load_s", "bytes", "hash_ok", "url"}``;
    ``write_s`` = take + save (as ``DurableEngine.snapshot_now``), ``load_s`` = read +
    restore + hash check (as ``recover``).
    """
    from cfd.engine import Engine
    from cfd.snapshot import SCHEMA_VERSION
    from cfd.store import Store
    from cfd.store.runner import _take_snapshot, state_hash_of

    eng, build_s = _timed(build_engine, n_positions, n_accounts)
    with tempfile.TemporaryDirectory() as tmp, scratch_url(url, tmp, "snap") as target:
        store = Store.open(target)
        try:
            gc.collect()
            # as DurableEngine.snapshot_now does it: views of the columns, stored at once
            (arrays, meta), take_s = _timed(_take_snapshot, eng)
            state_hash = meta["state_hash"]
            snap_id, save_s = _timed(store.save_snapshot, store.head_seq, arrays, meta,
                                     state_hash, SCHEMA_VERSION)
            size = next(s["size"] for s in store.snapshot_list() if s["id"] == snap_id)
            del arrays, meta, eng
            gc.collect()
            snap, read_s = _timed(store.latest_snapshot, SCHEMA_VERSION)
            eng2, restore_s = _timed(Engine.from_snapshot, snap.arrays, snap.meta)
            del snap
            got, hash_s = _timed(state_hash_of, eng2)
        finally:
            store.close()
    return {
        "name": "snapshot", "url": url or "sqlite (temporary file)",
        "positions": n_positions, "accounts": n_accounts, "bytes": size,
        "build_s": build_s, "take_s": take_s, "save_s": save_s, "write_s": take_s + save_s,
        "read_s": read_s, "restore_s": restore_s, "hash_s": hash_s,
        "load_s": read_s + restore_s + hash_s, "hash_ok": got == state_hash,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def write_journal(store: Any, n_commands: int, n_accounts: int = 10_000,
                  tick_every: int = 10, batch: int = 1000, seed: int = 1) -> int:
    """Journal ``n_commands`` commands (accounts and deposits first, then market orders with
    a tick batch every ``tick_every``) straight into ``store`` (no engine, no query rows:
    the replay reads only the journal). Returns the number of commands journaled."""
    from cfd.engine import Engine
    from cfd.store import JournalEntry
    from cfd.store.runner import payload_of

    rng = random.Random(seed)
    names = [s.name for s in Engine().symbols.specs]
    quotes = {}
    for s in range(len(names)):
        mid = round(rng.uniform(50, 500), 2)
        quotes[s] = (mid, round(mid + 0.02, 2))
    t = T0
    setup: list[Any] = []
    for login in range(1001, 1001 + n_accounts):
        t += 1
        setup.append(C.CreateAccount(time_msc=t, actor="admin", login=login, name=str(login)))
        setup.append(C.Deposit(time_msc=t, actor="admin", login=login,
                               amount=100_000_000 * MINOR_SCALE))
    t += 1
    setup.append(C.Ticks.of(t, dict(quotes)))
    setup = setup[:n_commands]
    done = 0

    def put(cmds: list[Any]) -> None:
        for i in range(0, len(cmds), batch):
            store.append_batch([JournalEntry(c.kind, payload_of(c), int(c.time_msc),
                                             str(c.actor)) for c in cmds[i:i + batch]])

    put(setup)
    done = len(setup)
    while done < n_commands:
        k = min(100_000, n_commands - done)
        cmds = make_orders(k, n_accounts, quotes, names, t + done, rng, tick_every)
        put(cmds)
        done += k
    return done


def run_replay(n_commands: int = 1_000_000, url: str | None = None, *,
               n_accounts: int = 10_000, tick_every: int = 1000) -> dict[str, Any]:
    """Seconds for :func:`cfd.store.runner.recover` to replay ``n_commands`` journaled
    commands (no snapshot). Returns ``{"name": "replay", "commands", "write_s", "replay_s",
    "commands_per_s", "positions", "url", ...}``."""
    from cfd.store import Store
    from cfd.store.runner import recover

    with tempfile.TemporaryDirectory() as tmp, scratch_url(url, tmp, "replay") as target:
        store = Store.open(target)
        try:
            n, write_s = _timed(write_journal, store, n_commands, n_accounts, tick_every)
            eng, replay_s = _timed(recover, store)
            n_pos = len(eng.positions)
            seq = eng.seq
        finally:
            store.close()
    return {
        "name": "replay", "url": url or "sqlite (temporary file)", "commands": n,
        "accounts": n_accounts, "tick_every": tick_every, "write_s": write_s,
        "replay_s": replay_s, "commands_per_s": n / replay_s, "positions": n_pos,
        "engine_seq": seq,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def run(url: str | None = None, *, n_positions: int = 10_000_000,
        n_accounts: int = 1_000_000, n_commands: int = 1_000_000) -> dict[str, Any]:
    """Both recovery benchmarks: ``{"snapshot": run_snapshot(...), "replay": run_replay(...)}``."""
    return {"snapshot": run_snapshot(n_positions, n_accounts, url),
            "replay": run_replay(n_commands, url)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", choices=("all", "snapshot", "replay"), default="all")
    ap.add_argument("--url", default=None, help="store URL (default: temporary SQLite)")
    ap.add_argument("--positions", type=int, default=10_000_000)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--replay-accounts", type=int, default=10_000)
    ap.add_argument("--tick-every", type=int, default=1000,
                    help="a tick batch every N commands (0: orders only)")
    a = ap.parse_args(argv)
    out: dict[str, Any] = {}
    if a.what in ("all", "snapshot"):
        out["snapshot"] = run_snapshot(a.positions, a.accounts, a.url)
    if a.what in ("all", "replay"):
        out["replay"] = run_replay(a.commands, a.url, n_accounts=a.replay_accounts,
                                   tick_every=a.tick_every)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
