"""A hot standby takes over from a writer killed (SIGKILL) or frozen (SIGSTOP) under order
load, on PostgreSQL (cfd.store.standby, cfd.store.lease, api.procs).

Each round: the writer runs as a process (``cfd-server writer``), a fresh standby follows it
(``cfd-server standby``), clients send market orders with request ids through the link
(api.link.WriterClient, as gateways do) and retry the same id on every retryable error; the
writer is killed or frozen; the standby takes over and becomes the next round's writer.
Then: no acknowledged order lost or executed twice (the journal holds each acknowledged
request id exactly once, with the acknowledged result), clients saw only retryable errors,
the standby's first state hash equals a replay of the journal to where it took over, and a
frozen writer woken after the takeover cannot journal. ``CFD_STANDBY_ROUNDS`` (default 3)
sets the rounds; the takeover times are printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, text

from api.link import WriterClient, WriterUnavailable
from cfd import commands as C
from cfd.store import Store
from cfd.store.runner import open_durable
from tests.store_fixtures import PG_ENV, pg_schema_url
from tests.test_api_fixtures import free_port

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not os.environ.get(PG_ENV),
                                 reason=f"{PG_ENV} not set (the standby needs PostgreSQL)")]

ROOT = Path(__file__).resolve().parents[1]
LOGINS = list(range(2001, 2009))
ADMIN_KEY = "standby-test-admin-key-0123456789"
TTL_S = 1.0
BUY = {"action": 1, "symbol": "AAPL", "volume": 0.1, "type": 0, "price": 230.02,
       "deviation": 1000}


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ[PG_ENV]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(base, schema)
    finally:
        with eng.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        eng.dispose()


class Proc:
    """A ``cfd-server`` process whose output lines are collected."""

    def __init__(self, role: str, url: str) -> None:
        self.link = f"tcp://127.0.0.1:{free_port()}"
        self.events = f"tcp://127.0.0.1:{free_port()}"
        env = dict(os.environ, CFD_DATABASE_URL=url, CFD_ADMIN_KEY=ADMIN_KEY, CFD_FEED="none",
                   CFD_SNAPSHOT_EVERY="150", CFD_ROLLOVER_CLOCK="false", PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "api", role, "--link", self.link, "--events", self.events,
             "--lease-ttl", str(TTL_S)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.p.poll() is not None and not any(re.search(pattern, x)
                                                     for x in self.lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} from the process; it said:\n"
                             + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGCONT)
            self.p.kill()
        self.p.wait(10)


def seed(url: str) -> None:
    durable = open_durable(url, snapshot_every=None)
    try:
        cmds: list = [C.CreateAccount(time_msc=1 + i, actor="admin", login=lg, name=str(lg))
                      for i, lg in enumerate(LOGINS)]
        cmds += [C.Deposit(time_msc=100 + i, actor="admin", login=lg, amount=50_000_000)
                 for i, lg in enumerate(LOGINS)]
        cmds.append(C.Ticks.of(200, {0: (230.00, 230.02)}))
        assert all(r.ok for r in durable.submit(cmds))
    finally:
        durable.close()


class Load:
    """Clients sending orders with request ids; every retryable error is retried with the
    same id until the order is acknowledged."""

    def __init__(self, endpoints: list[str], first_rid: int) -> None:
        self.client = WriterClient(endpoints, timeout_s=1.0, ping_timeout_s=0.3)
        self.acked: dict[tuple[int, int], dict] = {}
        self.retries = 0
        self.errors: list[str] = []
        self.rid = first_rid
        self.stop = False
        self.first_ack_after: dict[str, float] = {}

    async def client_loop(self, login: int) -> None:
        while not self.stop:
            self.rid += 1
            rid = self.rid
            while True:
                try:
                    out = orjson.loads(await self.client.request(
                        b"send", orjson.dumps([login, BUY, rid])))
                except WriterUnavailable:
                    self.retries += 1
                    await asyncio.sleep(0.05)
                    continue
                except Exception as exc:  # anything else is not retryable: a failure
                    self.errors.append(repr(exc))
                    return
                if out["retcode"] != 10009:
                    self.errors.append(f"order {rid}: {out['retcode']} {out['comment']}")
                    return
                self.acked[(login, rid)] = out
                owner = self.client.owner
                self.first_ack_after.setdefault(owner, time.monotonic())
                break

    async def run(self, during: float, action: callable) -> float:
        """Load for ``during`` s, then ``action()``, then load until the new writer acked;
        returns the seconds from the action to the new writer's first acknowledgement."""
        tasks = [asyncio.ensure_future(self.client_loop(lg)) for lg in LOGINS]
        await asyncio.sleep(during)
        old = self.client.owner
        t0 = time.monotonic()
        action()
        deadline = t0 + 30
        while time.monotonic() < deadline and not self.errors:
            new = [o for o in self.first_ack_after if o not in ("", old)]
            if new and self.first_ack_after[new[0]] > t0:
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        await asyncio.sleep(0.3)
        self.stop = True
        await asyncio.gather(*tasks)
        self.client.close()
        return took


