"""The kernel stop-out path (numba sweep + bulk booking) books exactly what the Python
reference sweep books: same state hash, same effect rows and events, command by command."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.engine import Engine, EngineConfig
from cfd.trading import stopout
from tests.helpers import T0

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META"]
GROUPS = ["demo\\usdt", "demo\\netting", "retail\\esma", "pro\\usdt"]
# a group whose commission schedule overrides the symbols' (cfd.trading.commission)
PRO = AccountGroup(name="pro\\usdt", commission={
    "AAPL": {"per_lot": "0.01", "charge": "exit"},
    "*": {"per_deal": "0.40", "percent": "0.03", "minimum": "0.50", "maximum": "4.00",
          "fee_percent": "0.002"}})
SCHEDULES = [
    {"commission_per_lot": "0.35", "commission_min": "1.00"},
    {"commission_percent": "0.1", "commission_max": "6.00", "commission_per_deal": "0.25",
     "fee_per_lot": "0.003", "fee_percent": "0.00278"},
    {"commission_per_lot": "0.02", "commission_charge": "entry", "fee_per_lot": "0.01"},
]


def twin_engines() -> tuple[Engine, Engine]:
    cfg = EngineConfig()
    cfg.groups[PRO.name] = PRO
    py, nb = Engine(config=cfg), Engine(config=cfg)
    py.stop_out = lambda accs, force=False: stopout.sweep_python(py, accs, force)
    nb.stop_out = lambda accs, force=False: stopout.sweep_kernel(nb, accs, force)
    return py, nb


def comparable(eff) -> dict:
    """The effects as rows, however they were built (dicts, or columns: Effects.blocks)."""
    return {"deals": sorted(eff.table_rows("deals"), key=lambda r: r["ticket"]),
            "postings": sorted(eff.table_rows("postings"), key=lambda r: r["id"]),
            "orders": eff.table_rows("orders"), "accounts": eff.table_rows("accounts"),
            "events": eff.events}


class Twin:
    """The same commands applied to an engine on each path, compared after every one."""

    def __init__(self) -> None:
        self.py, self.nb = twin_engines()
        self.t = T0
        self.stop_outs = 0

    def do(self, cmd_type, **kw):
        self.t += 1
        r1 = self.py.apply(cmd_type(time_msc=self.t, **kw))
        r2 = self.nb.apply(cmd_type(time_msc=self.t, **kw))
        assert r1.retcode == r2.retcode, (r1, r2)
        assert r1.events == r2.events
        assert comparable(self.py.take_effects()) == comparable(self.nb.take_effects())
        assert self.py.state_hash() == self.nb.state_hash(), cmd_type
        self.stop_outs += sum(e.get("kind") == "stop_out" for e in r1.events)
        return r1

    def quote(self, prices: dict[str, float]) -> None:
        q = {self.py.symbols.get(s): (p, round(p + 0.02, 2)) for s, p in prices.items()}
        self.do(C.Ticks, symbols=tuple(q), bid=tuple(v[0] for v in q.values()),
                ask=tuple(v[1] for v in q.values()))


def run_scenario(seed: int) -> Twin:
    rng = np.random.default_rng(seed)
    tw = Twin()
    base = {s: float(rng.integers(50, 400)) for s in SYMBOLS}
    tw.do(C.Ticks, symbols=tuple(tw.py.symbols.get(s) for s in SYMBOLS),
          bid=tuple(base.values()), ask=tuple(round(p + 0.02, 2) for p in base.values()))
    if rng.random() < 0.7:
        tw.do(C.SetSymbol, name="TSLA",
              changes=SCHEDULES[int(rng.integers(0, len(SCHEDULES)))])
    tw.do(C.TopUpInsurance, amount=int(rng.integers(0, 3)) * 50_000 + 1)
    logins = list(range(101, 101 + int(rng.integers(3, 9))))
    for login in logins:
        tw.do(C.CreateAccount, login=login, name=str(login),
              group=GROUPS[int(rng.integers(0, len(GROUPS)))])
        tw.do(C.Deposit, login=login, amount=int(rng.integers(1, 40)) * 100_000)
        if rng.random() < 0.3:
            tw.do(C.SetAccountLevels, login=login, stop_out_end=float(rng.choice([80, 120])))
        for _ in range(int(rng.integers(1, 8))):
            s = SYMBOLS[int(rng.integers(0, len(SYMBOLS)))]
            sc = tw.py.symbols.cols
            i = tw.py.symbols.get(s)
            side = int(rng.random() < 0.3)
            price = (sc.ask[i] if side == 0 else sc.bid[i]) / 1e6
            tw.do(C.SendOrder, login=login, request={
                "action": 1, "symbol": s, "volume": float(rng.choice([1, 5, 10, 25, 50])),
                "type": side, "price": price, "deviation": 1000, "type_filling": 2})
    if rng.random() < 0.3:
        tw.do(C.SetMarket, symbols=("NVDA",), market_open=False)
    for _ in range(int(rng.integers(2, 6))):
        shock = float(rng.choice([0.7, 0.8, 0.9, 1.0, 1.1, 1.3]))
        moved = {s: round(p * shock * float(rng.uniform(0.95, 1.05)), 2) for s, p in base.items()
                 if rng.random() < 0.7}
        if moved:
            tw.quote(moved)
    tw.do(C.SetMarket, symbols=("NVDA",), market_open=True)
    if rng.random() < 0.5:
        tw.do(C.ForceStopOut, login=logins[0])
    return tw


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_kernel_path_books_what_the_python_path_books(seed):
    run_scenario(seed)


def test_scenarios_do_stop_out():
    # the property above must exercise stop-outs, compensation and pending accounts
    total = sum(run_scenario(seed).stop_outs for seed in range(12))
    assert total >= 5


def test_equal_losses_close_the_lowest_ticket_first():
    tw = Twin()
    tw.do(C.Ticks, symbols=(tw.py.symbols.get("AAPL"),), bid=(100.0,), ask=(100.0,))
    tw.do(C.CreateAccount, login=7, name="7", group="demo\\usdt")
    tw.do(C.Deposit, login=7, amount=70_000)  # 700.00 USDT
    for _ in range(3):
        tw.do(C.SendOrder, login=7, request={"action": 1, "symbol": "AAPL", "volume": 10.0,
                                             "type": 0, "price": 100.0, "deviation": 10,
                                             "type_filling": 2})
    first = min(tw.nb.positions.by_ticket)
    # margin 3 x 10 lots x 100.00 x 20% = 600.00
    tw.quote({"AAPL": 92.0})  # equity 700 - 30 x 8 = 460 -> 76.7%: no stop-out
    assert tw.stop_outs == 0
    tw.quote({"AAPL": 86.0})  # equity 700 - 30 x 14 = 280 -> 46.7% <= 50%: stop out
    # one close (equal losses: the lowest ticket): balance 700 - 140 = 560, floating
    # 20 x -14 = -280, equity 280, margin 400 -> 70% > 50%: done
    assert tw.stop_outs == 1
    deals = tw.nb.deals.cols
    so = np.nonzero(deals.reason[: len(tw.nb.deals)] == 6)[0]
    assert len(so) == 1
    assert int(deals.position_id[so[0]]) == first
    assert int(deals.profit[so[0]]) == -14_000  # (86 - 100) x 10 lots x 1 share = -140.00
    assert tw.nb.deals.comments[so[0]] == "so: 46.67%/280.00/600.00"
