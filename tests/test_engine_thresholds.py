"""Decisions at the threshold are exact: stop-out (percent and money mode), margin call, the
ESMA close-out and the free-margin checks of orders, withdrawals and credit are taken on the
figures ``account_info`` shows (cents), so an account exactly on a level, and one cent or
one hundredth of a percent either side, is judged as its statement says.

Every case holds 15 lots of AAPL (contract size 1, initial margin 20% for CFD) on a book
quoted without spread, bought at ``p0`` with ``deposit`` and marked at ``p1`` (a move of 10%
or more: the outlier check is set wide so that it is taken at once).
"""

from __future__ import annotations

import pytest

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.constants import Retcode, StopOutMode
from cfd.engine import Engine, EngineConfig
from tests.helpers import Book

GROUPS = {
    "demo\\usdt": AccountGroup(),  # percent: margin call 100%, stop-out 50%
    "demo\\money": AccountGroup(name="demo\\money", so_mode=StopOutMode.MONEY,
                                margin_call=500.0, stop_out=427.65),
    "retail\\esma": AccountGroup(name="retail\\esma", esma=True, margin_call=100.0,
                                 stop_out=50.0),
}

# (calc mode, leverage, deposit, p0, p1 exactly at 50% margin level):
#   CFD:          margin 15 * 285.10 * 0.2 = 855.30; equity 855.30 + 15 * (256.59 - 285.10)
#                 = 855.30 - 427.65 = 427.65 = 50% of 855.30
#   CFDLEVERAGE:  margin 15 * 285.10 / 5 (rate 100%, leverage 5) = 855.30; same equity
#   EXCH_STOCKS:  margined at the market: margin 15 * 253.40 * 0.2 = 760.20; equity
#                 855.60 + 15 * (253.40 - 285.10) = 855.60 - 475.50 = 380.10 = 50% of 760.20
MODES = {
    2: (1, 85_530, 285.10, 256.59),
    4: (5, 85_530, 285.10, 256.59),
    32: (1, 85_560, 285.10, 253.40),
}


def book_at(mode: int, group: str, p1_offset: float = 0.0) -> tuple[Book, float]:
    leverage, deposit, p0, p1 = MODES[mode]
    groups = dict(GROUPS)
    if mode == 32:  # EXCH_STOCKS: the equity at p1 is 380.10: the money level is there
        groups["demo\\money"] = AccountGroup(name="demo\\money", so_mode=StopOutMode.MONEY,
                                             margin_call=500.0, stop_out=380.10)
    b = Book(Engine(config=EngineConfig(groups=groups, outlier_pct=50.0)))
    b.account(1001, deposit, group=group, leverage=leverage)
    if mode == 4:
        b.apply(C.SetSymbol, name="AAPL", changes={"calc_mode": 4, "margin_initial_rate": "1"})
    elif mode == 32:
        b.apply(C.SetSymbol, name="AAPL", changes={"calc_mode": 32})
    b.quote(AAPL=(p0, p0))
    r = b.buy(1001, "AAPL", 15.0)
    assert r.ok, r  # the deposit covers the margin (free margin >= 0 after the order)
    p = round(p1 + p1_offset, 2)
    b.quote(AAPL=(p, p))
    return b, p


