"""History out of the writer's memory: an engine with a store keeps a window of recent
deals, orders, postings and closed tickets; the rest is read from the store.

Every command goes to two engines: one behind a :class:`DurableEngine` with a tiny window
(it trims after every batch) and a plain one that keeps everything. They must agree on every
result, on the state hash, and the store's history must equal the plain engine's rows.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from cfd import commands as C
from cfd.accounts.book import AccountGroup
from cfd.accounts.ledger import HOUSE_CODES, N_HOUSE
from cfd.constants import DealReason, MarginMode, Retcode
from cfd.engine import Engine, EngineConfig
from cfd.instruments.spec import SymbolSpec
from cfd.snapshot import SCHEMA_VERSION
from cfd.store import Store, runner
from cfd.store.runner import DurableEngine, EngineApi, recover, verify_replay
from cfd.trading.financing import cutoff_msc
from cfd.trading.history import HistoryMarks
from tests import store_fixtures
from tests.helpers import Book

store_url = store_fixtures.store_url

FRI = dt.date(2024, 6, 7)
WINDOW = 4


def specs() -> list[SymbolSpec]:
    return [SymbolSpec(name=n, digits=2, volume_min=Decimal("0.1"), volume_step=Decimal("0.1"))
            for n in ("NVDA", "KO")]


def config() -> EngineConfig:
    return EngineConfig(groups={
        "hedge": AccountGroup(name="hedge"),
        "net": AccountGroup(name="net", margin_mode=MarginMode.RETAIL_NETTING),
        "retail": AccountGroup(name="retail", dividend_withholding=Decimal(30))})


def api() -> EngineApi:
    return EngineApi(new=lambda: Engine(specs(), config=config()),
                     from_snapshot=lambda a, m: Engine.from_snapshot(a, m, config()))


class Twin(Book):
    """Each command to a trimming durable engine and to a plain one; results must match."""

    def __init__(self, url: str, snapshot_every: int | None = None) -> None:
        self.store = Store.open(url)
        self.durable = DurableEngine(self.store, Engine(specs(), config=config()),
                                     snapshot_every=snapshot_every, history_window=WINDOW)
        self.plain = Engine(specs(), config=config())
        super().__init__(self.durable.engine)
        self.t = cutoff_msc(FRI) - 30 * 3_600_000

    def apply(self, cmd_type, **kw):
        cmd = cmd_type(time_msc=self.tick(), **kw)
        got = self.durable.submit([cmd])[0]
        want = self.plain.apply(cmd)
        assert (got.retcode, got.comment) == (want.retcode, want.comment)
        return got

    def quote(self, **quotes):
        q = {self.eng.symbols.get(n): (float(b), float(a)) for n, (b, a) in quotes.items()}
        cmd = C.Ticks.of(self.tick(), q)
        got, want = self.durable.submit([cmd])[0], self.plain.apply(cmd)
        assert (got.retcode, got.comment) == (want.retcode, want.comment)
        return got

    def close(self, login: int, symbol: str, volume: float, ticket: int, sell: bool = True):
        return self.send(login, symbol=symbol, volume=volume, type=1 if sell else 0,
                         position=ticket)


def workload(b: Twin) -> dict:
    b.account(1, 5_000_000, group="hedge")
    b.account(2, 5_000_000, group="net")
    b.account(3, 60_000, group="hedge", leverage=100)
    b.account(4, 5_000_000, group="retail")
    b.quote(NVDA=(120.00, 120.02), KO=(62.00, 62.02))
    first = b.buy(1, "NVDA", 1.0)  # open all along: its deal leaves memory long before
    assert first.ok
    assert b.buy(4, "KO", 50).ok
    closed, canceled, reversals = [], [], []
    for i in range(12):
        r = b.buy(1, "KO", 1.0)
        assert r.ok, r
        assert b.close(1, "KO", 1.0, r.data.order).ok
        closed.append(r.data.order)
        r = (b.buy if i % 2 else b.sell)(2, "NVDA", 2.0 if i else 1.0)  # reversals
        assert r.ok, r
        reversals.append(r.data.order)  # each the ticket of the netting position it leaves
        r = b.send(1, action=5, symbol="KO", volume=1.0, type=2, price=50.0)  # BUY LIMIT
        assert r.ok, r
        assert b.send(1, action=8, order=r.data.order).ok  # removed
        canceled.append(r.data.order)
        assert b.apply(C.Deposit, login=4, amount=100 + i).ok
        b.quote(NVDA=(120.00 + i / 10, 120.02 + i / 10), KO=(62.00 - i / 100, 62.02 - i / 100))
    # refusals about rows long gone from memory: the same messages as with every row kept
    r = b.close(1, "KO", 1.0, closed[0])
    assert r.retcode == Retcode.POSITION_CLOSED and "already closed" in r.comment
    for ticket in reversals[:3]:  # the netting position's tickets before later reversals
        r = b.close(2, "NVDA", 1.0, ticket)
        assert r.retcode == Retcode.POSITION_CLOSED, r
    r = b.send(1, action=8, order=canceled[0])
    assert r.retcode == Retcode.INVALID and "no longer pending (CANCELED)" in r.comment
    # corporate action and rollover on the trimmed engine
    assert b.apply(C.CorporateAction, op="add", fields={
        "kind": "dividend", "symbol": "KO", "ex_date": "2024-06-10", "amount": "0.485"}).ok
    b.t = max(b.t, cutoff_msc(FRI))
    assert b.apply(C.Rollover, date=str(FRI)).ok
    # a stop-out sweep: account 3 over-extended, then the price falls
    assert b.buy(3, "NVDA", 20.0).ok
    for px in (115, 110, 105, 100, 95, 90):
        b.quote(NVDA=(px, px + 0.02))
    if b.eng.positions.of_account(b.eng.accounts.find(3)).size:  # the sweep, by hand
        assert b.apply(C.ForceStopOut, login=3).ok
    assert (b.plain.deals.cols.reason[: len(b.plain.deals)] == DealReason.SO).any()
    assert not b.eng.positions.of_account(b.eng.accounts.find(3)).size
    # the first position, whose opening deal left memory long ago, closes
    assert b.close(1, "NVDA", 1.0, first.data.order).ok
    return {"closed": closed, "canceled": canceled}


def _same_history(b: Twin) -> None:
    plain = b.plain
    for login in (1, 2, 3, 4):
        a = plain.accounts.find(login)
        want = [plain.deal_row(i) for i in range(len(plain.deals)) if plain.deals.cols.acc[i] == a]
        got = b.store.history_deals(login, 0, 2**62)
        assert [{k: r[k] for k in want[0]} for r in got] == want
        want_o = sorted((plain.order_row(i) for i in range(len(plain.orders))
                         if plain.orders.cols.acc[i] == a),
                        key=lambda r: (r["time_setup_msc"], r["ticket"]))
        got_o = b.store.history_orders(login, 0, 2**62)
        assert [{k: r[k] for k in want_o[0]} for r in got_o] == want_o
        latest = b.store.latest_deals(login, 3)  # the back office's latest deals
        assert [{k: r[k] for k in want[0]} for r in latest] == want[-3:]


def test_a_trimmed_engine_equals_one_that_keeps_everything(store_url: str,
                                                           monkeypatch) -> None:
    b = Twin(store_url)
    workload(b)
    eng = b.durable.engine
    assert eng.state_hash() == b.plain.state_hash()
    # memory bounded: each log holds less than twice the window, the rest was trimmed
    for log, full in ((eng.deals, b.plain.deals), (eng.orders, b.plain.orders)):
        assert len(log) < 2 * WINDOW < log.base and log.total == len(full)
    assert eng.ledger.postings.size < 2 * WINDOW < eng.ledger.base
    assert eng.ledger.total_postings == b.plain.ledger.postings.size
    assert len(eng.closed_tickets) < 2 * WINDOW < eng.closed_trimmed
    # the ledger still re-derives: from the sums of trimmed postings, and from the store
    n = eng.ledger.n_accounts
    assert np.array_equal(eng.ledger.rederive(), eng.ledger.balance[:n])
    logins = eng.accounts.cols.login
    sums = b.store.ledger_sums()
    for lid in range(n):
        code = (HOUSE_CODES[lid] if lid < N_HOUSE else
                f"{'client_credit' if (lid - N_HOUSE) % 2 else 'client'}:"
                f"{int(logins[(lid - N_HOUSE) // 2])}")
        assert sums.get(code, 0) == int(eng.ledger.balance[lid]), code
    _same_history(b)
    # recovery (no snapshot: the whole journal) and a full replay give the live hash
    live = eng.state_hash()
    b.durable.close()
    monkeypatch.setattr(runner, "HISTORY_WINDOW", WINDOW)  # replay trims what it replayed
    with Store.open(store_url) as st:
        back = recover(st, api())
        assert back.state_hash() == live and len(back.deals) < 2 * WINDOW < back.deals.base
        assert verify_replay(st, api())["state_hash"] == live


def test_snapshot_holds_the_window_and_restores_with_replay(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    b = Twin(url, snapshot_every=25)
    workload(b)
    eng = b.durable.engine
    arrays, meta = eng.snapshot()
    assert meta["schema_version"] == SCHEMA_VERSION == 6
    assert len(arrays["deal.ticket"]) < 2 * WINDOW and len(arrays["posting.id"]) < 2 * WINDOW
    back = Engine.from_snapshot(arrays, meta, config())
    assert back.state_hash() == eng.state_hash() == b.plain.state_hash()
    assert np.array_equal(back.ledger.rederive(), back.ledger.balance[: back.ledger.n_accounts])
    live = eng.state_hash()
    b.durable.close()
    with Store.open(url) as st:
        assert len(st.snapshot_list()) >= 2
        assert recover(st, api()).state_hash() == live  # latest snapshot + journal tail
        out = verify_replay(st, api())
        assert out["snapshots_checked"] >= 2 and out["state_hash"] == live


def test_an_old_snapshot_is_refused_with_the_clear_message() -> None:
    eng = Engine(specs(), config=config())
    arrays, meta = eng.snapshot()
    with pytest.raises(ValueError, match="replay the journal from the start"):
        Engine.from_snapshot(arrays, {**meta, "schema_version": 5})


def test_nothing_unjournaled_is_trimmed() -> None:
    b = Book(Engine(specs(), config=config()))
    b.account(1, 1_000_000, group="hedge")
    durable = b.eng.history_marks()
    assert durable.deals == durable.postings == 1
    for i in range(30):
        assert b.apply(C.Deposit, login=1, amount=1 + i).ok
    # far past twice the window, but only the rows up to the durable mark may go
    assert b.eng.trim_history(durable, 2) == 2
    assert (b.eng.deals.base, b.eng.ledger.base, len(b.eng.deals)) == (1, 1, 30)
    assert b.eng.trim_history(b.eng.history_marks(), 2) == 2 * 28
    assert (len(b.eng.deals), b.eng.ledger.postings.size, b.eng.deals.total) == (2, 2, 31)
    assert [b.eng.deal_row(i)["profit"] for i in range(2)] == [29, 30]
    assert b.eng.trim_history(HistoryMarks(0, 0, 0, 0), 2) == 0


def test_pipelined_batches_trim_only_what_is_committed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    store = Store.open(url)
    durable = DurableEngine(store, Engine(specs(), config=config()), history_window=WINDOW)
    plain = Engine(specs(), config=config())
    t = cutoff_msc(FRI) - 30 * 3_600_000
    cmds = [C.CreateAccount(time_msc=t, login=1, name="a", group="hedge")]
    cmds += [C.Deposit(time_msc=t + 1 + i, login=1, amount=10 + i) for i in range(60)]
    futures = []
    for i in range(0, len(cmds), 5):
        booked = durable.engine.deals.total
        futures.append(durable.submit_async(cmds[i:i + 5]))
        # nothing of this very batch was trimmed (it may not be committed yet)
        assert durable.engine.deals.base <= booked
        for c in cmds[i:i + 5]:
            assert plain.apply(c).ok
    durable.flush()
    assert all(f.result()[0].ok for f in futures)
    eng = durable.engine
    assert len(eng.deals) < 2 * WINDOW < eng.deals.base
    assert eng.state_hash() == plain.state_hash()
    got = store.history_deals(1, 0, 2**62)
    assert [r["ticket"] for r in got] == plain.deals.cols.ticket[: len(plain.deals)].tolist()
    durable.close()
