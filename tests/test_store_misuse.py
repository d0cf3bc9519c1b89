"""Misuse and schema: second writer, read-only, snapshots, migrations."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, update

from cfd.store import (
    SnapshotSchemaMismatch,
    Store,
    StoreCorrupted,
    StoreLocked,
    StoreReadOnly,
    StoreSchemaMismatch,
)
from cfd.store.blobs import decode_arrays, encode_arrays
from cfd.store.models import SCHEMA_REVISION, Base, SnapshotChunk
from tests import store_fixtures
from tests.store_fixtures import entry

store_url = store_fixtures.store_url


def test_second_writer_refused_then_allowed_after_close(store_url: str) -> None:
    first = Store.open(store_url)
    with pytest.raises(StoreLocked) as exc:
        Store.open(store_url)
    msg = str(exc.value)
    assert first.owner in msg and "stop the other engine" in msg and "read_only" in msg
    first.append_batch([entry(0)])  # the refusal did not disturb the first writer
    first.close()
    second = Store.open(store_url)
    assert second.append_batch([entry(1)])[0].seq == 2
    second.close()


def test_second_writer_in_another_process_refused(store_url: str) -> None:
    first = Store.open(store_url)
    code = ("import sys\nfrom cfd.store import Store, StoreLocked\n"
            "try:\n    Store.open(sys.argv[1])\nexcept StoreLocked as e:\n"
            "    print(e)\n    sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code, store_url], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "already open for writing" in proc.stdout
    first.close()


def test_dead_writer_lease_taken_over(store_url: str) -> None:
    # a writer process killed without close(): the OS/server drops its lock
    code = ("import os, sys\nfrom cfd.store import Store\n"
            "s = Store.open(sys.argv[1])\nos._exit(0)\n")
    proc = subprocess.run([sys.executable, "-c", code, store_url], timeout=60)
    assert proc.returncode == 0
    store = Store.open(store_url)
    store.append_batch([entry(0)])
    store.close()


def test_read_only_takes_no_lease_and_cannot_write(store_url: str) -> None:
    writer = Store.open(store_url)
    writer.append_batch([entry(0)])
    ro = Store.open(store_url, read_only=True)
    assert ro.head_seq == 1
    with pytest.raises(StoreReadOnly):
        ro.append_batch([entry(1)])
    writer.append_batch([entry(1)])
    assert ro.head_seq == 2  # sees the writer's commits
    ro.close()
    writer.close()


def test_read_only_on_missing_store_refused(tmp_path) -> None:
    with pytest.raises(StoreSchemaMismatch, match="Start the engine on it once"):
        Store.open(f"sqlite:///{tmp_path / 'none.sqlite'}", read_only=True)


def test_lease_taken_over_under_a_writer_detected(store_url: str) -> None:
    from cfd.store import StoreLeaseLost
    from cfd.store.models import StoreMeta

    store = Store.open(store_url)
    with store.engine.begin() as conn:
        conn.execute(update(StoreMeta).values(lease_owner="someone-else"))
    with pytest.raises(StoreLeaseLost, match="restart"):
        store.append_batch([entry(0)])
    assert list(store.read_journal(0)) == []
    store.close()


def test_npz_round_trip() -> None:
    arrays = {"bid": np.arange(5, dtype=np.int64), "flag": np.array([True, False]),
              "empty": np.zeros(0, dtype=np.float64)}
    back = decode_arrays(encode_arrays(arrays))
    assert set(back) == set(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)


def test_snapshot_round_trip_and_latest(store_url: str, monkeypatch) -> None:
    import cfd.store.snapshots as store_mod

    monkeypatch.setattr(store_mod, "SNAPSHOT_CHUNK_BYTES", 100)  # force several chunks
    store = Store.open(store_url)
    assert store.latest_snapshot() is None
    store.append_batch([entry(i) for i in range(3)])
    store.save_snapshot(2, {"x": np.arange(10)}, {"n": 2}, "hash-2")
    store.save_snapshot(3, {"x": np.arange(1000)}, {"n": 3}, "hash-3")
    snap = store.latest_snapshot()
    assert (snap.seq, snap.state_hash, snap.meta) == (3, "hash-3", {"n": 3})
    assert np.array_equal(snap.arrays["x"], np.arange(1000))
    assert [s["seq"] for s in store.snapshot_list()] == [2, 3]
    with pytest.raises(Exception, match="past the journal head"):
        store.save_snapshot(4, {}, {}, "h")
    assert store.drop_snapshots(keep_last=1) == 1
    assert [s["seq"] for s in store.snapshot_list()] == [3]
    store.close()


def test_snapshot_schema_mismatch_refused(store_url: str) -> None:
    store = Store.open(store_url)
    store.append_batch([entry(0)])
    store.save_snapshot(1, {"x": np.arange(3)}, {}, "h", schema_version=1)
    with pytest.raises(SnapshotSchemaMismatch, match="version 1, this engine reads version 2"):
        store.latest_snapshot(schema_version=2)
    assert store.latest_snapshot(schema_version=1).seq == 1
    store.close()


def test_snapshot_blob_tamper_detected(store_url: str) -> None:
    store = Store.open(store_url)
    store.append_batch([entry(0)])
    store.save_snapshot(1, {"x": np.arange(3)}, {}, "h")
    with store.engine.begin() as conn:
        conn.execute(update(SnapshotChunk).values(data=encode_arrays({"x": np.arange(4)})))
    with pytest.raises(StoreCorrupted, match="checksum"):
        store.latest_snapshot()
    store.close()


def test_migrations_create_the_models_schema(store_url: str) -> None:
    Store.open(store_url).close()
    eng = create_engine(store_url)
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert ctx.get_current_revision() == SCHEMA_REVISION
        diff = compare_metadata(ctx, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    eng.dispose()
    assert diff == []
    assert {"journal", "store_meta", "snapshots", "accounts", "orders", "deals",
            "postings", "symbols", "events"} <= tables
    assert "positions" not in tables  # open positions are the engine's (migration 0004)
    assert not {"ticks", "tick_stats"} & tables  # market data lives in cfd.marketdata


def test_newer_schema_refused(store_url: str) -> None:
    Store.open(store_url).close()
    eng = create_engine(store_url)
    with eng.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    eng.dispose()
    with pytest.raises(StoreSchemaMismatch, match="newer than this code"):
        Store.open(store_url)


def test_a_released_writer_lock_is_free_at_once(store_url: str) -> None:
    """A writer that closes lets the next one in at once: on PostgreSQL the advisory lock is
    unlocked, not left to its session (which its engine's pool may keep open, and which
    lets its locks go only when its server process exits)."""
    from cfd.store import schema
    from cfd.store.lock import WriterLock

    Store.open(store_url).close()
    first_eng = schema.make_engine(store_url, writer=True)
    other_eng = schema.make_engine(store_url, writer=True)
    try:
        first, second = WriterLock(first_eng), WriterLock(other_eng)
        assert first.acquire("first")
        assert not second.acquire("second")
        first.release()  # (its engine is not disposed: the pool keeps the session)
        assert second.acquire("second")
        second.release()
        assert first.acquire("first again")
        first.release()
    finally:
        first_eng.dispose()
        other_eng.dispose()
