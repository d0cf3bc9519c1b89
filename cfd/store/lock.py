"""The writer lock: one engine writes a store, and the database itself says which.

* SQLite file: an exclusive ``flock`` on the database file itself. The lock belongs to the
  file (its inode), not to a name: a hard link, a symlink or another path to the same file
  meets the same lock, so two writers can never each keep their own ``-wal`` beside their own
  name of one database. SQLite's own locks are ``fcntl`` byte-range locks, which on Linux do
  not interact with ``flock``: readers (``cfd-risk --db``) still read while the writer holds
  it. The operating system drops the lock when the holder dies.
* PostgreSQL: a session advisory lock keyed by database and schema, on a dedicated
  connection (the server drops it with the session).
* Other backends: none (the lease row's heartbeat is then the only guard).
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from cfd.store.errors import StoreLocked

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """An exclusive lock that the operating system or the server drops if the holder dies."""

    def __init__(self, eng: Engine) -> None:
        self._eng = eng
        self._fd: int | None = None
        self._conn: Connection | None = None
        self._key = 0
        self.description = "none"

    @property
    def os_backed(self) -> bool:
        return self._fd is not None or self._conn is not None

    def acquire(self, holder: str) -> bool:
        """Take the lock; False if someone else holds it. ``holder`` names this process
        (shown in the lease row; kept for the call's shape)."""
        from cfd.store.schema import sqlite_file

        path = sqlite_file(self._eng)
        if path is not None and fcntl is not None:
            # an empty file is an empty SQLite database: create it to lock it
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self.description = f"file lock on {path} (inode {os.fstat(fd).st_ino})"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        if self._eng.dialect.name == "postgresql":
            conn = self._eng.connect()
            db, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
            digest = hashlib.sha256(f"cfd.store:{db}:{schema}".encode()).digest()
            key = int.from_bytes(digest[:8], "big", signed=True)
            self.description = f"advisory lock {key} on {db}.{schema}"
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                conn.close()
                return False
            self._conn, self._key = conn, key
            return True
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            # unlocked here and now: closing the connection only hands it back to the pool,
            # and even a closed session lets its locks go when its server process exits,
            # a moment later (a writer opened again at once could find the lock held)
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.commit()
            except Exception:  # the session is gone (and its lock with it)
                self._conn.invalidate()
            finally:
                self._conn.close()
                self._conn = None


def readable_msc(msc: Any, now_msc: int | None = None) -> str:
    """``2026-12-01 21:50:03 UTC (4 s ago)`` for epoch milliseconds."""
    if msc is None:
        return "never"
    now = time.time_ns() // 1_000_000 if now_msc is None else now_msc
    when = datetime.fromtimestamp(int(msc) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{when} ({max(0, now - int(msc)) // 1000} s ago)"


def refuse_second_writer(url: str, lease: dict[str, Any] | None, lock: str) -> StoreLocked:
    who = "another process"
    if lease and lease.get("lease_owner"):
        who = (f"owner {lease['lease_owner']} (pid {lease['lease_pid']} on "
               f"{lease['lease_host']}, last heartbeat "
               f"{readable_msc(lease['lease_heartbeat_msc'])})")
    return StoreLocked(
        f"the store {url} is already open for writing by {who} ({lock}). Only one engine may "
        "write a store: stop the other engine first, or open this one read-only "
        "(Store.open(url, read_only=True)) to query it."
    )
