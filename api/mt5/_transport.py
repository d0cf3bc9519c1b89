"""The client's connection and error state: one HTTP client, MT5's ``last_error`` codes.

Imports only httpx (and the standard library): ``api.mt5`` runs without the engine's
dependencies.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import httpx


class State:
    client: httpx.Client | None = None
    login: int | None = None
    error: tuple[int, str] = (1, "Success")  # RES_S_OK
    request_id: int = 0
    keys: dict[tuple[str, int], str] = {}  # (server, login) -> API key that logged in


s = State()


def fail(code: int, message: str) -> None:
    s.error = (code, message)


def invalid(name: str) -> None:
    fail(-2, f'Invalid "{name}" argument')


def last_error() -> tuple[int, str]:
    """``(code, description)`` of the last call (RES_* codes)."""
    return s.error


def call(method: str, path: str, *, raw: bool = False, **kw: Any) -> Any:
    """The server's answer (JSON, or the body's bytes with ``raw``), or None with
    ``last_error`` set as the MetaTrader5 package sets it."""
    if s.client is None:
        fail(-10004, "No IPC connection")
        return None
    try:
        r = s.client.request(method, path, **kw)
    except httpx.TimeoutException:
        fail(-10005, "IPC timeout")
        return None
    except httpx.HTTPError as exc:
        fail(-10001, f"IPC send failed, {exc}")
        return None
    if r.status_code == 401:
        fail(-6, "Terminal: Authorization failed")
        return None
    if r.status_code == 404:
        fail(-4, "Terminal: Not found")
        return None
    if r.status_code == 422:
        fail(-2, "Terminal: Invalid params")
        return None
    if r.status_code >= 400:
        fail(-1, "Terminal: Call failed")
        return None
    fail(1, "Success")
    return r.content if raw else r.json()


def seconds(value: Any, name: str) -> int | None:
    """A ``datetime`` (a naive one in local time, as the package reads it: the MT5 examples
    pass UTC ones) or seconds since 1970."""
    if isinstance(value, _dt.datetime):
        return int(value.timestamp())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value == value:
        return int(value)
    invalid(name)
    return None


def is_str(value: Any, name: str) -> bool:
    if not isinstance(value, str) or not value:
        invalid(name)
        return False
    return True


def is_int(value: Any, name: str, low: int = 0) -> bool:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        invalid(name)
        return False
    return True
