"""Schemathesis fuzzing against the app's own OpenAPI schema: never a 5xx, and a client's
requests never change another account."""

from __future__ import annotations

import atexit

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from tests.test_api_fixtures import ADMIN, headers, make_runtime

_client_rt = make_runtime()
_admin_rt = make_runtime()
atexit.register(_client_rt.close)
atexit.register(_admin_rt.close)
for _rt in (_client_rt, _admin_rt):
    TestClient(_rt.app).post("/admin/ticks", headers=ADMIN, json=[
    {"symbol": "AAPL", "bid": 230.00, "ask": 230.05},
    {"symbol": "MSFT", "bid": 420.00, "ask": 420.10}])

ME = headers(_client_rt.demo["accounts"][0])
OTHER = headers(_client_rt.demo["accounts"][1])
_c = TestClient(_client_rt.app)


def _account_of(client: TestClient, who: dict) -> tuple:
    return (client.get("/v1/account_info", headers=who).json(),
            client.get("/v1/positions_get", headers=who).json())


def _other_account() -> tuple:
    return _account_of(_c, OTHER)


OTHER_BEFORE = _other_account()

client_schema = schemathesis.openapi.from_asgi("/openapi.json", _client_rt.app)
admin_schema = schemathesis.openapi.from_asgi("/openapi.json", _admin_rt.app)
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@client_schema.include(path_regex="^/v1/").parametrize()
@FUZZ
def test_fuzz_client_endpoints(case: schemathesis.Case) -> None:
    response = case.call(headers={**(case.headers or {}), **ME})
    assert response.status_code < 500, (case.method, case.path, response.text)
    # each request, not only the whole run, leaves the other account as it was
    assert _other_account() == OTHER_BEFORE, (case.method, case.path)


@admin_schema.include(path_regex="^/(admin|demo|health)").parametrize()
@FUZZ
def test_fuzz_admin_endpoints(case: schemathesis.Case) -> None:
    response = case.call(headers={**(case.headers or {}), **ADMIN})
    assert response.status_code < 500, (case.method, case.path, response.text)


def test_the_other_account_check_sees_a_change() -> None:
    """The check of the fuzz test above fails when the other account changes (on a runtime
    of its own, so that the fuzzed one is left as it is)."""
    rt = make_runtime()
    try:
        c = TestClient(rt.app)
        other = headers(rt.demo["accounts"][1])
        before = _account_of(c, other)
        login = rt.demo["accounts"][1]["login"]
        r = c.post(f"/admin/accounts/{login}/deposit", headers=ADMIN, json={"amount": "1.00"})
        assert r.status_code == 200, r.text
        assert _account_of(c, other) != before
    finally:
        rt.close()
