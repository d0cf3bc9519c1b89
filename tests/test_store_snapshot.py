"""Snapshot blobs (raw chunked format, legacy .npz) and engine snapshot round trips."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cfd import commands as C
from cfd.engine import Engine
from cfd.snapshot import _active_by_ticket, _strings, _unstrings
from cfd.store import Store
from cfd.store.blobs import arrays_from_parts, blob_parts, encode_arrays
from cfd.store.runner import DurableEngine, payload_of, recover
from tests import store_fixtures

store_url = store_fixtures.store_url


def _arrays() -> dict[str, np.ndarray]:
    return {
        "i8": np.arange(1000, dtype=np.int64),
        "scalar": np.array(7),
        "empty": np.zeros(0, dtype=np.float64),
        "flags": np.array([True, False, True]),
        "grid": np.arange(12, dtype=np.int32).reshape(3, 4),
        "strided": np.arange(20, dtype=np.int16)[::2],
        "u8": np.frombuffer(b"a\x00bc", dtype=np.uint8),
    }


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_raw_blob_round_trip(chunk: int) -> None:
    arrays = _arrays()
    parts = blob_parts(arrays, chunk)
    assert all(len(p) <= chunk for p in parts[1:])
    back = arrays_from_parts(iter([bytes(p) for p in parts]))
    assert list(back) == list(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        assert np.array_equal(back[k], v), k
        assert back[k].flags.writeable


def test_raw_blob_refuses_truncation_and_objects() -> None:
    parts = [bytes(p) for p in blob_parts(_arrays(), 64)]
    with pytest.raises(StopIteration):
        arrays_from_parts(iter(parts[:-1]))
    with pytest.raises(ValueError, match="trailing"):
        arrays_from_parts(iter([*parts, b"x"]))
    with pytest.raises(TypeError, match="objects"):
        blob_parts({"o": np.array([object()])}, 64)


def test_snapshot_store_chunked_and_legacy(store_url: str, monkeypatch) -> None:
    import cfd.store.snapshots as store_mod
    from cfd.store.models import SnapshotChunk

    monkeypatch.setattr(store_mod, "SNAPSHOT_CHUNK_BYTES", 50)
    store = Store.open(store_url)
    store.append_batch([store_fixtures.entry(0)])
    sid = store.save_snapshot(1, _arrays(), {"k": 1}, "h")
    snap = store.latest_snapshot()
    for k, v in _arrays().items():
        assert np.array_equal(snap.arrays[k], v) and snap.arrays[k].shape == v.shape
    assert store.load_snapshot(sid).state_hash == "h"
    # a snapshot written in the legacy .npz layout still loads
    import hashlib

    from sqlalchemy import insert

    blob = encode_arrays({"x": np.arange(5)})
    s = store_mod.m.SnapshotRow.__table__
    with store.engine.begin() as conn:
        old = conn.execute(insert(s).values(
            seq=1, state_hash="old", schema_version=1, created_msc=0, meta={}, n_chunks=1,
            size=len(blob), blob_sha256=hashlib.sha256(blob).hexdigest(),
        ).returning(s.c.id)).scalar_one()
        conn.execute(insert(SnapshotChunk.__table__), {"snapshot_id": old, "idx": 0,
                                                       "data": blob})
    assert np.array_equal(store.load_snapshot(old).arrays["x"], np.arange(5))
    store.close()


def test_snapshot_missing_chunk_detected(store_url: str, monkeypatch) -> None:
    from sqlalchemy import delete

    import cfd.store.snapshots as store_mod
    from cfd.store import StoreCorrupted
    from cfd.store.models import SnapshotChunk

    monkeypatch.setattr(store_mod, "SNAPSHOT_CHUNK_BYTES", 50)
    store = Store.open(store_url)
    store.append_batch([store_fixtures.entry(0)])
    store.save_snapshot(1, _arrays(), {}, "h")
    t = SnapshotChunk.__table__
    with store.engine.begin() as conn:
        conn.execute(delete(t).where(t.c.idx == 3))
    with pytest.raises(StoreCorrupted, match="checksum"):
        store.latest_snapshot()
    store.close()


def test_strings_round_trip() -> None:
    for values in ([], [""], ["", ""], ["a", "", "bc"], [""] * 5 + ["x"], ["é", "ü"]):
        assert _unstrings(_strings(values), len(values)) == values


def test_active_by_ticket_matches_argsort() -> None:
    rng = np.random.default_rng(3)
    for n, shuffle, holes in ((0, False, False), (1, False, False), (50, False, False),
                              (50, True, False), (50, False, True), (50, True, True)):
        tickets = np.arange(100, 100 + n, dtype=np.int64)
        if shuffle:
            rng.shuffle(tickets)
        active = np.ones(n, dtype=bool)
        if holes and n:
            active[rng.random(n) < 0.3] = False
        idx = np.flatnonzero(active)
        want = idx[np.argsort(tickets[idx], kind="stable")]
        got = _active_by_ticket(idx, tickets)
        assert np.array_equal(tickets[got], tickets[want])


def _busy_engine() -> Engine:
    eng = Engine()
    eng.apply(C.Ticks.of(1, {0: (230.0, 230.02), 1: (400.0, 400.04)}))
    for i, login in enumerate((1001, 1002, 1003)):
        eng.apply(C.CreateAccount(time_msc=2 + i, actor="admin", login=login, name=f"n{login}",
                                  group="demo\\netting" if login == 1003 else "demo\\usdt"))
        eng.apply(C.Deposit(time_msc=5, actor="admin", login=login, amount=10_000_000,
                            comment=f"dep {login}"))
    t = 10
    for k in range(12):
        login = 1001 + k % 3
        sym = ("AAPL", "MSFT")[k % 2]
        side = k % 2
        bid, ask = (230.0, 230.02) if sym == "AAPL" else (400.0, 400.04)
        eng.apply(C.SendOrder(time_msc=t + k, actor=str(login), login=login, request={
            "action": 1, "symbol": sym, "volume": 0.5, "type": side,
            "price": ask if side == 0 else bid, "deviation": 1000,
            "comment": f"c{k}" if k % 3 else ""}))
    # close some positions: free slots, reversed tickets
    for ticket in sorted(eng.positions.by_ticket)[:3]:
        p = eng.positions.by_ticket[ticket]
        a = int(eng.positions.cols.acc[p])
        login = int(eng.accounts.cols.login[a])
        v = int(eng.positions.cols.volume[p])
        sym = eng.symbols.specs[int(eng.positions.cols.sym[p])].name
        eng.apply(C.SendOrder(time_msc=100, actor=str(login), login=login, request={
            "action": 1, "symbol": sym, "volume": abs(v) / 10_000, "type": 1 if v > 0 else 0,
            "position": ticket, "price": 230.0, "deviation": 100000}))
    eng.take_effects()
    return eng


def test_engine_snapshot_round_trip_keeps_hash() -> None:
    eng = _busy_engine()
    assert eng.positions.free, "the fixture should leave free position slots"
    before = eng.state_hash()
    arrays, meta = eng.snapshot()
    assert meta["state_hash"] == before
    back = Engine.from_snapshot(arrays, meta)
    assert back.state_hash() == before
    assert eng.state_hash() == before
    assert back.positions.by_ticket == eng.positions.by_ticket
    assert back.positions.free == eng.positions.free
    assert back.accounts.names == eng.accounts.names
    assert back.accounts.groups == eng.accounts.groups
    assert back.accounts.index == eng.accounts.index
    n = eng.positions.cols.size
    assert back.positions.comments[:n] == eng.positions.comments[:n]
    assert back.ledger.comments == eng.ledger.comments
    assert back.deals.by_ticket == eng.deals.by_ticket
    # and the restored engine keeps trading like the original
    cmd = C.SendOrder(time_msc=200, actor="1002", login=1002, request={
        "action": 1, "symbol": "AAPL", "volume": 1.0, "type": 0, "price": 230.02,
        "deviation": 1000})
    assert eng.apply(cmd).retcode == back.apply(cmd).retcode
    assert eng.state_hash() == back.state_hash()


def test_engine_snapshot_through_store_and_recover(store_url: str) -> None:
    store = Store.open(store_url)
    durable = DurableEngine(store, Engine())
    durable.submit([C.Ticks.of(1, {0: (230.0, 230.02)}),
                    C.CreateAccount(time_msc=2, actor="admin", login=1001, name="a"),
                    C.Deposit(time_msc=3, actor="admin", login=1001, amount=5_000_000)])
    durable.submit([C.SendOrder(time_msc=10 + i, actor="1001", login=1001, request={
        "action": 1, "symbol": "AAPL", "volume": 0.1, "type": i % 2,
        "price": 230.02 if i % 2 == 0 else 230.0, "deviation": 1000}) for i in range(5)])
    durable.snapshot_now()
    durable.submit([C.Ticks.of(50, {0: (231.0, 231.02)})])
    want = durable.engine.state_hash()
    store.close()
    store = Store.open(store_url)
    assert recover(store).state_hash() == want
    store.close()


def test_journal_bytes_equal_the_encoding_of_asdict() -> None:
    """``Command.to_payload`` skips ``asdict``'s deep copy; the bytes must not change."""
    import json
    from dataclasses import asdict

    cmds = [
        C.SendOrder(time_msc=5, actor="1", login=1, request={
            "action": 1, "symbol": "AAPL", "volume": 0.1, "type": 0, "price": 1.5,
            "comment": "é\"x"}),
        C.Deposit(time_msc=1, login=3, amount=5, comment="x"),
        C.Ticks.of(3, {0: (1.0, 2.0)}),
        C.CreateAccount(time_msc=1, login=2, name="x"),
        C.SendOrder(time_msc=5, actor="1", login=1, request={"volume": np.float64(0.1)}),
    ]
    for c in cmds:
        assert payload_of(c) == c.to_payload()
        if type(c).to_payload is C.Command.to_payload:  # (Ticks has a binary encoding)
            want = json.dumps(asdict(c), separators=(",", ":"), sort_keys=True).encode()
            assert c.to_payload() == want