def replay_hash(url: str, upto: int) -> str:
    from cfd.engine import Engine

    eng = Engine()
    store = Store.open(url, read_only=True)
    try:
        for e in store.read_journal(0):
            if e.seq > upto:
                break
            eng.apply(C.decode(e.kind, e.payload))
    finally:
        store.close()
    return eng.state_hash()


def journal_orders(url: str) -> dict[tuple[int, int], int]:
    """How many times each (login, request id) is in the journal."""
    seen: dict[tuple[int, int], int] = {}
    store = Store.open(url, read_only=True)
    try:
        for e in store.read_journal(0):
            if e.kind == "order_send":
                cmd = C.decode(e.kind, e.payload)
                key = (cmd.login, cmd.request_id)
                seen[key] = seen.get(key, 0) + 1
        store.verify()
    finally:
        store.close()
    return seen


@pytest.mark.slow
def test_standby_takes_over_from_killed_and_frozen_writers(pg_url: str) -> None:
    rounds = int(os.environ.get("CFD_STANDBY_ROUNDS", "3"))
    seed(pg_url)
    writer = Proc("writer", pg_url)
    writer.wait_for("cfd writer: requests at")
    procs = [writer]
    acked: dict[tuple[int, int], dict] = {}
    times = []
    try:
        for rnd in range(rounds):
            standby = Proc("standby", pg_url)
            procs.append(standby)
            standby.wait_for("cfd standby: following")
            time.sleep(1.0)  # it recovered and follows
            freeze = rnd % 2 == 1
            sig = signal.SIGSTOP if freeze else signal.SIGKILL
            load = Load([writer.link, standby.link], 1_000_000 * (rnd + 1))
            took = asyncio.run(load.run(1.0, lambda w=writer, s=sig: os.kill(w.p.pid, s)))
            assert not load.errors, load.errors
            m = standby.wait_for(r"took over as writer at seq (\d+) state (\w+) ([\d.]+) s")
            seq, first_hash = int(m.group(1)), m.group(2)
            assert replay_hash(pg_url, seq) == first_hash
            times.append((signal.Signals(sig).name, took, float(m.group(3)), load.retries))
            acked.update(load.acked)
            if freeze:  # woken after the takeover, the old writer is fenced
                os.kill(writer.p.pid, signal.SIGCONT)
                old = WriterClient([writer.link], timeout_s=2.0, ping_timeout_s=1.0)

                async def try_old(c: WriterClient = old) -> str:
                    try:
                        await c.request(b"send", orjson.dumps([LOGINS[0], BUY, 7]))
                    except WriterUnavailable as exc:
                        return str(exc)
                    finally:
                        c.close()
                    return "answered"

                head = Store.open(pg_url, read_only=True)
                before = head.head_seq
                assert asyncio.run(try_old()) != "answered"
                time.sleep(0.5)
                assert head.head_seq == before  # it journaled nothing
                head.close()
                assert writer.p.wait(15) == 5  # it found itself fenced, and stopped
            writer = standby
        counts = journal_orders(pg_url)
        assert acked
        for key in acked:
            assert counts.get(key) == 1, (key, counts.get(key))  # neither lost nor doubled
        assert all(n == 1 for n in counts.values())
    finally:
        for p in procs:
            p.stop()
    print(f"\n{len(acked)} orders acknowledged; takeovers (signal, s to the new writer's "
          "first ack, s the standby measured, client retries):")
    for t in times:
        print(f"  {t[0]:8s} {t[1]:6.2f} {t[2]:6.2f} {t[3]:6d}")


