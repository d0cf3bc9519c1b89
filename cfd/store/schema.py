"""Connecting to the database: URL choice, SQLite pragmas, migrations, writer locks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from cfd.store.errors import StoreLocked, StoreSchemaMismatch
from cfd.store.models import SCHEMA_REVISION

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

DEFAULT_SQLITE_FILE = "cfd.sqlite"
URL_ENV = "CFD_DATABASE_URL"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_CACHE_KIB = 64 * 1024  # page cache per connection (KiB)


def resolve_url(url: str | None) -> str:
    """The url argument, else ``$CFD_DATABASE_URL``, else ``cfd.sqlite`` in the cwd."""
    if url:
        return url
    env = os.environ.get(URL_ENV)
    if env:
        return env
    return f"sqlite:///{Path(DEFAULT_SQLITE_FILE).resolve()}"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def make_engine(url: str, *, writer: bool) -> Engine:
    """An SQLAlchemy engine; on SQLite: WAL, synchronous=FULL, busy timeout, real BEGINs."""
    eng = create_engine(url, json_serializer=_dumps, pool_pre_ping=False)
    if eng.dialect.name == "sqlite":
        begin_sql = "BEGIN IMMEDIATE" if writer else "BEGIN"

        @event.listens_for(eng, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's implicit
            # transactions do not cover DDL and start too late for a writer).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if sqlite_file(eng) is not None:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            # a writer's batches touch index pages all over growing tables: keep them cached
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(eng, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin_sql)

    return eng


def sqlite_file(eng: Engine) -> Path | None:
    """The database file of a file-backed SQLite engine, else None."""
    if eng.dialect.name != "sqlite":
        return None
    database = make_url(str(eng.url)).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).resolve()


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def migrate(eng: Engine) -> None:
    """Create or upgrade the schema to :data:`SCHEMA_REVISION` with Alembic."""
    with eng.begin() as conn:
        rev = current_revision(conn)
        if rev is not None and rev > SCHEMA_REVISION:
            raise StoreSchemaMismatch(
                f"the database {eng.url!r} is at schema revision {rev}, newer than this "
                f"code's {SCHEMA_REVISION}: run the engine version that wrote it, or upgrade"
            )
        if rev != SCHEMA_REVISION:
            command.upgrade(_alembic_config(conn), SCHEMA_REVISION)


def check_revision(eng: Engine) -> None:
    """For read-only opening: the schema must already be exactly this code's revision."""
    with eng.connect() as conn:
        rev = current_revision(conn)
    if rev != SCHEMA_REVISION:
        found = "no cfd store" if rev is None else f"schema revision {rev}"
        raise StoreSchemaMismatch(
            f"{eng.url!r} holds {found}; this code reads revision {SCHEMA_REVISION}. Start "
            "the engine on it once (it creates or upgrades the store), then open it read-only."
        )


class WriterLock:
    """An exclusive lock that the operating system or the server drops if the holder dies.

    SQLite file: ``flock`` on ``<db>.lock``. PostgreSQL: a session advisory lock keyed by
    database and schema, held on a dedicated connection. Other backends: none (the lease
    row's heartbeat is then the only guard).
    """

    def __init__(self, eng: Engine) -> None:
        self._eng = eng
        self._fd: int | None = None
        self._conn: Connection | None = None
        self.description = "none"

    @property
    def os_backed(self) -> bool:
        return self._fd is not None or self._conn is not None

    def acquire(self, holder: str) -> bool:
        """Take the lock; False if someone else holds it."""
        path = sqlite_file(self._eng)
        if path is not None and fcntl is not None:
            lock_path = path.with_name(path.name + ".lock")
            self.description = f"file lock {lock_path}"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.write(fd, holder.encode())
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
            self._conn = conn
            return True
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            self._conn.close()  # closing the session drops its advisory locks
            self._conn = None


def refuse_second_writer(url: str, lease: dict[str, Any] | None, lock: str) -> StoreLocked:
    who = "another process"
    if lease and lease.get("lease_owner"):
        who = (f"owner {lease['lease_owner']} (host {lease['lease_host']}, pid "
               f"{lease['lease_pid']}, heartbeat at {lease['lease_heartbeat_msc']} ms)")
    return StoreLocked(
        f"the store {url} is already open for writing by {who} ({lock}). Only one engine may "
        "write a store: stop the other engine first, or open this one read-only "
        "(Store.open(url, read_only=True)) to query it."
    )
