"""The query side: history, open orders, ledger statements.

All served from the query tables, as plain dict rows (the API turns them into MT5 records).
Time ranges are inclusive at both ends, in milliseconds, as MT5's ``*_get(date_from,
date_to)`` calls select.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from cfd.constants import DealEntry, OrderState
from cfd.instruments.groups import symbol_in_group
from cfd.store import models as m

__all__ = ["symbol_in_group"]  # (re-exported: the filter lives in cfd.instruments.groups)

Row = dict[str, Any]

#: Order states of an order still working (MT5's "current orders").
ACTIVE_ORDER_STATES = (
    OrderState.STARTED, OrderState.PLACED, OrderState.PARTIAL, OrderState.REQUEST_ADD,
    OrderState.REQUEST_MODIFY, OrderState.REQUEST_CANCEL,
)
_ACTIVE = [int(s) for s in ACTIVE_ORDER_STATES]


def _rows(conn: Connection, stmt: Select[Any], group: str | None = None) -> list[Row]:
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    if group:
        rows = [r for r in rows if symbol_in_group(r["symbol"] or "", group)]
    return rows


def history_deals(conn: Connection, login: int, date_from_msc: int, date_to_msc: int,
                  group: str | None = None) -> list[Row]:
    t = m.Deal.__table__
    stmt = (select(t).where(t.c.login == login, t.c.time_msc >= date_from_msc,
                            t.c.time_msc <= date_to_msc)
            .order_by(t.c.time_msc, t.c.ticket))
    return _rows(conn, stmt, group)


def latest_deals(conn: Connection, login: int, limit: int) -> list[Row]:
    """The last ``limit`` deals of ``login``, oldest first (the login-time index backwards)."""
    t = m.Deal.__table__
    stmt = (select(t).where(t.c.login == login)
            .order_by(t.c.time_msc.desc(), t.c.ticket.desc()).limit(limit))
    return _rows(conn, stmt)[::-1]


def deals_by_ticket(conn: Connection, ticket: int) -> list[Row]:
    t = m.Deal.__table__
    return _rows(conn, select(t).where(t.c.ticket == ticket))


def deals_by_order(conn: Connection, order: int) -> list[Row]:
    t = m.Deal.__table__
    return _rows(conn, select(t).where(t.c.order == order).order_by(t.c.time_msc, t.c.ticket))


def deals_by_position(conn: Connection, position_id: int) -> list[Row]:
    t = m.Deal.__table__
    stmt = select(t).where(t.c.position_id == position_id).order_by(t.c.time_msc, t.c.ticket)
    return _rows(conn, stmt)


def history_orders(conn: Connection, login: int, date_from_msc: int, date_to_msc: int,
                   group: str | None = None) -> list[Row]:
    """Finished orders of ``login`` set up in the range (``time_setup_msc``)."""
    t = m.Order.__table__
    stmt = (select(t).where(t.c.login == login, t.c.time_setup_msc >= date_from_msc,
                            t.c.time_setup_msc <= date_to_msc, t.c.state.not_in(_ACTIVE))
            .order_by(t.c.time_setup_msc, t.c.ticket))
    return _rows(conn, stmt, group)


def orders_by_ticket(conn: Connection, ticket: int) -> list[Row]:
    """The finished order ``ticket`` (empty while it is active: see :func:`open_orders`)."""
    t = m.Order.__table__
    return _rows(conn, select(t).where(t.c.ticket == ticket, t.c.state.not_in(_ACTIVE)))


def orders_by_position(conn: Connection, position_id: int) -> list[Row]:
    t = m.Order.__table__
    stmt = (select(t).where(t.c.position_id == position_id, t.c.state.not_in(_ACTIVE))
            .order_by(t.c.time_setup_msc, t.c.ticket))
    return _rows(conn, stmt)


def open_orders(conn: Connection, login: int | None = None, symbol: str | None = None,
                group: str | None = None) -> list[Row]:
    t = m.Order.__table__
    stmt = select(t).where(t.c.state.in_(_ACTIVE)).order_by(t.c.time_setup_msc, t.c.ticket)
    if login is not None:
        stmt = stmt.where(t.c.login == login)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    return _rows(conn, stmt, group)


def account(conn: Connection, login: int) -> Row | None:
    t = m.Account.__table__
    row = conn.execute(select(t).where(t.c.login == login)).mappings().first()
    return None if row is None else dict(row)


def ledger_statement(conn: Connection, login: int, date_from_msc: int,
                     date_to_msc: int) -> Row:
    """Postings that moved ``client:<login>`` in the range, with running balance.

    A posting moves ``amount`` from its ``debit`` account to its ``credit`` account, so the
    client's balance changes by ``+amount`` when it is the credit side and ``-amount`` when
    it is the debit side. Returns ``{"login", "opening_balance", "closing_balance",
    "postings": [posting row + "change" + "balance"]}``, money in minor units.
    """
    t = m.Posting.__table__
    code = f"client:{login}"
    touches = or_(t.c.debit == code, t.c.credit == code)
    opening = 0
    before = select(t.c.debit, t.c.credit, t.c.amount).where(
        and_(t.c.login == login, t.c.time_msc < date_from_msc, touches))
    for r in conn.execute(before):
        opening += _change(code, r.debit, r.credit, r.amount)
    stmt = (select(t).where(t.c.login == login, t.c.time_msc >= date_from_msc,
                            t.c.time_msc <= date_to_msc, touches)
            .order_by(t.c.time_msc, t.c.id))
    balance = opening
    rows = []
    for r in conn.execute(stmt).mappings():
        row = dict(r)
        row["change"] = _change(code, r["debit"], r["credit"], r["amount"])
        balance += row["change"]
        row["balance"] = balance
        rows.append(row)
    return {"login": login, "opening_balance": opening, "closing_balance": balance,
            "postings": rows}


def _change(code: str, debit: str, credit: str, amount: int) -> int:
    return (amount if credit == code else 0) - (amount if debit == code else 0)


def symbols(conn: Connection) -> dict[str, Row]:
    t = m.Symbol.__table__
    return {r.name: r.spec for r in conn.execute(select(t.c.name, t.c.spec))}


def events(conn: Connection, login: int | None = None, after_id: int = 0,
           limit: int = 1000, kinds: tuple[str, ...] | None = None) -> list[Row]:
    t = m.Event.__table__
    stmt = select(t).where(t.c.id > after_id).order_by(t.c.id).limit(limit)
    if login is not None:
        stmt = stmt.where(t.c.login == login)
    if kinds is not None:
        stmt = stmt.where(t.c.kind.in_(kinds))
    return _rows(conn, stmt)


def order_result(conn: Connection, login: int, request_id: int,
                 since_msc: int) -> dict | None:
    """The ``order_result`` event of (login, request id) made at ``since_msc`` or later (the
    newest), as its event dict; None if there is none in that window."""
    t = m.Event.__table__
    stmt = (select(t.c.data).where(t.c.login == login, t.c.request_id == request_id,
                                   t.c.kind == "order_result", t.c.time_msc >= since_msc)
            .order_by(t.c.id.desc()).limit(1))
    data = conn.execute(stmt).scalar()
    return None if data is None else dict(data)


# -- old history rows the engine no longer holds (cfd.trading.history.HistorySource) ------

def closed_position_of(conn: Connection, login: int, ticket: int) -> bool:
    """Whether ``ticket`` was a position of ``login``: a deal of the position (a position's
    first ticket is its identifier), or the reversal that gave a netting position the
    reversing order's ticket. The caller has checked that it is not open."""
    t = m.Deal.__table__
    by_id = select(t.c.ticket).where(t.c.position_id == ticket, t.c.login == login).limit(1)
    if conn.execute(by_id).first() is not None:
        return True
    reversal = select(t.c.ticket).where(t.c.order == ticket, t.c.login == login,
                                        t.c.entry == int(DealEntry.INOUT)).limit(1)
    return conn.execute(reversal).first() is not None


def finished_order_state(conn: Connection, login: int, ticket: int) -> int | None:
    """The state of ``login``'s finished order ``ticket``, if the history has it."""
    t = m.Order.__table__
    stmt = select(t.c.state).where(t.c.ticket == ticket, t.c.login == login,
                                   t.c.state.not_in(_ACTIVE))
    state = conn.execute(stmt).scalar()
    return None if state is None else int(state)


def ledger_sums(conn: Connection) -> dict[str, int]:
    """Every ledger account's balance re-derived from the postings table (by its code:
    ``broker_pl``, ``client:<login>``...): credits minus debits."""
    t = m.Posting.__table__
    out: dict[str, int] = {}
    for code, total in conn.execute(select(t.c.credit, func.sum(t.c.amount))
                                    .group_by(t.c.credit)):
        out[code] = out.get(code, 0) + int(total)
    for code, total in conn.execute(select(t.c.debit, func.sum(t.c.amount))
                                    .group_by(t.c.debit)):
        out[code] = out.get(code, 0) - int(total)
    return out
