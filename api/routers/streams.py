"""WebSocket streams and demo discovery.

* ``/ws/ticks?symbols=AAPL,MSFT``: ticks of those symbols, each message
  ``{"event": "tick", "symbol": ..., ...Tick}``. Without symbols, or with unknown ones, the
  socket is accepted, sent ``{"event": "error", "message": ...}`` and closed (code 1008), so
  a browser can read why.
* ``/ws/account``: the account's own deals, order changes, margin calls and stop-outs, as
  they are committed (``{"event": "deal" | "order" | "margin_call" | "stop_out", ...}``).
  Authenticate with the headers ``X-CFD-Login`` and ``Authorization: Bearer <key>``, or, from
  a browser (which cannot set headers on a WebSocket), with ``?token=`` from
  ``POST /v1/ws_token`` (single use, valid for a minute by default).

Connections are bounded in all (``ws_max_connections``) and in symbols per connection
(``ws_max_symbols``); each has a bounded queue (``ws_queue``): a consumer too slow to keep
up is disconnected (code 1013) rather than queued for without end.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from api import schemas as S
from api.auth import Client
from api.deps import ClientDep, ServiceDep
from api.throttle import AuthRefused

router = APIRouter(tags=["streams"])

#: seconds a send may wait for a client that does not read before it is dropped
SEND_TIMEOUT_S = 10.0
POLICY = 1008  # close code: policy violation (bad request, auth)
TRY_LATER = 1013  # close code: too many connections / too slow


class WsToken(BaseModel):
    token: str
    expires_in: float


def _limits(ws: WebSocket) -> Any:
    return ws.app.state.ws_limits


async def _refuse(ws: WebSocket, message: str, code: int = POLICY) -> None:
    """Accept, say why in an ``error`` event, close (a refused handshake is a bare 403)."""
    await ws.accept()
    await ws.send_json({"event": "error", "message": message})
    await ws.close(code=code, reason=message[:120])


async def _serve(ws: WebSocket, login: int | None, names: set[str] | None) -> None:
    """Accept and pump the subscription, within the connection bounds."""
    lim = _limits(ws)
    if lim.open >= lim.max_connections:
        await _refuse(ws, f"too many WebSocket connections ({lim.max_connections}); retry "
                          "later", TRY_LATER)
        return
    lim.open += 1
    try:
        await ws.accept()
        svc = ws.app.state.service
        await _pump(ws, svc.subscribe(login, names, lim.queue))
    finally:
        lim.open -= 1


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
            if sub.dropped:
                await ws.close(code=TRY_LATER, reason=f"too slow: {sub.dropped} messages "
                                                      "dropped; reconnect")
                return
            try:
                await asyncio.wait_for(ws.send_json(get.result()), SEND_TIMEOUT_S)
            except TimeoutError:
                await ws.close(code=TRY_LATER, reason="too slow: a send timed out")
                return
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        svc.unsubscribe(sub)


@router.websocket("/ws/ticks")
async def ws_ticks(ws: WebSocket) -> None:
    svc = ws.app.state.service
    names = {s.strip() for s in ws.query_params.get("symbols", "").split(",") if s.strip()}
    if not names:
        await _refuse(ws, "give the symbols to follow: /ws/ticks?symbols=AAPL,MSFT")
        return
    cap = _limits(ws).max_symbols
    if len(names) > cap:
        await _refuse(ws, f"{len(names)} symbols asked, at most {cap} per connection")
        return
    known = svc.known_symbols()
    unknown = sorted(names - known)
    if unknown:
        await _refuse(ws, f"unknown symbols: {', '.join(n[:32] for n in unknown[:10])}")
        return
    await _serve(ws, None, names)


@router.websocket("/ws/account")
async def ws_account(ws: WebSocket) -> None:
    auth = ws.app.state.auth
    token = ws.query_params.get("token")
    who: Client | None = None
    if token is not None:
        who = auth.redeem(token)
        if who is None:
            await _refuse(ws, "unknown or expired token: get a new one from POST /v1/ws_token")
            return
    else:
        try:
            who = await auth.client(ws.headers.get("x-cfd-login"),
                                    ws.headers.get("authorization"),
                                    ws.client.host if ws.client else "unknown")
        except AuthRefused as exc:
            await _refuse(ws, exc.detail)
            return
    await _serve(ws, who.login, None)


@router.post("/v1/ws_token", response_model=WsToken, tags=["streams"])
async def ws_token(me: ClientDep, request: Request) -> WsToken:
    """A single-use token for ``/ws/account?token=...`` (browsers cannot send headers on a
    WebSocket), valid for ``expires_in`` seconds."""
    auth = request.app.state.auth
    return WsToken(token=auth.issue_token(me.login), expires_in=auth.token_ttl_s)


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
