"""SQLite writes big blocks as multi-row ``INSERT ... VALUES`` statements, on a writer
thread inside the batch's transaction: the same rows (values and types) as binding them
row by row (``executemany``), and a failure anywhere in the batch stores nothing of it."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from cfd.effects import Block, Effects
from cfd.store import Store, writes
from cfd.store import models as m
from tests.store_fixtures import entry

N = 40
BIG = (1 << 63) - 1
SMALL = -(1 << 63)


def _deals(first: int, n: int = N) -> Block:
    i = np.arange(n)
    return Block(n, {
        "ticket": np.arange(first, first + n), "order": np.where(i % 3 == 0, 0, i + 7),
        "login": np.where(i % 2 == 0, BIG, SMALL), "symbol": np.array(
            [f"S{k % 4}" for k in range(n)], dtype=object),
        "time_msc": np.full(n, 1_700_000_000_000) + i, "type": (i % 2).astype(np.int8),
        "entry": np.ones(n, np.int8), "magic": 0, "position_id": (i * 7919) % 101 - 50,
        "reason": np.full(n, 3, np.uint8), "volume": [int(k) * 10 for k in range(n)],
        "price": np.arange(n, dtype=np.uint32) * 1_000_003, "commission": -i,
        "swap": np.zeros(n, np.int64), "profit": np.where(i % 5 == 0, SMALL + 1, BIG - i),
        "fee": 0, "comment": ["" if k % 4 == 0 else f"it's #{k}" for k in range(n)],
        "external_id": ""})


def _orders(tickets: np.ndarray, state: int) -> Block:
    n = len(tickets)
    return Block(n, {
        "ticket": tickets, "login": np.full(n, 1001), "symbol": ["AAPL", "O'Neil"] * (n // 2),
        "time_setup_msc": tickets * 10, "time_done_msc": tickets * 10 + 1,
        "time_expiration": 0, "type": np.zeros(n, np.int8), "type_time": 0,
        "type_filling": 0, "state": np.full(n, state), "magic": 0,
        "position_id": tickets + 5, "position_by_id": 0, "reason": 3,
        "volume_initial": np.full(n, 100), "volume_current": np.zeros(n, np.int64),
        "price_open": tickets * 3, "sl": 0, "tp": 0, "price_current": tickets * 3,
        "price_stoplimit": 0, "comment": [f"so {t}" for t in tickets.tolist()],
        "external_id": None})


def _postings(first: int, n: int = N) -> Block:
    login = np.array([None if k % 3 == 0 else 1000 + k for k in range(n)], dtype=object)
    deal = np.array([None if k % 4 == 1 else 500 + k for k in range(n)], dtype=object)
    return Block(n, {
        "id": np.arange(first, first + n), "time_msc": np.full(n, 5),
        "src": np.array([f"client:{1000 + k}" for k in range(n)], dtype=object),
        "dst": np.array(["broker_pl"] * n, dtype=object), "amount": np.arange(1, n + 1),
        "kind": np.array(["profit", "commission"] * (n // 2), dtype=object),
        "login": login, "deal": deal,
        "comment": [None if k % 5 == 0 else "" if k % 5 == 1 else "x" for k in range(n)]})


def _accounts(n: int = N) -> Block:
    so = [0.1 + 0.2, 1e-300, 123456789.123, 5e22, 50.0, 2.0 ** 60]
    return Block(n, {"login": np.arange(1000, 1000 + n), "name": [f"n{k}" for k in range(n)],
                     "group": ["real"] * n, "leverage": np.full(n, 100, np.int32),
                     "margin_so_call": np.full(n, 50.5),
                     "margin_so_so": np.array([so[k % len(so)] for k in range(n)]),
                     "balance": np.arange(n) - 7, "credit": 0, "currency": "USD",
                     "updated_msc": 9})


def _events(n: int = N) -> list[dict]:
    return [{"kind": "stop_out", "login": 1000 + k, "time_msc": None if k == 3 else k,
             "margin_level": k / 3, "equity": -k * 1.5, "note": "naïve \"q\"",
             **({"compensation": k} if k % 2 else {})} for k in range(n)]


def _batch(deal0: int, orders: Block, events: bool = True) -> Effects:
    eff = Effects()
    eff.add_block("orders", orders)
    eff.add_block("deals", _deals(deal0))
    eff.add_block("postings", _postings(deal0))
    eff.add_block("accounts", _accounts())
    if events:
        eff.events.extend(_events())
    return eff


def _dump(url: str) -> dict[str, list[tuple]]:
    st = Store.open(url, read_only=True)
    try:
        with st.engine.connect() as conn:
            out = {}
            for table, key in (("deals", "ticket"), ("orders", "ticket"), ("postings", "id"),
                               ("accounts", "login"), ("events", "id")):
                names = [c.name for c in m.Base.metadata.tables[table].columns]
                sel = ", ".join(f'"{c}", typeof("{c}")' for c in names)
                out[table] = [tuple(r) for r in conn.execute(text(
                    f"SELECT {sel} FROM {table} ORDER BY {key}"))]
            return out
    finally:
        st.close()


def _write(url: str, batches: list[Effects]) -> None:
    st = Store.open(url)
    try:
        for i, eff in enumerate(batches):
            st.append_batch([entry(i)], eff)
    finally:
        st.close()


def _batches() -> list[Effects]:
    # the second batch's orders update half of the first's and add new ones
    return [_batch(1, _orders(np.arange(100, 100 + N), 1)),
            _batch(1 + N, _orders(np.arange(100 + N // 2, 100 + N // 2 + N), 4))]


def test_multi_row_statements_store_what_bound_rows_do(tmp_path, monkeypatch) -> None:
    statements = []
    submit = writes._Pipe.submit
    monkeypatch.setattr(writes._Pipe, "submit",
                        lambda self, sql, p: statements.append(sql.split()[2])
                        or submit(self, sql, p))
    got = {}
    monkeypatch.setattr(writes, "_BULK_CHUNK", 15)  # three statements a table
    for limit in (10, 10 ** 9):  # (the second: 40 rows a block, row by row)
        monkeypatch.setattr(writes, "_BULK_ROWS", limit)
        url = f"sqlite:///{tmp_path / f'bulk{limit}.sqlite'}"
        _write(url, _batches())
        got[limit] = _dump(url)
    assert statements == [t for t in ("accounts", "orders", "deals", "postings", "events")
                          for _ in range(3)] * 2
    assert got[10] == got[10 ** 9]
    rows = got[10]
    assert len(rows["orders"]) == N + N // 2 and len(rows["events"]) == 2 * N
    assert rows["deals"][0][4:6] == (BIG, "integer")
    assert rows["deals"][1][4:6] == (SMALL, "integer")
    assert rows["deals"][0][32:34] == ("", "text")  # empty text stays text, not NULL
    assert rows["postings"][0][12:14] == (None, "null")  # NULL login
    assert rows["postings"][0][16:18] == (None, "null")  # NULL comment


def test_values_of_any_kind_store_as_bound_and_statements_keep_to_the_bind_limit(
        tmp_path, monkeypatch) -> None:
    """Text beyond ASCII, quotes, many distinct floats, NaN, -0.0 and the int64 limits
    store what binding row by row stores; a statement binds no more values than the
    connection allows (here 100: 8 rows of 12 bound deal columns)."""
    def batch() -> Effects:
        eff = _batch(1, _orders(np.arange(100, 100 + N), 1))
        eff.blocks["deals"][0].cols["comment"] = [f"naïve {k} 'q'" for k in range(N)]
        acc = eff.blocks["accounts"][0]
        acc.cols["margin_so_so"] = np.arange(N) / 7
        acc.cols["margin_so_call"] = np.array([float("nan"), -0.0, 1e308, 5e-324] * (N // 4))
        eff.events[-5]["kind"] = "stop_out_é"
        return eff

    sizes = []
    submit = writes._Pipe.submit
    monkeypatch.setattr(writes._Pipe, "submit",
                        lambda self, sql, p: sizes.append((sql.split()[2], len(p)))
                        or submit(self, sql, p))
    monkeypatch.setattr(writes, "_bind_limit", lambda conn: 100)
    got = {}
    for limit in (10, 10 ** 9):
        monkeypatch.setattr(writes, "_BULK_ROWS", limit)
        url = f"sqlite:///{tmp_path / f'kinds{limit}.sqlite'}"
        _write(url, [batch()])
        got[limit] = _dump(url)
    assert got[10] == got[10 ** 9]
    assert [r[32] for r in got[10]["deals"]] == [f"naïve {k} 'q'" for k in range(N)]
    assert [r[6] for r in got[10]["events"]][-5] == "stop_out_é"
    assert max(n for _, n in sizes) <= 100
    assert [n for t, n in sizes if t == "deals"] == [96] * 5  # 8 rows of 12 values


@pytest.mark.parametrize("where", ["worker", "caller"])
def test_a_failure_mid_batch_stores_nothing_of_it(tmp_path, monkeypatch, where) -> None:
    """The orders' statement ran on the worker, then the batch fails (a deal ticket
    already stored: the worker's statement fails; or a bad column while the caller packs
    the next table): nothing of the batch is stored, and the next batch goes in."""
    monkeypatch.setattr(writes, "_BULK_ROWS", 10)
    url = f"sqlite:///{tmp_path / 'fail.sqlite'}"
    _write(url, [_batch(1, _orders(np.arange(100, 100 + N), 1))])
    before = _dump(url)
    st = Store.open(url)
    try:
        bad = _batch(1 + N, _orders(np.arange(100 + N // 2, 100 + N // 2 + N), 4))
        if where == "worker":
            bad.blocks["deals"][0].cols["ticket"][-1] = 1  # stored by the first batch
            error: type[Exception] = Exception
        else:
            bad.blocks["postings"][0].cols["amount"] = np.arange(N - 1)
            error = ValueError
        with pytest.raises(error):
            st.append_batch([entry(1)], bad)
        assert st.head_seq == 1
        assert _dump(url) == before
        st.append_batch([entry(1)], _batch(1 + N, _orders(np.arange(500, 500 + N), 4)))
    finally:
        st.close()
    after = _dump(url)
    assert len(after["deals"]) == 2 * N and len(after["orders"]) == 2 * N


def test_a_connection_kept_to_its_thread_writes_big_blocks_itself(tmp_path,
                                                                    monkeypatch) -> None:
    """``check_same_thread``: the multi-row statements run on the caller's thread."""
    monkeypatch.setattr(writes, "_BULK_ROWS", 10)
    urls = [f"sqlite:///{tmp_path / 'shared.sqlite'}",
            f"sqlite:///{tmp_path / 'own.sqlite'}?check_same_thread=true"]
    for url in urls:
        _write(url, _batches())
    assert _dump(urls[0]) == _dump(urls[1])


