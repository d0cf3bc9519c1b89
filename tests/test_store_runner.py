"""DurableEngine and recovery against a tiny fake engine (the real one: test_store_crash)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from cfd.effects import Effects
from cfd.store import RecoveryMismatch, SnapshotSchemaMismatch, Store, StoreError
from cfd.store.runner import DurableEngine, EngineApi, recover, verify_replay
from tests import store_fixtures

store_url = store_fixtures.store_url


@dataclass(frozen=True)
class Add:
    """Fake command: add ``amount`` to account ``login``."""

    kind: ClassVar[str] = "add"
    time_msc: int
    login: int
    amount: int
    actor: str = "test"

    def to_payload(self) -> bytes:
        return json.dumps([self.time_msc, self.login, self.amount, self.actor]).encode()


def decode(kind: str, payload: bytes) -> Add:
    assert kind == "add"
    t, login, amount, actor = json.loads(payload)
    return Add(t, login, amount, actor)


class FakeEngine:
    def __init__(self, balances: dict[int, int] | None = None) -> None:
        self.balances = dict(balances or {})
        self.effects = Effects()
        self.fail_on: int | None = None

    def apply(self, cmd: Add) -> int:
        if cmd.amount == self.fail_on:
            raise RuntimeError("engine bug")
        self.balances[cmd.login] = self.balances.get(cmd.login, 0) + cmd.amount
        self.effects.accounts[cmd.login] = {"login": cmd.login, "balance":
                                            self.balances[cmd.login], "credit": 0}
        return self.balances[cmd.login]

    def take_effects(self) -> Effects:
        eff, self.effects = self.effects, Effects()
        return eff

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        logins = sorted(self.balances)
        return ({"login": np.array(logins, dtype=np.int64),
                 "balance": np.array([self.balances[k] for k in logins], dtype=np.int64)},
                {"n": len(logins)})

    @classmethod
    def from_snapshot(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> FakeEngine:
        assert meta["n"] == len(arrays["login"])
        return cls(dict(zip(arrays["login"].tolist(), arrays["balance"].tolist(), strict=True)))

    def state_hash(self) -> str:
        return hashlib.sha256(json.dumps(sorted(self.balances.items())).encode()).hexdigest()


API = EngineApi(new=FakeEngine, from_snapshot=FakeEngine.from_snapshot, decode=decode,
                schema_version=7)


def _commands(n: int, start: int = 0) -> list[Add]:
    return [Add(1_000 + i, 1001 + i % 3, i + 1) for i in range(start, start + n)]


def test_group_commit_then_recover(store_url: str) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, FakeEngine(), api=API)
    results = durable.submit(_commands(5))
    assert results == [1, 2, 3, 5, 7]  # 1001: 1, 1+4; 1002: 2, 2+5; 1003: 3
    assert durable.head_seq == 5
    assert store.account(1001)["balance"] == 5  # written in the same transaction
    durable.submit(_commands(4, start=5))
    live_hash = durable.engine.state_hash()
    durable.close()

    store = Store.open(store_url)
    engine = recover(store, API)
    assert engine.state_hash() == live_hash
    assert engine.balances == durable.engine.balances
    store.close()


def test_snapshot_schedule_and_recover_from_snapshot(store_url: str) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, FakeEngine(), snapshot_every=4, api=API)
    for k in range(5):
        durable.submit(_commands(2, start=2 * k))
    # 10 commands, a snapshot each time 4 or more accumulated: after seq 4 and seq 8
    assert [s["seq"] for s in store.snapshot_list()] == [4, 8]
    assert store.latest_snapshot(7).seq == 8
    live = durable.engine.state_hash()
    durable.close()

    store = Store.open(store_url)
    assert recover(store, API).state_hash() == live
    report = verify_replay(store, API)
    assert report["snapshots_checked"] == 2 and report["state_hash"] == live
    store.close()


def test_recover_refuses_a_snapshot_that_does_not_rebuild(store_url: str) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, FakeEngine(), api=API)
    durable.submit(_commands(3))
    arrays, meta = durable.engine.snapshot()
    store.save_snapshot(3, arrays, meta, "not-the-live-hash", schema_version=7)
    with pytest.raises(RecoveryMismatch, match="snapshot at seq 3"):
        recover(store, API)
    with pytest.raises(RecoveryMismatch, match="to seq 3"):
        verify_replay(store, API)
    store.close()


def test_recover_refuses_snapshot_of_other_schema(store_url: str) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, FakeEngine(), api=API)
    durable.submit(_commands(3))
    durable.snapshot_now()
    other = EngineApi(new=FakeEngine, from_snapshot=FakeEngine.from_snapshot, decode=decode,
                      schema_version=8)
    with pytest.raises(SnapshotSchemaMismatch):
        recover(store, other)
    store.close()


def test_failed_batch_is_not_stored_and_engine_stops(store_url: str) -> None:
    store = Store.open(store_url)
    engine = FakeEngine()
    engine.fail_on = 3
    durable = DurableEngine(store, engine, api=API)
    durable.submit(_commands(1))
    with pytest.raises(RuntimeError, match="engine bug"):
        durable.submit(_commands(3, start=1))  # amounts 2, 3 (fails), 4
    assert store.head_seq == 1  # nothing of the failed batch is durable
    with pytest.raises(StoreError, match="restart"):
        durable.submit(_commands(1, start=9))
    durable.close()
    store = Store.open(store_url)
    assert recover(store, API).balances == {1001: 1}
    store.close()
