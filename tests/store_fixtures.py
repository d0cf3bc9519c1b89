"""Fixtures and tiny fake rows for the store tests (imported by tests/test_store_*.py).

``store_url`` yields a fresh database for each test: a SQLite file under ``tmp_path``
always, and a fresh PostgreSQL schema when ``CFD_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cfd.effects import Effects
from cfd.store import JournalEntry

PG_ENV = "CFD_TEST_DATABASE_URL"


def _pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def pg_schema_url(base: str, schema: str) -> str:
    """``base`` with ``search_path`` set to ``schema`` for every connection."""
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cfd.sqlite'}"
        return
    base = _pg_url()
    if base is None:
        pytest.skip(f"{PG_ENV} not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def entry(i: int, kind: str = "deposit", actor: str = "admin") -> JournalEntry:
    return JournalEntry(kind=kind, payload=f"payload-{i}".encode(), time_msc=1_000 + i,
                        actor=actor)


def deal(ticket: int, login: int, time_msc: int, *, order: int = 0, position_id: int = 0,
         symbol: str = "AAPL", profit: int = 0) -> dict[str, Any]:
    return {"ticket": ticket, "order": order, "login": login, "symbol": symbol,
            "time_msc": time_msc, "type": 0, "entry": 0, "magic": 0,
            "position_id": position_id, "reason": 0, "volume": 10_000,
            "price": 150_000_000, "commission": -5, "swap": 0, "profit": profit, "fee": 0,
            "comment": "", "external_id": ""}


def order(ticket: int, login: int, time_msc: int, *, state: int = 4, position_id: int = 0,
          symbol: str = "AAPL") -> dict[str, Any]:
    return {"ticket": ticket, "login": login, "symbol": symbol, "time_setup_msc": time_msc,
            "time_done_msc": time_msc, "time_expiration": 0, "type": 0, "type_time": 0,
            "type_filling": 0, "state": state, "magic": 0, "position_id": position_id,
            "position_by_id": 0, "reason": 0, "volume_initial": 10_000,
            "volume_current": 0, "price_open": 150_000_000, "sl": 0, "tp": 0,
            "price_current": 150_000_000, "price_stoplimit": 0, "comment": "",
            "external_id": ""}


def account(login: int, balance: int) -> dict[str, Any]:
    return {"login": login, "name": f"client {login}", "group": "retail", "leverage": 5,
            "margin_mode": 2, "margin_so_mode": 0, "margin_so_call": 100.0,
            "margin_so_so": 50.0, "balance": balance, "credit": 0, "currency": "USDT",
            "trade_mode": 0, "updated_msc": 1_000}


def posting(pid: int, time_msc: int, debit: str, credit: str, amount: int,
            login: int) -> dict[str, Any]:
    return {"id": pid, "time_msc": time_msc, "debit": debit, "credit": credit,
            "amount": amount, "kind": "test", "login": login, "deal": None, "comment": ""}


def effects(**fields: Any) -> Effects:
    return Effects(**fields)