def test_big_snapshot_goes_to_a_file_on_sqlite(tmp_path, monkeypatch) -> None:
    import cfd.store.snapshots as store_mod
    from cfd.store import StoreCorrupted

    monkeypatch.setattr(store_mod, "SNAPSHOT_FILE_MIN_BYTES", 100)
    store = Store.open(f"sqlite:///{tmp_path / 'cfd.sqlite'}")
    store.append_batch([store_fixtures.entry(0)])
    store.save_snapshot(1, _arrays(), {"m": 1}, "h1")
    files = list(store.snapshot_dir().iterdir())
    assert len(files) == 1 and files[0].suffix == ".snap"
    snap = store.latest_snapshot()
    for k, v in _arrays().items():
        assert np.array_equal(snap.arrays[k], v) and snap.arrays[k].shape == v.shape
    # tampered, truncated, missing: refused
    raw = files[0].read_bytes()
    files[0].write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(StoreCorrupted, match="checksum"):
        store.latest_snapshot()
    files[0].write_bytes(raw[:-3])
    with pytest.raises(StoreCorrupted, match="checksum"):
        store.latest_snapshot()
    files[0].unlink()
    with pytest.raises(StoreCorrupted, match="missing"):
        store.latest_snapshot()
    files[0].write_bytes(raw)
    assert store.latest_snapshot().state_hash == "h1"
    # small snapshots stay in the database; dropping removes the files
    monkeypatch.setattr(store_mod, "SNAPSHOT_FILE_MIN_BYTES", 1 << 40)
    store.save_snapshot(1, {"x": np.arange(3)}, {}, "h2")
    assert len(list(store.snapshot_dir().iterdir())) == 1
    assert store.drop_snapshots() == 2
    assert list(store.snapshot_dir().iterdir()) == []
    store.close()


