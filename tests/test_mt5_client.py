"""``api.mt5`` against a live uvicorn server, and the MT5 documentation's examples."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import api.mt5 as mt5
from tests.test_api_fixtures import ADMIN, LiveServer, make_runtime

EXAMPLES = Path(__file__).parent / "mt5_examples"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def live() -> Iterator[dict]:
    with LiveServer(make_runtime()) as srv:
        c = httpx.Client(base_url=srv.url, headers=ADMIN)
        c.post("/admin/ticks", json=[{"symbol": "AAPL", "bid": 230.00, "ask": 230.05},
                                     {"symbol": "MSFT", "bid": 420.00, "ask": 420.10},
                                     {"symbol": "NVDA", "bid": 140.00, "ask": 140.02}])
        acc = srv.rt.demo["accounts"][0]
        h = {"X-CFD-Login": str(acc["login"]), "Authorization": f"Bearer {acc['api_key']}"}
        base = {"action": 1, "deviation": 20, "type_filling": 2, "volume": 1.0}
        aapl = c.post("/v1/order_send", headers=h, json={
            **base, "symbol": "AAPL", "type": 0, "price": 230.05}).json()
        c.post("/v1/order_send", headers=h, json={
            **base, "symbol": "NVDA", "type": 1, "price": 140.00})
        pending = c.post("/v1/order_send", headers=h, json={
            "action": 5, "symbol": "MSFT", "volume": 1.0, "type": 2, "price": 400.0,
            "type_filling": 2, "type_time": 0}).json()
        assert aapl["retcode"] == 10009 and pending["retcode"] == 10008, (aapl, pending)
        old = os.environ.get("CFD_SERVER")
        os.environ["CFD_SERVER"] = srv.url
        yield {"url": srv.url, "position": aapl["order"], "account": acc}
        mt5.shutdown()
        if old is None:
            os.environ.pop("CFD_SERVER", None)
        else:
            os.environ["CFD_SERVER"] = old


def test_module_surface() -> None:
    assert (mt5.__version__, mt5.__author__) == ("5.0.6231", "MetaQuotes Ltd.")
    assert (mt5.TRADE_ACTION_DEAL, mt5.TRADE_ACTION_CLOSE_BY, mt5.ORDER_FILLING_RETURN) == \
        (1, 10, 2)
    assert (mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_TOO_MANY_REQUESTS) == (10009, 10024)
    assert (mt5.DEAL_REASON_SO, mt5.TIMEFRAME_D1, mt5.TIMEFRAME_MN1) == (6, 16408, 49153)
    assert (mt5.RES_E_INTERNAL_FAIL_CONNECT, mt5.COPY_TICKS_ALL, mt5.DEAL_TAX) == \
        (-10004, -1, 17)
    assert not hasattr(mt5, "TRADE_RETCODE_HEDGE_PROHIBITED")  # not in 5.0.6231 either
    req = mt5.TradeRequest(*range(17))
    assert pickle.loads(pickle.dumps(req)) == req and req._asdict()["position_by"] == 16
    assert len(mt5.SymbolInfo._fields) == 96 and len(mt5.AccountInfo._fields) == 28


def test_not_connected_and_argument_errors() -> None:
    mt5.shutdown()
    assert mt5.account_info() is None and mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.order_send("buy") is None and mt5.last_error()[0] == -2
    assert mt5.order_send({"comment": "x" * 40}) is None
    assert mt5.last_error() == (-2, 'Invalid "comment" argument')
    assert mt5.order_send({"volume": "1"}) is None
    assert mt5.last_error() == (-2, 'Invalid "volume" argument')
    assert mt5.positions_get("AAPL") is None
    assert mt5.last_error() == (-2, "Unnamed arguments not allowed")
    assert mt5.symbol_info(42) is None and mt5.last_error() == (-2, 'Invalid "symbol" argument')


def test_client_functions(live: dict) -> None:
    assert mt5.initialize()
    assert mt5.last_error() == (1, "Success")
    info = mt5.account_info()
    assert info.login == live["account"]["login"] and info.currency == "USDT"
    assert pickle.loads(pickle.dumps(info)) == info
    assert mt5.terminal_info().connected is True
    assert mt5.version()[0] == 500
    assert mt5.symbols_total() == len(mt5.symbols_get())
    assert [s.name for s in mt5.symbols_get("AAPL,MSFT")] == ["AAPL", "MSFT"]
    tick = mt5.symbol_info_tick("AAPL")
    assert (tick.bid, tick.ask) == (230.0, 230.05)
    assert mt5.symbol_info("NOPE") is None and mt5.last_error()[0] == -4
    assert mt5.positions_total() == 2 and mt5.orders_total() == 1
    assert [p.symbol for p in mt5.positions_get(group="*,!NV*")] == ["AAPL"]
    (order,) = mt5.orders_get(symbol="MSFT")
    assert (order.type, order.state, order.price_open) == (2, 1, 400.0)
    # 1 lot * 230.05 * 0.2 = 46.01 USDT
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "AAPL", 1.0, 230.05) == 46.01
    assert mt5.order_calc_profit(mt5.ORDER_TYPE_BUY, "AAPL", 2.0, 100.0, 110.0) == 20.0
    assert mt5.order_calc_margin(0, "NOPE", 1.0, 1.0) is None
    deals = mt5.history_deals_get(position=live["position"])
    assert len(deals) == 1 and deals[0].order == live["position"]
    assert mt5.history_deals_get(ticket=live["position"]) == deals  # the order ticket
    assert mt5.history_deals_total(0, 2**34) == 3  # deposit + 2 deals
    assert mt5.history_orders_total(0, 2**34) == 2
    ticks = mt5.copy_ticks_range("AAPL", tick.time, 2**34, mt5.COPY_TICKS_ALL)
    assert ticks.dtype.names[:3] == ("time", "bid", "ask") and ticks["bid"][0] == 230.0
    old = mt5.copy_ticks_range("AAPL", 0, 1578009599, mt5.COPY_TICKS_INFO)  # to Jan 2, 2020
    assert old["time"][0] == 1577975400 and len(old) == 390 * 4  # from 14:30 UTC, synthetic
    rates = mt5.copy_rates_range("AAPL", mt5.TIMEFRAME_M1, tick.time - 60, 2**34)
    assert rates["close"][-1] == 230.0 and rates.dtype.names[-1] == "real_volume"
    r = mt5.order_send({"action": 1, "symbol": "AAPL", "volume": -1.0, "type": 0,
                        "price": 230.05, "type_filling": 2})
    assert r.retcode == mt5.TRADE_RETCODE_INVALID_VOLUME and r.request.volume == -1.0
    assert not mt5.login(live["account"]["login"], password="wrong")
    assert mt5.last_error()[0] == -6
    assert mt5.account_info().login == live["account"]["login"]  # still the old session


@pytest.mark.parametrize("name", ["order_send", "order_check", "positions_get", "orders_get",
                                  "history_deals_get", "history_orders_get", "copy_rates_from",
                                  "copy_rates_from_pos", "copy_rates_range", "copy_ticks_from",
                                  "copy_ticks_range", "login"])
def test_mt5_documentation_examples(live: dict, name: str) -> None:
    demo = httpx.get(f"{live['url']}/demo/credentials").json()["accounts"]
    env = {**os.environ, "CFD_SERVER": live["url"], "PYTHONPATH": str(ROOT),
           "EXAMPLE_POSITION_ID": str(live["position"]),
           "CFD_MT5_CONFIG": str(ROOT / "no-such-config.json"),
           "EXAMPLE_LOGIN": str(demo[1]["login"]), "EXAMPLE_LOGIN2": str(demo[2]["login"]),
           "EXAMPLE_PASSWORD2": demo[2]["api_key"]}
    env.pop("CFD_PASSWORD", None)
    env.pop("CFD_LOGIN", None)
    out = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], env=env,
                         capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "MetaTrader5 package author:  MetaQuotes Ltd." in text
    assert "MetaTrader5 package version:  5.0.6231" in text
    pos = live["position"]
    expected = {
        "order_send": ["2. order_send done,  OrderSendResult(retcode=10009",
                       "request=TradeRequest(action=1, magic=234000", "4. position #",
                       "traderequest: comment=python script close",
                       "traderequest: type_filling=2"],
        "order_check": ["Account currency: USDT", "OrderCheckResult(retcode=0,",
                        "comment='Done'", "   margin_level=", "traderequest: volume=1.0"],
        "positions_get": ["Total positions on AAPL = 1", "TradePosition(ticket=",
                          "positions_get(group=\"*A*\")=2", "price_open"],
        "orders_get": ["Total orders on MSFT: 1", "TradeOrder(ticket=",
                       "orders_get(group=\"*MS*\")=1", "time_setup"],
        "history_deals_get": ["group=\"*AA*\")=", "=\"*,!*MS*,!*NV*\") =",
                              f"Deals with position id #{pos}: 1", "TradeDeal(ticket="],
        "history_orders_get": ["group=\"*AA*\")=", f"Total history orders on position "
                               f"#{pos}: 1", "TradeOrder(ticket=", "time_done"],
        # the demo's synthetic history: 10 H4 bars up to 2020-01-10 00:00 (that Thursday's
        # and Wednesday's sessions, 09:30-16:00 New York = 14:30-21:00 UTC)
        "copy_rates_from": ["Display dataframe with data", "2020-01-09 20:00:00",
                            "tick_volume  spread  real_volume"],
        "copy_rates_from_pos": ["Display dataframe with data", "real_volume", "\n9 "],
        # Friday 2020-01-10, 14:30-21:00 UTC: 78 M5 bars, the first ten shown
        "copy_rates_range": ["2020-01-10 14:30:00", "2020-01-10 15:15:00", "\n9 "],
        # synthetic days have 4 ticks a minute: 100,000 from Friday 2020-01-10 14:30 UTC
        "copy_ticks_from": ["Ticks received: 100000", "2020-01-10 14:30:00",
                            "2020-01-10 14:30:15", "time_msc"],
        # 390 minutes * 4 ticks = 1,560 ticks on 2020-01-10
        "copy_ticks_range": ["Ticks received: 1560", "Display dataframe with ticks"],
        "login": ["(500, 5000, '01 Jan 2026')", f"connected to account #{demo[1]['login']}",
                  f"AccountInfo(login={demo[2]['login']}", "  currency=USDT"],
    }[name]
    for piece in expected:
        assert piece in text, (piece, text)
    print(text)


def test_market_book_example_in_process(live: dict, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    """The market_book_add/get/release example: ten reads 5 s apart (sleep skipped here)."""
    import runpy
    import time

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    runpy.run_path(str(EXAMPLES / "market_book_add.py"), run_name="__main__")
    text = capsys.readouterr().out
    # AAPL 230.00 / 230.05, point 0.01: asks 230.09 (200 lots) .. 230.05 (10), then bids
    # 230.00 (10) .. 229.96 (200)
    assert "(BookInfo(type=1, price=230.09, volume=200, volume_dbl=200.0)" in text
    assert "{'type': 2, 'price': 230.0, 'volume': 10, 'volume_dbl': 10.0}" in text
    assert text.count("BookInfo(type=2, price=229.96") == 10
    assert not mt5.market_book_release("AAPL") and mt5.last_error()[0] == -1


_BLOCKED = ("numba", "sqlalchemy", "alembic", "matplotlib", "fastapi", "starlette", "uvicorn",
            "pydantic", "pandas", "orjson", "cfd", "risk")
_CLIENT_ONLY = f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {_BLOCKED!r}:
            raise ImportError("the client must not import " + name)

sys.meta_path.insert(0, Block())
import api.mt5 as mt5
assert mt5.initialize(), mt5.last_error()
rates = mt5.copy_rates_from_pos("AAPL", mt5.TIMEFRAME_D1, 0, 5)
print(len(rates), rates.dtype.names[-1], sorted(set(sys.modules) & set({_BLOCKED!r})))
"""


def test_client_runs_without_the_engine_dependencies(live: dict) -> None:
    """api.mt5 needs only httpx and numpy (``pip install --no-deps`` + those two)."""
    env = {**os.environ, "CFD_SERVER": live["url"], "PYTHONPATH": str(ROOT)}
    env.pop("CFD_LOGIN", None)
    out = subprocess.run([sys.executable, "-c", _CLIENT_ONLY], env=env, capture_output=True,
                         text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5", "real_volume", "[]"]
