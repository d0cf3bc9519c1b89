"""Crash test: a real engine process is killed with SIGKILL at random moments, many times.

After each kill: every acknowledged command is in the journal, the query tables agree with
the recovered engine (nothing half-applied), the ledger sums to zero, and the recovered
state hash equals that of a clean replay of the whole journal.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cfd.store import Store
from cfd.store.runner import recover, verify_replay
from tests import store_fixtures

store_url = store_fixtures.store_url
WORKER = Path(__file__).with_name("store_crash_worker.py")


def _run_and_kill(url: str, rng: random.Random) -> int:
    """Start the worker, SIGKILL it a random while after its first ACK; last ACKed seq."""
    proc = subprocess.Popen([sys.executable, str(WORKER), url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked = [0]
    first = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("ACK "):
                acked[0] = int(line.split()[1])
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not first.wait(60):
        proc.kill()
        raise AssertionError(f"worker never acknowledged: {proc.stderr.read()}")  # type: ignore[union-attr]
    time.sleep(rng.uniform(0.05, 0.6))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    assert proc.returncode == -signal.SIGKILL
    return acked[0]


def _check(url: str, last_acked: int) -> int:
    store = Store.open(url)
    try:
        assert store.head_seq >= last_acked, "an acknowledged command was lost"
        engine = recover(store)
        assert engine.ledger_total() == 0
        replayed = verify_replay(store)
        assert replayed["state_hash"] == engine.state_hash()
        # query tables = recovered engine: no batch half-applied
        for a in range(len(engine.accounts)):
            row = engine.account_row(a)
            assert store.account(row["login"])["balance"] == row["balance"]
        with store.engine.connect() as conn:
            n_deals = conn.exec_driver_sql("SELECT count(*) FROM deals").scalar_one()
        assert n_deals == engine.deals.total
        return store.head_seq
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_many_times(store_url: str) -> None:
    rng = random.Random(4)
    kills = 6 if store_url.startswith("sqlite") else 3
    head = 0
    for _ in range(kills):
        acked = _run_and_kill(store_url, rng)
        assert acked >= head  # the restarted engine went on from the durable head
        head = _check(store_url, acked)
    assert head > 0
