"""The store: journal (group commit), snapshots and the query tables, on SQLite or PostgreSQL.

::

    store = Store.open()                        # ./cfd.sqlite, or $CFD_DATABASE_URL
    stored = store.append_batch(entries, effects)   # one durable transaction
    for entry in store.read_journal(after_seq=snap.seq): ...
    store.history_deals(1001, t0, t1)

One process writes (the writer lease); any number may open read-only. The snapshot methods
are in :mod:`cfd.store.snapshots`, the blob layout in :mod:`cfd.store.blobs`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from cfd.effects import Effects
from cfd.store import headmark, lease, queries, schema, staging
from cfd.store import models as m
from cfd.store.checkpoint import Checkpointer
from cfd.store.errors import (
    StoreCorrupted,
    StoreError,
    StoreLeaseLost,
    StoreReadOnly,
)
from cfd.store.journal import GENESIS_HASH, JournalEntry, chain_hash
from cfd.store.meta import now_msc, read_head
from cfd.store.snapshots import (
    SNAPSHOT_SCHEMA_VERSION,
    Snapshot,
    SnapshotStore,
)
from cfd.store.writes import JOURNAL, apply_effects, fast_supported

__all__ = ["SNAPSHOT_SCHEMA_VERSION", "Snapshot", "Store"]

_CHAIN_HEAD = struct.Struct(">qqI")
_U32 = struct.Struct(">I")
_READ_PAGE = 20_000


_MOVE_HEAD = ("UPDATE store_meta SET head_seq = {m}, head_hash = {m}, lease_heartbeat_msc = {m} "
              "WHERE id = 1 AND head_seq = {m} AND lease_owner = {m}")


def _disconnected(conn: Connection, exc: BaseException) -> bool:
    """Whether ``exc`` says the connection itself is gone (as the dialect tells it; raised
    through SQLAlchemy or straight from the driver's cursor)."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    dbapi = conn.dialect.loaded_dbapi
    if not isinstance(exc, dbapi.Error):
        return False
    try:
        return bool(conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None))
    except Exception:  # noqa: BLE001 - a connection too broken to ask
        return True


