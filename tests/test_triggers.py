"""The trigger kernel against its plain reference: on random books and price paths the same
orders and stops fire, in the same sequence, at the same prices."""

import numpy as np
from hypothesis import given, target
from hypothesis import strategies as st

from cfd import commands as C
from cfd.engine import Engine
from cfd.kernels.triggers import FIRE_ORDER, FIRE_SL, FIRE_TP, order_hit, sltp_hit
from cfd.kernels.triggers_reference import expired_reference, scan_reference
from cfd.trading.orders import fire_sequence
from cfd.trading.segments import SegmentedIndex
from tests.helpers import T0, Book

N_SYM = 4
prices = st.integers(90, 110)
position_st = st.tuples(st.integers(0, N_SYM - 1), st.integers(-3, 3).filter(bool),
                        st.integers(0, 110), st.integers(0, 110), st.booleans())
order_st = st.tuples(st.integers(0, N_SYM - 1), st.integers(2, 7), prices, st.booleans())
quote_st = st.tuples(prices, st.integers(0, 3))


def _index(groups: list[int], alive: list[bool]) -> SegmentedIndex:
    """Index every item by group, then remove the dead ones (exercises the swap-removal)."""
    idx = SegmentedIndex(N_SYM, 16)
    place = [idx.add(g, i) for i, g in enumerate(groups)]
    for i, ok in enumerate(alive):
        if not ok:
            moved = idx.remove(groups[i], place[i])
            if moved >= 0:
                place[moved] = place[i]
    return idx


@given(st.lists(position_st, max_size=30), st.lists(order_st, max_size=30),
       st.lists(quote_st, min_size=N_SYM, max_size=N_SYM),
       st.lists(st.integers(0, N_SYM - 1), min_size=1, max_size=N_SYM, unique=True),
       st.randoms(use_true_random=False))
def test_kernel_equals_reference(positions, orders, quotes, moved, rnd):
    bid = np.array([b for b, _ in quotes], dtype=np.int64)
    ask = bid + np.array([s for _, s in quotes], dtype=np.int64)
    pos_ticket = np.array(rnd.sample(range(1000, 2000), len(positions)), dtype=np.int64)
    ord_ticket = np.array(rnd.sample(range(3000, 4000), len(orders)), dtype=np.int64)
    p_sym = [p[0] for p in positions]
    p_vol = np.array([p[1] for p in positions], dtype=np.int64)
    p_sl = np.array([p[2] for p in positions], dtype=np.int64)
    p_tp = np.array([p[3] for p in positions], dtype=np.int64)
    o_type = np.array([o[1] for o in orders], dtype=np.int8)
    o_price = np.array([o[2] for o in orders], dtype=np.int64)
    p_idx = _index(p_sym, [p[4] for p in positions])
    o_idx = _index([o[0] for o in orders], [o[3] for o in orders])
    got = fire_sequence(np.array(moved), bid, ask, p_idx, p_vol, p_sl, p_tp, pos_ticket, o_idx,
                        o_type, o_price, ord_ticket)
    want = scan_reference(
        moved, bid, ask,
        [(i, pos_ticket[i], *p[:4]) for i, p in enumerate(positions) if p[4]],
        [(i, ord_ticket[i], *o[:3]) for i, o in enumerate(orders) if o[3]])
    assert got == want


def test_trigger_rules_by_hand():
    # long: SL when bid <= sl, TP when bid >= tp
    assert sltp_hit(1, 95, 0, 95, 96) == FIRE_SL and sltp_hit(1, 95, 0, 96, 96) == 0
    assert sltp_hit(1, 0, 105, 105, 106) == FIRE_TP
    # short: SL when ask >= sl, TP when ask <= tp (bid does not matter)
    assert sltp_hit(-1, 105, 0, 104, 105) == FIRE_SL and sltp_hit(-1, 105, 0, 105, 104) == 0
    assert sltp_hit(-1, 0, 95, 90, 95) == FIRE_TP
    # BUY LIMIT ask <= price; BUY STOP ask >= price; SELL LIMIT bid >= price; SELL STOP bid <=
    assert order_hit(2, 100, 99, 100) and not order_hit(2, 100, 99, 101)
    assert order_hit(4, 100, 99, 100) and not order_hit(4, 100, 100, 99 + 0)
    assert order_hit(3, 100, 100, 101) and not order_hit(3, 100, 99, 101)
    assert order_hit(5, 100, 100, 101) and not order_hit(5, 100, 101, 101)
    assert order_hit(6, 100, 99, 100) and order_hit(7, 100, 100, 101)
    assert not order_hit(0, 100, 100, 100)  # market types never trigger
    assert expired_reference(10, [(0, 2, 10), (1, 1, 5), (2, 3, 0), (3, 4, 11)]) == [1, 0]


