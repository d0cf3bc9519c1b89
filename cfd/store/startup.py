"""Before a server opens its store: is there one, and is it one this code can open?

:func:`preflight` answers the operator's mistakes with one clear line each (a
:class:`cfd.store.StoreError`), before anything is created: a bad URL, a missing driver, a
database that cannot be reached, a missing or empty database (refused unless ``create``:
``cfd-server init``), a file that is not a SQLite database or was cut short, tables without
their ``alembic_version`` row, and an unknown schema revision. :func:`one_line` turns any
start-up failure into such a line (or None for a bug, which keeps its traceback).
"""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from cfd.store import schema
from cfd.store.errors import StoreCorrupted, StoreError, StoreSchemaMismatch
from cfd.store.models import SCHEMA_REVISION

SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreMissing(StoreError):
    """There is no store at the URL (and the caller did not ask to create one)."""


class StoreUnavailable(StoreError):
    """The URL is wrong, its driver is missing or its database cannot be reached."""


def known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory(str(schema.MIGRATIONS_DIR)).walk_revisions()}


def preflight(url: str | None, *, create: bool) -> str:
    """Check the store at ``url`` (resolved as :meth:`Store.open` does); returns the URL.

    ``create``: a missing or empty database is fine (it will be initialised)."""
    url = schema.resolve_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreUnavailable(f"{url!r} is not a database URL (expected e.g. "
                               "sqlite:///./cfd.sqlite or postgresql+psycopg://host/db)") from None
    safe = parsed.render_as_string(hide_password=True)
    try:
        eng = create_engine(url)
    except NoSuchModuleError:
        raise StoreUnavailable(f"{safe}: no SQLAlchemy dialect {parsed.drivername!r}") from None
    except ImportError as exc:
        raise StoreUnavailable(f"{safe}: the database driver is not installed ({exc.name or exc}"
                               "); for PostgreSQL: pip install 'cfd-engine[postgres]'") from None
    try:
        path = schema.sqlite_file(eng)
        if path is not None and not _sqlite_file_ok(path, safe, create):
            return url  # missing or empty, and create: Store.open makes it
        _check_schema(eng, safe, create)
    finally:
        eng.dispose()
    return url


def _sqlite_file_ok(path: Path, safe: str, create: bool) -> bool:
    """False if the file is missing or empty (and ``create``); raises if it is damaged."""
    if not path.exists() or path.stat().st_size == 0:
        if create:
            return False
        what = "does not exist" if not path.exists() else "is empty (0 bytes)"
        raise StoreMissing(f"the database {path} {what}: run `cfd-server init` (or start "
                           "with --init) to create a new store there, or give the right "
                           "--database-url")
    with open(path, "rb") as f:
        head = f.read(100)
    if not head.startswith(SQLITE_MAGIC) or len(head) < 100:
        raise StoreCorrupted(f"{path} is not a SQLite database (overwritten or cut short)")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the page count is valid for this change counter
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    # with a -wal left, a checkpoint may have been cut short: SQLite finishes it itself
    pending = wal.exists() and wal.stat().st_size > 0
    if valid and not pending and size < pages * page_size:
        raise StoreCorrupted(f"{path} is cut short: {size} bytes, its header says "
                             f"{pages} pages of {page_size} bytes")
    return True


def _check_schema(eng: Engine, safe: str, create: bool) -> None:
    try:
        with eng.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            rev = schema.current_revision(conn) if "alembic_version" in tables else None
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"cannot read {safe}: {_first_line(exc)}") from None
    if "store_meta" in tables and rev is None:
        raise StoreSchemaMismatch(
            f"{safe} has the store's tables but no schema revision (the alembic_version row "
            f"is missing): restore the database from a backup, or if it is known good, put "
            f"back its row: INSERT INTO alembic_version VALUES ('{SCHEMA_REVISION}')")
    if rev is not None and rev not in known_revisions():
        raise StoreSchemaMismatch(
            f"{safe} is at schema revision {rev!r}, which this code does not know (it knows "
            f"{', '.join(sorted(known_revisions()))}): run the engine version that wrote it")
    if not tables and not create:
        raise StoreMissing(f"{safe} holds no store: run `cfd-server init` (or start with "
                           "--init) to create one there")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def one_line(exc: BaseException) -> str | None:
    """A start-up failure as one line for the operator; None if it is not one (a bug)."""
    if isinstance(exc, StoreError):
        return " ".join(str(exc).split())
    if isinstance(exc, CommandError):
        return f"schema migration failed: {_first_line(exc)}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {_first_line(exc)}"
    if isinstance(exc, ImportError):
        return f"a module is missing: {exc}"
    return None
