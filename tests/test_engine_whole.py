"""Whole or nothing: random and hostile commands through ``Engine.apply``.

Every command either applies whole (and is journaled) or is refused and changes nothing:
a refused command leaves ``state_hash`` unchanged (and ``seq``, the clock and the tickets),
and the live engine's hash always equals a replay of the commands it accepted, each
journaled as its payload and decoded again, on a fresh engine. Hostile values: huge,
tiny, NaN, infinite, wrong types, unknown accounts, tickets and symbols, bad times.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cfd import commands as C
from cfd.engine import Engine, EngineHalted
from cfd.errors import Rejected
from cfd.instruments.spec import load_catalogue
from tests.helpers import T0, Book

SYMBOLS = ["AAPL", "NVDA", "TSLA"]
LOGINS = [11, 12, 21]  # hedging, hedging, netting
SPECS = [s for s in load_catalogue() if s.name in SYMBOLS]  # a small book hashes fast

hostile_numbers = st.sampled_from([
    0, -1, 1, 10**30, 2**63, -(2**63), 1e308, -1e308, 1e-308, 5e-324, float("nan"),
    float("inf"), float("-inf"), 0.1, 1.0, 250.0, 100.05])
hostile = st.one_of(hostile_numbers, st.sampled_from(
    ["1", "", "AAPL", None, True, False, [], {}, [1, 2], {"a": 1}]))
amounts = st.one_of(st.integers(-10**18, 10**18), st.integers(1, 5_000_000), hostile)
logins = st.one_of(st.sampled_from(LOGINS), st.sampled_from([0, -1, 99, 2**64]), hostile)
symbols = st.one_of(st.sampled_from(SYMBOLS), st.sampled_from(["NOPE", "", "aapl"]), hostile)
fields = st.sampled_from(["action", "symbol", "volume", "type", "price", "sl", "tp",
                          "deviation", "type_filling", "position", "position_by", "order",
                          "stoplimit", "type_time", "expiration", "magic", "comment"])


class WholeOrNothing(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.eng = Engine(SPECS)
        self.journal: list[tuple[str, bytes]] = []
        self.t = T0
        for login in LOGINS:
            group = "demo\\netting" if login == 21 else "demo\\usdt"
            self.apply(C.CreateAccount(time_msc=self.tick(), login=login, name=str(login),
                                       group=group, leverage=10))
            self.apply(C.Deposit(time_msc=self.tick(), login=login, amount=1_000_000))
        for i, s in enumerate(SYMBOLS):
            self.apply(C.Ticks.of(self.tick(), {self.eng.symbols.get(s): (100.0 + i,
                                                                         100.1 + i)}))
        self.refused = 0

    def tick(self) -> int:
        self.t += 1
        return self.t

    def apply(self, cmd: C.Command) -> None:
        eng = self.eng
        before = (eng.state_hash(), eng.seq, eng.now_msc, eng.next_order, eng.next_deal,
                  eng.ledger.next_id)
        try:
            res = eng.apply(cmd)
        except EngineHalted as exc:  # never on any input: a halt is an engine bug
            raise AssertionError(f"{cmd!r} halted the engine: {exc}") from exc
        if res.refused:
            self.refused += 1
            assert not res.ok, res
            after = (eng.state_hash(), eng.seq, eng.now_msc, eng.next_order, eng.next_deal,
                     eng.ledger.next_id)
            assert after == before, (cmd, res)
        else:
            self.journal.append((cmd.kind, cmd.to_payload()))
            assert eng.seq == before[1] + 1
        assert eng.ledger_total() == 0

    # -- money ---------------------------------------------------------------------------
    @rule(kind=st.sampled_from([C.Deposit, C.Withdraw, C.AdjustCredit]), login=logins,
          amount=amounts)
    def money(self, kind: type, login: object, amount: object) -> None:
        self.apply(kind(time_msc=self.tick(), login=login, amount=amount))

    @rule(amount=amounts)
    def insurance(self, amount: object) -> None:
        self.apply(C.TopUpInsurance(time_msc=self.tick(), amount=amount))

    # -- trading -------------------------------------------------------------------------
    @rule(login=st.sampled_from(LOGINS), symbol=st.sampled_from(SYMBOLS),
          side=st.sampled_from([0, 1]), volume=st.sampled_from([0.1, 1.0, 5.0, 40.0]))
    def market_order(self, login: int, symbol: str, side: int, volume: float) -> None:
        s = self.eng.symbols.get(symbol)
        sc = self.eng.symbols.cols
        price = (sc.ask[s] if side == 0 else sc.bid[s]) / 1e6
        self.apply(C.SendOrder(time_msc=self.tick(), login=login, request={
            "action": 1, "symbol": symbol, "volume": volume, "type": side, "price": price,
            "deviation": 100, "type_filling": 2}))

    @rule(login=logins, action=st.sampled_from([1, 5, 6, 7, 8, 10, 99]), symbol=symbols,
          type_=st.one_of(st.integers(-1, 9), hostile), volume=st.one_of(
              st.sampled_from([0.1, 1.0]), hostile),
          price=st.one_of(st.sampled_from([99.0, 101.0, 150.0]), hostile),
          extra=st.dictionaries(fields, hostile, max_size=3), pick=st.integers(0, 9))
    def hostile_order(self, login: object, action: int, symbol: object, type_: object,
                      volume: object, price: object, extra: dict, pick: int) -> None:
        request = {"action": action, "symbol": symbol, "type": type_, "volume": volume,
                   "price": price, "deviation": 100, "type_filling": 2}
        pc = self.eng.positions.cols
        live = [int(t) for t, a in zip(pc.ticket[: pc.size], pc.active[: pc.size],
                                       strict=True) if a]
        if live and pick < 5:  # an existing position (of someone) by ticket
            request["position"] = live[pick % len(live)]
        request.update(extra)
        before = self.eng.state_hash()
        check = self.eng.order_check(login, request) if isinstance(login, int) else None
        assert self.eng.state_hash() == before, check
        self.apply(C.SendOrder(time_msc=self.tick(), login=login, request=request))

    @rule(login=st.sampled_from(LOGINS), pick=st.integers(0, 20),
          side=st.sampled_from([0, 1]), volume=st.sampled_from([0.1, 1.0]))
    def close(self, login: int, pick: int, side: int, volume: float) -> None:
        eng = self.eng
        slots = eng.positions.of_account(eng.accounts.find(login))
        if not len(slots):
            return
        p = int(slots[pick % len(slots)])
        s = int(eng.positions.cols.sym[p])
        sc = eng.symbols.cols
        self.apply(C.SendOrder(time_msc=self.tick(), login=login, request={
            "action": 1, "symbol": eng.symbols.specs[s].name, "volume": volume, "type": side,
            "position": int(eng.positions.cols.ticket[p]), "deviation": 100,
            "price": (sc.ask[s] if side == 0 else sc.bid[s]) / 1e6, "type_filling": 2}))

    # -- prices and the broker's commands -------------------------------------------------
    @rule(symbol=st.sampled_from(SYMBOLS), move=st.sampled_from([-0.4, -0.1, 0.0, 0.02, 0.3]))
    def tick_move(self, symbol: str, move: float) -> None:
        s = self.eng.symbols.get(symbol)
        bid = round(float(self.eng.symbols.cols.bid[s]) / 1e6 * (1 + move), 2)
        self.apply(C.Ticks.of(self.tick(), {s: (bid, round(bid + 0.1, 2))}))

    @rule(sym=st.one_of(st.integers(-2, 5), hostile), bid=hostile, ask=hostile)
    def hostile_tick(self, sym: object, bid: object, ask: object) -> None:
        self.apply(C.Ticks(time_msc=self.tick(), symbols=(sym,), bid=(bid,), ask=(ask,)))

    @rule(t=st.one_of(hostile, st.sampled_from([T0 - 10**6, 2**62, -5])))
    def hostile_time(self, t: object) -> None:
        self.apply(C.Deposit(time_msc=t, login=LOGINS[0], amount=100))

    @rule(login=st.one_of(st.just(0), logins), call=hostile, so=hostile, end=hostile)
    def levels(self, login: object, call: object, so: object, end: object) -> None:
        self.apply(C.SetAccountLevels(time_msc=self.tick(), login=login, margin_call=call,
                                      stop_out=so, stop_out_end=end))

    @rule(name=symbols, key=st.sampled_from(["margin_initial", "contract_size", "digits",
                                             "trade_mode", "volume_max", "nope"]),
          value=hostile)
    def set_symbol(self, name: object, key: str, value: object) -> None:
        self.apply(C.SetSymbol(time_msc=self.tick(), name=name, changes={key: value}))

    @rule(names=st.lists(symbols, max_size=2), open_=st.sampled_from([None, True, False]),
          halted=st.sampled_from([None, True, False]))
    def set_market(self, names: list, open_: object, halted: object) -> None:
        self.apply(C.SetMarket(time_msc=self.tick(), symbols=tuple(names), market_open=open_,
                               halted=halted))

    @rule(login=logins)
    def force_stop_out(self, login: object) -> None:
        self.apply(C.ForceStopOut(time_msc=self.tick(), login=login))

    @rule(login=logins, name=hostile, group=st.sampled_from(["demo\\usdt", "nope", ""]),
          leverage=st.one_of(st.integers(-1, 2000), hostile))
    def create_account(self, login: object, name: object, group: str, leverage: object
                       ) -> None:
        self.apply(C.CreateAccount(time_msc=self.tick(), login=login, name=name, group=group,
                                   leverage=leverage))

    # -- the journal ---------------------------------------------------------------------
    @invariant()
    def replay_of_the_journal_has_the_live_hash(self) -> None:
        if len(self.journal) % 8:
            return  # every 8th accepted command (a replay per step would be slow)
        self.check_replay()

    def check_replay(self) -> None:
        fresh = Engine(SPECS)
        for kind, payload in self.journal:
            res = fresh.apply(C.decode(kind, payload))
            assert not res.refused, (kind, payload, res)
        assert fresh.state_hash() == self.eng.state_hash()
        assert fresh.seq == self.eng.seq == len(self.journal)

    def teardown(self) -> None:
        if hasattr(self, "eng") and self.eng.halted is None:
            self.check_replay()


WholeOrNothing.TestCase.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestWholeOrNothing = WholeOrNothing.TestCase


def test_huge_volume_is_refused_and_changes_nothing() -> None:
    b = Book.two_accounts()
    before = (b.eng.state_hash(), b.eng.seq, b.eng.next_order)
    r = b.buy(1001, "AAPL", 1e308)
    # 1e308 lots * 10,000 units per lot overflows a float: refused before it is scaled
    assert r.refused and r.retcode == 10014 and "exceeds the maximum" in r.comment
    assert (b.eng.state_hash(), b.eng.seq, b.eng.next_order) == before
    chk = b.eng.order_check(1001, {"action": 1, "symbol": "AAPL", "volume": 1e308, "type": 0,
                                   "price": 230.1})
    assert chk.retcode == 10014
    assert b.eng.halted is None


def test_a_failure_inside_a_handler_halts_the_engine() -> None:
    b = Book.two_accounts()

    def broken(cmd: C.Command) -> None:
        b.eng.next_order += 1  # a change, then a bug
        raise ZeroDivisionError("bug")

    b.eng.register(C.ForceStopOut, broken)
    seq = b.eng.seq
    with pytest.raises(EngineHalted, match=r"command \d+ \(force_stop_out\) failed"):
        b.apply(C.ForceStopOut, login=1001)
    assert b.eng.halted is not None
    with pytest.raises(EngineHalted):  # nothing more is taken, not even a good command
        b.apply(C.Deposit, login=1001, amount=100)
    assert b.eng.seq == seq + 1  # the failed command's number is never reused in memory


def test_a_refusal_after_a_change_halts_instead_of_diverging() -> None:
    b = Book.two_accounts()

    def half(cmd: C.Command) -> None:
        b.eng.next_deal += 1
        raise Rejected(10013, "refused too late")

    b.eng.register(C.ForceStopOut, half)
    with pytest.raises(EngineHalted, match="refused too late"):
        b.apply(C.ForceStopOut, login=1001)
