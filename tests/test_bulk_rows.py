"""Rows built as columns (``cfd.bulk_rows``, ``Effects.blocks``) are the rows the engine
builds one at a time, and the store's query tables hold the same rows either way."""

from __future__ import annotations

import datetime
import json
from enum import IntEnum

import numpy as np
import pytest
from sqlalchemy import text

from benchmarks.book import BookSpec, build, shock
from cfd import bulk_rows
from cfd.effects import Block, Effects
from cfd.jsontext import fast_text
from cfd.store import JournalEntry, Store, writes
from cfd.store import models as m
from cfd.trading import stopout
from tests.store_fixtures import entry, store_url  # noqa: F401 - store_url: a fixture

SPEC = BookSpec(positions=3_000, accounts=300, symbols=20, long_frac=0.7, seed=5)
TABLES = {"deals": "ticket", "orders": "ticket", "postings": "id", "accounts": "login",
          "events": "id"}


def crashed():
    """A small book after a -30% crash and its bulk stop-outs."""
    eng = build(SPEC)
    eng.take_effects()
    syms, ob, oa = shock(eng, 0.7)
    eng.incremental(syms, ob, oa)
    todo = stopout.needing_sweep(eng, np.arange(len(eng.accounts)))
    booked = stopout.bulk_close(eng, stopout.run_kernel(eng, todo), np.arange(len(todo)))
    assert booked.deals[1] - booked.deals[0] > 100  # the crash did book something
    return eng, booked


def test_blocks_hold_the_rows_built_one_at_a_time() -> None:
    eng, b = crashed()
    logins = eng.accounts.cols.login
    assert list(bulk_rows.deals(eng, *b.deals).rows()) == [
        eng.deal_row(i) for i in range(*b.deals)]
    assert list(bulk_rows.orders(eng, *b.orders).rows()) == [
        eng.order_row(i) for i in range(*b.orders)]
    assert list(bulk_rows.postings(eng, *b.postings).rows()) == [
        eng.ledger.row(i, logins) for i in range(*b.postings)]
    assert list(bulk_rows.accounts(eng, b.accs).rows()) == [
        eng.account_row(a) for a in b.accs.tolist()]


def test_newer_dict_rows_win_over_blocks_and_blocks_over_older_ones() -> None:
    eff = Effects()
    eff.accounts[1] = {"login": 1, "balance": 10}
    eff.accounts[2] = {"login": 2, "balance": 20}
    eff.add_block("accounts", Block(2, {"login": np.array([1, 3]), "balance": [11, 31]}))
    assert 1 not in eff.accounts  # the block's row replaced the older dict row
    eff.accounts[3] = {"login": 3, "balance": 32}  # newer than the block's
    assert eff.table_rows("accounts") == {1: {"login": 1, "balance": 11},
                                          2: {"login": 2, "balance": 20},
                                          3: {"login": 3, "balance": 32}}
    with pytest.raises(ValueError, match="no block rows"):
        eff.add_block("positions", Block(1, {"ticket": [1]}))


def _dump(url: str) -> dict[str, list[tuple]]:
    st = Store.open(url, read_only=True)
    try:
        with st.engine.connect() as conn:
            out = {}
            for t, k in TABLES.items():  # the models' column order on every database
                cols = ", ".join(f'"{c.name}"' for c in m.Base.metadata.tables[t].columns)
                out[t] = [tuple(r) for r in conn.execute(text(
                    f"SELECT {cols} FROM {t} ORDER BY {k}"))]
    finally:
        st.close()
    # events.data: JSON text on SQLite, parsed by the driver on PostgreSQL
    out["events"] = [(*r[:-1], json.loads(r[-1]) if isinstance(r[-1], str) else r[-1])
                     for r in out["events"]]
    return out


