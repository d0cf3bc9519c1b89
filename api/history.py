"""History reads (history_deals_* / history_orders_*): from the store's query tables.

The store writes deals and orders in the same transaction as the batch that made them,
before anyone is answered (a bulk booking's are staged in it and written just after; the
store's reads wait for them: ``cfd.store.staging``), so a read-only connection to it sees
every acknowledged trade.
Answering from it (indexed by login and time, order, position) keeps history reads off the
writer's lock and out of its memory. A server without a store (``in_memory``) answers from
the engine's arrays, with the same records.
"""

from __future__ import annotations

from typing import Any

from api import records


def deals(svc: Any, login: int, t0: int | None = None, t1: int | None = None, *,
          order_ticket: int | None = None, position_id: int | None = None) -> list[dict]:
    """TradeDeal dicts of ``login``: in ``[t0, t1]`` (ms), of an order, or of a position."""
    st = svc.reader
    if st is None:
        return svc.read(lambda eng: records.history_deals(
            eng, login, t0, t1, order_ticket=order_ticket, position_id=position_id))
    if order_ticket is not None:
        rows = st.deals_by_order(order_ticket)
    elif position_id is not None:
        rows = st.deals_by_position(position_id)
    else:
        rows = st.history_deals(login, t0, t1)
    return [records.deal(r) for r in rows if r["login"] == login]


def latest_deals(svc: Any, login: int, n: int) -> list[dict]:
    """The last ``n`` TradeDeal dicts of ``login``, oldest first (the engine holds only
    the recent history when there is a store)."""
    st = svc.reader
    if st is None:
        return svc.read(lambda eng: records.history_deals(eng, login))[-n:]
    return [records.deal(r) for r in st.latest_deals(login, n)]


def orders(svc: Any, login: int, t0: int | None = None, t1: int | None = None, *,
           ticket: int | None = None, position_id: int | None = None) -> list[dict]:
    """Finished TradeOrder dicts of ``login``: set up in ``[t0, t1]`` (ms), one ticket, or
    those of a position."""
    st = svc.reader
    if st is None:
        if t0 is not None:
            return svc.read(lambda eng: records.history_orders(eng, login, t0, t1))
        rows = svc.read(lambda eng: records.orders_of(eng, login, active=False))
        if ticket is not None:
            return [r for r in rows if r["ticket"] == ticket]
        return [r for r in rows if r["position_id"] == position_id]
    if ticket is not None:
        got = st.orders_by_ticket(ticket)
    elif position_id is not None:
        got = st.orders_by_position(position_id)
    else:
        got = st.history_orders(login, t0, t1)
    return [records.order(r) for r in got if r["login"] == login]
