"""DurableEngine.submit_async: pipelined group commit."""

from __future__ import annotations

import pytest

from cfd.store import Store, StoreError
from cfd.store.runner import DurableEngine, recover, verify_replay
from tests import store_fixtures
from tests.test_store_runner import API, FakeEngine, _commands

store_url = store_fixtures.store_url


def test_submit_async_commits_in_order(store_url: str) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, FakeEngine(), api=API, snapshot_every=25)
    futures = [durable.submit_async(_commands(10, start=10 * k), depth=2) for k in range(10)]
    for fut in futures:
        results = fut.result(timeout=30)
        assert len(results) == 10
    # a synchronous submit after async ones waits for them (journal order)
    durable.submit(_commands(5, start=100))
    assert durable.head_seq == 105
    want = durable.engine.state_hash()
    durable.close()
    store = Store.open(store_url)
    assert [e.seq for e in store.read_journal(0)] == list(range(1, 106))
    assert recover(store, API).state_hash() == want
    assert verify_replay(store, API)["snapshots_checked"] >= 3
    store.close()


def test_submit_async_failure_stops_later_batches(store_url: str, monkeypatch) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, FakeEngine(), api=API)
    durable.submit_async(_commands(3)).result(timeout=30)
    real = store.append_batch
    calls = {"n": 0}

    def failing(entries, effects=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk full")
        return real(entries, effects)

    monkeypatch.setattr(store, "append_batch", failing)
    f1 = durable.submit_async(_commands(3, start=3))
    with pytest.raises(RuntimeError, match="disk full"):
        f1.result(timeout=30)
    durable.flush()
    with pytest.raises(StoreError, match="restart"):
        durable.submit_async(_commands(3, start=6))
    with pytest.raises(StoreError, match="restart"):
        durable.submit(_commands(3, start=6))
    durable.close()
    store = Store.open(store_url)
    assert store.head_seq == 3
    store.close()
