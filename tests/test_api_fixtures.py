"""Shared fixtures of the API tests (imported by the test_api_* / test_mt5_* modules)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.procs import free_port
from api.server import Runtime, build
from api.settings import Settings

ADMIN_KEY = "test-admin-key-0123456789"


def make_runtime(**kw: object) -> Runtime:
    opts = {"demo": True, "in_memory": True, "feed": "none", "admin_key": ADMIN_KEY,
            "rate_limit_per_s": 1000.0, "rate_limit_burst": 1000}
    opts.update(kw)
    return build(Settings(**opts))


def headers(acc: dict) -> dict[str, str]:
    return {"X-CFD-Login": str(acc["login"]), "Authorization": f"Bearer {acc['api_key']}"}


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def push(client: httpx.Client, **quotes: tuple[float, float]) -> dict:
    r = client.post("/admin/ticks", headers=ADMIN,
                    json=[{"symbol": s, "bid": b, "ask": a} for s, (b, a) in quotes.items()])
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = make_runtime()
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[httpx.Client]:
    with TestClient(rt.app) as c:
        yield c


class LiveServer:
    """A uvicorn server on a free loopback port, in a thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(runtime.app, host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.rt.close()


def test_headers_helper_builds_both_headers() -> None:
    h = headers({"login": 7, "api_key": "k"})
    assert h == {"X-CFD-Login": "7", "Authorization": "Bearer k"}
