"""Connecting to the database: URL choice, SQLite pragmas, migrations (the writer lock is
:mod:`cfd.store.lock`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from cfd.store.checkpoint import BACKSTOP_PAGES
from cfd.store.errors import StoreSchemaMismatch
from cfd.store.models import SCHEMA_REVISION

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
                if writer:  # its checkpoints: cfd.store.checkpoint, beside its commits
                    cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            cur.execute("PRAGMA synchronous=FULL")
            # a writer's batches touch index pages all over growing tables: keep them cached
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(eng, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # on the driver's connection (the statement through SQLAlchemy's execution
            # machinery cost a batch of a few orders a sizeable share of its time)
            conn.connection.dbapi_connection.execute(begin_sql)

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


from cfd.store.lock import WriterLock, refuse_second_writer  # noqa: E402, F401 (re-exported)
