"""Stateful property test: random deposits, withdrawals, trades and ticks on netting and
hedging accounts keep the ledger at exactly zero, keep equity = balance + credit + floating
profit, and never let a refused command change anything."""

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cfd import commands as C
from cfd.engine import Engine
from cfd.kernels.margin import recompute_all
from cfd.money import MINOR_SCALE
from cfd.trading.margin_tiers import tier_sets

SYMBOLS = ["AAPL", "TSLA", "NVDA"]
LOGINS = [11, 12, 21, 22]  # 1x hedging, 2x netting
prices = st.decimals(min_value="1.00", max_value="900.00", places=2).map(float)
volumes = st.sampled_from([0.1, 0.5, 1.0, 2.5, 10.0, 0.05, 1.05, -1.0, float("nan")])


class EngineMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.eng = Engine()
        self.t = 1_700_000_000_000
        for login in LOGINS:
            group = "demo\\usdt" if login < 20 else "demo\\netting"
            self.do(C.CreateAccount, login=login, name=str(login), group=group)
            self.do(C.Deposit, login=login, amount=2_000_000)
        for s in SYMBOLS:
            self.do_tick(s, 100.0, 0.1)

    def do(self, cls, **kw):
        self.t += 1
        before = self.eng.state_hash()
        res = self.eng.apply(cls(time_msc=self.t, **kw))
        if not res.ok:
            assert self.eng.state_hash() == before, (cls, kw, res)
        return res

    def do_tick(self, symbol, bid, spread):
        self.t += 1
        s = self.eng.symbols.get(symbol)
        self.eng.apply(C.Ticks.of(self.t, {s: (bid, round(bid + spread, 2))}))

    @rule(login=st.sampled_from(LOGINS), amount=st.integers(-100, 5_000_000))
    def deposit(self, login, amount):
        self.do(C.Deposit, login=login, amount=amount)

    @rule(login=st.sampled_from(LOGINS), amount=st.integers(1, 3_000_000))
    def withdraw(self, login, amount):
        self.do(C.Withdraw, login=login, amount=amount)

    @rule(login=st.sampled_from(LOGINS), amount=st.integers(-100_000, 100_000))
    def credit(self, login, amount):
        self.do(C.AdjustCredit, login=login, amount=amount)

    @rule(login=st.sampled_from(LOGINS), symbol=st.sampled_from(SYMBOLS + ["NOPE"]),
          side=st.sampled_from([0, 1]), volume=volumes)
    def trade(self, login, symbol, side, volume):
        self.do(C.SendOrder, login=login, request={
            "action": 1, "symbol": symbol, "volume": volume, "type": side, "price": 0.0,
            "deviation": 0, "type_filling": 0})

    @rule(login=st.sampled_from(LOGINS), side=st.sampled_from([0, 1]), volume=volumes,
          pick=st.integers(0, 10))
    def trade_market(self, login, side, volume, pick):
        a = self.eng.accounts.find(login)
        slots = self.eng.positions.of_account(a)
        req = {"action": 1, "volume": volume, "type": side, "deviation": 10**6,
               "type_filling": 2}
        sc = self.eng.symbols.cols
        if len(slots) and pick < 6:
            p = int(slots[pick % len(slots)])
            req["position"] = int(self.eng.positions.cols.ticket[p])
            s = int(self.eng.positions.cols.sym[p])
        else:
            s = pick % len(SYMBOLS)
            s = self.eng.symbols.get(SYMBOLS[s])
        req["symbol"] = self.eng.symbols.specs[s].name
        req["price"] = (sc.ask[s] if side == 0 else sc.bid[s]) / 1e6
        self.do(C.SendOrder, login=login, request=req)

    @rule(login=st.sampled_from([11, 12]), i=st.integers(0, 5), j=st.integers(0, 5))
    def close_by(self, login, i, j):
        a = self.eng.accounts.find(login)
        slots = self.eng.positions.of_account(a)
        if len(slots) < 2:
            return
        tk = self.eng.positions.cols.ticket
        self.do(C.SendOrder, login=login, request={
            "action": 10, "position": int(tk[slots[i % len(slots)]]),
            "position_by": int(tk[slots[j % len(slots)]])})

    @rule(symbol=st.sampled_from(SYMBOLS), bid=prices, spread=st.sampled_from([0.01, 0.1, 1.0]))
    def tick(self, symbol, bid, spread):
        self.do_tick(symbol, bid, spread)

    @rule(symbol=st.sampled_from(SYMBOLS), bad=st.sampled_from(
        [(float("nan"), 1.0), (1.0, float("inf")), (-1.0, 1.0), (0.0, 0.0), (5.0, 4.0)]))
    def bad_tick(self, symbol, bad):
        before = self.eng.state_hash()
        self.t += 1
        self.eng.apply(C.Ticks.of(self.t, {self.eng.symbols.get(symbol): bad}))
        assert self.eng.state_hash() == before

    @invariant()
    def ledger_sums_to_zero(self):
        assert self.eng.ledger_total() == 0
        assert np.array_equal(self.eng.ledger.rederive(),
                              self.eng.ledger.balance[: self.eng.ledger.n_accounts])

    @invariant()
    def equity_identity(self):
        ac = self.eng.accounts.cols
        for login in LOGINS:
            info = self.eng.account_info(login)
            assert round(info["balance"] + info["credit"] + info["profit"], 2) == info["equity"]
            a = self.eng.accounts.find(login)
            assert int(ac.balance[a]) == int(round(info["balance"] * MINOR_SCALE))

    @invariant()
    def incremental_agrees_with_full_recompute(self):
        eng = self.eng
        ac, sc, pc = eng.accounts.cols, eng.symbols.cols, eng.positions.cols
        n = len(eng.accounts)
        out = [np.zeros(n) for _ in range(3)]
        idx = eng.positions.by_acc
        recompute_all(n, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume, pc.price_open, sc.bid,
                      sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode,
                      tier_sets(eng), ac.leverage, *out)
        np.testing.assert_allclose(out[0], ac.profit[:n], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(out[1], ac.margin[:n], rtol=1e-9, atol=1e-6)


EngineMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40,
                                           deadline=None)
TestEngineMachine = EngineMachine.TestCase
