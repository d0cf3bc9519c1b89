"""The MetaTrader5 package's Python API, speaking HTTP to a CFD engine server.

    import api.mt5 as mt5          # instead of: import MetaTrader5 as mt5
    mt5.initialize()               # CFD_SERVER, CFD_LOGIN / CFD_PASSWORD, or the demo's first
    mt5.order_send({...})          # the same request dicts, retcodes and result records

Same function names and signatures, constants with MT5's numbers, results as named tuples in
MT5's field order (picklable, ``_asdict()``). Errors follow the package: functions return
None and :func:`last_error` says why, e.g. ``(-2, 'Invalid "comment" argument')``.
"""

from __future__ import annotations

import datetime as _dt
import os as _os
from typing import Any as _Any

import httpx as _httpx

from api.mt5 import _constants
from api.mt5._records import (
    AccountInfo,
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

# Every MT5 constant (ORDER_TYPE_BUY, TRADE_RETCODE_DONE, ...) as a module attribute.
globals().update({k: v for k, v in vars(_constants).items() if k.isupper()})

__version__ = "5.0.6231"
__author__ = "MetaQuotes Ltd."
__all__ = [
    "AccountInfo", "OrderCheckResult", "OrderSendResult", "SymbolInfo", "TerminalInfo", "Tick",
    "TradeDeal", "TradeOrder", "TradePosition", "TradeRequest", "account_info",
    "copy_rates_range", "copy_ticks_range", "history_deals_get", "history_deals_total",
    "history_orders_get", "history_orders_total", "initialize", "last_error", "login",
    "order_calc_margin", "order_calc_profit", "order_check", "order_send", "orders_get",
    "orders_total", "positions_get", "positions_total", "shutdown", "symbol_info",
    "symbol_info_tick", "symbol_select", "symbols_get", "symbols_total", "terminal_info",
    "version",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"
_REQUEST_INT = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time",
                "expiration", "position", "position_by")
_REQUEST_FLOAT = ("volume", "price", "stoplimit", "sl", "tp")
COMMENT_MAX = 31


class _State:
    client: _httpx.Client | None = None
    login: int | None = None
    error: tuple[int, str] = (1, "Success")  # RES_S_OK
    request_id: int = 0


_s = _State()


def _fail(code: int, message: str) -> None:
    _s.error = (code, message)


def _invalid(name: str) -> None:
    _fail(-2, f'Invalid "{name}" argument')


def last_error() -> tuple[int, str]:
    """``(code, description)`` of the last call (RES_* codes)."""
    return _s.error


# ---------------------------------------------------------------------------- transport
def _call(method: str, path: str, **kw: _Any) -> _Any:
    if _s.client is None:
        _fail(-10004, "No IPC connection")
        return None
    try:
        r = _s.client.request(method, path, **kw)
    except _httpx.TimeoutException:
        _fail(-10005, "IPC timeout")
        return None
    except _httpx.HTTPError as exc:
        _fail(-10001, f"IPC send failed, {exc}")
        return None
    if r.status_code == 401:
        _fail(-6, "Terminal: Authorization failed")
        return None
    if r.status_code == 404:
        _fail(-4, "Terminal: Not found")
        return None
    if r.status_code == 422:
        _fail(-2, "Terminal: Invalid params")
        return None
    if r.status_code >= 400:
        _fail(-1, "Terminal: Call failed")
        return None
    _fail(1, "Success")
    return r.json()


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
    return True


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
        password = password or _os.environ.get("CFD_PASSWORD", "")
    if login is None:
        try:
            demo = _httpx.get(f"{url.rstrip('/')}/demo/credentials", timeout=timeout / 1000)
        except _httpx.HTTPError:
            _fail(-10003, f"IPC initialize failed, server {url} is not reachable")
            return False
        if demo.status_code != 200 or not demo.json().get("accounts"):
            _fail(-6, "Terminal: Authorization failed")
            return False
        first = demo.json()["accounts"][0]
        login, password = int(first["login"]), first["api_key"]
    if not password:
        _fail(-6, "Terminal: Authorization failed")
        return False
    return _connect(url, login, password, timeout)


def login(login: int, *, password: str | None = None, server: str | None = None,
          timeout: int = 60000) -> bool:
    """Switch to another account (``password``: its API key, default ``$CFD_PASSWORD``)."""
    if not isinstance(login, int) or isinstance(login, bool):
        _invalid("login")
        return False
    key = password or _os.environ.get("CFD_PASSWORD", "")
    if not key:
        _fail(-6, "Terminal: Authorization failed")
        return False
    base = str(_s.client.base_url) if _s.client is not None and not server else _server(server)
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
def _is_str(value: _Any, name: str) -> bool:
    if not isinstance(value, str) or not value:
        _invalid(name)
        return False
    return True


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
def _seconds(value: _Any, name: str) -> int | None:
    if isinstance(value, _dt.datetime):
        return int(value.timestamp())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value == value:
        return int(value)
    _invalid(name)
    return None


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


# ---------------------------------------------------------------------------- market data
_TICK_DTYPE = [("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"),
               ("volume", "<u8"), ("time_msc", "<i8"), ("flags", "<u4"),
               ("volume_real", "<f8")]
_RATE_DTYPE = [("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
               ("close", "<f8"), ("tick_volume", "<u8"), ("spread", "<i4"),
               ("real_volume", "<u8")]


def _array(rows: list[dict], dtype: list) -> _Any:
    names = [n for n, _ in dtype]
    data = [tuple(r[n] for n in names) for r in rows]
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is optional for the client
        return tuple(data)
    return np.array(data, dtype=dtype)


def copy_ticks_range(symbol: str, date_from: _Any, date_to: _Any, flags: int) -> _Any:
    """Recorded ticks as a numpy structured array (MT5's dtype)."""
    if not _is_str(symbol, "symbol"):
        return None
    t0, t1 = _seconds(date_from, "date_from"), _seconds(date_to, "date_to")
    if t0 is None or t1 is None:
        return None
    if not isinstance(flags, int) or flags not in (-1, 1, 2):
        _invalid("flags")
        return None
    d = _call("GET", "/v1/copy_ticks_range", params={"symbol": symbol, "date_from": t0,
                                                      "date_to": t1, "flags": flags})
    return None if d is None else _array(d, _TICK_DTYPE)


def copy_rates_range(symbol: str, timeframe: int, date_from: _Any, date_to: _Any) -> _Any:
    """Bars built from recorded ticks (bid), as a numpy structured array."""
    if not _is_str(symbol, "symbol"):
        return None
    if not isinstance(timeframe, int) or isinstance(timeframe, bool):
        _invalid("timeframe")
        return None
    t0, t1 = _seconds(date_from, "date_from"), _seconds(date_to, "date_to")
    if t0 is None or t1 is None:
        return None
    d = _call("GET", "/v1/copy_rates_range", params={"symbol": symbol, "timeframe": timeframe,
                                                      "date_from": t0, "date_to": t1})
    return None if d is None else _array(d, _RATE_DTYPE)
