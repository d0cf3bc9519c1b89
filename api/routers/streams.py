"""WebSocket streams and demo discovery.

* ``/ws/ticks?symbols=AAPL,MSFT``: ticks of those symbols (``{"type": "tick", ...Tick}``).
* ``/ws/account`` (headers ``X-CFD-Login`` and ``Authorization: Bearer <key>``): the account's
  own deals, order changes, margin calls and stop-outs, as they are committed.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api import schemas as S
from api.deps import ServiceDep, _bearer

router = APIRouter(tags=["streams"])


async def _pump(ws: WebSocket, sub: Any) -> None:
    svc = ws.app.state.service
    try:
        while True:
            get = asyncio.ensure_future(sub.queue.get())
            recv = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({get, recv}, return_when=asyncio.FIRST_COMPLETED)
            if recv in done:
                get.cancel()
                msg = recv.result()
                if msg.get("type") == "websocket.disconnect":
                    return
                continue
            recv.cancel()
            await ws.send_json(get.result())
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        svc.unsubscribe(sub)


@router.websocket("/ws/ticks")
async def ws_ticks(ws: WebSocket) -> None:
    svc = ws.app.state.service
    names = {s for s in ws.query_params.get("symbols", "").split(",") if s}
    known = svc.read(lambda eng: set(eng.symbols.index))
    if not names or not names <= known:
        await ws.close(code=1008, reason="give ?symbols=A,B of known symbols")
        return
    await ws.accept()
    await _pump(ws, svc.subscribe(None, names))


@router.websocket("/ws/account")
async def ws_account(ws: WebSocket) -> None:
    svc = ws.app.state.service
    login = (ws.headers.get("x-cfd-login") or "").strip()
    key = _bearer(ws.headers.get("authorization"))
    who = None
    if login.isdigit() and len(login) < 20 and key:
        who = await run_in_threadpool(svc.keys.client, int(login), key)
    if who is None:
        await ws.close(code=1008, reason="unknown login or wrong API key")
        return
    await ws.accept()
    await _pump(ws, svc.subscribe(who.login, None))


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    if host in ("testclient", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/demo/credentials", response_model=S.DemoCredentials, tags=["demo"])
def demo_credentials(request: Request, svc: ServiceDep) -> Any:
    """The demo's admin key and accounts: only on a ``--demo`` server, only to loopback."""
    demo = request.app.state.demo
    if demo is None or not _loopback(request):
        raise HTTPException(404, "not found")
    return demo
