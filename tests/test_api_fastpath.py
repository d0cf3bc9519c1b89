"""The order_send fast path (api.fastpath): it answers ordinary requests as the route would,
and hands everything else to the route with the body intact."""

from __future__ import annotations

import asyncio
import json

from fastapi.testclient import TestClient

from api.fastpath import MAX_BODY, OrderSendFastPath
from tests.test_api_fixtures import headers, make_runtime, push

BUY = {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 230.05,
       "deviation": 20, "type_filling": 2, "magic": 7, "comment": "t"}


class Downstream:
    """Stands for the FastAPI app behind the fast path: records what it was handed."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def __call__(self, scope: dict, receive, send) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.calls.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})


def _call(fast: OrderSendFastPath, hdrs: list[tuple[bytes, bytes]], chunks: list[bytes],
          method: str = "POST", path: str = "/v1/order_send") -> tuple[int, bytes]:
    scope = {"type": "http", "method": method, "path": path, "root_path": "",
             "headers": hdrs, "query_string": b""}
    msgs = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)]
    out: list[dict] = []

    async def receive() -> dict:
        return msgs.pop(0) if msgs else {"type": "http.disconnect"}

    async def send(m: dict) -> None:
        out.append(m)

    asyncio.run(fast(scope, receive, send))
    return out[0]["status"], b"".join(m.get("body", b"") for m in out[1:])


def _hdrs(acc: dict, **extra: str) -> list[tuple[bytes, bytes]]:
    h = {k.lower(): v for k, v in headers(acc).items()}
    h["content-type"] = "application/json"
    h.update({k.lower().replace("_", "-"): v for k, v in extra.items()})
    return [(k.encode(), v.encode()) for k, v in h.items()]


def test_answers_ordinary_requests_and_hands_over_the_rest() -> None:
    rt = make_runtime()
    try:
        with TestClient(rt.app) as c:
            push(c, AAPL=(230.00, 230.05))
        acc, other = rt.demo["accounts"][0], rt.demo["accounts"][1]
        down = Downstream()
        fast = OrderSendFastPath(down, rt.service)
        body = json.dumps(BUY).encode()
        # a key not verified yet: the route verifies it (scrypt, off the event loop)
        assert _call(fast, _hdrs(acc), [body]) == (299, b"route")
        assert rt.service.keys.client(acc["login"], acc["api_key"]) is not None
        status, out = _call(fast, _hdrs(acc), [body[:10], body[10:]])  # a chunked body
        assert status == 200 and json.loads(out)["retcode"] == 10009
        status, out = _call(fast, _hdrs(acc, x_request_id="77"), [body])
        assert status == 200 and json.loads(out)["request_id"] == 77
        assert len(down.calls) == 1
        wrong = [(k, b"Bearer nope" if k == b"authorization" else v) for k, v in _hdrs(acc)]
        other_login = [(k, str(other["login"]).encode() if k == b"x-cfd-login" else v)
                       for k, v in _hdrs(acc)]
        cases = [
            (_hdrs(acc)[:1] + _hdrs(acc)[2:], body),  # no Authorization
            (wrong, body),
            (other_login, body),  # another account's login with this key
            (_hdrs(acc, x_request_id="0"), body),
            (_hdrs(acc, x_request_id="007"), body),
            (_hdrs(acc, x_request_id="12a"), body),
            (_hdrs(acc, x_request_id=str(2**63)), body),
            (_hdrs(acc, content_type="text/plain"), body),
            (_hdrs(acc, content_type="application/vnd.x+json"), body),
            ([(b"content-type", b"application/json")] + _hdrs(acc), body),  # twice
            (_hdrs(acc), b'{"action": 1, "price": NaN}'),
            (_hdrs(acc), b"[1, 2]"),
            (_hdrs(acc), b'{"unknown_key": 1}'),
            (_hdrs(acc), b'{"action": "buy"}'),
            (_hdrs(acc), b"{not json"),
            (_hdrs(acc), b""),
            (_hdrs(acc), b'{"comment": "' + b"x" * MAX_BODY + b'"}'),
        ]
        for hdrs, raw in cases:
            n = len(down.calls)
            assert _call(fast, hdrs, [raw]) == (299, b"route"), (hdrs, raw[:40])
            assert down.calls[n:] == [raw]  # handed over with the body as it came
        # other paths and methods are not its business
        assert _call(fast, _hdrs(acc), [body], method="GET") == (299, b"route")
        assert _call(fast, _hdrs(acc), [body], path="/v1/order_check") == (299, b"route")
        positions = rt.service.read(lambda eng: len(eng.positions))
        assert positions == 2  # the two orders the fast path answered, nothing else
    finally:
        rt.close()


def test_fast_path_and_route_give_the_same_answers() -> None:
    rt = make_runtime(rate_limit_per_s=0.001, rate_limit_burst=4)
    try:
        with TestClient(rt.app) as c:
            push(c, AAPL=(230.00, 230.05))
            h = {**headers(rt.demo["accounts"][0]), "Content-Type": "application/json"}
            via_route = {**h, "Content-Type": "application/vnd.cfd+json"}  # JSON to FastAPI
            raw = json.dumps(BUY)
            first = c.post("/v1/order_send", headers=via_route, content=raw)  # verifies key
            fast = c.post("/v1/order_send", headers=h, content=raw)
            assert first.status_code == fast.status_code == 200
            assert fast.headers["content-type"] == first.headers["content-type"]
            a, b = first.json(), fast.json()
            assert a["retcode"] == b["retcode"] == 10009 and b["deal"] > a["deal"]
            same = ("retcode", "volume", "price", "bid", "ask", "comment", "request")
            assert [a[k] for k in same] == [b[k] for k in same]
            assert list(a) == list(b)
            # a business rejection and the rate limit answer alike too
            bad = json.dumps({**BUY, "symbol": "NOPE"})
            for code in (10013, 10024):  # the burst of 4 is spent after the first pair
                r1 = c.post("/v1/order_send", headers=via_route, content=bad).json()
                r2 = c.post("/v1/order_send", headers=h, content=bad).json()
                assert r1 == r2 and r1["retcode"] == code, (r1, r2)
            # malformed input is the route's 422, whichever way it came
            nan = '{"action": 1, "price": NaN}'
            e1 = c.post("/v1/order_send", headers=via_route, content=nan)
            e2 = c.post("/v1/order_send", headers=h, content=nan)
            assert e1.status_code == e2.status_code == 422 and e1.json() == e2.json()
            text = c.get("/metrics").text
            assert ('cfd_http_requests_total{method="POST",route="/v1/order_send",'
                    'status="200"} 6.0') in text
    finally:
        rt.close()


def test_the_route_has_nothing_the_fast_path_would_skip() -> None:
    """The fast path does what the route's parameters do (client auth, the body, the request
    id); a dependency added to the route or its router must be added there too."""
    import inspect

    from api.fastpath import _route
    from api.routers import mt5

    route = _route()
    assert route.endpoint is mt5.order_send
    assert list(inspect.signature(route.endpoint).parameters) == ["req", "me", "svc",
                                                                  "x_request_id"]
    assert not route.dependencies and not mt5.router.dependencies
    rt = make_runtime()
    try:
        assert not rt.app.router.dependencies
    finally:
        rt.close()
