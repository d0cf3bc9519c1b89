"""The ticket indexes a bulk close (a stop-out) fills without a per-row dict operation:
runs of consecutive tickets in the deal and order logs, closed positions kept as arrays,
and open positions whose tickets leave the index after the batch (checked meanwhile)."""

from __future__ import annotations

import numpy as np
import pytest

from cfd import commands as C
from cfd.constants import Retcode
from cfd.trading.history import ClosedTickets, TicketIndex
from tests.test_stopout_kernel import Twin


def test_a_ticket_index_finds_single_rows_and_runs() -> None:
    ix = TicketIndex()
    ix[3] = 0
    ix.add_run(1000, 1, 100)  # tickets 1000..1099 in rows 1..100
    ix[7] = 101
    ix.add_run(500, 102, 70)  # an earlier run of tickets added later
    ix.add_run(300, 172, 5)  # a short one (into the dict)
    ix.add_run(50, 177, 0)  # nothing
    want = {3: 0, 7: 101, **{1000 + k: 1 + k for k in range(100)},
            **{500 + k: 102 + k for k in range(70)}, **{300 + k: 172 + k for k in range(5)}}
    assert dict(ix.items()) == want and len(ix) == len(want)
    assert len(ix._runs) == 2  # the long ones
    for t in range(-2, 1200):
        assert ix.get(t) == want.get(t), t
        assert (t in ix) == (t in want)
    with pytest.raises(KeyError):
        ix[13]
    assert ix == TicketIndex(dict(want)) and ix != TicketIndex({3: 0})
    assert TicketIndex.of(np.array([5, 9, 2])) == TicketIndex({5: 0, 9: 1, 2: 2})


def test_closed_tickets_keep_their_order_through_bulk_closes_and_trims() -> None:
    rng = np.random.default_rng(7)
    ref: list[tuple[int, int]] = []  # (ticket, account) in the order they closed
    closed = ClosedTickets()
    saw_arrays = False
    ticket = 1
    for _ in range(300):
        r = rng.random()
        if r < 0.5:
            closed[ticket] = int(rng.integers(0, 9))
            ref.append((ticket, closed.get(ticket)))
            ticket += 1
        elif r < 0.75:
            n = int(rng.choice([0, 1, 3, 5, 64, 70]))  # a few: into the dict; else arrays
            ts = ticket + rng.permutation(n)  # a stop-out closes in account order
            accs = rng.integers(0, 9, n)
            closed.add_many(ts, accs)
            ref.extend(zip(ts.tolist(), accs.tolist(), strict=True))
            ticket += n
        else:
            n = int(rng.choice([0, 1, 3, 40, 100]))
            closed.trim(n)
            del ref[:n]
        assert len(closed) == len(ref)
        assert list(closed.items()) == ref
        saw_arrays |= any(isinstance(p, tuple) for p in closed._parts)
        held = dict(ref)
        for t in rng.integers(0, ticket + 2, 5).tolist():
            assert closed.get(t) == held.get(t)
    assert saw_arrays  # bulk closes were held as arrays, not only in dicts
    t, a = closed.arrays()
    again = ClosedTickets(t, a)
    assert list(again.items()) == ref


def test_positions_closed_in_bulk_leave_the_index_and_are_refused_as_closed() -> None:
    """The kernel path (bulk) and the Python path (one close at a time) agree on the
    refusals for closed positions, before and after their slots hold new positions, and
    the index holds the same tickets once the bulk path's are purged."""
    tw = Twin()
    tw.quote({"AAPL": 100.0, "MSFT": 50.0})
    tw.do(C.CreateAccount, login=7, name="7", group="demo\\usdt")
    tw.do(C.Deposit, login=7, amount=70_000)
    tickets = []
    for _ in range(3):
        r = tw.do(C.SendOrder, login=7, request={
            "action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 100.0,
            "deviation": 10, "type_filling": 2})
        tickets.append(r.data.order)
    for px in (92.0, 86.0, 80.0, 74.0, 68.0):  # stop-outs close them one after another
        tw.quote({"AAPL": px})
    assert tw.stop_outs >= 2
    gone = [t for t in tickets if tw.py.positions.slot_of(t) is None]
    assert gone and all(tw.nb.positions.slot_of(t) is None for t in gone)
    assert len(tw.nb.positions) == len(tw.py.positions)
    assert tw.nb.positions.by_ticket != tw.py.positions.by_ticket  # left in, marked stale
    tw.do(C.Deposit, login=7, amount=500_000)
    new = [tw.do(C.SendOrder, login=7, request={  # into the freed slots
        "action": 1, "symbol": "MSFT", "volume": 1.0, "type": 0, "price": 50.0,
        "deviation": 10, "type_filling": 2}).data.order for _ in range(3)]
    for t in gone:
        r = tw.do(C.SendOrder, login=7, request={
            "action": 1, "symbol": "AAPL", "volume": 10.0, "type": 1, "price": 68.0,
            "deviation": 10, "type_filling": 2, "position": t})
        assert r.retcode == Retcode.POSITION_CLOSED, r
    assert [tw.nb.positions.slot_of(t) is not None for t in new] == [True] * 3
    assert len(tw.nb.positions) == len(tw.py.positions) == 3
    tw.nb.positions.purge_tickets()
    assert tw.nb.positions.by_ticket == tw.py.positions.by_ticket
    assert all(tw.nb.was_position(tw.nb.accounts.find(7), t) for t in gone)