def _chunk_rows(store: Store, snap_id: int) -> list[bytes]:
    from sqlalchemy import select

    from cfd.store.models import SnapshotChunk

    t = SnapshotChunk.__table__
    with store.engine.connect() as conn:
        return [bytes(d) for d in conn.execute(select(t.c.data).where(
            t.c.snapshot_id == snap_id).order_by(t.c.idx)).scalars()]


def _put_chunk(store: Store, snap_id: int, idx: int, data: bytes | None) -> None:
    """Replace (insert, or with None delete) chunk ``idx`` of snapshot ``snap_id``."""
    from sqlalchemy import delete, insert

    from cfd.store.models import SnapshotChunk

    t = SnapshotChunk.__table__
    with store.engine.begin() as conn:
        conn.execute(delete(t).where(t.c.snapshot_id == snap_id, t.c.idx == idx))
        if data is not None:
            conn.execute(insert(t), {"snapshot_id": snap_id, "idx": idx, "data": data})


def _damages(chunks: list[bytes]) -> dict[str, dict[int, bytes | None]]:
    mid = len(chunks) // 2
    flipped = bytearray(chunks[mid])
    flipped[len(flipped) // 2] ^= 0x40
    same = next(i for i in range(2, len(chunks)) if len(chunks[i]) == len(chunks[i - 1])
                and chunks[i] != chunks[i - 1])
    return {
        "byte flipped": {mid: bytes(flipped)},
        "chunk shortened": {mid: chunks[mid][:-1]},
        "chunk lengthened": {mid: chunks[mid] + b"\0"},
        "chunk missing": {mid: None},
        "chunk added": {len(chunks): b"\0" * 8},
        "chunks swapped": {same - 1: chunks[same], same: chunks[same - 1]},
        "header edited": {0: chunks[0].replace(b"[1000]", b"[1001]")},
        "header garbled": {0: chunks[0][:20]},
        "header only": {i: None for i in range(1, len(chunks))},
    }


def test_snapshot_chunk_damage_refused(store_url: str, monkeypatch) -> None:
    """Every kind of chunk damage is refused, and the snapshot loads again once repaired."""
    import cfd.store.snapshots as store_mod
    from cfd.store import StoreCorrupted

    monkeypatch.setattr(store_mod, "SNAPSHOT_CHUNK_BYTES", 48)
    store = Store.open(store_url)
    store.append_batch([store_fixtures.entry(0)])
    sid = store.save_snapshot(1, _arrays(), {}, "h")
    chunks = _chunk_rows(store, sid)
    assert len(chunks) > 20 and b"[1000]" in chunks[0]
    for what, damage in _damages(chunks).items():
        for idx, data in damage.items():
            _put_chunk(store, sid, idx, data)
        with pytest.raises(StoreCorrupted, match="checksum"):
            store.latest_snapshot()
            pytest.fail(f"{what}: not refused")
        for idx in damage:
            _put_chunk(store, sid, idx, chunks[idx] if idx < len(chunks) else None)
        snap = store.latest_snapshot()
        for k, v in _arrays().items():
            assert np.array_equal(snap.arrays[k], v), (what, k)
    store.close()


def test_chunk_targets_cover_the_arrays_in_order() -> None:
    from cfd.store.blobs import chunk_targets

    bufs = [np.zeros(n, dtype=np.uint8) for n in (5, 0, 3, 0, 0, 4)]
    blob = np.arange(1, 13, dtype=np.uint8)
    for lengths in ([12], [5, 3, 4], [1] * 12, [7, 5], [2, 9, 1]):
        for b in bufs:
            b[:] = 0
        targets = chunk_targets(lengths, bufs)
        pos = 0
        for n, views in zip(lengths, targets, strict=True):
            assert sum(len(v) for v in views) == n
            for v in views:
                v[...] = blob[pos:pos + len(v)]
                pos += len(v)
        assert np.array_equal(np.concatenate(bufs), blob), lengths


@pytest.mark.postgres
def test_pg_snapshot_read_in_parallel(store_url: str, monkeypatch) -> None:
    """PostgreSQL reads the chunks on several connections; a chunk that disappears while
    they read is reported (not waited for), and a later read succeeds."""
    import cfd.store.snapshots as store_mod
    from cfd.store import StoreCorrupted

    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL read path")
    monkeypatch.setattr(store_mod, "SNAPSHOT_CHUNK_BYTES", 1000)
    arrays = {"a": np.arange(50_000, dtype=np.int64), "b": np.arange(7, dtype=np.int8),
              "c": np.random.default_rng(1).random((300, 7))}
    store = Store.open(store_url)
    store.append_batch([store_fixtures.entry(0)])
    sid = store.save_snapshot(1, arrays, {}, "h")
    chunks = _chunk_rows(store, sid)
    assert len(chunks) > 400
    seen = []
    real = store_mod.chunk_targets
    threads = set()

    def targets(lengths, bufs):
        seen.append(len(lengths))
        return real(lengths, bufs)

    real_copy = store_mod.copy_chunk

    def copy_chunk(data, views):  # (patched on the store module only, not numpy)
        threads.add(threading.current_thread().name)
        return real_copy(data, views)

    monkeypatch.setattr(store_mod, "chunk_targets", targets)
    monkeypatch.setattr(store_mod, "copy_chunk", copy_chunk)
    snap = store.latest_snapshot()
    monkeypatch.setattr(store_mod, "copy_chunk", real_copy)
    assert seen == [len(chunks) - 1]
    assert {"snapshot-read-0", "snapshot-read-1"} <= threads
    for k, v in arrays.items():
        assert snap.arrays[k].dtype == v.dtype and np.array_equal(snap.arrays[k], v)

    def vanishing(lengths, bufs):
        _put_chunk(store, sid, len(chunks) - 5, None)
        return real(lengths, bufs)

    monkeypatch.setattr(store_mod, "chunk_targets", vanishing)
    with pytest.raises(StoreCorrupted, match=f"chunk {len(chunks) - 5} went missing"):
        store.latest_snapshot()
    monkeypatch.setattr(store_mod, "chunk_targets", real)
    _put_chunk(store, sid, len(chunks) - 5, chunks[len(chunks) - 5])
    assert np.array_equal(store.latest_snapshot().arrays["c"], arrays["c"])
    store.close()
