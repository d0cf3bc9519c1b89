"""The store: journal (group commit), snapshots and the query tables, on SQLite or PostgreSQL.

::

    store = Store.open()                        # ./cfd.sqlite, or $CFD_DATABASE_URL
    stored = store.append_batch(entries, effects)   # one durable transaction
    for entry in store.read_journal(after_seq=snap.seq): ...
    store.history_deals(1001, t0, t1)

One process writes (the writer lease); any number may open read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from cfd.effects import Effects
from cfd.store import models as m
from cfd.store import queries, schema
from cfd.store.errors import (
    SnapshotSchemaMismatch,
    StoreCorrupted,
    StoreError,
    StoreLeaseLost,
    StoreReadOnly,
)
from cfd.store.journal import GENESIS_HASH, JournalEntry, chain_hash
from cfd.store.writes import JOURNAL, apply_effects, fast_supported

_CHAIN_HEAD = struct.Struct(">qqI")
_U32 = struct.Struct(">I")

#: Layout version of snapshots written by default (callers may pass their own).
SNAPSHOT_SCHEMA_VERSION = 1
#: Snapshot blobs are stored in chunk rows of at most this many bytes. Small enough that
#: the driver's per-value buffers are reused rather than freshly mapped (and faulted in)
#: for every chunk; on PostgreSQL 8 MiB chunks write and read fastest.
SNAPSHOT_CHUNK_BYTES = 8 * 1024 * 1024
#: PostgreSQL: connections that fetch one snapshot's chunks side by side (one decompresses
#: a chunk while another one's bytes are in transit).
SNAPSHOT_READ_CONNECTIONS = 2
_READ_PAGE = 20_000


def _now_msc() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Snapshot:
    seq: int
    state_hash: str
    schema_version: int
    created_msc: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


#: A snapshot chunk that names a file beside the SQLite database holding the raw blob.
FILE_MAGIC = b"CFDFILE1\n"
#: On SQLite file stores, snapshot blobs at least this big go to a file (see save_snapshot).
SNAPSHOT_FILE_MIN_BYTES = 32 * 1024 * 1024

#: First bytes of a raw snapshot blob (see :func:`blob_parts`); older blobs are ``.npz``.
RAW_MAGIC = b"CFDSNAP2\n"


def blob_parts(arrays: dict[str, np.ndarray], chunk_bytes: int) -> list[Any]:
    """A snapshot blob as a list of chunks, without copying the arrays' data.

    Chunk 0 is :data:`RAW_MAGIC`, a 4-byte little-endian length and a JSON header listing
    ``[name, dtype, shape]`` per array; then each array's raw bytes (C order) follow in
    chunks of at most ``chunk_bytes`` (memoryviews of the arrays: an array never shares a
    chunk with another). No compression, no pickles.
    """
    items = []
    parts: list[Any] = []
    for name, value in arrays.items():
        a = np.asarray(value)
        if not a.flags.c_contiguous:  # (ascontiguousarray would make 0-d arrays 1-d)
            a = a.copy(order="C")
        if a.dtype.hasobject:
            raise TypeError(f"snapshot array {name!r} holds Python objects")
        items.append([name, a.dtype.str, list(a.shape)])
        raw = memoryview(a.reshape(-1).view(np.uint8)) if a.size else memoryview(b"")
        for i in range(0, len(raw), chunk_bytes):
            parts.append(raw[i:i + chunk_bytes])
    header = json.dumps({"arrays": items, "chunk_bytes": chunk_bytes}).encode()
    return [RAW_MAGIC + len(header).to_bytes(4, "little") + header, *parts]


def raw_header(head: bytes) -> list[tuple[str, np.dtype, tuple[int, ...], int]]:
    """The arrays listed by chunk 0 of a raw blob (see :func:`blob_parts`), in blob order,
    as ``(name, dtype, shape, nbytes)``. Raises ValueError if ``head`` is not one."""
    if not head.startswith(RAW_MAGIC):
        raise ValueError("not a raw snapshot blob")
    off = len(RAW_MAGIC)
    n = int.from_bytes(head[off:off + 4], "little")
    header = json.loads(head[off + 4: off + 4 + n])
    out = []
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        dims = tuple(int(x) for x in shape)
        if dt.hasobject or any(x < 0 for x in dims):
            raise ValueError(f"bad snapshot array {name!r}: {dtype} {shape}")
        out.append((name, dt, dims, int(np.prod(dims, dtype=np.int64)) * dt.itemsize))
    return out


def arrays_from_parts(parts: Iterator[bytes]) -> dict[str, np.ndarray]:
    """The inverse of :func:`blob_parts` (one copy of each array's data, writable)."""
    it = iter(parts)
    out: dict[str, np.ndarray] = {}
    for name, dt, shape, nbytes in raw_header(bytes(next(it))):
        buf = np.empty(nbytes, dtype=np.uint8)
        pos = 0
        while pos < len(buf):
            chunk = next(it)
            buf[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            pos += len(chunk)
        out[name] = buf.view(dt).reshape(shape)
    if next(it, None) is not None:
        raise ValueError("raw snapshot blob has trailing chunks")
    return out


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays -> uncompressed ``.npz`` bytes (no pickles). Legacy snapshot format; new
    snapshots use :func:`blob_parts`."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class Store:
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
        if not read_only:
            self._head_seq, self._head_hash = self.head()

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
        lock = schema.WriterLock(eng)
        holder = f"{owner} {socket.gethostname()} {os.getpid()}"
        try:
            if not lock.acquire(holder):
                lease = _read_lease(eng)
                raise schema.refuse_second_writer(safe_url, lease, lock.description)
            schema.migrate(eng)
            _take_lease(eng, owner, safe_url, lock)
        except BaseException:
            lock.release()
            eng.dispose()
            raise
        return cls(eng, safe_url, read_only=False, lock=lock, owner=owner)

    def close(self) -> None:
        """Give up the lease (if writing) and the connections."""
        if not self.read_only and self.owner is not None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(m.StoreMeta.__table__)
                                 .where(m.StoreMeta.id == 1, m.StoreMeta.lease_owner == self.owner)
                                 .values(lease_owner=None, lease_heartbeat_msc=None))
            finally:
                self.owner = None
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
        """The journal head (seq, hash) as recorded in ``store_meta``."""
        with self.engine.connect() as conn:
            return _head(conn)

    def append_batch(self, entries: list[JournalEntry], effects: Effects | None = None
                     ) -> list[JournalEntry]:
        """Journal ``entries`` and write ``effects`` in ONE durable transaction.

        Entries get contiguous seqs after the head and their chain hashes; returned as
        stored. When this returns, the batch is committed (WAL fsync on SQLite): the
        caller may acknowledge its results. On error nothing of the batch is stored.
        """
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
            stored.append(replace(e, seq=seq, actor=actor, hash=prev))
        with self.engine.begin() as conn:
            if rows:
                if fast_supported(conn):
                    JOURNAL.insert_tuples(conn, rows)
                else:
                    conn.execute(insert(m.JournalRow.__table__),
                                 [dict(zip(JOURNAL.keys, r, strict=True)) for r in rows])
            if effects is not None and not effects.is_empty():
                apply_effects(conn, effects, seq)
            self._move_head(conn, seq, prev)
        self._head_seq, self._head_hash = seq, prev
        return stored

    def _move_head(self, conn: Connection, seq: int, hash_: str) -> None:
        meta = m.StoreMeta.__table__
        res = conn.execute(
            update(meta)
            .where(meta.c.id == 1, meta.c.head_seq == self._head_seq,
                   meta.c.lease_owner == self.owner)
            .values(head_seq=seq, head_hash=hash_, lease_heartbeat_msc=_now_msc()))
        if res.rowcount != 1:
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
            head_seq, head_hash = _head(conn)
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
            page = self._journal_page(expected)
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

    def _journal_page(self, first_seq: int) -> list[Any]:
        """Up to ``_READ_PAGE`` journal rows from ``first_seq`` (one short read transaction)."""
        t = m.JournalRow.__table__
        with self.engine.connect() as conn:
            if fast_supported(conn):
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                cur = conn.connection.cursor()
                try:
                    cur.execute("SELECT seq, time_msc, kind, actor, payload, hash FROM journal "
                                f"WHERE seq >= {mark} ORDER BY seq LIMIT {mark}",
                                (first_seq, _READ_PAGE))
                    return cur.fetchall()
                finally:
                    cur.close()
            return [tuple(r) for r in conn.execute(
                select(t.c.seq, t.c.time_msc, t.c.kind, t.c.actor, t.c.payload, t.c.hash)
                .where(t.c.seq >= first_seq).order_by(t.c.seq).limit(_READ_PAGE))]

    def verify(self) -> dict[str, Any]:
        """Check the whole chain, the head and the snapshots' seqs; raise or summarize."""
        n = 0
        for _ in self.read_journal(0):
            n += 1
        head_seq, _ = self.head()
        s = m.SnapshotRow.__table__
        with self.engine.connect() as conn:
            bad = conn.execute(select(s.c.seq).where(s.c.seq > head_seq).limit(1)).scalar()
            n_snap = conn.execute(select(func.count()).select_from(s)).scalar_one()
        if bad is not None:
            raise StoreCorrupted(f"a snapshot at seq {bad} lies past the journal head "
                                 f"{head_seq}", bad)
        return {"journal_rows": n, "head_seq": head_seq, "snapshots": n_snap}

    # -- snapshots -----------------------------------------------------------------------

    def snapshot_dir(self) -> Path | None:
        """Where a SQLite store keeps big snapshot blobs (``<db>.snapshots/``), else None."""
        path = schema.sqlite_file(self.engine)
        return None if path is None else path.with_name(path.name + ".snapshots")

    def save_snapshot(self, seq: int, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                      state_hash: str, schema_version: int = SNAPSHOT_SCHEMA_VERSION) -> int:
        """Store the state at journal ``seq``; returns its id.

        The arrays go in raw, uncompressed (:func:`blob_parts`), streamed from the arrays'
        memory with no whole-blob copy: in chunk rows (one ``INSERT`` per chunk of at most
        :data:`SNAPSHOT_CHUNK_BYTES`), or, on a SQLite file store and from
        :data:`SNAPSHOT_FILE_MIN_BYTES` up, in a file beside the database (written and
        fsynced before the row that names it commits: SQLite writes big blobs through its
        WAL twice, a file once). Size and sha256 are recorded and checked on load.
        """
        self._check_writer()
        if seq > self._head_seq:
            raise StoreError(f"snapshot at seq {seq} is past the journal head {self._head_seq}")
        parts = blob_parts(arrays, SNAPSHOT_CHUNK_BYTES)
        size = sum(len(p) for p in parts)
        folder = self.snapshot_dir()
        file: Path | None = None
        sha: str | None = None
        if folder is not None and size >= SNAPSHOT_FILE_MIN_BYTES:
            file = folder / f"{seq:012d}-{uuid.uuid4().hex}.snap"
            hasher = _HashThread()
            try:
                _write_file(file, parts, hasher)
            finally:
                sha = hasher.hexdigest()
            parts = [FILE_MAGIC + json.dumps({"file": file.name}).encode()]
        else:
            # hashed on another thread while the chunk rows go in; the row gets the
            # digest in the same transaction, before it commits
            hasher = _HashThread()
            for part in parts:
                hasher.update(part)
        s = m.SnapshotRow.__table__
        c = m.SnapshotChunk.__table__
        try:
            with self.engine.begin() as conn:
                snap_id = conn.execute(insert(s).values(
                    seq=seq, state_hash=state_hash, schema_version=schema_version,
                    created_msc=_now_msc(), meta=meta, n_chunks=len(parts), size=size,
                    blob_sha256=sha or "",
                ).returning(s.c.id)).scalar_one()
                if conn.dialect.name == "postgresql" and _pg_has_lz4(conn):
                    # TOAST compresses bytea with pglz by default: slow on 1 GB of arrays
                    conn.exec_driver_sql("SET LOCAL default_toast_compression = 'lz4'")
                if fast_supported(conn):
                    mark = "?" if conn.dialect.paramstyle == "qmark" else "%b"
                    sql = (f"INSERT INTO snapshot_chunks (snapshot_id, idx, data) "
                           f"VALUES ({mark}, {mark}, {mark})")
                    cur = conn.connection.cursor()
                    try:
                        for i, part in enumerate(parts):
                            cur.execute(sql, (snap_id, i, part))
                    finally:
                        cur.close()
                else:
                    for i, part in enumerate(parts):
                        conn.execute(insert(c), {"snapshot_id": snap_id, "idx": i,
                                                 "data": bytes(part)})
                if sha is None:
                    sha = hasher.hexdigest()
                    conn.execute(update(s).where(s.c.id == snap_id).values(blob_sha256=sha))
        except BaseException:
            if sha is None:
                hasher.hexdigest()  # (stop its thread)
            if file is not None:
                file.unlink(missing_ok=True)
            raise
        return snap_id

    def _snapshot_arrays(self, conn: Connection, row: Any) -> dict[str, np.ndarray]:
        """Stream the chunks of snapshot ``row`` (checking count, size and sha256)."""
        if conn.dialect.name == "postgresql" and fast_supported(conn):
            arrays = self._pg_snapshot_arrays(conn, row)
            if arrays is not None:
                return arrays
        c = m.SnapshotChunk.__table__
        digest = hashlib.sha256()
        seen = {"n": 0, "size": 0}

        def chunks() -> Iterator[bytes]:
            if fast_supported(conn):
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                cur = conn.connection.cursor()
                sql = ("SELECT data FROM snapshot_chunks "
                       f"WHERE snapshot_id = {mark} AND idx = {mark}")
                try:
                    for i in range(row["n_chunks"] + 1):  # (+1: a surplus chunk is counted)
                        if conn.dialect.name == "postgresql":
                            cur.execute(sql, (row["id"], i), binary=True)
                        else:
                            cur.execute(sql, (row["id"], i))
                        got = cur.fetchone()
                        if got is None:
                            return
                        yield got[0]
                finally:
                    cur.close()
            else:
                yield from conn.execute(select(c.c.data).where(c.c.snapshot_id == row["id"])
                                        .order_by(c.c.idx)).scalars()

        def checked() -> Iterator[bytes]:
            for data in chunks():
                digest.update(data)
                seen["n"] += 1
                seen["size"] += len(data)
                yield data

        bad = StoreCorrupted(f"snapshot {row['id']} blob does not match its checksum",
                             row["seq"])
        it = checked()
        first = next(it, b"")
        if bytes(first[:len(FILE_MAGIC)]) == FILE_MAGIC:
            it.close()
            return self._file_arrays(bytes(first), row, bad)
        try:
            if bytes(first[:len(RAW_MAGIC)]) == RAW_MAGIC:
                arrays = arrays_from_parts(_prepend(first, it))
            else:  # legacy .npz snapshot: the whole blob at once
                arrays = None
                blob = b"".join([bytes(first), *(bytes(x) for x in it)])
        except (ValueError, KeyError, StopIteration, TypeError) as exc:
            it.close()
            raise bad from exc
        for _ in it:  # drain (counts a surplus chunk)
            pass
        if (seen["n"] != row["n_chunks"] or seen["size"] != row["size"]
                or digest.hexdigest() != row["blob_sha256"]):
            raise bad
        if arrays is None:
            try:
                arrays = decode_arrays(blob)
            except Exception as exc:
                raise bad from exc
        return arrays

    def _pg_snapshot_arrays(self, conn: Connection, row: Any) -> dict[str, np.ndarray] | None:
        """A raw snapshot blob from PostgreSQL, its chunks fetched on
        :data:`SNAPSHOT_READ_CONNECTIONS` connections at once (binary results), each copied
        straight to its place in the arrays, and hashed in blob order on this thread while
        later chunks are still arriving. Checks the chunk list, every chunk's length, the
        size and the sha256. None if the blob is not a raw one (the caller reads it)."""
        c = m.SnapshotChunk.__table__
        sid = row["id"]

        def bad(detail: str) -> StoreCorrupted:
            return StoreCorrupted(f"snapshot {sid} blob does not match its checksum "
                                  f"({detail})", row["seq"])

        listed = conn.execute(select(c.c.idx, func.length(c.c.data))
                              .where(c.c.snapshot_id == sid).order_by(c.c.idx)).all()
        idxs = [i for i, _ in listed]
        if idxs != list(range(row["n_chunks"])):
            missing = sorted(set(range(row["n_chunks"])) - set(idxs))
            raise bad(f"chunks {missing[:5]} missing" if missing else
                      f"{len(idxs)} chunks where {row['n_chunks']} were written")
        lengths = [int(n) for _, n in listed]
        if not lengths:
            return None
        sql = "SELECT data FROM snapshot_chunks WHERE snapshot_id = %s AND idx = %s"
        cur = conn.connection.cursor()
        try:
            cur.execute(sql, (sid, 0), binary=True)
            got = cur.fetchone()
        finally:
            cur.close()
        head = b"" if got is None else bytes(got[0])
        if not head.startswith(RAW_MAGIC):
            return None  # legacy .npz blob (or a file reference: refused by the caller)
        if sum(lengths) != row["size"]:
            raise bad(f"{sum(lengths)} bytes where {row['size']} were written")
        try:
            items = raw_header(head)
        except (ValueError, KeyError, TypeError) as exc:
            raise bad("unreadable header") from exc
        if len(head) != lengths[0] or len(head) + sum(it[3] for it in items) != row["size"]:
            raise bad("the header does not describe the chunks")
        bufs = [np.empty(nbytes, dtype=np.uint8) for *_, nbytes in items]
        targets = _chunk_targets(lengths[1:], bufs)
        digest = hashlib.sha256(head)
        n = len(lengths)
        ready = [threading.Event() for _ in range(n)]
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(1, n):
            todo.put(i)
        stop = threading.Event()
        failed: list[BaseException] = []

        def fetch() -> None:
            try:
                with self.engine.connect() as wconn:
                    wcur = wconn.connection.cursor()
                    try:
                        while not stop.is_set():
                            try:
                                i = todo.get_nowait()
                            except queue.Empty:
                                return
                            wcur.execute(sql, (sid, i), binary=True)
                            got = wcur.fetchone()
                            if got is None or len(got[0]) != lengths[i]:
                                raise bad(f"chunk {i} went missing or changed while read")
                            data, off = got[0], 0
                            for view in targets[i - 1]:
                                view[...] = np.frombuffer(data, np.uint8, len(view), off)
                                off += len(view)
                            ready[i].set()
                    finally:
                        wcur.close()
            except BaseException as exc:
                failed.append(exc)
                stop.set()
                for e in ready:
                    e.set()

        threads = [threading.Thread(target=fetch, name=f"snapshot-read-{k}", daemon=True)
                   for k in range(min(SNAPSHOT_READ_CONNECTIONS, n - 1))]
        for t in threads:
            t.start()
        try:
            for i in range(1, n):
                ready[i].wait()
                if failed:
                    break
                for view in targets[i - 1]:
                    digest.update(view)
        finally:
            stop.set()
            for t in threads:
                t.join()
        if failed:
            raise failed[0]
        if digest.hexdigest() != row["blob_sha256"]:
            raise bad("sha256 differs")
        return {name: buf.view(dt).reshape(shape)
                for (name, dt, shape, _), buf in zip(items, bufs, strict=True)}

    def latest_snapshot(self, schema_version: int = SNAPSHOT_SCHEMA_VERSION
                        ) -> Snapshot | None:
        """The newest snapshot, checked; None if there is none.

        Refuses (:class:`SnapshotSchemaMismatch`) one written with another schema version,
        and (:class:`StoreCorrupted`) one past the journal head or whose blob changed.
        """
        s = m.SnapshotRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(s).order_by(s.c.seq.desc(), s.c.id.desc()).limit(1)
                               ).mappings().first()
            if row is None:
                return None
            if row["schema_version"] != schema_version:
                raise SnapshotSchemaMismatch(
                    f"the latest snapshot (seq {row['seq']}) has state schema version "
                    f"{row['schema_version']}, this engine reads version {schema_version}. "
                    "Start the engine version that wrote it, or delete the snapshots "
                    "(Store.drop_snapshots()) so that start-up replays the whole journal."
                )
            head_seq, _ = _head(conn)
            if row["seq"] > head_seq:
                raise StoreCorrupted(f"the latest snapshot is at seq {row['seq']}, past the "
                                     f"journal head {head_seq} (journal truncated)", head_seq)
            arrays = self._snapshot_arrays(conn, row)
        return Snapshot(seq=row["seq"], state_hash=row["state_hash"],
                        schema_version=row["schema_version"], created_msc=row["created_msc"],
                        arrays=arrays, meta=row["meta"])

    def snapshot_list(self) -> list[dict[str, Any]]:
        s = m.SnapshotRow.__table__
        cols = [s.c.id, s.c.seq, s.c.state_hash, s.c.schema_version, s.c.created_msc, s.c.size]
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(*cols).order_by(s.c.seq)).mappings()]

    def load_snapshot(self, snapshot_id: int) -> Snapshot:
        """One snapshot by id, whatever its schema version (for checks and tools)."""
        s = m.SnapshotRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(s).where(s.c.id == snapshot_id)).mappings().one()
            arrays = self._snapshot_arrays(conn, row)
        return Snapshot(seq=row["seq"], state_hash=row["state_hash"],
                        schema_version=row["schema_version"], created_msc=row["created_msc"],
                        arrays=arrays, meta=row["meta"])

    def _file_ref(self, data: bytes) -> Path | None:
        folder = self.snapshot_dir()
        if folder is None or not data.startswith(FILE_MAGIC):
            return None
        name = json.loads(data[len(FILE_MAGIC):])["file"]
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"bad snapshot file name {name!r}")
        return folder / name

    def _file_arrays(self, ref: bytes, row: Any, bad: StoreCorrupted) -> dict[str, np.ndarray]:
        try:
            path = self._file_ref(ref)
        except (ValueError, KeyError, TypeError) as exc:
            raise bad from exc
        if path is None:
            raise StoreCorrupted(
                f"snapshot {row['id']} lives in a file beside a SQLite database, but this "
                f"store is {self.url}", row["seq"])
        if not path.exists():
            raise StoreCorrupted(
                f"snapshot {row['id']} (seq {row['seq']}): its file {path} is missing. Put "
                "it back, or drop the snapshots (Store.drop_snapshots()) so that start-up "
                "replays the whole journal.", row["seq"])
        try:
            arrays, size, digest = _read_file(path)
        except (ValueError, KeyError, TypeError, EOFError) as exc:
            raise bad from exc
        if size != row["size"] or digest != row["blob_sha256"]:
            raise bad
        return arrays

    def drop_snapshots(self, keep_last: int = 0) -> int:
        """Delete snapshots (all, or all but the newest ``keep_last``); returns how many."""
        self._check_writer()
        s = m.SnapshotRow.__table__
        c = m.SnapshotChunk.__table__
        with self.engine.begin() as conn:
            ids = conn.execute(select(s.c.id).order_by(s.c.seq.desc(), s.c.id.desc())
                               ).scalars().all()[keep_last:]
            files = []
            if ids:
                for data in conn.execute(select(c.c.data).where(c.c.snapshot_id.in_(ids),
                                                                c.c.idx == 0)).scalars():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        files.append(self._file_ref(bytes(data[:4096])))
                conn.execute(delete(c).where(c.c.snapshot_id.in_(ids)))
                conn.execute(delete(s).where(s.c.id.in_(ids)))
        for f in files:
            if f is not None:
                f.unlink(missing_ok=True)
        return len(ids)

    # -- query side ----------------------------------------------------------------------

    def _query(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def history_deals(self, login: int, date_from_msc: int, date_to_msc: int,
                      group: str | None = None) -> list[dict[str, Any]]:
        return self._query(queries.history_deals, login, date_from_msc, date_to_msc, group)

    def deals_by_ticket(self, ticket: int) -> list[dict[str, Any]]:
        return self._query(queries.deals_by_ticket, ticket)

    def deals_by_order(self, order: int) -> list[dict[str, Any]]:
        return self._query(queries.deals_by_order, order)

    def deals_by_position(self, position_id: int) -> list[dict[str, Any]]:
        return self._query(queries.deals_by_position, position_id)

    def history_orders(self, login: int, date_from_msc: int, date_to_msc: int,
                       group: str | None = None) -> list[dict[str, Any]]:
        return self._query(queries.history_orders, login, date_from_msc, date_to_msc, group)

    def orders_by_ticket(self, ticket: int) -> list[dict[str, Any]]:
        return self._query(queries.orders_by_ticket, ticket)

    def orders_by_position(self, position_id: int) -> list[dict[str, Any]]:
        return self._query(queries.orders_by_position, position_id)

    def open_positions(self, login: int | None = None, symbol: str | None = None,
                       group: str | None = None) -> list[dict[str, Any]]:
        return self._query(queries.open_positions, login, symbol, group)

    def open_orders(self, login: int | None = None, symbol: str | None = None,
                    group: str | None = None) -> list[dict[str, Any]]:
        return self._query(queries.open_orders, login, symbol, group)

    def account(self, login: int) -> dict[str, Any] | None:
        return self._query(queries.account, login)

    def ledger_statement(self, login: int, date_from_msc: int, date_to_msc: int
                         ) -> dict[str, Any]:
        return self._query(queries.ledger_statement, login, date_from_msc, date_to_msc)

    def symbols(self) -> dict[str, dict[str, Any]]:
        return self._query(queries.symbols)

    def events(self, login: int | None = None, after_id: int = 0, limit: int = 1000
               ) -> list[dict[str, Any]]:
        return self._query(queries.events, login, after_id, limit)

    # -- internals -----------------------------------------------------------------------

    def _check_writer(self) -> None:
        if self.read_only:
            raise StoreReadOnly(f"the store {self.url} is open read-only")
        if self.owner is None:
            raise StoreError(f"the store {self.url} is closed")


def _pg_has_lz4(conn: Connection) -> bool:
    vals = conn.exec_driver_sql(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").scalar()
    return bool(vals) and "lz4" in vals


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashThread:
    """sha256 fed from another thread (hashlib and file I/O both release the GIL, so the
    hash overlaps the reads or writes). Buffers must not change until :meth:`hexdigest`."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, name="snapshot-sha256", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (buf := self._q.get()) is not None:
            self._h.update(buf)

    def update(self, buf: Any) -> None:
        self._q.put(buf)

    def hexdigest(self) -> str:
        self._q.put(None)
        self._t.join()
        return self._h.hexdigest()


def _write_file(path: Path, parts: list[Any], digest: Any) -> None:
    """Write ``parts`` to ``path`` durably (temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb", buffering=0) as f:
            for part in parts:
                digest.update(part)
                view = memoryview(part)
                while len(view):
                    view = view[f.write(view):]
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _read_file(path: Path) -> tuple[dict[str, np.ndarray], int, str]:
    """A raw snapshot blob from a file: (arrays, size in bytes, sha256 hex)."""
    digest = _HashThread()
    try:
        return _read_file_into(path, digest)
    finally:
        digest.hexdigest()


def _read_file_into(path: Path, digest: _HashThread) -> tuple[dict[str, np.ndarray], int, str]:
    with open(path, "rb", buffering=0) as f:

        def take(n: int) -> np.ndarray:
            buf = np.empty(n, dtype=np.uint8)
            view = memoryview(buf)
            got = 0
            while got < n:
                k = f.readinto(view[got:])
                if not k:
                    raise EOFError(f"{path} ends early")
                got += k
            digest.update(view)
            return buf

        head = take(len(RAW_MAGIC) + 4).tobytes()
        if not head.startswith(RAW_MAGIC):
            raise ValueError("not a raw snapshot file")
        n = int.from_bytes(head[len(RAW_MAGIC):], "little")
        header = json.loads(take(n).tobytes())
        size = len(head) + n
        out: dict[str, np.ndarray] = {}
        for name, dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            out[name] = take(nbytes).view(dt).reshape(shape)
            size += nbytes
        if f.read(1):
            raise ValueError(f"{path} has trailing bytes")
    return out, size, digest.hexdigest()


def _chunk_targets(lengths: list[int], bufs: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Where the bytes of each data chunk (of ``lengths``, in blob order) go: views of the
    arrays' buffers ``bufs``, which together hold exactly ``sum(lengths)`` bytes."""
    out = []
    k = pos = 0
    for n in lengths:
        views = []
        while n:
            while len(bufs[k]) == pos:
                k, pos = k + 1, 0
            take = min(n, len(bufs[k]) - pos)
            views.append(bufs[k][pos:pos + take])
            pos += take
            n -= take
        out.append(views)
    return out


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _head(conn: Connection) -> tuple[int, str]:
    meta = m.StoreMeta.__table__
    row = conn.execute(select(meta.c.head_seq, meta.c.head_hash).where(meta.c.id == 1)).first()
    if row is None:
        raise StoreCorrupted("the store_meta row (journal head) is missing")
    return int(row.head_seq), row.head_hash


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
    now = _now_msc()
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
