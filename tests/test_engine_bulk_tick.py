"""A tick that moves most of the book is walked by account, with stop-out and margin-call
detection in the same pass (``Engine.incremental`` / ``_check_levels`` with states). It must
trade, stop out and raise margin calls exactly as the by-symbol walk does."""

from __future__ import annotations

import numpy as np
import pytest

from cfd.engine import Engine
from tests.helpers import Book

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA")


def run(bulk: bool, path: list[float]) -> tuple[Book, list[tuple]]:
    b = Book(Engine())
    eng = b.eng
    if bulk:
        eng.bulk_tick_min, eng.bulk_tick_share = 0, 0.0  # every tick walked by account
    else:
        eng.bulk_tick_share = 2.0  # never
    b.quote(**{s: (100.0, 100.02) for s in SYMBOLS})
    events: list[tuple] = []
    for i in range(12):
        login = 1000 + i
        # margin rate 20%: a share at 100 costs 20 of margin; the deposit is 30 per share
        # (a margin level near 150%), so a 20% move against the account stops it out
        shares = sum(10 + 2 * k for k in range(1 + i % 4)) + (5 if i % 3 == 0 else 0)
        b.account(login, (30 * shares + 10 * i) * 100, leverage=1)
        for k, s in enumerate(SYMBOLS[: 1 + i % 4]):
            r = (b.buy if (i + k) % 3 else b.sell)(login, s, 10.0 + 2 * k)
            assert r.ok, r
        if i % 3 == 0:
            # a stop loss below the market on the first long position
            assert b.buy(login, "AAPL", 5.0, sl=96.0).ok
        if i % 4 == 1:
            assert b.send(login, action=5, symbol="MSFT", volume=1.0, type=2, price=80.0).ok
    for px in path:
        r = b.quote(**{s: (px * (1 + 0.01 * j), px * (1 + 0.01 * j) + 0.02)
                       for j, s in enumerate(SYMBOLS)})
        events.extend((e["kind"], e.get("login"), e.get("ticket")) for e in r.events)
    return b, events


@pytest.mark.parametrize(("path", "expected"), [
    # longs lose: stop losses, margin calls, stop-outs
    ([99.0, 97.5, 95.0, 92.0, 88.0, 85.0, 80.0, 75.0, 70.0, 65.0],
     {"sl", "margin_call", "stop_out", "order_filled"}),
    # shorts lose
    ([101.0, 104.0, 108.0, 113.0, 118.0, 125.0, 132.0, 140.0], {"margin_call"}),
    # both, back and forth (each step within the 10% outlier band)
    ([97.0, 102.0, 94.0, 100.0, 91.0, 98.0, 88.0, 95.0, 85.0, 78.0, 72.0],
     {"sl", "margin_call", "stop_out"}),
])
def test_whole_book_walk_trades_like_the_symbol_walk(path, expected):
    a, ev_a = run(True, path)
    b, ev_b = run(False, path)
    assert ev_a == ev_b
    assert expected <= {k for k, _, _ in ev_a}
    ea, eb = a.eng, b.eng
    for name in ("ticket", "acc", "price", "volume", "profit", "reason"):
        assert np.array_equal(getattr(ea.deals.cols, name)[: len(ea.deals)],
                              getattr(eb.deals.cols, name)[: len(eb.deals)]), name
    n = len(ea.accounts)
    assert np.array_equal(ea.accounts.cols.balance[:n], eb.accounts.cols.balance[:n])
    assert np.array_equal(ea.accounts.cols.mc_flag[:n], eb.accounts.cols.mc_flag[:n])
    assert np.allclose(ea.accounts.cols.profit[:n], eb.accounts.cols.profit[:n], atol=1e-9)
    assert ea.ledger_total() == 0 and eb.ledger_total() == 0


@pytest.mark.parametrize("bulk", [True, False])
def test_a_stop_loss_in_the_same_tick_is_seen_before_the_levels(bulk):
    """The walk judges the account before the triggers run; a stop loss closing in the same
    tick changes the account, so the levels are judged again after it (no false margin
    call). 420 USDT, long 10 AAPL with SL 92 and short 10 MSFT at 100, margined at the
    market at 20%: AAPL falls to 91 (within the outlier band). With AAPL still open the
    level is (420 - 90) / (182 + 200) = 86% (a margin call); after the SL closes it,
    330 / 200 = 165%."""
    b = Book(Engine())
    if bulk:
        b.eng.bulk_tick_min, b.eng.bulk_tick_share = 0, 0.0
    b.quote(AAPL=(100.0, 100.0), MSFT=(100.0, 100.0))
    b.account(1, 42_000)
    assert b.buy(1, "AAPL", 10.0, sl=92.0).ok
    assert b.sell(1, "MSFT", 10.0).ok
    assert b.info(1)["margin_level"] == 105.0
    r = b.quote(AAPL=(91.0, 91.0), MSFT=(100.0, 100.0))
    kinds = [e["kind"] for e in r.events]
    assert "sl" in kinds and "margin_call" not in kinds
    assert b.info(1)["margin_level"] == 165.0
