"""A book built through the real Engine (accounts, deposits, ticks, market orders), shared
by the risk tests, and tests of the helper itself."""

from __future__ import annotations

import random

import numpy as np

from cfd import commands as C
from cfd.engine import Engine
from cfd.money import MINOR_SCALE

SYMBOLS = ("AAPL", "NVDA", "TSLA", "ORCL", "MSFT", "KO")


def quote(eng: Engine, t: int, prices: dict[str, float]) -> None:
    """Tick the named symbols at ``price`` (bid) / ``price + 0.02`` (ask)."""
    q = {eng.symbols.get(n): (round(p, 2), round(p + 0.02, 2)) for n, p in prices.items()}
    res = eng.apply(C.Ticks.of(t, q))
    assert res.ok, res.comment


def trade(eng: Engine, t: int, login: int, symbol: str, volume: float, buy: bool) -> None:
    s = eng.symbols.get(symbol)
    price = (eng.symbols.cols.ask[s] if buy else eng.symbols.cols.bid[s]) / 1e6
    req = {"action": 1, "symbol": symbol, "volume": volume, "type": 0 if buy else 1,
           "price": price, "deviation": 10}
    res = eng.apply(C.SendOrder(time_msc=t, actor=str(login), login=login, request=req))
    assert res.ok, res.comment


def build_engine(n_accounts: int = 40, seed: int = 1, fund: int = 50_000_00) -> Engine:
    """``n_accounts`` accounts (logins 1001...), 1,000-20,000 USDT each, 1-4 positions each
    sized to a margin level between ~110% and ~600%; an insurance fund of ``fund`` minor
    units. Prices: the catalogue's reference prices."""
    rng = random.Random(seed)
    eng = Engine()
    t = 1
    ref = {n: float(eng.symbols.specs[eng.symbols.get(n)].reference_price) for n in SYMBOLS}
    quote(eng, t, ref)
    eng.apply(C.TopUpInsurance(time_msc=t, actor="officer", amount=fund))
    for i in range(n_accounts):
        login = 1001 + i
        t += 1
        assert eng.apply(C.CreateAccount(time_msc=t, actor="admin", login=login,
                                         name=f"client {login}")).ok
        cash = rng.randint(1_000, 20_000)
        assert eng.apply(C.Deposit(time_msc=t, actor="admin", login=login,
                                   amount=cash * MINOR_SCALE)).ok
        target = rng.uniform(110, 600)  # margin level after trading, percent
        syms = rng.sample(SYMBOLS, rng.randint(1, 4))
        long_bias = rng.random() < 0.7
        budget = cash / (target / 100) / len(syms)  # margin per position
        for sym in syms:
            price = ref[sym]
            lots = round(max(0.1, budget / (price * 0.2)), 1)  # 20% initial margin
            buy = long_bias if rng.random() < 0.85 else not long_bias
            t += 1
            trade(eng, t, login, sym, lots, buy)
    return eng


def test_build_engine_makes_a_leveraged_book():
    eng = build_engine(20, seed=3)
    assert len(eng.accounts) == 20
    assert len(eng.positions) >= 20
    levels = [eng.account_info(1001 + i)["margin_level"] for i in range(20)]
    # every account trades: margin > 0, and none starts at or below the 50% stop-out level
    assert min(levels) > 50
    assert eng.ledger.total() == 0
    assert eng.insurance_fund == 50_000_00


def test_quote_moves_prices_on_the_grid():
    eng = build_engine(2, seed=4)
    quote(eng, 10_000, {"NVDA": 100.0})
    s = eng.symbols.get("NVDA")
    # 100.00 -> 100_000_000 price units; ask 100.02
    assert int(eng.symbols.cols.bid[s]) == 100_000_000
    assert int(eng.symbols.cols.ask[s]) == 100_020_000
    assert np.isclose(eng.symbols.cols.ask[s] - eng.symbols.cols.bid[s], 20_000)
