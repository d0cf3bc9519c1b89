"""Staged history rows (cfd.store.staging): a bulk booking's deals, orders and postings
stored as columns with the batch, written into their tables after it, with the same rows
in the end; reads never see them half there; a crash at any point loses nothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from prometheus_client import generate_latest
from sqlalchemy import text

from cfd.effects import Block, Effects
from cfd.store import JournalEntry, Store, staging, writes
from cfd.store import models as m
from cfd.store.errors import StoreBusy, StoreLeaseLost
from cfd.store.runner import DurableEngine
from cfd.trading import stopout
from tests.store_fixtures import store_url  # noqa: F401 - a fixture
from tests.test_bulk_rows import _dump, crashed


def test_columns_come_back_as_they_went() -> None:
    n = 6
    cols = {
        "run": np.arange(100, 106, dtype=np.int64),  # tickets: a run
        "same": np.full(n, 7, dtype=np.int64),  # one value
        "small": np.array([5, -3, 2**31 - 1, -2**31, 0, 9], dtype=np.int64),  # fit 32 bits
        "big": np.array([2**40, -5, 3, 2**63 - 1, -2**63, 0], dtype=np.int64),
        "narrow": np.array([1, 0, 1, 2, 1, 1], dtype=np.int8),
        "u": np.array([1, 2, 3, 5, 8, 13], dtype=np.uint64),
        "f": np.array([0.1, -0.0, np.nan, np.inf, 1e-300, 2.5]),
        "objs": np.array(["client:1", "broker_pl", None, "ä'\"", "", "x"], dtype=object),
        "ints": np.array([1, None, 2**62, -1, 0, 3], dtype=object),
        "texts": ["[so 43.4%]", "", "naïve", "x" * 300, "a", "b"],
        "lit": "USDT",
        "none": None,
        "zero": 0,
    }
    back = staging.decode(staging.encode(Block(n, cols)))
    assert back.n == n and list(back.cols) == list(cols)
    for k, v in cols.items():
        got = back.cols[k]
        if isinstance(v, np.ndarray) and v.dtype != object and k != "same":
            assert got.dtype == v.dtype, k
        assert Block(n, {k: got}).column(k) == [
            x for x in Block(n, {k: v}).column(k)] or k == "f", k
    f = back.cols["f"]
    assert np.array_equal(f, cols["f"], equal_nan=True)
    assert np.signbit(f[1])
    with pytest.raises(ValueError):  # (stage() then writes such a block as rows)
        staging.encode(Block(1, {"odd": [object()]}))
    part = staging.rows_of(back, 2, 5)
    assert part.n == 3 and part.column("run") == [102, 103, 104]
    assert part.column("lit") == ["USDT"] * 3


def _staged_store(url: str, stage_rows: int | None) -> tuple[Store, object, Effects]:
    """A store holding the small book's accounts, and the crash's effects."""
    eng, booked = crashed()
    st = Store.open(url)
    st.stage_rows = stage_rows
    from cfd import bulk_rows

    with st.engine.begin() as conn:
        writes.ACCOUNTS.insert_block(conn, bulk_rows.accounts(eng, np.arange(len(eng.accounts))))
    stopout.emit_effects(eng, booked)
    return st, eng, eng.take_effects()


def _batch(st: Store, eng, eff: Effects) -> None:
    st.append_batch([JournalEntry(kind="Ticks", payload=b"-", time_msc=eng.now_msc)], eff)


def _count(st: Store, table: str) -> int:
    with st.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def staged(tmp_path):
    """A SQLite store staging blocks of 50 rows or more, the engine and the crash's
    effects (closed afterwards)."""
    st, eng, eff = _staged_store(f"sqlite:///{tmp_path / 's.sqlite'}", 50)
    yield st, eng, eff
    st.close()


def test_staged_rows_end_as_the_rows_written_at_once(store_url: str, tmp_path,  # noqa: F811
                                                     monkeypatch) -> None:
    monkeypatch.setattr(staging, "INDEX_ROWS", 100)  # several transactions per block
    st, eng, eff = _staged_store(store_url, 50)
    try:
        _batch(st, eng, eff)
        assert st.staged_pending and _count(st, "staged_rows") == 3
        assert _count(st, "deals") == 0 and _count(st, "events") > 10  # events: at once
        n_orders = sum(b.n for b in eff.blocks["orders"])
        written = st.index_staged(max_rows=150)  # whole transactions, to the ask or past
        assert 150 <= written < 250 and st.staged_pending
        assert _count(st, "orders") + _count(st, "deals") == written
        assert _count(st, "orders") == min(n_orders, written)  # oldest block first
        st.index_staged()
        assert not st.staged_pending and _count(st, "staged_rows") == 0
    finally:
        st.close()
    direct = f"sqlite:///{tmp_path / 'direct.sqlite'}"
    st, eng, eff = _staged_store(direct, None)
    try:
        _batch(st, eng, eff)
        assert not st.staged_pending
    finally:
        st.close()
    staged, at_once = _dump(store_url), _dump(direct)
    assert len(at_once["deals"]) > 100 and staged == at_once


def test_a_crash_before_the_rows_are_written_loses_none(tmp_path, monkeypatch) -> None:
    """The batch committed with its rows staged; the writer stops part-way through
    writing them (here: closed without finishing); the next writer writes the rest."""
    monkeypatch.setattr(staging, "INDEX_ROWS", 100)
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    st, eng, eff = _staged_store(url, 50)
    deals = sum(b.n for b in eff.blocks["deals"])
    _batch(st, eng, eff)
    st.index_staged(max_rows=1)
    st.close()
    ro = Store.open(url, read_only=True)
    monkeypatch.setattr(staging, "WAIT_S", 0.2)
    with pytest.raises(StoreBusy, match="staged_rows"):  # no writer: reads do not guess
        ro.deals_by_ticket(1)
    st = Store.open(url)  # writes the rest before anything else
    try:
        assert not st.staged_pending and _count(st, "staged_rows") == 0
        assert _count(st, "deals") == deals
        with st.engine.connect() as conn:
            dup = conn.execute(text("SELECT count(*) - count(DISTINCT ticket) FROM deals"))
            assert dup.scalar_one() == 0
        assert ro.history_deals(int(eff.blocks["deals"][0].cols["login"][0]), 0, 2**62)
    finally:
        st.close()
        ro.close()


def test_readers_wait_for_staged_rows(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    st, eng, eff = _staged_store(url, 50)
    ro = Store.open(url, read_only=True)
    try:
        login = int(eff.blocks["deals"][0].cols["login"][0])
        n = sum(1 for b in eff.blocks["deals"] for x in b.column("login") if x == login)
        sums0 = ro.ledger_sums()
        _batch(st, eng, eff)
        assert st.staged_pending
        later = threading.Timer(0.3, st.index_staged)
        later.start()
        t0 = time.monotonic()
        got = ro.history_deals(login, 0, 2**62)
        assert time.monotonic() - t0 >= 0.2  # it waited for the writer
        later.join()
        assert len(got) == n
        assert ro.ledger_sums() != sums0 and sum(ro.ledger_sums().values()) == 0
        assert ro.account(login) is not None  # (accounts and events were never staged)
    finally:
        ro.close()
        st.close()


def test_the_writer_reads_its_own_staged_rows_and_orders_stay_in_order(staged) -> None:
    st, eng, eff = staged
    ticket = int(eff.blocks["orders"][0].cols["ticket"][0])
    _batch(st, eng, eff)
    assert st.staged_pending
    (row,) = st.orders_by_ticket(ticket)  # the writer writes them first
    assert not st.staged_pending and row["state"] == 4
    _batch(st, eng, Effects(blocks={"orders": eff.blocks["orders"]}))  # staged again
    assert st.staged_pending
    st.stage_rows = None
    later = Effects()
    later.orders[ticket + 10**6] = {**row, "ticket": ticket + 10**6}  # a new order
    _batch(st, eng, later)
    assert st.staged_pending  # (another ticket: it did not wait for the staged rows)
    newer = Effects()
    newer.orders[ticket] = {**row, "comment": "newer"}
    _batch(st, eng, newer)  # an upsert of a staged order: the staged go in before it
    assert not st.staged_pending
    (row,) = st.orders_by_ticket(ticket)
    assert row["comment"] == "newer"


def test_a_fenced_writer_writes_no_staged_row(staged) -> None:
    st, eng, eff = staged
    _batch(st, eng, eff)
    with st.engine.begin() as conn:  # another writer took the lease
        conn.execute(text("UPDATE store_meta SET lease_owner = 'other' WHERE id = 1"))
    with pytest.raises(StoreLeaseLost):
        st.index_staged()
    assert _count(st, "deals") == 0 and _count(st, "staged_rows") == 3


def test_the_runner_keeps_history_until_the_staged_rows_are_written(tmp_path) -> None:
    """A batch that staged rows leaves the engine's history untrimmed (it may still be
    asked for rows not yet in the tables); written, the history is trimmed."""
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    st, eng, eff = _staged_store(url, 50)
    trims: list = []

    class Book:
        seq = 0

        def apply(self, cmd):
            return None

        def take_effects(self):
            return eff

        def history_marks(self):
            return "marks"

        def trim_history(self, marks, window):
            trims.append(marks)

    durable = DurableEngine(st, Book(), history_window=10)
    try:
        cmd = type("Cmd", (), {"kind": "Ticks", "time_msc": 1, "actor": "",
                               "to_payload": lambda self: b"-"})()
        durable.submit([cmd])
        assert durable.staged_pending and trims == []
        durable.index_staged(max_rows=1)
        assert durable.staged_pending and trims == []
        while durable.staged_pending:
            durable.index_staged()
        assert trims == ["marks"]
        durable.submit([cmd])  # (staged again, the same rows: this time left at close)
        assert durable.staged_pending
        with st.engine.begin() as conn:  # (the first rows gone, so they go in again)
            for t in ("orders", "deals", "postings"):
                conn.execute(text(f"DELETE FROM {t}"))
    finally:
        durable.close()
    ro = Store.open(url, read_only=True)  # a clean close wrote them: no writer needed
    try:
        assert _count(ro, "staged_rows") == 0 and _count(ro, "deals") > 100
    finally:
        ro.close()


def test_the_server_writes_staged_rows_when_idle(tmp_path, monkeypatch) -> None:
    """Through the API: a stop-out booked in bulk is staged (every block here: the
    threshold set to one row), acknowledged, and written into the tables by the writer
    between batches; the history reads return the stop-out's deal."""
    from fastapi.testclient import TestClient

    from tests.test_api_fixtures import headers, make_runtime, push

    rt = make_runtime(in_memory=False, database_url=f"sqlite:///{tmp_path / 'cfd.sqlite'}")
    try:
        rt.service.runner.store.stage_rows = 1
        staged: list[set[str]] = []
        stage = staging.stage
        monkeypatch.setattr(staging, "stage", lambda *a: staged.append(stage(*a)) or staged[-1])
        gauge: list[str] = []  # /metrics' cfd_history_staged each time the writer writes some
        index = rt.service.runner.index_staged

        def index_seen(*a):
            gauge.append(generate_latest(rt.service.metrics.registry).decode())
            return index(*a)
        monkeypatch.setattr(rt.service.runner, "index_staged", index_seen)
        acc = rt.demo["accounts"][0]
        h = headers(acc)
        with TestClient(rt.app) as c:
            push(c, AAPL=(230.00, 230.05))
            info = c.get("/v1/account_info", headers=h).json()
            per_lot = c.get("/v1/order_calc_margin", headers=h, params={
                "action": 0, "symbol": "AAPL", "volume": 1.0, "price": 230.05}).json()
            vol = float(int(info["margin_free"] * 0.95 / per_lot["value"]))
            buy = c.post("/v1/order_send", headers=h, json={
                "action": 1, "symbol": "AAPL", "volume": vol, "type": 0, "price": 230.05,
                "deviation": 20, "type_filling": 2}).json()
            assert buy["retcode"] == 10009, buy
            for bid in range(220, 100, -10):  # (steps within the feed's outlier band)
                push(c, AAPL=(float(bid), bid + 0.05))
            assert c.get("/v1/positions_total", headers=h).json()["total"] == 0
            deadline = time.monotonic() + 10
            while rt.service.runner.staged_pending and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not rt.service.runner.staged_pending
            assert {"deals", "postings"} <= set().union(*staged)
            assert gauge and "cfd_history_staged 1.0" in gauge[0]  # (pending, before)
            assert "cfd_history_staged 0.0" in c.get("/metrics").text
            deals = c.get("/v1/history_deals_get", headers=h,
                          params={"position": buy["order"]}).json()
            assert [d["entry"] for d in deals] == [0, 1]
            assert deals[1]["reason"] == 6 and deals[1]["comment"].startswith("so: ")
    finally:
        rt.close()


