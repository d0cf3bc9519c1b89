"""SQLite: the writer's WAL is checkpointed by a thread of the store, after its commits."""

from __future__ import annotations

import sqlite3
import time

from cfd.effects import Effects
from cfd.store import Store
from cfd.store.checkpoint import BACKSTOP_PAGES
from tests.store_fixtures import deal, entry


def _in_database_file(path, table: str) -> int:
    """Rows of ``table`` in the database file itself (the ``-wal`` file ignored)."""
    con = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # not even the table there
        return -1
    finally:
        con.close()


def test_committed_rows_reach_the_database_file_beside_the_writer(tmp_path) -> None:
    path = tmp_path / "cfd.sqlite"
    store = Store.open(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:  # the writer's own checkpoints: a backstop
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
        ckpt = store._checkpointer
        assert ckpt is not None
        store.append_batch([entry(0)], Effects(deals=[deal(100 + i, 1001, 1_000 + i)
                                                      for i in range(50)]))
        deadline = time.monotonic() + 10
        while ckpt.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ckpt.runs == 1 and ckpt.error is None  # one commit, one checkpoint
        # (the file is read only now: nothing writes it until the next commit)
        assert _in_database_file(path, "deals") == 50  # copied from the -wal: checkpointed
        assert store.head_seq == 1
    finally:
        store.close()
    assert store._checkpointer is None and not ckpt._thread.is_alive()