def test_standby_fences_the_old_writer_in_process(pg_url: str) -> None:
    """The lease's token fences: after a takeover the old writer's batch and heartbeat fail,
    and the journal holds only the new writer's rows after the takeover."""
    from cfd.store.errors import StoreLeaseLost
    from cfd.store.standby import Standby

    seed(pg_url)
    old = open_durable(pg_url, snapshot_every=None)
    sb = Standby(pg_url, ttl_s=0.3)
    try:
        old.submit([C.Deposit(time_msc=300, actor="admin", login=LOGINS[0], amount=100)])
        sb.follow()
        assert sb.seq == old.head_seq and not sb.lapsed()
        time.sleep(0.4)  # the old writer is silent past the lease's TTL
        assert sb.lapsed()
        new = sb.take_over()
        try:
            assert new.head_seq == old.head_seq
            with contextlib.suppress(Exception):  # its session was ended under it
                old.store.heartbeat()
            # on a new session, the token is what refuses it
            with pytest.raises(StoreLeaseLost):
                old.store.heartbeat()
            with pytest.raises(StoreLeaseLost):
                old.store.append_batch([])
            new.submit([C.Deposit(time_msc=400, actor="admin", login=LOGINS[1], amount=7)])
            assert new.engine.state_hash() == replay_hash(pg_url, new.head_seq)
        finally:
            new.close()
    finally:
        with contextlib.suppress(Exception):
            old.close()


def test_a_writers_kept_connection_that_died_is_replaced(pg_url: str) -> None:
    """The writer keeps one connection for its batches; when the server ends it between
    two batches (a restart, an operator), the next batch goes through on a new one,
    written once."""
    seed(pg_url)
    w = open_durable(pg_url, snapshot_every=None)
    try:
        w.submit([C.Deposit(time_msc=300, actor="admin", login=LOGINS[0], amount=100)])
        pid = w.store._wconn.connection.dbapi_connection.info.backend_pid
        eng = create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        eng.dispose()
        head = w.head_seq
        res = w.submit([C.Deposit(time_msc=301, actor="admin", login=LOGINS[1], amount=7)])
        assert res[0].ok and w.head_seq == head + 1
        assert w.store._wconn.connection.dbapi_connection.info.backend_pid != pid
        assert w.engine.state_hash() == replay_hash(pg_url, w.head_seq)
    finally:
        w.close()


def test_standby_refuses_a_state_that_differs(pg_url: str) -> None:
    """At a snapshot whose recorded hash differs from its own state, the standby stops."""
    from cfd.store.errors import RecoveryMismatch
    from cfd.store.standby import Standby

    seed(pg_url)
    sb = Standby(pg_url, ttl_s=5)
    w = open_durable(pg_url, snapshot_every=None)
    try:
        w.submit([C.Deposit(time_msc=300, actor="admin", login=LOGINS[0], amount=100)])
        w.snapshot_now()
        assert sb.follow() == 1 and sb.hashes_checked == 1  # equal: followed
        w.submit([C.Deposit(time_msc=301, actor="admin", login=LOGINS[0], amount=100)])
        snap = w.store.latest_snapshot(w._schema_version)
        w.store.save_snapshot(w.store.head_seq, snap.arrays, snap.meta, "0" * 64,
                              w._schema_version)
        with pytest.raises(RecoveryMismatch):
            sb.follow()
    finally:
        sb.close()
        w.close()