def test_orders_are_staged_beside_order_rows_of_other_tickets_only(staged) -> None:
    st, _, eff = staged
    tickets = eff.blocks["orders"][0].column("ticket")
    with st.engine.begin() as conn:
        other = Effects(orders={9_999_999: {"ticket": 9_999_999, "login": 1, "symbol": "X",
                                             "type": 2, "state": 2}},
                        blocks={"orders": eff.blocks["orders"]})
        assert staging.stage(conn, other, 1, 50) == {"orders"}
        same = Effects(orders={tickets[3]: {"ticket": tickets[3], "state": 2}},
                       blocks={"orders": eff.blocks["orders"]})
        assert staging.stage(conn, same, 1, 50) == set()
        b = eff.blocks["deals"][0]
        odd = Block(b.n, {**b.cols, "comment": [object()] * b.n})  # not marshal's
        assert staging.stage(conn, Effects(blocks={"deals": [odd]}), 1, 50) == set()
        conn.rollback()


def test_a_read_that_waits_too_long_is_answered_503(tmp_path, monkeypatch) -> None:
    """A history read through the API while staged rows wait and no writer writes them
    (the writer told not to): 503 with Retry-After, not a 500."""
    from fastapi.testclient import TestClient

    from tests.test_api_fixtures import headers, make_runtime

    rt = make_runtime(in_memory=False, database_url=f"sqlite:///{tmp_path / 'cfd.sqlite'}")
    try:
        monkeypatch.setattr(staging, "WAIT_S", 0.1)
        store = rt.service.runner.store
        with store.engine.begin() as conn:  # a staged block, as a crash would leave one
            conn.execute(m.StagedRows.__table__.insert().values(
                seq=1, table_name="deals", n_rows=1, done_rows=0,
                data=staging.encode(Block(1, {"ticket": np.array([99]), "login": 1}))))
        monkeypatch.setattr(store, "_staged", False)  # (the writer does not know of it)
        with TestClient(rt.app) as c:
            r = c.get("/v1/history_deals_get", headers=headers(rt.demo["accounts"][0]),
                      params={"date_from": 0, "date_to": 2**34})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert "staged_rows" in r.json()["detail"]
    finally:
        rt.close()
