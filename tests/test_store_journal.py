"""Journal: group-commit round trip, hash chain, tamper/gap/truncation detection."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, text, update

from cfd.effects import Effects
from cfd.store import GENESIS_HASH, JournalEntry, Store, StoreCorrupted, chain_hash
from cfd.store.models import JournalRow, StoreMeta
from tests import store_fixtures
from tests.store_fixtures import account, deal, entry

store_url = store_fixtures.store_url


def _fill(url: str, batches: list[int]) -> Store:
    store = Store.open(url)
    i = 0
    for size in batches:
        store.append_batch([entry(i + k) for k in range(size)])
        i += size
    return store


def test_chain_hash_depends_on_every_field() -> None:
    base = chain_hash(GENESIS_HASH, 1, 5, "deposit", "admin", b"p")
    assert len(base) == 64
    variants = [
        chain_hash("11" * 32, 1, 5, "deposit", "admin", b"p"),
        chain_hash(GENESIS_HASH, 2, 5, "deposit", "admin", b"p"),
        chain_hash(GENESIS_HASH, 1, 6, "deposit", "admin", b"p"),
        chain_hash(GENESIS_HASH, 1, 5, "withdraw", "admin", b"p"),
        chain_hash(GENESIS_HASH, 1, 5, "deposit", "admin2", b"p"),
        chain_hash(GENESIS_HASH, 1, 5, "deposit", "admin", b"q"),
        # length prefixes: moving a byte from kind to actor changes the hash
        chain_hash(GENESIS_HASH, 1, 5, "deposi", "tadmin", b"p"),
    ]
    assert len({base, *variants}) == 1 + len(variants)


def test_round_trip_batches(store_url: str) -> None:
    store = _fill(store_url, [1, 3, 0, 5])
    # 1 + 3 + 0 + 5 = 9 commands, seqs 1..9 contiguous
    assert store.head_seq == 9
    got = list(store.read_journal(0))
    assert [e.seq for e in got] == list(range(1, 10))
    assert [e.payload for e in got] == [f"payload-{i}".encode() for i in range(9)]
    assert got[-1].hash == store.head()[1]
    assert [e.seq for e in store.read_journal(6)] == [7, 8, 9]
    assert list(store.read_journal(9)) == []
    store.close()
    # reopened, the writer continues after the head
    store = Store.open(store_url)
    stored = store.append_batch([entry(9)])
    assert stored[0].seq == 10
    assert stored[0].hash == chain_hash(got[-1].hash, 10, 1_009, "deposit", "admin",
                                        b"payload-9")
    assert len(list(store.read_journal(0))) == 10
    store.close()


def test_batch_is_atomic(store_url: str) -> None:
    store = _fill(store_url, [2])
    bad = Effects(deals=[deal(1, 1001, 5), deal(1, 1001, 6)])  # duplicate deal ticket
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        store.append_batch([entry(2), entry(3)], bad)
    # nothing of the failed batch is stored, and the head did not move
    assert store.head_seq == 2
    assert [e.seq for e in store.read_journal(0)] == [1, 2]
    assert store.deals_by_ticket(1) == []
    store.append_batch([entry(2)], Effects(accounts={1001: account(1001, 500)}))
    assert store.head_seq == 3
    assert store.account(1001)["balance"] == 500
    store.close()


def test_entry_with_wrong_seq_refused(store_url: str) -> None:
    store = _fill(store_url, [1])
    with pytest.raises(Exception, match="next seq is 2"):
        store.append_batch([JournalEntry("deposit", b"", 1, seq=5)])
    store.close()


def _raw(url: str):
    return create_engine(url)


def test_tampered_row_detected(store_url: str) -> None:
    store = _fill(store_url, [3, 3])
    store.close()
    raw = _raw(store_url)
    with raw.begin() as conn:
        conn.execute(update(JournalRow).where(JournalRow.seq == 4).values(payload=b"forged"))
    raw.dispose()
    ro = Store.open(store_url, read_only=True)
    it = ro.read_journal(0)
    assert [next(it).seq for _ in range(3)] == [1, 2, 3]
    with pytest.raises(StoreCorrupted, match="seq 4") as exc:
        next(it)
    assert "restore" in str(exc.value) and exc.value.seq == 4
    with pytest.raises(StoreCorrupted):
        ro.verify()
    ro.close()


def test_rehashed_forgery_breaks_the_next_row(store_url: str) -> None:
    store = _fill(store_url, [5])
    store.close()
    rows = list(Store.open(store_url, read_only=True).read_journal(0))
    forged = chain_hash(rows[1].hash, 3, rows[2].time_msc, "deposit", "admin", b"forged")
    raw = _raw(store_url)
    with raw.begin() as conn:
        conn.execute(update(JournalRow).where(JournalRow.seq == 3)
                     .values(payload=b"forged", hash=forged))
    raw.dispose()
    with pytest.raises(StoreCorrupted, match="seq 4"):
        list(Store.open(store_url, read_only=True).read_journal(0))


def test_gap_detected(store_url: str) -> None:
    store = _fill(store_url, [5])
    store.close()
    raw = _raw(store_url)
    with raw.begin() as conn:
        conn.execute(delete(JournalRow).where(JournalRow.seq == 3))
    raw.dispose()
    with pytest.raises(StoreCorrupted, match="gap: expected seq 3"):
        list(Store.open(store_url, read_only=True).read_journal(0))


def test_truncation_detected(store_url: str) -> None:
    store = _fill(store_url, [5])
    store.close()
    raw = _raw(store_url)
    with raw.begin() as conn:
        conn.execute(delete(JournalRow).where(JournalRow.seq >= 4))
    raw.dispose()
    ro = Store.open(store_url, read_only=True)
    with pytest.raises(StoreCorrupted, match="truncated"):
        list(ro.read_journal(0))
    with pytest.raises(StoreCorrupted, match="truncated"):
        list(ro.read_journal(4))


def test_head_behind_rows_detected(store_url: str) -> None:
    store = _fill(store_url, [5])
    store.close()
    raw = _raw(store_url)
    with raw.begin() as conn:
        conn.execute(update(StoreMeta).values(head_seq=3))
    raw.dispose()
    with pytest.raises(StoreCorrupted, match="seq 4"):
        list(Store.open(store_url, read_only=True).read_journal(0))


def test_verify_summarizes_a_sound_store(store_url: str) -> None:
    store = _fill(store_url, [4, 4])
    assert store.verify() == {"journal_rows": 8, "head_seq": 8, "snapshots": 0}
    store.close()


def test_sqlite_pragmas(tmp_path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
    store.close()


def test_default_url_is_sqlite_in_cwd(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CFD_DATABASE_URL", raising=False)
    store = Store.open()
    store.append_batch([entry(0)])
    store.close()
    assert (tmp_path / "cfd.sqlite").exists()
    monkeypatch.setenv("CFD_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    Store.open().close()
    assert (tmp_path / "env.sqlite").exists()
