"""Query side: effects written by append_batch come back through the history queries."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import inspect

from cfd.effects import Effects
from cfd.store import Store
from cfd.store.queries import symbol_in_group
from tests import store_fixtures
from tests.store_fixtures import account, deal, entry, order, posting

store_url = store_fixtures.store_url


@pytest.fixture
def store(store_url: str):
    s = Store.open(store_url)
    yield s
    s.close()


def test_symbol_in_group() -> None:
    assert symbol_in_group("AAPL", None)
    assert symbol_in_group("AAPL", "*")
    assert symbol_in_group("AAPL", "AA*")
    assert not symbol_in_group("MSFT", "AA*")
    assert not symbol_in_group("AAPL", "*,!AAPL")
    assert symbol_in_group("MSFT", "*,!AAPL")
    assert symbol_in_group("MSFT", "!AAPL")  # only exclusions: the rest is in
    assert symbol_in_group("TSLA", "AA*, TS*")
    assert not symbol_in_group("AAPL", "!AAPL")  # a leading exclusion starts from everything
    assert symbol_in_group("AAPL", "!*A*,*")  # in order: the later * re-includes
    assert not symbol_in_group("NVDA", "*,!*A*")
    assert symbol_in_group("aapl", "AA*")  # case-insensitive, as MT5


def test_one_group_filter_for_the_api_and_the_store() -> None:
    from api import records

    assert records.in_group is symbol_in_group


def test_accounts_upsert_and_numpy_values(store: Store) -> None:
    store.append_batch([entry(0)], Effects(accounts={1001: account(1001, 100_00)}))
    row = account(1001, 250_00)
    row["balance"] = np.int64(250_00)  # engines hand over numpy scalars
    row["extra_key"] = "ignored"
    store.append_batch([entry(1)], Effects(accounts={1001: row}))
    got = store.account(1001)
    assert got["balance"] == 250_00 and type(got["balance"]) is int
    assert got["group"] == "retail"
    assert store.account(9999) is None


def test_open_positions_have_no_table(store: Store) -> None:
    """The engine answers for open positions (it collects no rows of them); the store
    keeps the history tables only."""
    store.append_batch([entry(0)], Effects(deals=[deal(1, 1001, 1_000, position_id=11)]))
    assert store.head_seq == 1
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert "positions" not in tables and "deals" in tables


def test_orders_history_and_open(store: Store) -> None:
    orders = {
        1: order(1, 1001, 1_000, state=4, position_id=11),   # filled
        2: order(2, 1001, 2_000, state=1),                    # placed: active
        3: order(3, 1001, 3_000, state=2, symbol="TSLA"),    # canceled
        4: order(4, 1002, 1_500, state=4),                    # other login
    }
    store.append_batch([entry(0)], Effects(orders=orders))
    assert [o["ticket"] for o in store.history_orders(1001, 0, 10_000)] == [1, 3]
    assert [o["ticket"] for o in store.history_orders(1001, 0, 10_000, "AA*")] == [1]
    assert [o["ticket"] for o in store.history_orders(1001, 1_000, 1_000)] == [1]  # inclusive
    assert [o["ticket"] for o in store.open_orders(1001)] == [2]
    assert [o["ticket"] for o in store.orders_by_position(11)] == [1]
    assert store.orders_by_ticket(2) == []  # still active: not history
    # the pending order fills: it leaves the open list and joins history
    filled = order(2, 1001, 2_000, state=4, position_id=12)
    store.append_batch([entry(1)], Effects(orders={2: filled}))
    assert store.open_orders(1001) == []
    assert store.orders_by_ticket(2)[0]["position_id"] == 12


def test_deals_by_time_order_position(store: Store) -> None:
    deals = [deal(100 + i, 1001, 1_000 * (i + 1), order=i // 2 + 1, position_id=11 + i % 2)
             for i in range(6)]
    deals.append(deal(200, 1002, 1_500, symbol="TSLA"))
    store.append_batch([entry(0)], Effects(deals=deals))
    # deals at 1000, 2000, ..., 6000 ms; the range [2000, 4000] holds three of them
    assert [d["ticket"] for d in store.history_deals(1001, 2_000, 4_000)] == [101, 102, 103]
    assert [d["ticket"] for d in store.history_deals(1001, 0, 10_000, "TSLA")] == []
    assert [d["ticket"] for d in store.deals_by_order(2)] == [102, 103]
    assert [d["ticket"] for d in store.deals_by_position(12)] == [101, 103, 105]
    (d,) = store.deals_by_ticket(104)
    assert d["commission"] == -5 and d["price"] == 150_000_000


def test_ledger_statement(store: Store) -> None:
    p = [
        posting(1, 1_000, "external_cash", "client:1001", 1_000_00, 1001),  # deposit
        posting(2, 2_000, "client:1001", "broker_pl", 250_00, 1001),         # loss
        posting(3, 3_000, "broker_pl", "client:1001", 100_00, 1001),         # profit
        posting(4, 4_000, "client:1001", "external_cash", 50_00, 1001),      # withdrawal
        posting(5, 2_500, "external_cash", "client:1002", 7_00, 1002),       # other client
    ]
    store.append_batch([entry(0)], Effects(postings=p))
    st = store.ledger_statement(1001, 2_000, 3_000)
    assert st["opening_balance"] == 1_000_00
    assert [r["id"] for r in st["postings"]] == [2, 3]
    assert [r["change"] for r in st["postings"]] == [-250_00, 100_00]
    # 1,000.00 - 250.00 + 100.00 = 850.00 USDT
    assert st["closing_balance"] == 850_00
    full = store.ledger_statement(1001, 0, 10_000)
    # 1,000.00 - 250.00 + 100.00 - 50.00 = 800.00 USDT
    assert full["opening_balance"] == 0 and full["closing_balance"] == 800_00


def test_symbols_and_events(store: Store) -> None:
    spec = {"name": "AAPL", "digits": 2, "contract_size": np.int64(1)}
    events = [{"kind": "margin_call", "login": 1001, "time_msc": 5, "margin_level": 80.5}]
    store.append_batch([entry(0), entry(1)], Effects(symbols={"AAPL": spec}, events=events))
    assert store.symbols() == {"AAPL": {"name": "AAPL", "digits": 2, "contract_size": 1}}
    (ev,) = store.events(login=1001)
    assert ev["seq"] == 2 and ev["kind"] == "margin_call" and ev["data"]["margin_level"] == 80.5
