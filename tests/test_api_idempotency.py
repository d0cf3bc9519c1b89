"""X-Request-Id over restarts and time: results are looked up in the store, not loaded at
start-up, and forgotten after the retention window (on the service clock)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api import idempotency
from cfd.store import Store
from tests.store_fixtures import store_url  # noqa: F401
from tests.test_api_admin import BUY
from tests.test_api_fixtures import ADMIN, headers, make_runtime, push

HOUR_MS = 3600 * 1000


def _client(c: TestClient) -> dict:
    created = c.post("/admin/accounts", headers=ADMIN, json={"name": "Ann"}).json()
    c.post(f"/admin/accounts/{created['login']}/deposit", headers=ADMIN,
           json={"amount": "100000.00"})
    return created


def _send(c: TestClient, acc: dict, rid: int) -> dict:
    out = c.post("/v1/order_send", headers={**headers(acc), "X-Request-Id": str(rid)},
                 json=BUY)
    assert out.status_code == 200, out.text
    return out.json()


def test_restart_answers_a_retry_from_the_store_without_loading_results(
        tmp_path, monkeypatch, store_url) -> None:  # noqa: F811
    monkeypatch.chdir(tmp_path)
    url = store_url
    first = make_runtime(in_memory=False, database_url=url)
    try:
        with TestClient(first.app) as c:
            push(c, AAPL=(230.00, 230.05))
            acc = _client(c)
            sent = {rid: _send(c, acc, rid) for rid in (11, 12, 13)}
            assert all(r["retcode"] == 10009 for r in sent.values())
    finally:
        first.close()
    read_kinds: list[str] = []
    events = Store.events

    def counting(self, *a, **kw):  # every event start-up reads, by kind
        rows = events(self, *a, **kw)
        read_kinds.extend(r["kind"] for r in rows)
        return rows

    monkeypatch.setattr(Store, "events", counting)
    second = make_runtime(in_memory=False, database_url=url)
    try:
        svc = second.service
        assert "order_result" not in read_kinds and "api_key" in read_kinds
        assert len(svc.results) == 0  # start-up loaded no idempotency result
        with TestClient(second.app) as c:
            again = _send(c, acc, 12)
            assert again == sent[12]  # the first result, not a second trade
            assert len(svc.results) == 1  # only the one asked for was read
            # 3 buys before the restart, none after
            assert c.get("/v1/positions_total", headers=headers(acc)).json()["total"] == 3
            # the stored result has a time: a window starting after it does not find it
            t = svc.reader.order_result(acc["login"], 12, 0)["time_msc"]
            assert svc.reader.order_result(acc["login"], 12, t)["result"] == sent[12]
            assert svc.reader.order_result(acc["login"], 12, t + 1) is None
            assert svc.reader.order_result(acc["login"], 99, 0) is None
    finally:
        second.close()


def test_a_request_id_past_the_window_is_a_new_request(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cfd.sqlite'}"
    now = [1_800_000_000_000]  # the service clock (ms), moved by the test
    first = make_runtime(in_memory=False, database_url=url, idempotency_window_s=3600)
    first.service.clock = lambda: now[0]
    try:
        with TestClient(first.app) as c:
            push(c, AAPL=(230.00, 230.05))
            acc = _client(c)
            sent = _send(c, acc, 21)
            now[0] += HOUR_MS - 1  # 59:59.999 later: still within the hour
            assert _send(c, acc, 21) == sent
            now[0] += 2  # 1 h + 1 ms after the first: forgotten, so a new order
            later = _send(c, acc, 21)
            assert later["retcode"] == 10009 and later["order"] != sent["order"]
            # and the new result is honoured from now on
            assert _send(c, acc, 21) == later
    finally:
        first.close()
    second = make_runtime(in_memory=False, database_url=url, idempotency_window_s=3600)
    now[0] += HOUR_MS + 1  # past the window of both results: a restart honours neither
    second.service.clock = lambda: now[0]
    try:
        with TestClient(second.app) as c:
            third = _send(c, acc, 21)
            assert third["order"] not in (sent["order"], later["order"])
            # 3 different orders under one id, each after the last one's window
            assert c.get("/v1/positions_total", headers=headers(acc)).json()["total"] == 3
    finally:
        second.close()


def test_the_cache_is_bounded_and_knows_when_to_ask_the_store() -> None:
    r = idempotency.Results(window_ms=1000, size=2, complete_after=500)
    assert r.needs_store(1400)  # 1400 - 1000 = 400 <= 500: results before 500 are stored
    assert not r.needs_store(1600)  # the whole window is after start-up
    for i, t in enumerate((1600, 1700, 1800)):
        r.claim((1, i), {"n": i}, t)
        r.record((1, i), t, idempotency.request_hash({"n": i}), {"retcode": i})
    assert len(r) == 2 and r.done((1, 0)) is None  # the oldest was evicted...
    assert r.complete_after == 1600 and r.needs_store(2500)  # ...so the store is asked
    assert r.get((1, 1), 2700).result == {"retcode": 1}  # 1700 >= 2700 - 1000: the edge
    assert r.get((1, 1), 2701) is None  # 1700 < 2701 - 1000: expired and dropped
    assert len(r) == 1 and r.get((1, 2), 2701).result == {"retcode": 2}  # 1800 >= 1701


def test_the_upgrade_indexes_results_stored_before_it(tmp_path) -> None:
    """A store written before revision 0003 keeps honouring its recent results."""
    from alembic import command
    from sqlalchemy import text

    from cfd.store import schema

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = schema.make_engine(url, writer=True)
    with eng.begin() as conn:
        command.upgrade(schema._alembic_config(conn), "0002")
        conn.execute(text(
            "INSERT INTO events (seq, time_msc, kind, login, data) VALUES "
            "(1, 5000, 'order_result', 7, :d)"),
            {"d": '{"kind":"order_result","login":7,"request_id":42,"time_msc":5000,'
                  '"result":{"retcode":10009},"request_sha256":"ab"}'})
    schema.migrate(eng)  # 0002 -> 0003: the request id moves into its indexed column
    eng.dispose()
    with Store.open(url, read_only=True) as st:
        assert st.order_result(7, 42, 5000)["result"] == {"retcode": 10009}
        assert st.order_result(7, 42, 5001) is None  # 5000 < 5001: outside the window
