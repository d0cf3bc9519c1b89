"""Request limits at the edge, before the framework reads or parses anything.

:class:`EdgeGuard` is a pure ASGI middleware in front of the app. For an HTTP request it

1. refuses a declared ``Content-Length`` above the route's limit (413) without reading a byte
   (``/v1/*``, the trading routes, have a small limit; everything else a larger one);
2. authenticates requests that carry a body to ``/v1/*`` (client) and ``/admin/*`` (admin)
   before reading it (401/429), through the throttled :class:`api.auth.Authenticator`;
3. reads the body, counting, and stops at the limit (413) if it was not declared;
4. for a JSON body, refuses nesting deeper than ``max_depth`` or an object with more than
   ``max_keys`` keys (422), so no request makes the validator build a huge error list;
5. hands the request on with the body replayed.

Error bodies are short and bounded (see :func:`bounded_errors`).
"""

from __future__ import annotations

from typing import Any

import orjson

from api.auth import Authenticator
from api.throttle import AuthRefused

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MAX_ERRORS = 20  # validation errors shown in a 422; the rest are counted
MAX_MSG = 200  # characters of one error message


async def answer(send: Any, status: int, detail: Any,
                 headers: dict[str, str] | None = None) -> None:
    """A JSON ``{"detail": ...}`` response, sent directly (outside the framework)."""
    body = orjson.dumps({"detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def bounded_errors(errors: list[dict]) -> list[dict]:
    """At most :data:`MAX_ERRORS` validation errors, each message cut to :data:`MAX_MSG`
    characters and without the offending input; one more item counts the rest."""
    out = [{"loc": [str(p)[:64] for p in e.get("loc", ())][:16],
            "msg": str(e.get("msg", ""))[:MAX_MSG], "type": str(e.get("type", ""))[:64]}
           for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        out.append({"loc": [], "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
                    "type": "too_many_errors"})
    return out


def json_shape_error(obj: Any, max_depth: int, max_keys: int) -> str | None:
    """Why a parsed JSON value is too deep or too wide, or None (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if len(value) > max_keys:
                return f"a JSON object has {len(value)} keys, more than {max_keys}"
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return f"JSON nested deeper than {max_depth} levels"
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return None


class EdgeGuard:
    """Pure ASGI: body limits, authentication before parsing, JSON shape bounds."""

    def __init__(self, app: Any, auth: Authenticator, *, max_body: int, max_trade_body: int,
                 max_depth: int, max_keys: int) -> None:
        self.app = app
        self.auth = auth
        self.max_body = max_body
        self.max_trade_body = max_trade_body
        self.max_depth = max_depth
        self.max_keys = max_keys

    def limit(self, path: str) -> int:
        return self.max_trade_body if path.startswith("/v1/") else self.max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limit(path)
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in headers and name in (b"content-length", b"x-cfd-login",
                                            b"authorization"):
                await answer(send, 400, f"header {name.decode()} sent twice")
                return
            headers[name] = value
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                await answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await answer(send, 413, f"request body of {int(declared)} bytes is over the "
                                        f"limit of {limit} bytes for {path[:64]}")
                return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            await self._authenticate(scope, path, headers)
        except AuthRefused as exc:
            await answer(send, exc.status, exc.detail, exc.headers)
            return
        messages: list[dict] = []
        size = 0
        while True:
            msg = await receive()
            messages.append(msg)
            if msg["type"] != "http.request":
                break
            size += len(msg.get("body", b""))
            if size > limit:
                await answer(send, 413, f"request body over the limit of {limit} bytes for "
                                        f"{path[:64]}")
                return
            if not msg.get("more_body", False):
                break
        problem = self._json_problem(headers.get(b"content-type"), messages)
        if problem is not None:
            await answer(send, 422, [{"loc": ["body"], "msg": problem[1], "type": problem[0]}])
            return
        pending = messages

        async def replay() -> dict:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _authenticate(self, scope: dict, path: str, headers: dict[bytes, bytes]) -> None:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if path.startswith("/v1/"):
            auth = headers.get(b"authorization")
            scope["cfd.client"] = await self.auth.client(
                headers.get(b"x-cfd-login"), auth.decode("latin-1") if auth else None,
                address)
        elif path.startswith("/admin/") or path == "/admin":
            auth = headers.get(b"authorization")
            scope["cfd.admin"] = await self.auth.admin(
                auth.decode("latin-1") if auth else None, address)

    def _json_problem(self, content_type: bytes | None, messages: list[dict]
                      ) -> tuple[str, str] | None:
        """``(type, message)`` if a JSON body is not JSON or is too deep or too wide."""
        if content_type is None or b"json" not in content_type.lower():
            return None
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if not body.strip():
            return None
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return "json_invalid", f"body is not valid JSON: {str(exc)[:MAX_MSG]}"
        why = json_shape_error(obj, self.max_depth, self.max_keys)
        return None if why is None else ("json_too_large", why)