def test_many_rows_given_one_by_one_store_as_bound(tmp_path, monkeypatch) -> None:
    """A batch's rows given as dicts (the order path), many of them: multi-row statements
    store what binding each row stores, and an order upserted twice keeps its last row."""
    def batch(first: int, orders: Block) -> Effects:
        eff = Effects()
        eff.orders = {r["ticket"]: r for r in orders.rows()}
        eff.deals = list(_deals(first).rows())
        eff.postings = list(_postings(first).rows())
        eff.accounts = {r["login"]: r for r in _accounts().rows()}
        eff.events.extend(_events())
        return eff

    got = {}
    for limit in (10, 10 ** 9):
        monkeypatch.setattr(writes, "_INLINE_ROWS", limit)
        url = f"sqlite:///{tmp_path / f'dicts{limit}.sqlite'}"
        _write(url, [batch(1, _orders(np.arange(100, 100 + N), 1)),
                     batch(1 + N, _orders(np.arange(100 + N // 2, 100 + N // 2 + N), 4))])
        got[limit] = _dump(url)
    assert got[10] == got[10 ** 9]
    assert len(got[10]["orders"]) == N + N // 2 and len(got[10]["events"]) == 2 * N
    assert {r[18] for r in got[10]["orders"][N // 2:N]} == {4}  # updated: state FILLED