def stopped_out(b: Book) -> bool:
    return not b.positions(1001)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_percent_stop_out_exactly_at_the_level(mode: int) -> None:
    b, _ = book_at(mode, "demo\\usdt")
    # the statement: margin level 50.0 = stop-out level 50 -> stopped out (level <= 50)
    assert stopped_out(b)
    assert b.eng.deals.comments[-1].startswith("so: 50.00%")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_percent_stop_out_one_cent_either_side(mode: int) -> None:
    above, _ = book_at(mode, "demo\\usdt", +0.01)
    info = above.info(1001)
    # one cent higher price: CFD 15 * 0.01 = 0.15 more equity -> 427.80 / 855.30 = 50.018%
    assert info["margin_level"] > 50.0 and not stopped_out(above)
    below, _ = book_at(mode, "demo\\usdt", -0.01)
    assert stopped_out(below)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_percent_stop_out_level_one_hundredth_either_side(mode: int) -> None:
    b, _ = book_at(mode, "demo\\usdt", +0.01)  # margin level just above 50%
    info = b.info(1001)
    level = info["margin_level"]
    # a stop-out level one hundredth below the account's level (rounded up to the
    # hundredth) leaves it; at that rounded-up level it fires
    up = -(-round(info["equity"] * 100) * 10_000 // round(info["margin"] * 100)) / 100
    assert up >= level
    b.apply(C.SetAccountLevels, login=1001, margin_call=100.0, stop_out=round(up - 0.01, 2))
    assert not stopped_out(b)
    b.apply(C.SetAccountLevels, login=1001, margin_call=100.0, stop_out=up)
    assert stopped_out(b)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("offset,fires", [(0.0, True), (+0.01, False), (-0.01, True)])
def test_money_stop_out(mode: int, offset: float, fires: bool) -> None:
    b, _ = book_at(mode, "demo\\money", offset)
    # money mode: equity <= stop-out level (427.65, or 380.10 for EXCH_STOCKS, to the cent)
    assert stopped_out(b) is fires


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("offset,fires", [(0.0, False), (+0.01, False), (-0.01, True)])
def test_esma_close_out_only_below_half_the_margin(mode: int, offset: float,
                                                    fires: bool) -> None:
    b, _ = book_at(mode, "retail\\esma", offset)
    # equity exactly 50% of the initial margin is not below it: kept (margin call only)
    assert stopped_out(b) is fires


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("offset,fires", [(0.0, True), (+0.01, True), (-0.01, True)])
def test_margin_call_at_the_level(mode: int, offset: float, fires: bool) -> None:
    # margin call at 100%: raise the stop-out out of the way, put the call level on the
    # account's level exactly (50%), then one hundredth below it
    b, _ = book_at(mode, "demo\\usdt", 0.5)
    info = b.info(1001)
    assert info["margin_level"] > 50.0
    at = -(-round(info["equity"] * 100) * 10_000 // round(info["margin"] * 100)) / 100
    b.eng.take_effects()
    b.apply(C.SetAccountLevels, login=1001, margin_call=round(at - 0.01, 2), stop_out=1.0)
    assert not any(e["kind"] == "margin_call" for e in b.eng.take_effects().events)
    b.apply(C.SetAccountLevels, login=1001, margin_call=at, stop_out=1.0)
    assert any(e["kind"] == "margin_call" for e in b.eng.take_effects().events) is fires


@pytest.mark.parametrize("mode", sorted(MODES))
def test_an_order_may_use_the_whole_free_margin(mode: int) -> None:
    leverage, _, p0, _ = MODES[mode]
    # margin of 15 lots at 285.10: 855.30 (all modes at p0); a deposit of exactly that buys
    # it, one cent less does not
    for deposit, ok in ((85_530, True), (85_529, False)):
        b = Book(Engine(config=EngineConfig(groups=GROUPS, outlier_pct=50.0)))
        b.account(1001, deposit, leverage=leverage)
        if mode == 4:
            b.apply(C.SetSymbol, name="AAPL",
                    changes={"calc_mode": 4, "margin_initial_rate": "1"})
        elif mode == 32:
            b.apply(C.SetSymbol, name="AAPL", changes={"calc_mode": 32})
        b.quote(AAPL=(p0, p0))
        calc = b.eng.order_calc_margin(0, "AAPL", 15.0, p0, login=1001)
        assert calc == 855.30  # what the order will hold, with the account's leverage
        r = b.buy(1001, "AAPL", 15.0)
        assert r.ok is ok, r
        if ok:
            assert b.info(1001)["margin"] == calc and b.info(1001)["margin_free"] == 0.0
        else:
            assert r.retcode == Retcode.NO_MONEY and "855.30 USDT required" in r.comment


def test_withdrawal_and_credit_up_to_the_free_margin() -> None:
    b, _ = book_at(2, "demo\\usdt", 30.0)  # p1 = 286.59: profit 15 * 1.49 = 22.35
    info = b.info(1001)
    # free margin = 855.30 + 22.35 - 855.30 = 22.35
    assert info["margin_free"] == 22.35
    assert b.apply(C.Withdraw, login=1001, amount=2_236).retcode == Retcode.NO_MONEY
    b.apply(C.AdjustCredit, login=1001, amount=1_000)  # free margin 32.35
    assert b.apply(C.AdjustCredit, login=1001, amount=-3_236).retcode == Retcode.NO_MONEY
    assert b.apply(C.AdjustCredit, login=1001, amount=-1_000).ok  # back to 22.35
    assert b.apply(C.Withdraw, login=1001, amount=2_235).ok
    assert b.info(1001)["margin_free"] == 0.0


def test_pending_order_may_hold_the_whole_free_margin() -> None:
    b = Book(Engine(config=EngineConfig(groups=GROUPS, outlier_pct=50.0)))
    b.account(1001, 85_530)
    b.quote(AAPL=(290.00, 290.00))
    limit = {"action": 5, "symbol": "AAPL", "volume": 15.0, "type": 2, "price": 285.10,
             "type_filling": 2}
    # a BUY LIMIT at 285.10 holds 15 * 285.10 * 0.2 = 855.30: all of the free margin
    assert b.eng.order_check(1001, limit).retcode == 0
    assert b.send(1001, **{**limit, "volume": 15.1}).retcode == Retcode.NO_MONEY
    assert b.send(1001, **limit).retcode == Retcode.PLACED
    info = b.info(1001)
    assert info["margin_initial"] == 855.30 and info["margin_free"] == 0.0
