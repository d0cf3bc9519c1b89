"""Negative balance protection and the close-out rule by client category: retail clients of
an ESMA group are closed out at 50 % of their margin and never owe more than they paid in;
professional clients have the group's stop-out level and, where the group gives no
protection, keep a negative balance as a debt. The Python sweep and the kernel path agree."""

from __future__ import annotations

import pytest

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.engine import Engine, EngineConfig
from cfd.kernels.formulas import RULE_ESMA, RULE_MT5_PERCENT
from cfd.trading import stopout
from tests.helpers import Book

EU = AccountGroup(name="eu\\cfd", esma=True, margin_call=100.0, stop_out=30.0,
                  professional_nbp=False)


def book(path) -> Book:
    cfg = EngineConfig()
    cfg.groups[EU.name] = EU
    eng = Engine(config=cfg)
    eng.stop_out = lambda accs, force=False: path(eng, accs, force)
    b = Book(eng)
    move(b, 100.00)
    for login, category in ((1, "retail"), (2, "professional")):
        assert b.apply(C.CreateAccount, login=login, name="x", group=EU.name,
                       category=category, country="DE").ok
        assert b.apply(C.Deposit, login=login, amount=100_000).ok  # 1,000.00
    return b


def move(b: Book, price: float) -> list[dict]:
    """Quote ``price`` until confirmed (a jump is an outlier until repeated); the events."""
    events = []
    for _ in range(3):
        events += b.quote(AAPL=(price, price)).events
    return events


def ac_rule(b: Book, login: int) -> int:
    return int(b.eng.accounts.cols.so_rule[b.eng.accounts.find(login)])


def test_the_close_out_rule_follows_the_category() -> None:
    b = book(stopout.sweep_python)
    assert ac_rule(b, 1) == RULE_ESMA and ac_rule(b, 2) == RULE_MT5_PERCENT
    assert b.apply(C.SetClient, login=2, category="retail").ok
    assert ac_rule(b, 2) == RULE_ESMA
    assert b.apply(C.SetClient, login=1, category="eligible_counterparty").ok
    assert ac_rule(b, 1) == RULE_MT5_PERCENT


@pytest.mark.parametrize("path", [stopout.sweep_python, stopout.sweep_kernel])
def test_retail_is_closed_at_half_its_margin_professional_at_the_group_level(path) -> None:
    b = book(path)
    # 20 lots of AAPL at 100.00, 20 % margin: 20 * 100.00 * 20 % = 400.00 each
    assert b.buy(1, "AAPL", 20).ok and b.buy(2, "AAPL", 20).ok
    # at 60.00: loss 20 * 40.00 = 800.00, equity 200.00 = 50 % of the margin, not below:
    # retail stays; level 200 / 400 = 50 % > 30 %: professional stays
    move(b, 60.00)
    assert len(b.positions(1)) == 1 and len(b.positions(2)) == 1
    # at 59.90: equity 198.00 < 200.00: retail closed out; level 49.5 % > 30 %: not pro
    move(b, 59.90)
    assert b.positions(1) == [] and len(b.positions(2)) == 1
    # retail balance: 1,000.00 - 20 * 40.10 = 198.00
    assert b.info(1)["balance"] == 198.00
    # at 56.00: equity 1,000.00 - 880.00 = 120.00, level 30 %: the professional's stop-out
    move(b, 56.00)
    assert b.positions(2) == []
    assert b.info(2)["balance"] == 120.00


@pytest.mark.parametrize("path", [stopout.sweep_python, stopout.sweep_kernel])
def test_a_gap_leaves_the_professional_in_debt_and_retail_at_zero(path) -> None:
    b = book(path)
    assert b.buy(1, "AAPL", 20).ok and b.buy(2, "AAPL", 20).ok
    fund0 = int(b.eng.ledger.balance[stopout.INSURANCE_FUND])
    # a gap to 40.00: loss 20 * 60.00 = 1,200.00 on a 1,000.00 deposit: both closed at
    # 40.00, balance -200.00
    events = move(b, 40.00)
    ev = {e["login"]: e for e in events if e.get("kind") == "stop_out"}
    # retail: negative balance protection brings it back to 0.00 (200.00 compensated)
    assert b.info(1)["balance"] == 0.00 and ev[1]["compensation"] == 20_000
    # professional without protection: the 200.00 stays owed
    assert b.info(2)["balance"] == -200.00 and ev[2]["debt"] == 20_000
    assert "compensation" not in ev[2]
    # only the retail deficit was paid from the insurance fund (or the broker)
    paid = fund0 - int(b.eng.ledger.balance[stopout.INSURANCE_FUND])
    assert paid <= 20_000


def test_both_paths_book_the_same() -> None:
    hashes = []
    for path in (stopout.sweep_python, stopout.sweep_kernel):
        b = book(path)
        assert b.buy(1, "AAPL", 20).ok and b.buy(2, "AAPL", 20).ok
        move(b, 40.00)
        hashes.append(b.eng.state_hash())
    assert hashes[0] == hashes[1]


def test_the_risk_stress_counts_only_protected_deficits() -> None:
    """``cfd-risk stress`` on the same book: the retail deficit is a loss for the fund, the
    unprotected professional's is a debt left on the account."""
    import numpy as np

    from risk.book import Book as RiskBook
    from risk.stress import run_stress

    b = book(stopout.sweep_python)
    assert b.buy(1, "AAPL", 20).ok and b.buy(2, "AAPL", 20).ok
    rb = RiskBook.from_engine(b.eng)
    assert rb.nbp.tolist() == [True, False]
    # AAPL -60 %: 100.00 -> 40.00, both closed at a loss of 1,200.00 on 1,000.00
    moves = np.zeros(len(rb.symbols))
    moves[rb.symbols.index("AAPL")] = -0.6
    res = run_stress(rb, moves, with_exposure=False)
    a1, a2 = b.eng.accounts.find(1), b.eng.accounts.find(2)
    assert res.deficit[a1] == 20_000 and res.balance_after[a1] == 0
    assert res.deficit[a2] == 0 and res.balance_after[a2] == -20_000
