"""The HTTP edges: body limits before reading, auth before parsing, bounded JSON and errors,
login throttling, strict types, request-id reuse, WebSocket auth and bounds, CORS, metrics,
OpenAPI security and local /docs assets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api import auth as auth_mod
from api.throttle import AuthRefused, Lockout, LoginThrottle
from tests.test_api_fixtures import ADMIN, headers, make_runtime, push

BUY = {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 230.05,
       "deviation": 20, "type_filling": 2}


@pytest.fixture
def rt():
    runtime = make_runtime(lockout_base_s=30.0)
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt):
    with TestClient(rt.app) as c:
        yield c


def _acc(rt, i: int = 0) -> dict:
    return rt.demo["accounts"][i]


def _asgi(app, method: str, path: str, hdrs: list[tuple[bytes, bytes]]) -> tuple[int, dict]:
    """Call the app directly with a body that must never be read; (status, json body)."""
    read = []

    async def receive() -> dict:
        read.append(1)
        raise AssertionError("the body was read")

    sent: list[dict] = []

    async def send(msg: dict) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": hdrs, "client": ("10.0.0.9", 5000),
             "server": ("test", 80), "scheme": "http", "root_path": "", "app": app,
             "http_version": "1.1"}
    asyncio.run(app(scope, receive, send))
    assert not read
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


# ------------------------------------------------------------------ body limits, auth first
def test_large_declared_body_is_refused_before_it_is_read(client, rt) -> None:
    h = [(b"content-type", b"application/json"), (b"content-length", b"100000000"),
         *[(k.lower().encode(), v.encode()) for k, v in headers(_acc(rt)).items()]]
    status, body = _asgi(rt.app, "POST", "/v1/order_send", h)
    # 100,000,000 bytes > 16 KiB (16,384), the default limit of the trading routes
    assert status == 413 and "16384" in body["detail"]


def test_unauthenticated_body_gets_401_before_it_is_read(client, rt) -> None:
    h = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    status, body = _asgi(rt.app, "POST", "/v1/order_send", h)
    assert status == 401
    status, _ = _asgi(rt.app, "POST", "/admin/accounts",
                      [*h, (b"authorization", b"Bearer wrong-admin-key-000000")])
    assert status == 401


def test_streamed_body_over_the_limit_is_cut(client, rt) -> None:
    def chunks():
        for _ in range(100):
            yield b"x" * 1024  # 100 KiB, no Content-Length: counted while read
    r = client.post("/v1/order_send", headers={**headers(_acc(rt)),
                                               "Content-Type": "application/json"},
                    content=chunks())
    assert r.status_code == 413


def test_unknown_keys_and_depth_are_bounded(client, rt) -> None:
    h = headers(_acc(rt))
    many = {f"k{i}": 0 for i in range(300)}  # 300 keys > 256 per object: refused unparsed
    t0 = time.perf_counter()
    r = client.post("/v1/order_send", headers=h, json=many)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_too_large"
    assert time.perf_counter() - t0 < 1.0
    some = {f"k{i}": 0 for i in range(100)}  # under the key bound: the validator's 422
    r = client.post("/v1/order_send", headers=h, json=some)
    detail = r.json()["detail"]
    assert r.status_code == 422 and len(r.content) < 4000
    # 100 unknown keys: 20 errors shown + one line counting the other 80
    assert len(detail) == 21 and detail[-1]["msg"] == "80 more errors not shown"
    deep: object = 0
    for _ in range(40):  # 40 levels > 32
        deep = [deep]
    r = client.post("/v1/order_send", headers=h, json={"comment": deep})
    assert r.status_code == 422 and "deeper than 32" in r.json()["detail"][0]["msg"]


# ------------------------------------------------------------------ throttling and lockout
def test_wrong_keys_lock_the_login_out_with_backoff(client, rt) -> None:
    login = str(_acc(rt)["login"])
    bad = {"X-CFD-Login": login, "Authorization": "Bearer not-the-key"}
    codes = [client.get("/v1/account_info", headers=bad).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]  # the 5th failure locks the login (5 in a row)
    r = client.get("/v1/account_info", headers=bad)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # the right key, already verified before? No: this runtime never saw it: locked too
    assert client.get("/v1/account_info", headers=headers(_acc(rt))).status_code == 429
    # another account is not locked
    assert client.get("/v1/account_info", headers=headers(_acc(rt, 1))).status_code == 200


def test_a_verified_key_keeps_working_during_a_lockout(client, rt) -> None:
    good = headers(_acc(rt))
    assert client.get("/v1/account_info", headers=good).status_code == 200
    bad = {**good, "Authorization": "Bearer not-the-key"}
    for _ in range(5):
        client.get("/v1/account_info", headers=bad)
    assert client.get("/v1/account_info", headers=bad).status_code == 429
    assert client.get("/v1/account_info", headers=good).status_code == 200


def test_address_lockout_covers_many_logins() -> None:
    rt = make_runtime(address_failures=3, login_failures=100, lockout_base_s=30.0)
    try:
        with TestClient(rt.app) as c:
            codes = [c.get("/v1/account_info", headers={
                "X-CFD-Login": str(5000 + i), "Authorization": "Bearer guess"}).status_code
                for i in range(4)]
            assert codes == [401, 401, 401, 429]  # 3 failures from one address lock it
    finally:
        rt.close()


def test_admin_key_guesses_lock_the_address_out() -> None:
    rt = make_runtime(address_failures=3, lockout_base_s=30.0)
    try:
        with TestClient(rt.app) as c:
            bad = {"Authorization": "Bearer not-the-admin-key-0000"}
            codes = [c.post("/admin/accounts", headers=bad, json={}).status_code
                     for _ in range(4)]
            assert codes == [401, 401, 401, 429]
            # the same address is locked for client logins too (one address, one budget)
            r = c.get("/v1/account_info", headers=headers(rt.demo["accounts"][0]))
            assert r.status_code == 429
    finally:
        rt.close()


def test_unknown_login_costs_a_scrypt_like_a_wrong_key(monkeypatch) -> None:
    ring = auth_mod.KeyRing()
    salt, digest = auth_mod.hash_key("right-key")
    ring.set_client(1001, salt, digest)
    calls = []
    real = auth_mod.hash_key

    def counting(key, salt=None):
        calls.append(key)
        return real(key, salt)

    monkeypatch.setattr(auth_mod, "hash_key", counting)
    assert ring.client(1001, "wrong") is None
    assert ring.client(999_999, "wrong") is None  # unknown login
    assert len(calls) == 2  # one scrypt each: the same work, the same time


def test_lockout_doubles_and_is_forgotten() -> None:
    now = [0.0]
    lock = Lockout(threshold=3, base_s=1.0, max_s=10.0, forget_s=100.0, max_entries=2,
                   clock=lambda: now[0])
    assert [lock.failed("a") for _ in range(6)] == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert lock.failed("a") == 10.0  # 16 s capped at max_s
    assert lock.wait("a") == 10.0
    now[0] = 200.0  # > forget_s after the last failure: a fresh start
    assert lock.failed("a") == 0.0
    lock.failed("b")
    lock.failed("c")  # max_entries 2: the oldest ("a") is dropped
    assert lock.wait("a") == 0.0 and len(lock._rows) == 2


def test_key_checks_are_bounded_under_a_flood() -> None:
    throttle = LoginThrottle(concurrency=1, queue=2)

    async def flood() -> list:
        def slow() -> bool:
            time.sleep(0.2)
            return False
        return await asyncio.gather(*[throttle.bounded(slow) for _ in range(5)],
                                    return_exceptions=True)

    out = asyncio.run(flood())
    refused = [o for o in out if isinstance(o, AuthRefused)]
    # 5 at once, at most 2 pending: 3 answered 429 without any work
    assert len(refused) == 3 and all(o.status == 429 for o in refused)


# ------------------------------------------------------------------ strict types
def test_bad_login_header_is_401_not_500(client, rt) -> None:
    key = _acc(rt)["api_key"]
    r = client.get("/v1/account_info", headers=[(b"X-CFD-Login", b"1001\xb2"),
                                                (b"Authorization", f"Bearer {key}".encode())])
    assert r.status_code == 401
    r = client.post("/v1/order_send", json=BUY, headers=[
        (b"X-CFD-Login", b"1001\xb2"), (b"Authorization", f"Bearer {key}".encode())])
    assert r.status_code == 401


def test_a_boolean_is_not_a_number(client, rt) -> None:
    push(client, AAPL=(230.00, 230.05))
    h = headers(_acc(rt))
    for field, value in (("volume", True), ("type", False), ("deviation", "20"),
                         ("type_filling", 2.5)):
        r = client.post("/v1/order_send", headers=h, json={**BUY, field: value})
        assert r.status_code == 422, (field, r.text)
    assert client.get("/v1/positions_total", headers=h).json()["total"] == 0
    assert client.post("/v1/order_send", headers=h,
                       json={**BUY, "volume": 1}).json()["retcode"] == 10009  # an int is ok


def test_type_time_is_validated_on_market_orders(client, rt) -> None:
    push(client, AAPL=(230.00, 230.05))
    h = headers(_acc(rt))
    r = client.post("/v1/order_send", headers=h, json={**BUY, "type_time": 99}).json()
    assert r["retcode"] == 10022 and "type_time 99" in r["comment"]
    assert client.get("/v1/positions_total", headers=h).json()["total"] == 0


# ------------------------------------------------------------------ idempotency
def test_reused_request_id_with_another_body_is_refused(client, rt) -> None:
    push(client, AAPL=(230.00, 230.05))
    h = {**headers(_acc(rt)), "X-Request-Id": "41"}
    first = client.post("/v1/order_send", headers=h, json=BUY).json()
    assert first["retcode"] == 10009
    assert client.post("/v1/order_send", headers=h, json=BUY).json() == first
    other = client.post("/v1/order_send", headers=h, json={**BUY, "volume": 20.0})
    assert other.status_code == 409 and "X-Request-Id 41" in other.json()["detail"]
    assert client.get("/v1/positions_total", headers=h).json()["total"] == 1


# ------------------------------------------------------------------ websockets
def test_browser_token_opens_the_account_stream(client, rt) -> None:
    acc = _acc(rt)
    tok = client.post("/v1/ws_token", headers=headers(acc)).json()
    assert tok["expires_in"] == 60.0
    with client.websocket_connect(f"/ws/account?token={tok['token']}") as ws:
        push(client, AAPL=(230.00, 230.05))
        client.post("/v1/order_send", headers=headers(acc), json=BUY)
        assert {ws.receive_json()["event"] for _ in range(2)} == {"deal", "order"}
    with client.websocket_connect(f"/ws/account?token={tok['token']}") as ws:  # used up
        assert "unknown or expired token" in ws.receive_json()["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_ticks_stream_says_what_is_wrong(client) -> None:
    for query, words in (("", "give the symbols"), ("?symbols=NOPE", "unknown symbols: NOPE"),
                         ("?symbols=" + ",".join(f"S{i}" for i in range(1025)),
                          "at most 1024")):
        with client.websocket_connect(f"/ws/ticks{query}") as ws:
            msg = ws.receive_json()
            assert msg["event"] == "error" and words in msg["message"]


def test_websockets_are_bounded_and_slow_consumers_dropped() -> None:
    rt = make_runtime(ws_max_connections=1, ws_queue=1)
    try:
        with TestClient(rt.app) as c, c.websocket_connect("/ws/ticks?symbols=AAPL,MSFT,NVDA") \
                as ws:
            with c.websocket_connect("/ws/ticks?symbols=AAPL") as second:
                assert "too many WebSocket connections" in second.receive_json()["message"]
            # three ticks in one batch, a queue of one: the consumer cannot keep up
            push(c, AAPL=(230.00, 230.05), MSFT=(420.0, 420.1), NVDA=(130.0, 130.1))
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    ws.receive_json()
            assert closed.value.code == 1013
    finally:
        rt.close()


# ------------------------------------------------------------------ CORS, metrics, docs
def test_cors_is_off_by_default_and_configurable(client) -> None:
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    r = client.options("/v1/order_send", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    rt = make_runtime(cors_origins="https://app.example")
    try:
        with TestClient(rt.app) as c:
            r = c.options("/v1/order_send", headers=pre)
            assert r.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        rt.close()


def test_metrics_can_be_protected() -> None:
    rt = make_runtime(metrics_key="metrics-key-0123456789")
    try:
        with TestClient(rt.app) as c:
            assert c.get("/metrics").status_code == 401
            ok = c.get("/metrics", headers={"Authorization": "Bearer metrics-key-0123456789"})
            assert ok.status_code == 200 and "cfd_http_requests" in ok.text
            assert c.get("/metrics", headers=ADMIN).status_code == 200
    finally:
        rt.close()


def test_openapi_declares_security_and_docs_are_local(client) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"login", "api_key"}
    op = spec["paths"]["/v1/account_info"]["get"]
    assert {k for s in op["security"] for k in s} == {"login", "api_key"}
    html = client.get("/docs").text
    assert "cdn" not in html.lower() and "https://" not in html
    js = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


def test_fastapis_opentelemetry_hooks_are_off_unless_asked_for(rt, monkeypatch) -> None:
    """Every request would ask whether an OpenTelemetry provider is configured; the apps
    are built with the hooks off, and ``CFD_OTEL=1`` leaves FastAPI's defaults."""
    import inspect

    from fastapi import FastAPI

    from api.app import app_options

    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        assert app_options() == {}
        return
    assert app_options() == {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    assert rt.app._telemetry["tracing"] is False  # the app as the server builds it
    monkeypatch.setenv("CFD_OTEL", "1")
    assert app_options() == {}