def _script(data, n_steps: int) -> list[C.Command]:
    """A random book on AAPL/MSFT (hedging 1001, netting 2002) and a price path."""
    t = T0
    cmds: list[C.Command] = []

    def nxt() -> int:
        nonlocal t
        t += 1_000
        return t

    cmds.append(C.CreateAccount(time_msc=nxt(), login=1001, name="h", group="demo\\usdt",
                                leverage=1))
    cmds.append(C.CreateAccount(time_msc=nxt(), login=2002, name="n", group="demo\\netting",
                                leverage=1))
    for login in (1001, 2002):
        cmds.append(C.Deposit(time_msc=nxt(), login=login, amount=5_000_000))
    mid = {0: 100.0, 1: 50.0}
    cmds.append(C.Ticks.of(nxt(), {0: (100.0, 100.02), 1: (50.0, 50.02)}))
    names = {0: "AAPL", 1: "MSFT"}  # symbol indices 0 and 1 of the catalogue
    for _ in range(data.draw(st.integers(1, 12))):
        s = data.draw(st.sampled_from([0, 1]))
        otype = data.draw(st.integers(0, 7))
        off = data.draw(st.integers(1, 400)) / 100
        req = {"symbol": names[s], "volume": data.draw(st.sampled_from([1.0, 2.5, 10.0])),
               "type": otype, "type_filling": 2, "deviation": 1000}
        buy = otype % 2 == 0
        if otype < 2:
            req.update(action=1, price=round(mid[s] + (0.02 if buy else 0.0), 2))
            if data.draw(st.booleans()):
                req["sl" if buy else "tp"] = round(mid[s] - off, 2)
            if data.draw(st.booleans()):
                req["tp" if buy else "sl"] = round(mid[s] + 0.02 + off, 2)
        else:
            above = otype in (3, 4, 6)
            req.update(action=5, price=round(mid[s] + (off if above else -off), 2))
            if otype >= 6:
                req["stoplimit"] = round(req["price"] + (-0.5 if buy else 0.5), 2)
            if data.draw(st.booleans()):
                req["type_time"] = 2
                req["expiration"] = t // 1000 + data.draw(st.integers(1, 30))
        login = data.draw(st.sampled_from([1001, 2002]))
        cmds.append(C.SendOrder(time_msc=nxt(), login=login, request=req))
    for _ in range(n_steps):
        quotes = {}
        for s in data.draw(st.sets(st.sampled_from([0, 1]), min_size=1)):
            mid[s] = max(1.0, round(mid[s] + data.draw(st.integers(-300, 300)) / 100, 2))
            quotes[s] = (mid[s], round(mid[s] + 0.02, 2))
        cmds.append(C.Ticks.of(nxt(), quotes))
    return cmds


@given(st.data())
def test_engine_with_kernel_equals_engine_with_reference(data):
    cmds = _script(data, n_steps=data.draw(st.integers(1, 15)))
    kernel, reference = Engine(), Engine()
    reference.pending.scan = reference.pending.scan_reference
    fired = 0
    for cmd in cmds:
        r1, r2 = kernel.apply(cmd), reference.apply(cmd)
        assert (r1.retcode, r1.events) == (r2.retcode, r2.events), cmd
        assert kernel.state_hash() == reference.state_hash()
        for ev in r1.events:
            if ev["kind"] in ("order_filled", "sl", "tp"):
                fired += 1
                s = kernel.symbols.get(ev["symbol"])
                # filled at the batch's market price: bid or ask of the symbol now
                assert ev["price"] in (int(kernel.symbols.cols.bid[s]),
                                       int(kernel.symbols.cols.ask[s]))
    assert kernel.ledger_total() == 0
    target(float(fired))  # steer the search towards paths that fire orders and stops
    # after the path nothing left in the book should have fired at the last prices (bar
    # LIMIT orders placed by STOP LIMIT activations in the last batch, which fill next batch)
    ext = kernel.pending
    live = np.arange(len(kernel.symbols), dtype=np.int32)
    for kind, slot, _, _ in ext.scan_reference(live):
        if kind == FIRE_ORDER:
            assert ext.cols.price_stoplimit[slot] == 0 and ext.cols.type[slot] in (2, 3)


def test_a_gap_fills_every_crossed_order_in_ticket_order():
    b = Book()
    b.account(1001, 10_000_000)
    b.quote(AAPL=(100.00, 100.02))
    tickets = []
    for px in (99.0, 98.0, 97.0):  # three BUY LIMITs, placed in this order
        r = b.send(1001, action=5, symbol="AAPL", volume=1.0, type=2, price=px)
        tickets.append(r.data.order)
    r = b.quote(AAPL=(95.00, 95.02))
    # all three fire at the same batch ask 95.02, in ticket order
    assert [(e["order"], e["price"]) for e in r.events] == [(t, 95_020_000) for t in tickets]