def _durable(url: str, as_blocks: bool) -> dict[str, list[tuple]]:
    """The crash's effects written by the store, as columns or as a dict per row, after
    query tables holding the book (its accounts, written as columns)."""
    eng, booked = crashed()
    st = Store.open(url)
    try:
        with st.engine.begin() as conn:
            writes.ACCOUNTS.insert_block(
                conn, bulk_rows.accounts(eng, np.arange(len(eng.accounts))))
        if as_blocks:
            stopout.emit_effects(eng, booked)
            eff = eng.take_effects()
            assert eff.blocks and not eff.deals
        else:
            eff = Effects()
            eff.events.extend(booked.events)
            logins = eng.accounts.cols.login
            eff.deals.extend(eng.deal_row(i) for i in range(*booked.deals))
            eff.postings.extend(eng.ledger.row(i, logins) for i in range(*booked.postings))
            for i in range(*booked.orders):
                eff.orders[int(eng.orders.cols.ticket[i])] = eng.order_row(i)
            for a in booked.accs.tolist():
                eff.accounts[int(logins[a])] = eng.account_row(a)
        st.append_batch([JournalEntry(kind="Ticks", payload=b"-", time_msc=eng.now_msc)], eff)
    finally:
        st.close()
    return _dump(url)


def test_the_store_holds_the_same_rows_either_way(store_url: str, tmp_path,  # noqa: F811
                                                  monkeypatch) -> None:
    monkeypatch.setattr(writes, "_STAGE_ROWS", 10)  # PostgreSQL: staged by COPY
    as_blocks = _durable(store_url, True)
    as_dicts = _durable(f"sqlite:///{tmp_path / 'dicts.sqlite'}", False)
    assert len(as_blocks["deals"]) > 100 and len(as_blocks["events"]) > 10
    assert as_blocks == as_dicts


def _typed_rows(url: str, table: str, key: str) -> list[tuple]:
    st = Store.open(url, read_only=True)
    try:
        with st.engine.connect() as conn:
            names = [c.name for c in m.Base.metadata.tables[table].columns]
            sel = ", ".join(f'"{c}", typeof("{c}")' for c in names)
            return [tuple(r) for r in conn.execute(text(
                f"SELECT {sel} FROM {table} ORDER BY {key}"))]
    finally:
        st.close()


def test_constant_columns_written_inline_store_what_binding_does(tmp_path,
                                                                  monkeypatch) -> None:
    """SQLite writes a column with one value in every row as a literal: the stored values
    and their types are those the bound rows give (text with a quote, NULL, an int at the
    edge of int64, floats stay bound)."""
    n = 300
    deals = Block(n, {"ticket": np.arange(1, n + 1), "order": np.full(n, 7),
                      "login": np.full(n, (1 << 63) - 1), "symbol": "O'Neil",
                      "time_msc": np.full(n, -5), "type": np.arange(n) % 2,
                      "comment": ["it's"] * n, "external_id": None, "volume": [3] * n,
                      "commission": 0, "swap": np.zeros(n, np.int32), "profit": [1] * n,
                      "fee": np.int64(0).item()})
    accounts = Block(n, {"login": np.arange(1, n + 1), "name": [""] * n,
                         "group": ["g"] * (n - 1) + [None], "margin_so_call": np.full(n, 0.1),
                         "margin_so_so": 50.0, "balance": np.full(n, 10), "credit": 0,
                         "leverage": np.full(n, 5, np.uint32)})
    got = {}
    bound = writes.FastTable.bound
    calls = []
    monkeypatch.setattr(writes.FastTable, "bound",
                        lambda self, *a: calls.append(self.table.name) or bound(self, *a))
    for limit in (1, 10 ** 9):
        monkeypatch.setattr(writes, "_INLINE_ROWS", limit)
        url = f"sqlite:///{tmp_path / f'inline{limit}.sqlite'}"
        eff = Effects()
        eff.add_block("deals", deals)
        eff.add_block("accounts", accounts)
        st = Store.open(url)
        try:
            st.append_batch([JournalEntry(kind="Ticks", payload=b"-", time_msc=1)], eff)
        finally:
            st.close()
        got[limit] = (_typed_rows(url, "deals", "ticket"),
                      _typed_rows(url, "accounts", "login"))
    assert sorted(calls) == ["accounts", "deals"]  # inline once, bound once
    assert got[1] == got[10 ** 9]
    assert got[1][0][0][:8] == (1, "integer", 7, "integer", (1 << 63) - 1, "integer",
                                "O'Neil", "text")


