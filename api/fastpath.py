"""``POST /v1/order_send`` without the framework's routing and dependency solving.

The hot endpoint of the API costs several times its own work in FastAPI's per-request
machinery (route matching over every route, dependency solving of three headers and a body,
threadpool hops for the dependencies). This pure ASGI middleware answers the ordinary case
itself, with the same code the endpoint runs (:func:`api.routers.mt5.place_order`):

* a known client (authenticated by :class:`api.limits.EdgeGuard` before the body was read,
  or a key already verified),
* an optional well-formed ``X-Request-Id`` (``1 .. 2**63-1``, plain digits),
* a ``Content-Type: application/json`` body that is a JSON object valid as
  :class:`api.schemas.TradeRequest`.

Anything else (no or unknown credentials, a key not verified yet, a malformed header or body,
another content type, a large body, a duplicated header) is handed to the FastAPI route
unchanged, body included, so every error answer (401, 422, ...) is the route's own and the
OpenAPI schema stays the route's.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from api import schemas as S
from api.auth import Client, bearer, parse_login
from api.idempotency import RequestIdReused
from api.limits import answer
from api.routers import mt5
from api.service import EngineService, Retryable

PATH = "/v1/order_send"
MAX_BODY = 64 * 1024  # larger bodies go to the route (and its limits)
_MAX_RID = 2**63 - 1
_HEADERS = (b"x-cfd-login", b"authorization", b"x-request-id", b"content-type")
_JSON_HEADERS = [(b"content-type", b"application/json")]
RETRY_HEADERS = {"Retry-After": "1"}


def _route() -> Any:
    for r in mt5.router.routes:
        if getattr(r, "path", None) == PATH and "POST" in getattr(r, "methods", ()):
            return r
    raise LookupError(f"no route {PATH}")


class OrderSendFastPath:
    """Pure ASGI: answer well-formed, authenticated order_send requests directly; hand
    everything else to ``app``."""

    def __init__(self, app: Any, service: EngineService) -> None:
        self.app = app
        self.service = service
        self.route = _route()  # scope["route"], as routing would set it (metrics label it)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH
                or scope.get("root_path")):
            await self.app(scope, receive, send)
            return
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _HEADERS:
                if name in found:  # duplicated: the route decides what it means
                    await self.app(scope, receive, send)
                    return
                found[name] = value
        messages: list[dict] = []
        body = b""
        while True:
            msg = await receive()
            messages.append(msg)
            if msg["type"] != "http.request":
                return await self._hand_over(scope, messages, receive, send)
            body += msg.get("body", b"")
            if len(body) > MAX_BODY:
                return await self._hand_over(scope, messages, receive, send)
            if not msg.get("more_body", False):
                break
        login = self._client(scope, found)
        request = _trade_request(found.get(b"content-type"), body) if login else None
        rid = _request_id(found.get(b"x-request-id"))
        if login is None or request is None or rid is None:
            return await self._hand_over(scope, messages, receive, send)
        scope["route"] = self.route
        try:
            out = await mt5.place_order(self.service, login, request, rid)
        except RequestIdReused as exc:
            await answer(send, 409, str(exc))
            return
        except Retryable as exc:
            await answer(send, 503, str(exc), RETRY_HEADERS)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(out))]})
        await send({"type": "http.response.body", "body": out})

    def _client(self, scope: dict, found: dict[bytes, bytes]) -> int | None:
        """The login that :class:`api.limits.EdgeGuard` authenticated, else the login if the
        credentials are those of a client whose key was verified before (the route verifies
        new keys, off the event loop, and remembers them)."""
        who = scope.get("cfd.client")
        if isinstance(who, Client):
            return who.login
        raw_login, raw_auth = found.get(b"x-cfd-login"), found.get(b"authorization")
        if raw_login is None or raw_auth is None:
            return None
        key = bearer(raw_auth.decode("latin-1"))
        login = parse_login(raw_login)
        if key is None or login is None:
            return None
        who = self.service.keys.cached_client(login, key)
        return who.login if who is not None else None

    async def _hand_over(self, scope: dict, messages: list[dict], receive: Any,
                         send: Any) -> None:
        """Run the route on the request as it came (the body already read is replayed)."""
        pending = list(messages)

        async def replay() -> dict:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def _trade_request(content_type: bytes | None, body: bytes) -> dict | None:
    """The request dict (the fields the client set) if ``body`` is a JSON object valid as a
    TradeRequest sent as application/json; None for anything else."""
    if content_type is None or content_type.split(b";", 1)[0].strip().lower() \
            != b"application/json":
        return None
    try:
        obj = orjson.loads(body)  # stricter than json.loads: what it refuses, the route sees
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    try:
        return S.TradeRequest.model_validate(obj).model_dump(exclude_unset=True)
    except ValidationError:
        return None


def _request_id(raw: bytes | None) -> int | None:
    """0 without the header; the id if it is plain digits in range; None otherwise."""
    if raw is None:
        return 0
    if not raw.isdigit() or raw[:1] == b"0" or len(raw) > 19:
        return None
    rid = int(raw)
    return rid if rid <= _MAX_RID else None