class Store(SnapshotStore):
    """Open with :meth:`open`; close with :meth:`close` (or use as a context manager)."""

    def __init__(self, engine: Engine, url: str, *, read_only: bool,
                 lock: schema.WriterLock | None, owner: str | None) -> None:
        self.engine = engine
        self.url = url
        self.read_only = read_only
        self._lock = lock
        self.owner = owner
        self._head_seq = 0
        self._head_hash = GENESIS_HASH
        self._pin: tuple[int, str] | None = None  # a read-only view's fixed head (pin())
        self._mark: headmark.HeadMark | None = None
        self._checkpointer: Checkpointer | None = None
        self._wconn: Connection | None = None  # the batches' connection (_batch_connection)
        #: history blocks of at least this many rows are staged (cfd.store.staging; None:
        #: every row is written at once)
        self.stage_rows: int | None = staging.STAGE_ROWS
        self._staged = False  # staged rows wait to be written (a writer's own knowledge)
        self._staged_orders: tuple[int, int] | None = None  # their orders' tickets, lo-hi
        self._staged_cache: dict[int, Any] = {}  # the staged block being written, decoded
        self._writing = threading.RLock()  # batches and staged writes, one at a time
        if not read_only:
            self._head_seq, self._head_hash = self.head()
            try:  # refuse a journal shorter than what was acknowledged (a lost -wal)
                self._mark = headmark.open_mark(schema.sqlite_file(engine), *self.head())
            except BaseException:
                if lock is not None:
                    lock.release()
                engine.dispose()
                raise
            path = schema.sqlite_file(engine)
            if path is not None:
                self._checkpointer = Checkpointer(path)

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(cls, url: str | None = None, *, read_only: bool = False) -> Store:
        """Open (creating or migrating it if needed) the store at ``url``.

        ``url``: the argument, else ``$CFD_DATABASE_URL``, else ``sqlite:///./cfd.sqlite``.
        A writer takes the writer lease and refuses with :class:`StoreLocked` if another
        engine holds it; ``read_only=True`` takes no lease and never writes.
        """
        url = schema.resolve_url(url)
        eng = schema.make_engine(url, writer=not read_only)
        safe_url = eng.url.render_as_string(hide_password=True)
        if read_only:
            schema.check_revision(eng)
            return cls(eng, safe_url, read_only=True, lock=None, owner=None)
        owner = uuid.uuid4().hex
        lease.tag_sessions(eng, owner)  # a standby can end this writer's sessions
        lock = schema.WriterLock(eng)
        holder = f"{owner} {socket.gethostname()} {os.getpid()}"
        try:
            if not lock.acquire(holder):
                held = _read_lease(eng)
                raise schema.refuse_second_writer(safe_url, held, lock.description)
            schema.migrate(eng)
            _take_lease(eng, owner, safe_url, lock)
        except BaseException:
            lock.release()
            eng.dispose()
            raise
        store = cls(eng, safe_url, read_only=False, lock=lock, owner=owner)
        try:  # rows a batch staged before the last writer stopped go into their tables
            with eng.connect() as conn:
                store._staged = staging.pending(conn)
            store.index_staged()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Give up the lease (if writing) and the connections."""
        self._drop_batch_connection()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if not self.read_only and self.owner is not None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(m.StoreMeta.__table__)
                                 .where(m.StoreMeta.id == 1, m.StoreMeta.lease_owner == self.owner)
                                 .values(lease_owner=None, lease_heartbeat_msc=None))
            finally:
                self.owner = None
                if self._mark is not None:
                    self._mark.close()
                if self._lock is not None:
                    self._lock.release()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- journal -------------------------------------------------------------------------

    @property
    def head_seq(self) -> int:
        """The last durable journal seq (as this writer knows it)."""
        return self._head_seq if not self.read_only else self.head()[0]

    def head(self) -> tuple[int, str]:
        """The journal head (seq, hash) as recorded in ``store_meta`` (or as pinned)."""
        with self.engine.connect() as conn:
            return self._visible_head(conn)

    def pin(self, head: tuple[int, str] | None = None) -> tuple[int, str]:
        """Read-only: see the store as of ``head`` (default: now) from here on, so a reader
        beside a running writer gets one consistent view (journal up to the head, the
        snapshots at or before it). Returns the pinned head."""
        if not self.read_only:
            raise StoreError("only a read-only store can be pinned")
        self._pin = None
        self._pin = head or self.head()
        return self._pin

    def _visible_head(self, conn: Connection) -> tuple[int, str]:
        return self._pin if self._pin is not None else read_head(conn)

    def append_batch(self, entries: list[JournalEntry], effects: Effects | None = None
                     ) -> list[JournalEntry]:
        """Journal ``entries`` and write ``effects`` in ONE durable transaction.

        Entries get contiguous seqs after the head and their chain hashes; returned as
        stored. When this returns, the batch is committed (WAL fsync on SQLite): the
        caller may acknowledge its results. On error nothing of the batch is stored.
        A bulk booking's history rows may be staged (:mod:`cfd.store.staging`): durable
        with the batch, written into their tables by :meth:`index_staged`.
        """
        with self._writing:
            if (self._staged_orders is not None and effects is not None
                    and staging.orders_within(effects, *self._staged_orders)):
                self.index_staged()  # (staged orders first: this batch's rows are newer)
            return self._append(entries, effects)

    def _append(self, entries: list[JournalEntry], effects: Effects | None
                ) -> list[JournalEntry]:
        self._check_writer()
        seq, prev = self._head_seq, self._head_hash
        rows = []
        stored = []
        for e in entries:
            seq += 1
            if e.seq and e.seq != seq:
                raise StoreError(f"journal entry carries seq {e.seq}, the next seq is {seq}")
            actor = e.actor or ""
            prev = chain_hash(prev, seq, int(e.time_msc), e.kind, actor, e.payload)
            rows.append((seq, int(e.time_msc), e.kind, actor, e.payload, prev))
            stored.append(JournalEntry(e.kind, e.payload, e.time_msc, actor, seq, prev))
        for attempt in (1, 2):
            conn = self._batch_connection()
            committing = False
            try:
                trans = conn.begin()
                if rows:
                    if fast_supported(conn):
                        JOURNAL.insert_tuples(conn, rows)
                    else:
                        conn.execute(insert(m.JournalRow.__table__),
                                     [dict(zip(JOURNAL.keys, r, strict=True)) for r in rows])
                staged: set[str] = set()
                if effects is not None and not effects.is_empty():
                    staged = apply_effects(conn, effects, seq, self.stage_rows)
                self._move_head(conn, seq, prev)
                committing = True
                trans.commit()
            except BaseException as exc:
                # the kept connection had died since the last batch (a server restart, a
                # standby ending this writer's sessions): its transaction went with it and
                # nothing of the batch was committed, so once more on a new one. Not once
                # the commit was sent: whether it took is then unknown.
                again = (attempt == 1 and not committing and isinstance(exc, Exception)
                         and _disconnected(conn, exc))
                self._drop_batch_connection()  # (a new one for the next batch, if any)
                if again:
                    continue
                raise
            break
        self._head_seq, self._head_hash = seq, prev
        if staged:
            self._staged = True
            if "orders" in staged:
                self._staged_orders = staging.ticket_span(effects.blocks["orders"],
                                                          self._staged_orders)
        if self._mark is not None:
            self._mark.record(seq, prev)
        self._committed()
        return stored

    @property
    def staged_pending(self) -> bool:
        """Whether this writer has staged history rows not yet in their tables."""
        return self._staged

    def index_staged(self, max_rows: int | None = None) -> int:
        """Write staged history rows into their tables (:mod:`cfd.store.staging`), oldest
        first, :data:`~cfd.store.staging.INDEX_ROWS` per transaction, until about
        ``max_rows`` are written (None: all); the rows written. Each transaction renews
        the writer lease: a fenced writer raises :class:`StoreLeaseLost`, writing none."""
        written = 0
        with self._writing:
            while self._staged and (max_rows is None or written < max_rows):
                self._check_writer()
                conn = self._batch_connection()
                try:
                    with conn.begin():
                        lease.heartbeat(conn, self.owner, self.url)
                        n, more = staging.write_next(conn, apply_effects,
                                                     self._staged_cache)
                except BaseException:
                    self._staged_cache.clear()
                    self._drop_batch_connection()
                    raise
                self._staged = more
                if not more:
                    self._staged_orders = None
                written += n
                self._committed()
        return written

    def _batch_connection(self) -> Connection:
        """The writer's own connection for its batches, kept open between them: a batch of
        a few orders paid more for checking a pooled connection out and back in (and the
        objects around it) than for writing its rows."""
        c = self._wconn
        if c is None or c.closed or c.invalidated:
            c = self._wconn = self.engine.connect()
        return c

    def _drop_batch_connection(self) -> None:
        c, self._wconn = self._wconn, None
        if c is not None:
            with contextlib.suppress(Exception):  # (failing already: that error is raised)
                c.close()

    def _committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def heartbeat(self) -> None:
        """Tell a standby this writer lives (between batches, which do it themselves); raises
        :class:`StoreLeaseLost` once the lease was taken over (this writer is fenced)."""
        self._check_writer()
        with self.engine.begin() as conn:
            lease.heartbeat(conn, self.owner, self.url)

    def _move_head(self, conn: Connection, seq: int, hash_: str) -> None:
        if self.owner is not None and fast_supported(conn):
            # the statement below as text on the driver's cursor (built and compiled once,
            # not per batch: a batch of a few dozen orders felt it)
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            cur = conn.connection.cursor()
            try:
                cur.execute(_MOVE_HEAD.format(m=mark),
                            (seq, hash_, now_msc(), self._head_seq, self.owner))
                moved = cur.rowcount
            finally:
                cur.close()
        else:
            meta = m.StoreMeta.__table__
            moved = conn.execute(
                update(meta)
                .where(meta.c.id == 1, meta.c.head_seq == self._head_seq,
                       meta.c.lease_owner == self.owner)
                .values(head_seq=seq, head_hash=hash_, lease_heartbeat_msc=now_msc())).rowcount
        if moved != 1:
            raise StoreLeaseLost(
                f"the store {self.url} changed under this writer (lease taken over or journal "
                f"head moved from seq {self._head_seq}): stop this engine and restart it; "
                "it will recover from the journal"
            )

    def read_journal(self, after_seq: int = 0) -> Iterator[JournalEntry]:
        """Entries after ``after_seq`` in order, each checked against the hash chain.

        Raises :class:`StoreCorrupted` on an edited row, a gap, a missing tail or rows past
        the head, naming the seq.
        """
        for seq, time_msc, kind, actor, payload, h in self.journal_rows(after_seq):
            yield JournalEntry(kind=kind, payload=payload, time_msc=time_msc, actor=actor,
                               seq=seq, hash=h)

    def journal_rows(self, after_seq: int = 0
                     ) -> Iterator[tuple[int, int, str, str, bytes, str]]:
        """:meth:`read_journal` as plain ``(seq, time_msc, kind, actor, payload, hash)``
        tuples (for replay: no per-row objects), checked the same way."""
        t = m.JournalRow.__table__
        with self.engine.connect() as conn:
            head_seq, head_hash = self._visible_head(conn)
            if after_seq > head_seq:
                raise StoreCorrupted(
                    f"asked to read after seq {after_seq}, but the journal head is "
                    f"{head_seq} (journal truncated, or a snapshot newer than the journal)",
                    head_seq)
            if after_seq == 0:
                prev = GENESIS_HASH
            else:
                prev = conn.execute(select(t.c.hash).where(t.c.seq == after_seq)).scalar()
                if prev is None:
                    raise StoreCorrupted(
                        f"journal row missing below the head {head_seq} (truncated journal)",
                        after_seq)
        expected = after_seq + 1
        sha256 = hashlib.sha256
        fromhex = bytes.fromhex
        pack = _CHAIN_HEAD.pack
        u32 = _U32.pack
        while True:
            page = self._journal_page(expected, head_seq if self._pin else None)
            for row in page:
                seq, time_msc, kind, actor, payload, stored = row
                if seq != expected:
                    raise StoreCorrupted(
                        f"journal gap: expected seq {expected}, next row is {seq}", expected)
                if seq > head_seq:
                    raise StoreCorrupted(f"journal row {seq} lies past the recorded head "
                                         f"{head_seq}", seq)
                if type(payload) is not bytes:
                    payload = bytes(payload)
                    row = (seq, time_msc, kind, actor, payload, stored)
                kb = kind.encode()
                ab = actor.encode()
                # = journal.chain_hash(prev, seq, time_msc, kind, actor, payload), inlined
                h = sha256(fromhex(prev) + pack(seq, time_msc, len(kb)) + kb + u32(len(ab))
                           + ab + u32(len(payload)))
                h.update(payload)
                h = h.hexdigest()
                if h != stored:
                    raise StoreCorrupted("journal row does not match its hash chain (edited, "
                                         "or an earlier row was)", seq)
                prev = h
                expected += 1
                yield row
            if len(page) < _READ_PAGE:
                break
        last = expected - 1
        if last != head_seq:
            raise StoreCorrupted(
                f"journal ends at seq {last} but its head says {head_seq} (truncated journal)",
                last + 1)
        if prev != head_hash:
            raise StoreCorrupted("the last journal row does not match the head's hash", last)

    def _journal_page(self, first_seq: int, last_seq: int | None = None) -> list[Any]:
        """Up to ``_READ_PAGE`` journal rows from ``first_seq`` (to ``last_seq`` if given),
        in one short read transaction."""
        t = m.JournalRow.__table__
        last = 2**63 - 1 if last_seq is None else last_seq
        with self.engine.connect() as conn:
            if fast_supported(conn):
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                cur = conn.connection.cursor()
                try:
                    cur.execute("SELECT seq, time_msc, kind, actor, payload, hash FROM journal "
                                f"WHERE seq >= {mark} AND seq <= {mark} ORDER BY seq "
                                f"LIMIT {mark}", (first_seq, last, _READ_PAGE))
                    return cur.fetchall()
                finally:
                    cur.close()
            return [tuple(r) for r in conn.execute(
                select(t.c.seq, t.c.time_msc, t.c.kind, t.c.actor, t.c.payload, t.c.hash)
                .where(t.c.seq >= first_seq, t.c.seq <= last).order_by(t.c.seq)
                .limit(_READ_PAGE))]

    def verify(self) -> dict[str, Any]:
        """Check the whole chain, the head and the snapshots' seqs; raise or summarize."""
        n = 0
        for _ in self.read_journal(0):
            n += 1
        head_seq, _ = self.head()
        s = m.SnapshotRow.__table__
        with self.engine.connect() as conn:
            bad = None if self._pin else conn.execute(
                select(s.c.seq).where(s.c.seq > head_seq).limit(1)).scalar()
            n_snap = conn.execute(select(func.count()).select_from(s)
                                  .where(s.c.seq <= head_seq)).scalar_one()
        if bad is not None:
            raise StoreCorrupted(f"a snapshot at seq {bad} lies past the journal head "
                                 f"{head_seq}", bad)
        return {"journal_rows": n, "head_seq": head_seq, "snapshots": n_snap}

    # -- query side ----------------------------------------------------------------------

    def _query(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def _history(self, fn: Any, *args: Any) -> Any:
        """A read of deals, orders or postings, with every staged row in its table: the
        writer writes them first; a read-only store waits for its writer to
        (:func:`cfd.store.staging.wait_written`)."""
        if not self.read_only:
            if self._staged:
                self.index_staged()
            return self._query(fn, *args)
        with self.engine.connect() as conn:
            staging.wait_written(conn)
            return fn(conn, *args)

    def history_deals(self, login: int, date_from_msc: int, date_to_msc: int,
                      group: str | None = None) -> list[dict[str, Any]]:
        return self._history(queries.history_deals, login, date_from_msc, date_to_msc, group)

    def latest_deals(self, login: int, limit: int) -> list[dict[str, Any]]:
        return self._history(queries.latest_deals, login, limit)

    def deals_by_ticket(self, ticket: int) -> list[dict[str, Any]]:
        return self._history(queries.deals_by_ticket, ticket)

    def deals_by_order(self, order: int) -> list[dict[str, Any]]:
        return self._history(queries.deals_by_order, order)

    def deals_by_position(self, position_id: int) -> list[dict[str, Any]]:
        return self._history(queries.deals_by_position, position_id)

    def history_orders(self, login: int, date_from_msc: int, date_to_msc: int,
                       group: str | None = None) -> list[dict[str, Any]]:
        return self._history(queries.history_orders, login, date_from_msc, date_to_msc, group)

    def orders_by_ticket(self, ticket: int) -> list[dict[str, Any]]:
        return self._history(queries.orders_by_ticket, ticket)

    def orders_by_position(self, position_id: int) -> list[dict[str, Any]]:
        return self._history(queries.orders_by_position, position_id)

    def closed_position_of(self, login: int, ticket: int) -> bool:
        return self._history(queries.closed_position_of, login, ticket)

    def finished_order_state(self, login: int, ticket: int) -> int | None:
        return self._history(queries.finished_order_state, login, ticket)

    def ledger_sums(self) -> dict[str, int]:
        return self._history(queries.ledger_sums)

    def open_orders(self, login: int | None = None, symbol: str | None = None,
                    group: str | None = None) -> list[dict[str, Any]]:
        return self._history(queries.open_orders, login, symbol, group)

    def account(self, login: int) -> dict[str, Any] | None:
        return self._query(queries.account, login)

    def ledger_statement(self, login: int, date_from_msc: int, date_to_msc: int
                         ) -> dict[str, Any]:
        return self._history(queries.ledger_statement, login, date_from_msc, date_to_msc)

    def symbols(self) -> dict[str, dict[str, Any]]:
        return self._query(queries.symbols)

    def order_result(self, login: int, request_id: int, since_msc: int
                     ) -> dict[str, Any] | None:
        """The stored result of an idempotent order_send made at ``since_msc`` or later."""
        return self._query(queries.order_result, login, request_id, since_msc)

    def events(self, login: int | None = None, after_id: int = 0, limit: int = 1000,
               kinds: tuple[str, ...] | None = None
               ) -> list[dict[str, Any]]:
        return self._query(queries.events, login, after_id, limit, kinds)

    # -- internals -----------------------------------------------------------------------

    def _check_writer(self) -> None:
        if self.read_only:
            raise StoreReadOnly(f"the store {self.url} is open read-only")
        if self.owner is None:
            raise StoreError(f"the store {self.url} is closed")


def _read_lease(eng: Engine) -> dict[str, Any] | None:
    meta = m.StoreMeta.__table__
    try:
        with eng.connect() as conn:
            row = conn.execute(select(meta).where(meta.c.id == 1)).mappings().first()
    except Exception:  # the first writer may still be creating the schema
        return None
    return None if row is None else dict(row)


def _take_lease(eng: Engine, owner: str, url: str, lock: schema.WriterLock) -> None:
    """Record this process as the writer. With an OS-backed lock held, any earlier lease is
    stale (its holder died); without one, a lease with a recent heartbeat refuses us."""
    meta = m.StoreMeta.__table__
    now = now_msc()
    with eng.begin() as conn:
        row = conn.execute(select(meta).where(meta.c.id == 1).with_for_update()
                           ).mappings().first()
        if row is None:
            raise StoreCorrupted("the store_meta row (journal head) is missing")
        fresh = (row["lease_owner"] is not None and row["lease_heartbeat_msc"] is not None
                 and now - row["lease_heartbeat_msc"] < LEASE_TTL_MS)
        if fresh and not lock.os_backed:
            raise schema.refuse_second_writer(url, dict(row), "lease row")
        conn.execute(update(meta).where(meta.c.id == 1).values(
            lease_owner=owner, lease_host=socket.gethostname(), lease_pid=os.getpid(),
            lease_acquired_msc=now, lease_heartbeat_msc=now))


#: Without an OS-backed lock, a lease whose heartbeat is older than this is taken over.
LEASE_TTL_MS = 30_000
