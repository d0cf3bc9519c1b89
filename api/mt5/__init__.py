"""The MetaTrader5 package's Python API, speaking HTTP to a CFD engine server.

    import api.mt5 as mt5          # instead of: import MetaTrader5 as mt5
    mt5.initialize()               # CFD_SERVER, CFD_LOGIN / CFD_PASSWORD, or the demo's first
    mt5.order_send({...})          # the same request dicts, retcodes and result records

Same function names and signatures, constants with MT5's numbers, results as named tuples in
MT5's field order (picklable, ``_asdict()``). Errors follow the package: functions return
None and :func:`last_error` says why, e.g. ``(-2, 'Invalid "comment" argument')``.
"""

from __future__ import annotations

import json as _json
import os as _os
from pathlib import Path as _Path
from typing import Any as _Any

import httpx as _httpx

from api.mt5 import _constants
from api.mt5._market import (
    copy_rates_from,
    copy_rates_from_pos,
    copy_rates_range,
    copy_ticks_from,
    copy_ticks_range,
    market_book_add,
    market_book_get,
    market_book_release,
)
from api.mt5._records import (
    AccountInfo,
    BookInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from api.mt5._records import (
    build as _build,
)
from api.mt5._transport import call as _call
from api.mt5._transport import fail as _fail
from api.mt5._transport import invalid as _invalid
from api.mt5._transport import is_str as _is_str
from api.mt5._transport import last_error
from api.mt5._transport import s as _s
from api.mt5._transport import seconds as _seconds

# Every MT5 constant (ORDER_TYPE_BUY, TRADE_RETCODE_DONE, ...) as a module attribute.
globals().update({k: v for k, v in vars(_constants).items() if k.isupper()})

__version__ = "5.0.6231"
__author__ = "MetaQuotes Ltd."
__all__ = [
    "AccountInfo", "BookInfo", "OrderCheckResult", "OrderSendResult", "SymbolInfo",
    "TerminalInfo", "Tick", "TradeDeal", "TradeOrder", "TradePosition", "TradeRequest",
    "account_info", "copy_rates_from", "copy_rates_from_pos", "copy_rates_range",
    "copy_ticks_from", "copy_ticks_range", "history_deals_get", "history_deals_total",
    "history_orders_get", "history_orders_total", "initialize", "last_error", "login",
    "market_book_add", "market_book_get", "market_book_release", "order_calc_margin",
    "order_calc_profit", "order_check", "order_send", "orders_get", "orders_total",
    "positions_get", "positions_total", "shutdown", "symbol_info", "symbol_info_tick",
    "symbol_select", "symbols_get", "symbols_total", "terminal_info", "version",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"
_REQUEST_INT = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time",
                "expiration", "position", "position_by")
_REQUEST_FLOAT = ("volume", "price", "stoplimit", "sl", "tp")
COMMENT_MAX = 31


def _connect(server: str, login_: int, password: str, timeout_ms: int) -> bool:
    client = _httpx.Client(base_url=server.rstrip("/"), timeout=max(timeout_ms, 1) / 1000,
                           headers={"X-CFD-Login": str(login_),
                                    "Authorization": f"Bearer {password}"})
    old = _s.client
    _s.client = client
    info = _call("GET", "/v1/account_info")
    if info is None:
        _s.client = old
        client.close()
        if _s.error[0] == -10001:
            _fail(-10003, f"IPC initialize failed, server {server} is not reachable")
        return False
    if old is not None:
        old.close()
    _s.login = int(login_)
    _s.keys[(server.rstrip("/"), int(login_))] = password
    return True


def config_file() -> _Path:
    """The client's saved API keys: ``$CFD_MT5_CONFIG``, else
    ``~/.config/cfd-mt5/accounts.json``, a JSON object ``{"<login>": "<api key>"}``."""
    env = _os.environ.get("CFD_MT5_CONFIG")
    return _Path(env) if env else _Path.home() / ".config" / "cfd-mt5" / "accounts.json"


def _saved_key(server: str, login_: int, timeout_ms: int) -> str:
    """The saved "password" of ``login_`` (MT5 uses the one saved in the terminal): the key
    it logged in with before in this process, the config file, ``$CFD_PASSWORD`` (when
    ``$CFD_LOGIN`` is unset or this login), or a demo server's published demo key."""
    key = _s.keys.get((server.rstrip("/"), login_))
    if key:
        return key
    try:
        saved = _json.loads(config_file().read_text())
        key = saved.get(str(login_)) if isinstance(saved, dict) else None
    except (OSError, ValueError):
        key = None
    if isinstance(key, str) and key:
        return key
    if _os.environ.get("CFD_PASSWORD") and _os.environ.get("CFD_LOGIN", str(login_)) == \
            str(login_):
        return _os.environ["CFD_PASSWORD"]
    for acc in _demo_accounts(server, timeout_ms):
        if int(acc["login"]) == login_:
            return str(acc["api_key"])
    return ""


def _demo_accounts(server: str, timeout_ms: int) -> list[dict]:
    try:
        r = _httpx.get(f"{server.rstrip('/')}/demo/credentials", timeout=timeout_ms / 1000)
    except _httpx.HTTPError:
        return []
    return r.json().get("accounts") or [] if r.status_code == 200 else []


def _server(server: str | None) -> str:
    if server and server.startswith(("http://", "https://")):
        return server
    return _os.environ.get("CFD_SERVER", DEFAULT_SERVER)


def initialize(path: str | None = None, *, login: int | None = None,
               password: str | None = None, server: str | None = None,
               timeout: int = 60000, portable: bool = False) -> bool:
    """Connect to the server (``server`` or ``$CFD_SERVER``, default 127.0.0.1:8000) as
    ``login``/``password`` (or ``$CFD_LOGIN``/``$CFD_PASSWORD``, the password being the API
    key); with neither, as the first account of a demo server."""
    if path is not None and not isinstance(path, str):
        _invalid("path")
        return False
    if login is not None and (not isinstance(login, int) or isinstance(login, bool)):
        _invalid("login")
        return False
    url = _server(server)
    if login is None and _os.environ.get("CFD_LOGIN"):
        try:
            login = int(_os.environ["CFD_LOGIN"])
        except ValueError:
            _invalid("login")
            return False
    if login is None:
        try:
            _httpx.get(f"{url.rstrip('/')}/v1/version", timeout=timeout / 1000)
        except _httpx.HTTPError:
            _fail(-10003, f"IPC initialize failed, server {url} is not reachable")
            return False
        demo = _demo_accounts(url, timeout)
        if not demo:
            _fail(-6, "Terminal: Authorization failed")
            return False
        login, password = int(demo[0]["login"]), demo[0]["api_key"]
    password = password or _saved_key(url, login, timeout)
    if not password:
        _fail(-6, "Terminal: Authorization failed")
        return False
    return _connect(url, login, password, timeout)


def login(login: int, *, password: str | None = None, server: str | None = None,
          timeout: int = 60000) -> bool:
    """Switch to another account. Without ``password`` (its API key) the saved one is used,
    as MT5 does: see :func:`_saved_key`."""
    if not isinstance(login, int) or isinstance(login, bool):
        _invalid("login")
        return False
    base = str(_s.client.base_url) if _s.client is not None and not server else _server(server)
    key = password or _saved_key(base, login, timeout)
    if not key:
        _fail(-6, "Terminal: Authorization failed")
        return False
    return _connect(base, login, key, timeout)


def shutdown() -> None:
    if _s.client is not None:
        _s.client.close()
    _s.client = None
    _s.login = None


def version() -> tuple[int, int, str] | None:
    v = _call("GET", "/v1/version")
    return None if v is None else (v["terminal_version"], v["build"], v["release_date"])


def account_info() -> AccountInfo | None:
    d = _call("GET", "/v1/account_info")
    return None if d is None else _build(AccountInfo, d)


def terminal_info() -> TerminalInfo | None:
    d = _call("GET", "/v1/terminal_info")
    return None if d is None else _build(TerminalInfo, d)


# ---------------------------------------------------------------------------- symbols
def symbols_total() -> int | None:
    d = _call("GET", "/v1/symbols_total")
    return None if d is None else int(d["total"])


def symbols_get(group: str | None = None) -> tuple[SymbolInfo, ...] | None:
    if group is not None and not isinstance(group, str):
        _invalid("group")
        return None
    d = _call("GET", "/v1/symbols_get", params={} if group is None else {"group": group})
    return None if d is None else tuple(_build(SymbolInfo, x) for x in d)


def symbol_info(symbol: str) -> SymbolInfo | None:
    if not _is_str(symbol, "symbol"):
        return None
    d = _call("GET", f"/v1/symbol_info/{symbol}")
    return None if d is None else _build(SymbolInfo, d)


def symbol_info_tick(symbol: str) -> Tick | None:
    if not _is_str(symbol, "symbol"):
        return None
    d = _call("GET", f"/v1/symbol_info_tick/{symbol}")
    return None if d is None else _build(Tick, d)


def symbol_select(symbol: str, enable: bool = True) -> bool:
    if not _is_str(symbol, "symbol"):
        return False
    if not isinstance(enable, bool):
        _invalid("enable")
        return False
    d = _call("POST", "/v1/symbol_select", json={"symbol": symbol, "enable": enable})
    return bool(d and d["ok"])


# ---------------------------------------------------------------------------- trading
def _number(value: _Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _calc(path: str, params: dict) -> float | None:
    d = _call("GET", path, params=params)
    if d is None:
        return None
    if d["value"] is None:
        _fail(-2, f"Terminal: Invalid params ({d['retcode']}: {d['comment']})")
        return None
    return float(d["value"])


def order_calc_margin(action: int, symbol: str, volume: float, price: float) -> float | None:
    for name, ok in (("action", isinstance(action, int) and not isinstance(action, bool)),
                     ("symbol", isinstance(symbol, str)), ("volume", _number(volume)),
                     ("price", _number(price))):
        if not ok:
            _invalid(name)
            return None
    return _calc("/v1/order_calc_margin", {"action": action, "symbol": symbol,
                                           "volume": volume, "price": price})


def order_calc_profit(action: int, symbol: str, volume: float, price_open: float,
                      price_close: float) -> float | None:
    for name, ok in (("action", isinstance(action, int) and not isinstance(action, bool)),
                     ("symbol", isinstance(symbol, str)), ("volume", _number(volume)),
                     ("price_open", _number(price_open)),
                     ("price_close", _number(price_close))):
        if not ok:
            _invalid(name)
            return None
    return _calc("/v1/order_calc_profit", {"action": action, "symbol": symbol,
                                           "volume": volume, "price_open": price_open,
                                           "price_close": price_close})


def _request(request: _Any) -> dict | None:
    """The request dict checked as the package checks it, or None (last_error set)."""
    if not isinstance(request, dict):
        _fail(-2, "Invalid arguments")
        return None
    out: dict[str, _Any] = {}
    for k, v in request.items():
        if k in _REQUEST_INT:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 and k != "action":
                _invalid(k)
                return None
        elif k in _REQUEST_FLOAT:
            if not _number(v) or v != v or v in (float("inf"), float("-inf")):
                _invalid(k)
                return None
            v = float(v)
        elif k in ("symbol", "comment"):
            if not isinstance(v, str) or (k == "comment" and len(v) > COMMENT_MAX):
                _invalid(k)
                return None
        else:
            _invalid(k)
            return None
        out[k] = v
    return out


def order_check(request: dict) -> OrderCheckResult | None:
    req = _request(request)
    if req is None:
        return None
    d = _call("POST", "/v1/order_check", json=req)
    return None if d is None else _build(OrderCheckResult, d)


def order_send(request: dict) -> OrderSendResult | None:
    """Send a trade request. Each call carries a fresh request id; the server returns the
    first result for a repeated id (safe retries over HTTP)."""
    req = _request(request)
    if req is None:
        return None
    _s.request_id += 1
    rid = (int.from_bytes(_os.urandom(4), "big") << 20) | (_s.request_id & 0xFFFFF)
    d = _call("POST", "/v1/order_send", json=req, headers={"X-Request-Id": str(rid)})
    return None if d is None else _build(OrderSendResult, d)


def _select(path: str, args: tuple, kwargs: dict, cls: type) -> tuple | None:
    if args:
        _fail(-2, "Unnamed arguments not allowed")
        return None
    params: dict[str, _Any] = {}
    for k, v in kwargs.items():
        if k in ("symbol", "group"):
            if not isinstance(v, str):
                _invalid(k)
                return None
        elif k == "ticket":
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                _invalid(k)
                return None
        else:
            _fail(-2, "Invalid arguments")
            return None
        params[k] = v
    d = _call("GET", path, params=params)
    return None if d is None else tuple(_build(cls, x) for x in d)


def orders_total() -> int | None:
    d = _call("GET", "/v1/orders_total")
    return None if d is None else int(d["total"])


def orders_get(*args: _Any, **kwargs: _Any) -> tuple[TradeOrder, ...] | None:
    """``orders_get()``, ``orders_get(symbol=...)``, ``(group=...)`` or ``(ticket=...)``."""
    return _select("/v1/orders_get", args, kwargs, TradeOrder)


def positions_total() -> int | None:
    d = _call("GET", "/v1/positions_total")
    return None if d is None else int(d["total"])


def positions_get(*args: _Any, **kwargs: _Any) -> tuple[TradePosition, ...] | None:
    """``positions_get()``, ``(symbol=...)``, ``(group=...)`` or ``(ticket=...)``."""
    return _select("/v1/positions_get", args, kwargs, TradePosition)


# ---------------------------------------------------------------------------- history
def _history(path: str, cls: type, date_from: _Any, date_to: _Any, kwargs: dict
             ) -> tuple | None:
    params: dict[str, _Any] = {}
    for k, v in kwargs.items():
        if k not in ("group", "ticket", "position"):
            _fail(-2, "Invalid arguments")
            return None
        if k == "group" and not isinstance(v, str):
            _invalid(k)
            return None
        if k != "group" and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            _invalid(k)
            return None
        params[k] = v
    if "ticket" not in params and "position" not in params:
        if date_from is None or date_to is None:
            _fail(-2, "Invalid number of arguments")
            return None
        t0, t1 = _seconds(date_from, "date_from"), _seconds(date_to, "date_to")
        if t0 is None or t1 is None:
            return None
        params.update(date_from=t0, date_to=t1)
    d = _call("GET", path, params=params)
    return None if d is None else tuple(_build(cls, x) for x in d)


def _total(path: str, date_from: _Any, date_to: _Any) -> int | None:
    t0, t1 = _seconds(date_from, "date_from"), _seconds(date_to, "date_to")
    if t0 is None or t1 is None:
        return None
    d = _call("GET", path, params={"date_from": t0, "date_to": t1})
    return None if d is None else int(d["total"])


def history_orders_total(date_from: _Any, date_to: _Any) -> int | None:
    return _total("/v1/history_orders_total", date_from, date_to)


def history_orders_get(date_from: _Any = None, date_to: _Any = None, **kwargs: _Any
                       ) -> tuple[TradeOrder, ...] | None:
    """By range (and ``group=``), or ``ticket=`` (that order), or ``position=``."""
    return _history("/v1/history_orders_get", TradeOrder, date_from, date_to, kwargs)


def history_deals_total(date_from: _Any, date_to: _Any) -> int | None:
    return _total("/v1/history_deals_total", date_from, date_to)


def history_deals_get(date_from: _Any = None, date_to: _Any = None, **kwargs: _Any
                      ) -> tuple[TradeDeal, ...] | None:
    """By range (and ``group=``), or ``ticket=`` (deals of that ORDER, as MT5 does), or
    ``position=``."""
    return _history("/v1/history_deals_get", TradeDeal, date_from, date_to, kwargs)
