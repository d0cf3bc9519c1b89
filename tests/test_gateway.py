"""Gateways in front of one writer (api.gateway, api.link): the same answers as one process,
idempotent retries through any gateway, events to the subscribers of every gateway, and a
retryable 503 when no writer answers."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from api.gateway import create_gateway
from tests.gateway_fixtures import Served, link_addresses, start_gateway, start_link
from tests.test_api_fixtures import ADMIN, headers, make_runtime

BUY = {"action": 1, "symbol": "AAPL", "volume": 10.0, "type": 0, "price": 230.05,
       "deviation": 20,
       "type_filling": 2, "magic": 7, "comment": "t"}
_VOLATILE = {"time", "time_msc", "time_setup", "time_setup_msc", "time_update",
             "time_update_msc", "time_done", "time_done_msc", "login", "request_id"}


def _stable(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


@pytest.fixture
def pair() -> Iterator[tuple]:
    """A single-process server and a writer with two gateways, each fresh."""
    single = make_runtime()
    writer = make_runtime()
    wl, link, events = start_link(writer)
    gws = [start_gateway([link], [events]) for _ in range(2)]
    try:
        with TestClient(single.app) as c:
            yield c, single, writer, gws, wl
    finally:
        for g in gws:
            g.close()
        wl.stop()
        writer.close()
        single.close()


def _script(c: httpx.Client, acc: dict) -> list[tuple[int, object]]:
    """The same calls on a server: ticks (admin), orders good and bad, reads."""
    h = headers(acc)
    out = []

    def rec(r: httpx.Response) -> None:
        out.append((r.status_code, _stable(r.json())))

    rec(c.post("/admin/ticks", headers=ADMIN,
               json=[{"symbol": "AAPL", "bid": 230.0, "ask": 230.05},
                     {"symbol": "MSFT", "bid": 410.0, "ask": 410.1}]))
    rec(c.post("/v1/order_send", headers=h, json=BUY))
    rec(c.post("/v1/order_send", headers=h, json={**BUY, "type": 1, "volume": 4.0}))
    rec(c.post("/v1/order_send", headers=h, json={**BUY, "symbol": "NOPE"}))
    rec(c.post("/v1/order_send", headers=h, json={**BUY, "volume": -1}))
    rec(c.post("/v1/order_check", headers=h, json=BUY))
    rec(c.get("/v1/positions_get", headers=h))
    rec(c.get("/v1/account_info", headers=h))
    rec(c.get("/v1/symbol_info_tick", headers=h, params={"symbol": "AAPL"}))
    rec(c.get("/v1/account_info", headers={**h, "Authorization": "Bearer wrong"}))
    return out


def test_gateway_answers_as_one_process(pair: tuple) -> None:
    c, single, writer, gws, _ = pair
    want = _script(c, single.demo["accounts"][0])
    with httpx.Client(base_url=gws[0].url, timeout=10) as g:
        got = _script(g, writer.demo["accounts"][0])
    assert [s for s, _ in got] == [s for s, _ in want]
    assert got == want
    assert got[1][1]["retcode"] == 10009  # the buy was done (a result worth comparing)


def test_retries_through_two_gateways_are_idempotent(pair: tuple) -> None:
    _, _, writer, gws, *_ = pair
    acc = writer.demo["accounts"][0]
    h = headers(acc)
    with httpx.Client(base_url=gws[0].url, timeout=10) as a, \
            httpx.Client(base_url=gws[1].url, timeout=10) as b:
        a.post("/admin/ticks", headers=ADMIN,
               json=[{"symbol": "AAPL", "bid": 230.0, "ask": 230.05}])
        first = a.post("/v1/order_send", headers={**h, "X-Request-Id": "41"}, json=BUY)
        again = b.post("/v1/order_send", headers={**h, "X-Request-Id": "41"}, json=BUY)
        other = b.post("/v1/order_send", headers={**h, "X-Request-Id": "41"},
                       json={**BUY, "volume": 2.0})
        positions = a.get("/v1/positions_get", headers=h).json()
    assert first.status_code == again.status_code == 200
    assert first.json()["retcode"] == 10009
    assert again.json() == first.json()
    assert other.status_code == 409
    assert len(positions) == 1 and positions[0]["volume"] == 10.0


def test_events_reach_subscribers_of_both_gateways(pair: tuple) -> None:
    _, _, writer, gws, wl = pair
    acc = writer.demo["accounts"][0]
    h = headers(acc)
    with contextlib.ExitStack() as stack:
        socks = []
        for g in gws:
            ws = g.url.replace("http", "ws")
            socks.append(stack.enter_context(connect(f"{ws}/ws/account",
                                                     additional_headers=h)))
            socks.append(stack.enter_context(connect(f"{ws}/ws/ticks?symbols=AAPL")))
        deadline = time.monotonic() + 10
        while not wl.streaming:  # the writer has seen the gateways' subscriptions
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with httpx.Client(base_url=gws[1].url, timeout=10) as g:
            g.post("/admin/ticks", headers=ADMIN,
                   json=[{"symbol": "AAPL", "bid": 230.0, "ask": 230.05}])
            res = g.post("/v1/order_send", headers=h, json=BUY).json()
        assert res["retcode"] == 10009
        for i, s in enumerate(socks):
            seen = []
            while True:
                msg = json.loads(s.recv(timeout=10))
                seen.append(msg["event"])
                if i % 2 == 1 and msg["event"] == "tick":
                    assert msg["symbol"] == "AAPL" and msg["bid"] == 230.0
                    break
                if i % 2 == 0 and msg["event"] == "deal":
                    assert msg["order"] == res["order"] and msg["volume"] == 10.0
                    break


def test_a_gateway_serves_its_own_metrics(pair: tuple) -> None:
    _, _, writer, gws, _ = pair
    h = headers(writer.demo["accounts"][0])
    with httpx.Client(base_url=gws[0].url, timeout=10) as g:
        assert g.get("/v1/account_info", headers=h).status_code == 200  # forwarded
        assert g.get("/health").status_code == 200  # the gateway's own
        text = g.get("/metrics").text
    assert 'route="(forwarded)",status="200"' in text
    assert 'cfd_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert "cfd_gateway_writer_unavailable_total 0.0" in text
    # the writer's own /metrics counts the forwarded request by its route
    w = TestClient(writer.app)  # (no lifespan: the writer is running already)
    assert 'route="/v1/account_info"' in w.get("/metrics").text


def test_no_writer_is_a_retryable_503() -> None:
    link, events = link_addresses()  # nobody binds these
    g: Served = start_gateway([link], [events], timeout_s=0.5)
    try:
        r = httpx.post(f"{g.url}/v1/order_send", json=BUY, timeout=10,
                       headers={"X-CFD-Login": "1001", "Authorization": "Bearer x"})
        # no key ring yet: authentication cannot succeed, and says so without a writer
        assert r.status_code in (401, 503)
        r = httpx.get(f"{g.url}/v1/account_info", timeout=10,
                      headers={"X-CFD-Login": "1001", "Authorization": "Bearer x"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "retry" in r.json()["detail"]
        assert httpx.get(f"{g.url}/health", timeout=10).json()["ok"] is False
    finally:
        g.close()


def test_gateway_answers_history_from_the_store(tmp_path) -> None:
    """With the store (read-only), a gateway answers history reads itself: the writer's
    answers, and still while no writer answers."""
    writer = make_runtime(in_memory=False, database_url=f"sqlite:///{tmp_path}/g.sqlite")
    wl, link, events = start_link(writer)
    g = Served(create_gateway([link], [events], timeout_s=1.0,
                              database_url=f"sqlite:///{tmp_path}/g.sqlite")[0])
    acc = writer.demo["accounts"][0]
    h = headers(acc)
    q = {"date_from": 0, "date_to": 2**33}
    try:
        with httpx.Client(base_url=g.url, timeout=10) as c, TestClient(writer.app) as w:
            c.post("/admin/ticks", headers=ADMIN,
                   json=[{"symbol": "AAPL", "bid": 230.0, "ask": 230.05}])
            res = c.post("/v1/order_send", headers=h, json=BUY).json()
            assert res["retcode"] == 10009
            want = w.get("/v1/history_deals_get", headers=h, params=q).json()
            got = c.get("/v1/history_deals_get", headers=h, params=q).json()
            assert got == want and res["order"] in [d["order"] for d in got]
            orders = c.get("/v1/history_orders_total", headers=h, params=q).json()
            assert orders == w.get("/v1/history_orders_total", headers=h, params=q).json()
            wl.stop()  # no writer: forwarded reads fail (retry), history is still answered
            assert c.get("/v1/account_info", headers=h).status_code == 503
            assert c.get("/v1/history_deals_get", headers=h, params=q).json() == want
    finally:
        g.close()
        wl.stop()
        writer.close()


def test_gateway_finds_the_next_writer_by_itself() -> None:
    """The writer at the first address goes away; the one at the second starts: the gateway
    answers 503 (retry) meanwhile, then follows the new writer and takes its key ring."""
    first, second = make_runtime(), make_runtime()
    wl1, link1, events1 = start_link(first)
    link2, events2 = link_addresses()
    g = start_gateway([link1, link2], [events1, events2], timeout_s=1.0)
    wl2 = None
    try:
        with httpx.Client(base_url=g.url, timeout=10) as c:
            h1 = headers(first.demo["accounts"][0])
            assert c.get("/v1/account_info", headers=h1).status_code == 200
            wl1.stop()
            r = c.get("/v1/account_info", headers=h1)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            from api.link import WriterLink

            wl2 = WriterLink(second.service, second.app, link2, events2)
            wl2.start()
            deadline = time.monotonic() + 15  # found with no request to prompt it
            while c.get("/health").json().get("writer") != link2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            h2 = headers(second.demo["accounts"][0])  # its key ring came with it
            r = c.post("/v1/order_send", headers=h2, json=BUY)
            assert r.status_code == 200 and r.json()["retcode"] == 10021  # no quote there
    finally:
        g.close()
        for w in (wl1, wl2):
            if w is not None:
                w.stop()
        first.close()
        second.close()


def _gateway_pids(parent: int) -> list[int]:
    """Child processes of ``parent`` running ``api gateway`` (from /proc)."""
    import os

    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if ppid == parent and b"gateway" in cmd:
            out.append(int(d))
    return out


def _alive(pid: int) -> bool:

    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_the_demos_gateways_end_with_its_writer(tmp_path, sig: str) -> None:
    """``cfd-server --demo --gateways 2``: stopping the process (SIGTERM) stops its gateways;
    killing it (SIGKILL, no clean-up) ends them too (they die with their parent)."""
    import os
    import signal
    import subprocess
    import sys

    from api.procs import free_port

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc and relies on prctl(PR_SET_PDEATHSIG): Linux only")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--demo", "--gateways", "2", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:  # read the output aside: a silent server must not hang the test
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        up = 0
        while up < 2 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert line is not None, "the demo ended early:\n" + "".join(seen)
            seen.append(line)
            assert " ended (exit code" not in line, "a gateway failed:\n" + "".join(seen)
            up += "cfd gateway on" in line
        assert up == 2, "the gateways did not start:\n" + "".join(seen)
        gws = _gateway_pids(proc.pid)
        assert len(gws) == 2
        proc.send_signal(getattr(signal, sig))
        proc.wait(30)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in gws) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in gws), f"gateways outlived the writer ({sig})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_gateway_drops_admin_keys_the_writer_no_longer_has() -> None:
    """The gateway's key ring follows the writer's: an admin key the writer dropped (a
    restart with another admin key) stops working at the gateway, even once verified."""
    from api.auth import KeyRing

    writer = KeyRing()
    writer.add_admin("old", "old-admin-key")
    gw = KeyRing()
    gw.load(writer.export())
    assert gw.admin("old-admin-key") is not None  # verified, and now cached
    restarted = KeyRing()
    restarted.add_admin("new", "new-admin-key")
    gw.load(restarted.export())
    assert gw.admin("old-admin-key") is None
    assert gw.cached_admin("old-admin-key") is None
    assert gw.admin("new-admin-key") is not None
