"""Typed dependencies: the engine service, the current client account, the admin.

The security schemes are declared to OpenAPI (``/docs`` shows an Authorize button): a
client sends ``X-CFD-Login`` and ``Authorization: Bearer <api key>``; an admin the bearer
alone. Requests with a body were already authenticated by :class:`api.limits.EdgeGuard`
before their body was read; the identity it found is taken from the request scope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Admin, Authenticator, Client
from api.service import EngineService
from api.throttle import AuthRefused

login_header = APIKeyHeader(name="X-CFD-Login", scheme_name="login", auto_error=False,
                            description="the account number (login)")
api_key = HTTPBearer(scheme_name="api_key", auto_error=False,
                     description="the account's API key (clients) or an admin key (/admin)")


async def get_service(request: Request) -> EngineService:
    return request.app.state.service


ServiceDep = Annotated[EngineService, Depends(get_service)]


def get_auth(request: Request) -> Authenticator:
    return request.app.state.auth


def _refused(exc: AuthRefused) -> HTTPException:
    return HTTPException(exc.status, exc.detail, headers=exc.headers)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _authorization(cred: HTTPAuthorizationCredentials | None) -> str | None:
    return f"{cred.scheme} {cred.credentials}" if cred is not None else None


async def current_client(
    request: Request,
    x_cfd_login: Annotated[str | None, Security(login_header)] = None,
    cred: Annotated[HTTPAuthorizationCredentials | None, Security(api_key)] = None,
) -> Client:
    """The account of ``X-CFD-Login`` if ``Authorization: Bearer <api key>`` is its key."""
    who = request.scope.get("cfd.client")
    if isinstance(who, Client):
        return who
    try:
        return await get_auth(request).client(x_cfd_login, _authorization(cred),
                                               _address(request))
    except AuthRefused as exc:
        raise _refused(exc) from None


async def current_admin(
    request: Request,
    cred: Annotated[HTTPAuthorizationCredentials | None, Security(api_key)] = None,
) -> Admin:
    who = request.scope.get("cfd.admin")
    if isinstance(who, Admin):
        return who
    try:
        return await get_auth(request).admin(_authorization(cred), _address(request))
    except AuthRefused as exc:
        raise _refused(exc) from None


ClientDep = Annotated[Client, Depends(current_client)]
AdminDep = Annotated[Admin, Depends(current_admin)]
