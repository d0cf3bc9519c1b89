"""Typed dependencies: the engine service, the current client account, the admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Admin, Client
from api.service import EngineService


async def get_service(request: Request) -> EngineService:
    return request.app.state.service


ServiceDep = Annotated[EngineService, Depends(get_service)]


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 512:
        return None
    return token.strip()


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})


async def current_client(
    svc: ServiceDep,
    x_cfd_login: Annotated[str | None, Header(alias="X-CFD-Login")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Client:
    """The account of ``X-CFD-Login`` if ``Authorization: Bearer <api key>`` is its key."""
    key = _bearer(authorization)
    if key is None or x_cfd_login is None:
        raise _unauthorized("send X-CFD-Login and Authorization: Bearer <api key>")
    login = x_cfd_login.strip()
    if not login.isdigit() or len(login) > 19:
        raise _unauthorized("X-CFD-Login must be an account number")
    # a key seen before is checked without scrypt; a new one is verified off the event loop
    who = svc.keys.cached_client(int(login), key) or await run_in_threadpool(
        svc.keys.client, int(login), key)
    if who is None:
        raise _unauthorized("unknown login or wrong API key")
    return who


async def current_admin(
    svc: ServiceDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Admin:
    key = _bearer(authorization)
    who = None
    if key:
        who = svc.keys.cached_admin(key) or await run_in_threadpool(svc.keys.admin, key)
    if who is None:
        raise _unauthorized("admin endpoints need Authorization: Bearer <admin key>")
    return who


ClientDep = Annotated[Client, Depends(current_client)]
AdminDep = Annotated[Admin, Depends(current_admin)]
