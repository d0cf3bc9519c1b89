"""The pages and their assets, read once from the package, and the constants' names."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from api.mt5 import _constants as mt5_constants
from cfd import constants as K
from cfd.marketdata.timeframes import TIMEFRAMES

router = APIRouter(include_in_schema=False)

_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
          "css": "text/css; charset=utf-8"}
# Same origin only: no inline script or style, no third-party host, no framing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, media type, etag) of every file in ``static/``."""
    out = {}
    for f in resources.files("api.web").joinpath("static").iterdir():
        ext = f.name.rsplit(".", 1)[-1]
        if f.is_file() and ext in _TYPES:
            data = f.read_bytes()
            out[f.name] = (data, _TYPES[ext], '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
    return out


ASSETS = _load()


def _asset(name: str, request: Request) -> Response:
    try:
        data, media, etag = ASSETS[name]
    except KeyError:
        raise HTTPException(404, "not found") from None
    headers = {**_HEADERS, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media, headers=headers)


@router.get("/")
def terminal(request: Request) -> Response:
    return _asset("terminal.html", request)


@router.get("/backoffice")
def back_office(request: Request) -> Response:
    return _asset("backoffice.html", request)


@router.get("/web/static/{name}")
def static(name: str, request: Request) -> Response:
    return _asset(name, request)


_ENUMS = (K.TradeAction, K.OrderType, K.OrderFilling, K.OrderTime, K.OrderState,
          K.DealType, K.DealEntry, K.DealReason, K.PositionType, K.SymbolTradeMode,
          K.SymbolTradeExecution, K.FillingFlag, K.ExpirationFlag, K.OrderModeFlag,
          K.Retcode)


def constants() -> dict[str, Any]:
    """MT5's enums by name, the retcodes' words and the timeframes (MT5's numbers)."""
    frames = {name.removeprefix("TIMEFRAME_"): value
              for name, value in vars(mt5_constants).items()
              if name.startswith("TIMEFRAME_") and value in TIMEFRAMES}
    return {"enums": {e.__name__: {m.name: int(m.value) for m in e} for e in _ENUMS},
            "retcodes": {str(k): v for k, v in K.RETCODE_DESCRIPTION.items()},
            "timeframes": dict(sorted(frames.items(), key=lambda kv: kv[1]))}


_CONSTANTS = constants()


@router.get("/web/constants.json")
def constants_json() -> dict[str, Any]:
    return _CONSTANTS
