"""The effect rows a trade collects (built from the values it books) equal the rows read
back from the engine's columns (``deal_row``, ``order_row``), value and
type, on every kind of market order."""

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
