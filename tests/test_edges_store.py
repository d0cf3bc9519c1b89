"""The store's edges: one writer per database (not per name), whole-chain verification at
start-up, a journal shorter than acknowledged, a consistent read beside a writer, and one
clear line (and a non-zero exit) for each way a server can fail to start."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import threading

import pytest

from api.__main__ import main
from api.server import build
from api.settings import Settings
from cfd import commands as C
from cfd.store import Store, StoreCorrupted, StoreLocked, checkpoint
from cfd.store.runner import DurableEngine, open_durable, recover, verify_replay
from tests.test_api_fixtures import free_port, make_runtime
from tests.test_store_runner import API, _commands

ADMIN_KEY = "edge-admin-key-0123456789"


def _url(path) -> str:
    return f"sqlite:///{path}"


def _durable(url: str, n: int, snapshot_at: int | None = None) -> None:
    """Journal ``n`` fake commands (a snapshot after ``snapshot_at`` of them)."""
    d = open_durable(url, api=API, snapshot_every=None, freeze_gc=False)
    try:
        cmds = _commands(n)
        cut = n if snapshot_at is None else snapshot_at
        for c in cmds[:cut]:
            d.submit([c])
        if snapshot_at is not None:
            d.snapshot_now()
            for c in cmds[cut:]:
                d.submit([c])
    finally:
        d.close()


# ------------------------------------------------------------------ one writer per database
def test_a_hard_link_does_not_make_a_second_writer(tmp_path) -> None:
    first = Store.open(_url(tmp_path / "a.sqlite"))
    try:
        os.link(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
        with pytest.raises(StoreLocked) as exc:
            Store.open(_url(tmp_path / "b.sqlite"))
        assert "inode" in str(exc.value)
    finally:
        first.close()
    Store.open(_url(tmp_path / "b.sqlite")).close()  # free once the first writer is gone


def test_second_server_gets_one_line_with_a_readable_heartbeat(tmp_path, monkeypatch,
                                                               capsys) -> None:
    url = _url(tmp_path / "cfd.sqlite")
    rt = make_runtime(demo=False, in_memory=False, database_url=url, init=True)
    try:
        monkeypatch.setenv("CFD_ADMIN_KEY", ADMIN_KEY)
        code = main(["--database-url", url, "--port", str(free_port()), "--feed", "none"])
        err = capsys.readouterr().err.strip()
        assert code == 3 and len(err.splitlines()) == 1
        assert "already open for writing" in err
        assert re.search(r"last heartbeat \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)",
                         err), err
    finally:
        rt.close()


# ------------------------------------------------------------------ missing or empty database
def test_a_server_refuses_a_missing_or_empty_database(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CFD_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "prod.sqlite"
    args = ["--database-url", _url(path), "--port", str(free_port()), "--feed", "none"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "does not exist" in err and "cfd-server init" in err and not path.exists()
    path.write_bytes(b"")
    assert main(args) == 3
    assert "is empty (0 bytes)" in capsys.readouterr().err
    assert main(["init", "--database-url", _url(path)]) == 0
    assert "store ready" in capsys.readouterr().out
    rt = build(Settings(_env_file=None, admin_key=ADMIN_KEY, database_url=_url(path),
                        feed="none"))
    rt.close()  # an initialised store starts


def test_the_demo_keeps_its_own_database_and_its_keys(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = make_runtime(in_memory=False, admin_key="")  # the demo makes its admin key up
    try:
        keys = [a["api_key"] for a in first.demo["accounts"]]
        admin = first.demo["admin_key"]
    finally:
        first.close()
    assert (tmp_path / "cfd-demo.sqlite").exists() and not (tmp_path / "cfd.sqlite").exists()
    second = make_runtime(in_memory=False, admin_key="")
    try:
        assert [a["api_key"] for a in second.demo["accounts"]] == keys
        assert second.demo["admin_key"] == admin
    finally:
        second.close()


# ------------------------------------------------------------------ damage before the snapshot
def _edit_payload(path, seq: int, payload: bytes) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE journal SET payload = ? WHERE seq = ?", (payload, seq))


def test_damage_before_the_snapshot_stops_start_up(tmp_path) -> None:
    path = tmp_path / "cfd.sqlite"
    _durable(_url(path), 10, snapshot_at=8)
    with sqlite3.connect(path) as db:
        payload = db.execute("SELECT payload FROM journal WHERE seq = 3").fetchone()[0]
    # the deposit of row 3 (amount 3) edited to 9: a valid command, a broken chain
    _edit_payload(path, 3, payload.replace(b", 3,", b", 9,"))
    with pytest.raises(StoreCorrupted) as exc:
        open_durable(_url(path), api=API, freeze_gc=False)
    assert exc.value.seq == 3


def test_a_rewritten_journal_does_not_match_its_snapshot(tmp_path) -> None:
    path = tmp_path / "cfd.sqlite"
    _durable(_url(path), 6, snapshot_at=4)
    other = tmp_path / "other.sqlite"
    _durable(_url(other), 3)  # another journal: 3 rows, other payloads after
    d = open_durable(_url(other), api=API, snapshot_every=None, freeze_gc=False)
    d.submit([c for c in _commands(3, start=10)])
    d.close()
    # graft the snapshot of the first store onto the second journal (same length, 6 rows)
    with sqlite3.connect(other) as db:
        db.execute("ATTACH ? AS a", (str(path),))
        db.execute("INSERT INTO snapshots SELECT * FROM a.snapshots")
        db.execute("INSERT INTO snapshot_chunks SELECT * FROM a.snapshot_chunks")
    with pytest.raises(StoreCorrupted) as exc:
        open_durable(_url(other), api=API, freeze_gc=False)
    assert exc.value.seq == 4 and "chain hash the snapshot recorded" in str(exc.value)


# ------------------------------------------------------------------ a lost -wal
def test_a_journal_shorter_than_acknowledged_is_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "cfd.sqlite"
    _durable(_url(path), 2)  # closed: seqs 1-2 checkpointed into the file
    # the store's checkpointer thread not woken: what follows stays in the -wal, as it
    # does between a commit and its checkpoint
    monkeypatch.setattr(checkpoint.Checkpointer, "poke", lambda self: None)
    d = open_durable(_url(path), api=API, snapshot_every=None, freeze_gc=False)
    d.submit(_commands(3, start=2))  # seqs 3-5 acknowledged, still in cfd.sqlite-wal
    shutil.copy(path, tmp_path / "before.sqlite")  # the file as a crash would leave it
    d.close()
    shutil.copy(tmp_path / "before.sqlite", path)  # ... and the -wal deleted
    for extra in ("-wal", "-shm"):
        (tmp_path / f"cfd.sqlite{extra}").unlink(missing_ok=True)
    with pytest.raises(StoreCorrupted) as exc:
        open_durable(_url(path), api=API, freeze_gc=False)
    assert "ends at seq 2, but seq 5 was acknowledged" in str(exc.value)


# ------------------------------------------------------------------ one line each
def _bad_store(kind: str, path) -> None:
    _durable(_url(path), 3)
    if kind == "truncated":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    elif kind == "no revision row":
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM alembic_version")
    elif kind == "unknown revision":
        with sqlite3.connect(path) as db:
            db.execute("UPDATE alembic_version SET version_num = '9f3e_future'")


@pytest.mark.parametrize("kind,words", [
    ("truncated", "is cut short"),
    ("no revision row", "alembic_version row is missing"),
    ("unknown revision", "revision '9f3e_future', which this code does not know"),
])
def test_damaged_stores_get_one_line(tmp_path, monkeypatch, capsys, kind, words) -> None:
    monkeypatch.setenv("CFD_ADMIN_KEY", ADMIN_KEY)
    path = tmp_path / "cfd.sqlite"
    _bad_store(kind, path)
    code = main(["--database-url", _url(path), "--port", str(free_port()), "--feed", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("url,words", [
    ("not a url", "is not a database URL"),
    ("nosuchdb://host/db", "no SQLAlchemy dialect"),
    ("mysql://host/db", "driver is not installed"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/nodb", "cannot read"),
])
def test_bad_urls_get_one_line(tmp_path, monkeypatch, capsys, url, words) -> None:
    monkeypatch.setenv("CFD_ADMIN_KEY", ADMIN_KEY)
    code = main(["--database-url", url, "--port", str(free_port()), "--feed", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and words in err, err


def test_a_busy_port_is_refused_before_the_database_is_made(tmp_path, monkeypatch,
                                                            capsys) -> None:
    monkeypatch.setenv("CFD_ADMIN_KEY", ADMIN_KEY)
    path = tmp_path / "new.sqlite"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["--init", "--database-url", _url(path), "--port", str(port),
                     "--feed", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 4 and f"cannot listen on 127.0.0.1:{port}" in err
    assert not path.exists()


# ------------------------------------------------------------------ a consistent read
def test_a_pinned_reader_is_consistent_beside_a_writer(tmp_path, monkeypatch) -> None:
    url = _url(tmp_path / "cfd.sqlite")
    _durable(url, 6, snapshot_at=4)
    writer = DurableEngine(Store.open(url), recover(Store.open(url, read_only=True), API),
                           api=API)
    reader = Store.open(url, read_only=True)
    try:
        head = reader.pin()
        monkeypatch.setattr("cfd.store.store._READ_PAGE", 2)  # several pages per read
        rows = reader.journal_rows(0)
        first = [next(rows), next(rows)]
        writer.submit(_commands(5, start=6))  # the running server goes on meanwhile
        writer.snapshot_now()
        assert [r[0] for r in first + list(rows)] == [1, 2, 3, 4, 5, 6]
        engine = recover(reader, API)  # the latest snapshot at or before the pin, + replay
        replayed = verify_replay(reader, API)
        assert replayed["state_hash"] == engine.state_hash() and head[0] == 6
        assert reader.verify()["journal_rows"] == 6
    finally:
        reader.close()
        writer.close()


def test_risk_verify_beside_a_running_writer(tmp_path) -> None:
    from typer.testing import CliRunner

    from risk.__main__ import app

    url = _url(tmp_path / "cfd.sqlite")
    rt = make_runtime(in_memory=False, database_url=url, snapshot_every=50)
    stop = threading.Event()

    def trade() -> None:  # deposits of 0.01 USDT, as fast as the writer takes them
        login = rt.demo["accounts"][0]["login"]
        while not stop.is_set():
            rt.service.call_sync(C.Deposit(time_msc=0, actor="test", login=login, amount=1,
                                           comment="x"))

    try:
        t = threading.Thread(target=trade)
        t.start()
        try:
            out = CliRunner().invoke(app, ["--db", url, "verify", "--json"])
        finally:
            stop.set()
            t.join()
        assert out.exit_code == 0, out.output
    finally:
        rt.close()


@pytest.mark.postgres
def test_an_empty_postgresql_database_is_refused_unless_created(tmp_path) -> None:
    from cfd.store.startup import StoreMissing, preflight
    from tests.store_fixtures import _pg_url, pg_schema_url

    base = _pg_url()
    if base is None:
        pytest.skip("CFD_TEST_DATABASE_URL not set")
    from sqlalchemy import create_engine, text

    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text('CREATE SCHEMA "t_edges_empty"'))
    try:
        url = pg_schema_url(base, "t_edges_empty")
        with pytest.raises(StoreMissing, match="holds no store"):
            preflight(url, create=False)
        assert preflight(url, create=True) == url
        Store.open(url).close()
        assert preflight(url, create=False) == url  # initialised: accepted
    finally:
        with admin.begin() as conn:
            conn.execute(text('DROP SCHEMA "t_edges_empty" CASCADE'))
        admin.dispose()