def test_order_blocks_upsert_after_new_rows_went_in(store_url: str,  # noqa: F811
                                                    monkeypatch) -> None:
    """Many orders as columns: brand-new tickets go in (PostgreSQL: by COPY once every
    ticket is past the table's last), then a block that also updates stored tickets
    updates them (and inserts the rest)."""
    monkeypatch.setattr(writes, "_STAGE_ROWS", 10)
    monkeypatch.setattr(writes, "_INLINE_ROWS", 10)
    first = {"login": np.full(50, 1001), "symbol": "AAPL", "time_setup_msc": np.full(50, 5),
             "type": np.zeros(50, np.int64), "state": np.full(50, 1),
             "volume_initial": np.full(50, 100), "volume_current": np.full(50, 100)}
    st = Store.open(store_url)
    try:
        for i, (tickets, state) in enumerate(((np.arange(100, 150), 1),
                                              (np.arange(125, 175), 4))):
            eff = Effects()
            eff.add_block("orders", Block(50, {**first, "ticket": tickets,
                                               "state": np.full(50, state)}))
            st.append_batch([entry(i)], eff)
        with st.engine.connect() as conn:
            rows = conn.execute(text("SELECT ticket, state FROM orders ORDER BY ticket")).all()
    finally:
        st.close()
    assert [tuple(r) for r in rows] == [(t, 1) for t in range(100, 125)] + [
        (t, 4) for t in range(125, 175)]


def test_event_json_is_the_encoders_text() -> None:
    events = [{"kind": "stop_out", "login": 7, "margin_level": 31.25, "equity": -5,
               "debt": float("inf")},
              {"kind": "admin", "note": "naïve \"quoted\"\n", "arr": [1.5, 2],
               "n": np.int64(4), "x": np.float64(0.1), "nested": {"a": [1, None, True]},
               "raw": b"\x01\xff"}]
    events += [{"kind": "margin_call", "login": 3, "margin_level": 43.36573587040587,
                "equity": 808.2079999999996, "remaining": 5},  # orjson's text, the same
               {"kind": "k", "small": 1e-05, "big": 1e16, "neg": -2.5e-300},  # exponents
               {"kind": "k", "nan": float("nan"), "none": None, "t": False},
               {"kind": "k", "code": IntEnum("Code", "A B")(2), 1: "int key"},
               {"kind": "k", "date": datetime.date(2026, 12, 2), "big": 2**70}]
    for e in events:
        try:
            want = writes._JSON.encode(e)
        except TypeError:  # (a date: neither writes it)
            with pytest.raises(TypeError):
                writes._event_json(e)
            continue
        assert writes._event_json(e) == want
    assert writes._event_json(events[0]) == (
        '{"kind":"stop_out","login":7,"margin_level":31.25,"equity":-5,"debt":Infinity}')


def test_event_json_floats_of_every_magnitude() -> None:
    """orjson's text is taken only where it is json's: floats from 1e-320 to 1e300, of
    both signs, NaN and infinities, each alone and among other fields."""
    rng = np.random.default_rng(7)
    mags = 10.0 ** rng.uniform(-320, 300, 60_000)
    values = [*(mags * rng.choice([-1.0, 1.0], mags.size)).tolist(),
              *np.round(rng.uniform(-1e7, 1e7, 20_000), 2).tolist(),
              0.0, -0.0, 1e-4, 1e-10, 1e16, float("nan"), float("inf"), -float("inf")]
    taken = 0
    for v in values:
        e = {"kind": "stop_out", "login": 1, "margin_level": v, "equity": 808.2079999999996}
        assert writes._event_json(e) == writes._JSON.encode(e), v
        taken += fast_text(e) is not None
    assert taken > 0.9 * len(values)  # (most floats of an event do take the fast path)
