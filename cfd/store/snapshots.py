"""Snapshots of the engine's state in the store: written beside the journal, checked on load.

:class:`SnapshotStore` holds the snapshot methods of :class:`cfd.store.store.Store` (it is
one of its bases); the blob layout and the files are in :mod:`cfd.store.blobs`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update

from cfd.store import models as m
from cfd.store import schema
from cfd.store.blobs import (
    FILE_MAGIC,
    RAW_MAGIC,
    HashThread,
    arrays_from_parts,
    blob_parts,
    chunk_targets,
    decode_arrays,
    prepend,
    raw_header,
    read_file,
    write_file,
)
from cfd.store.errors import SnapshotSchemaMismatch, StoreCorrupted, StoreError
from cfd.store.meta import now_msc
from cfd.store.writes import fast_supported

#: Layout version of snapshots written by default (callers may pass their own).
SNAPSHOT_SCHEMA_VERSION = 1
#: Snapshot blobs are stored in chunk rows of at most this many bytes. Small enough that
#: the driver's per-value buffers are reused rather than freshly mapped (and faulted in)
#: for every chunk; on PostgreSQL 8 MiB chunks write and read fastest.
SNAPSHOT_CHUNK_BYTES = 8 * 1024 * 1024
#: PostgreSQL: connections that fetch one snapshot's chunks side by side (one decompresses
#: a chunk while another one's bytes are in transit).
SNAPSHOT_READ_CONNECTIONS = 2
#: On SQLite file stores, snapshot blobs at least this big go to a file (see save_snapshot).
SNAPSHOT_FILE_MIN_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    seq: int
    state_hash: str
    schema_version: int
    created_msc: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def copy_chunk(data: Any, views: list[np.ndarray]) -> None:
    """Copy one chunk's bytes to its places in the arrays (``chunk_targets``)."""
    off = 0
    for view in views:
        view[...] = np.frombuffer(data, np.uint8, len(view), off)
        off += len(view)


class SnapshotStore:
    """The snapshot half of :class:`cfd.store.store.Store` (``engine``, ``url``,
    ``_head_seq`` and ``_check_writer`` are the store's)."""

    engine: Any
    url: str
    _head_seq: int

    def _check_writer(self) -> None:  # pragma: no cover - the store's
        raise NotImplementedError

    def _committed(self) -> None:
        """After a write transaction committed (the store wakes its WAL checkpointer)."""

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
            hasher = HashThread()
            try:
                write_file(file, parts, hasher)
            finally:
                sha = hasher.hexdigest()
            parts = [FILE_MAGIC + json.dumps({"file": file.name}).encode()]
        else:
            # hashed on another thread while the chunk rows go in; the row gets the
            # digest in the same transaction, before it commits
            hasher = HashThread()
            for part in parts:
                hasher.update(part)
        s = m.SnapshotRow.__table__
        c = m.SnapshotChunk.__table__
        try:
            with self.engine.begin() as conn:
                snap_id = conn.execute(insert(s).values(
                    seq=seq, state_hash=state_hash, schema_version=schema_version,
                    created_msc=now_msc(), meta=meta, n_chunks=len(parts), size=size,
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
        self._committed()
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
                arrays = arrays_from_parts(prepend(first, it))
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
        targets = chunk_targets(lengths[1:], bufs)
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
                            copy_chunk(got[0], targets[i - 1])
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
            newest = select(s).order_by(s.c.seq.desc(), s.c.id.desc()).limit(1)
            if self._pin is not None:
                newest = newest.where(s.c.seq <= self._pin[0])
            row = conn.execute(newest).mappings().first()
            if row is None:
                return None
            if row["schema_version"] != schema_version:
                raise SnapshotSchemaMismatch(
                    f"the latest snapshot (seq {row['seq']}) has state schema version "
                    f"{row['schema_version']}, this engine reads version {schema_version}. "
                    "Start the engine version that wrote it, or delete the snapshots "
                    "(Store.drop_snapshots()) so that start-up replays the whole journal."
                )
            head_seq, _ = self._visible_head(conn)
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
        query = select(*cols).order_by(s.c.seq)
        if self._pin is not None:
            query = query.where(s.c.seq <= self._pin[0])
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

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
            arrays, size, digest = read_file(path)
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
        self._committed()
        for f in files:
            if f is not None:
                f.unlink(missing_ok=True)
        return len(ids)


def _pg_has_lz4(conn: Connection) -> bool:
    vals = conn.exec_driver_sql(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").scalar()
    return bool(vals) and "lz4" in vals
