"""The effect rows a trade collects (built from the values it books) equal the rows read
back from the engine's columns (``deal_row``, ``order_row``), value and
type, on every kind of market order."""

import numpy as np

from cfd.constants import Retcode
from tests.helpers import Book


def _exact(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k] == b[k] and type(a[k]) is type(b[k]), (k, a[k], b[k])


def _check(book: Book) -> int:
    """Compare the collected rows with the engine's own; returns how many were compared."""
    eng = book.eng
    eff = eng.take_effects()
    n = 0
    for row in eff.deals:
        _exact(row, eng.deal_row(eng.deals.by_ticket[row["ticket"]]))
        n += 1
    for ticket, row in eff.orders.items():
        if ticket in eng.orders.by_ticket:
            _exact(row, eng.order_row(eng.orders.by_ticket[ticket]))
            n += 1
    return n


def test_effect_rows_equal_the_rows_read_back():
    book = Book.two_accounts()
    book.eng.take_effects()
    steps = [
        lambda: book.buy(1001, "AAPL", 1.0, sl=200.0, tp=260.0, magic=7, comment="open"),
        lambda: book.sell(1001, "NVDA", 2.5),
        lambda: book.buy(2002, "AAPL", 1.0, comment="net"),
        lambda: book.buy(2002, "AAPL", 0.5),  # add
        lambda: book.sell(2002, "AAPL", 0.5),  # reduce
        lambda: book.sell(2002, "AAPL", 3.0),  # reverse
        lambda: book.buy(2002, "AAPL", 2.0),  # close
    ]
    compared = 0
    for step in steps:
        r = step()
        assert r.retcode == Retcode.DONE, r.comment
        compared += _check(book)
    # close a hedging position by ticket, then two opposite ones by each other
    (pos,) = [p for p in book.positions(1001) if p["symbol"] == "AAPL"]
    r = book.sell(1001, "AAPL", 1.0, position=pos["ticket"])
    assert r.retcode == Retcode.DONE, r.comment
    compared += _check(book)
    a = book.buy(1001, "NVDA", 1.0).data.order
    b = book.sell(1001, "NVDA", 1.0).data.order
    compared += _check(book)
    r = book.send(1001, action=10, position=a, position_by=b)
    assert r.retcode == Retcode.DONE, r.comment
    compared += _check(book)
    assert compared >= 20  # a deal and an order row (at least) per trade


def test_records_name_each_column_by_its_own_name() -> None:
    """``deal_record`` and ``order_record`` put each column's value under that column's
    name (``acc``/``sym`` become ``login``/``symbol``): distinct values catch a swap."""
    from cfd.trading.history import DEAL_COLUMNS, ORDER_COLUMNS, deal_record, order_record

    for columns, record in ((DEAL_COLUMNS, deal_record), (ORDER_COLUMNS, order_record)):
        values = tuple(range(100, 100 + len(columns)))
        row = record(values, 7, "SYM", "c")
        expect = {k: v for k, v in zip(columns, values, strict=True)
                  if k not in ("acc", "sym")}
        expect.update(login=7, symbol="SYM", comment="c", external_id="")
        assert row == expect


def _mirror(eng, table: dict) -> int:
    """Apply the account rows of the effects collected so far to ``table`` as the store
    does (blocks first, then the rows kept as dicts: theirs are newer); returns how many
    rows there were."""
    eff = eng.take_effects()
    n = 0
    for block in eff.blocks.get("accounts", []):
        for row in block.rows():
            table[row["login"]] = row
            n += 1
    for login, row in eff.accounts.items():
        table[login] = row
        n += 1
    return n


def _same_as_engine(eng, table: dict) -> None:
    for a in range(len(eng.accounts)):
        want = {k: v for k, v in eng.account_row(a).items() if k != "updated_msc"}
        got = {k: table[want["login"]][k] for k in want}
        assert got == want, (want["login"], got, want)


def test_account_rows_are_written_when_their_money_changes_and_the_store_keeps_up():
    """An order that moves no money writes no account row; whatever moves money or an
    account's settings does, and the accounts as the store would hold them equal the
    engine's after every command, across a bulk stop-out whose rows come as a block and a
    deposit that puts the balance back where it was before it (what the row written last
    holds, not the last value this account's own path saw, decides)."""
    from cfd import commands as C

    book = Book.two_accounts()
    eng = book.eng
    table: dict = {}
    _mirror(eng, table)
    _same_as_engine(eng, table)
    book.account(3003, 100_000)  # 1,000.00
    assert _mirror(eng, table) >= 1
    _same_as_engine(eng, table)
    for login in (1001, 2002, 3003):
        assert book.buy(login, "AAPL", 1.0).retcode == Retcode.DONE
    assert _mirror(eng, table) == 0  # opened: no commission, no money moved
    _same_as_engine(eng, table)
    before = int(eng.accounts.cols.balance[eng.accounts.find(3003)])
    assert book.buy(3003, "AAPL", 19.0).retcode == Retcode.DONE
    assert book.sell(1001, "AAPL", 1.0, position=book.positions(1001)[0]["ticket"]).ok
    assert _mirror(eng, table) == 1  # 1001 closed at a loss (the spread): its row
    _same_as_engine(eng, table)
    # AAPL falls to 200: 3003 (20 AAPL bought at 230.10 on 1,000.00, 920.40 margin) is
    # stopped out in bulk (the biggest loss first, until the level is back above; the
    # feed's hygiene takes a fall that fast only once quoted again)
    for bid in (215.0, 215.0, 205.0, 205.0, 200.0, 200.0):
        book.quote(AAPL=(bid, bid + 0.1))
    assert len(book.positions(3003)) < 2
    assert eng.accounts.cols.balance[eng.accounts.find(3003)] < before
    assert _mirror(eng, table) >= 1
    _same_as_engine(eng, table)
    lost = before - int(eng.accounts.cols.balance[eng.accounts.find(3003)])
    assert book.apply(C.Deposit, login=3003, amount=lost).ok  # back to `before`
    assert _mirror(eng, table) == 1
    _same_as_engine(eng, table)
    assert book.apply(C.SetAccountLevels, login=2002, stop_out=20.0).ok
    assert _mirror(eng, table) == 1
    _same_as_engine(eng, table)
    assert book.apply(C.AdjustCredit, login=2002, amount=5_000).ok
    assert _mirror(eng, table) == 1
    _same_as_engine(eng, table)


def test_rows_collected_in_bulk_leave_the_accounts_mark_unknown():
    """Rollover and corporate actions collect account rows in bulk
    (``Engine._collect_accounts``): the next change of those accounts is collected even
    when their balance is back at the value of the row collected one by one before."""
    book = Book.two_accounts()
    eng = book.eng
    a = eng.accounts.find(1001)
    eng.take_effects()
    eng._collect_account(a)
    assert not eng.take_effects().accounts  # unchanged since its last row
    eng._collect_accounts(np.array([a]))
    assert list(eng.take_effects().accounts) == [1001]
    eng._collect_account(a)
    assert list(eng.take_effects().accounts) == [1001]
