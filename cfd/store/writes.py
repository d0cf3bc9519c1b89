"""Writing a batch's :class:`cfd.effects.Effects` into the query tables (one connection,
inside the caller's transaction)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, repeat
from json import encoder as _json_encoder
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite

from cfd.effects import Block, Effects, Row
from cfd.jsontext import fast_text
from cfd.store import models as m
from cfd.store import staging
from cfd.store.schema import _json_default

_CHUNK = 500  # rows per IN (...) list
_STAGE_ROWS = 2_000  # PostgreSQL: more upserts than this are staged by COPY
_INLINE_ROWS = 256  # SQLite: blocks of this many rows or more go as multi-row statements
_INT64 = (-(1 << 63), 1 << 63)
_BULK_ROWS = 20_000  # SQLite: a batch with a block (or events) this big writes on a thread
_BULK_CHUNK = 4_096  # SQLite: rows per multi-row statement at most (fewer past its bind limit)


def _int(v: Any) -> int:
    return int(v)


def _float(v: Any) -> float:
    return float(v)


def _str(v: Any) -> str:
    return str(v)


def _converters(table: Table) -> list[tuple[str, Callable[[Any], Any] | None]]:
    out: list[tuple[str, Callable[[Any], Any] | None]] = []
    for col in table.columns:
        t = col.type
        conv: Callable[[Any], Any] | None = None
        if isinstance(t, (BigInteger, Integer)):
            conv = _int
        elif isinstance(t, Float):
            conv = _float
        elif isinstance(t, String):
            conv = _str
        out.append((col.key, conv))
    return out


_CONV = {t.name: _converters(t) for t in m.Base.metadata.sorted_tables}
_SKIP_AUTO = {"events": {"id"}}


def normalize(table: Table, row: Row) -> dict[str, Any]:
    """Every column of ``table`` from ``row`` (missing: None), as plain Python values.

    numpy scalars become ``int``/``float``/``str`` (drivers do not bind numpy types); keys
    that are not columns are dropped.
    """
    skip = _SKIP_AUTO.get(table.name, ())
    out: dict[str, Any] = {}
    for key, conv in _CONV[table.name]:
        if key in skip:
            continue
        v = row.get(key)
        out[key] = v if v is None or conv is None else conv(v)
    return out


_PLAIN: dict[type, type] = {BigInteger: int, Integer: int, Float: float, String: str}


def _tuple_fn(table: Table, keys: list[str], rename: dict[str, str] | None = None
              ) -> Callable[[Row], tuple[Any, ...]]:
    """A generated ``row -> tuple`` for ``keys`` of ``table``: ``normalize`` without the
    per-value Python loop (missing keys give None; ints, floats and strings are coerced, so
    numpy scalars bind)."""
    rename = rename or {}
    parts = []
    for key in keys:
        t = table.c[key].type
        fn = ("int" if isinstance(t, (BigInteger, Integer)) else "float"
              if isinstance(t, Float) else "str" if isinstance(t, String) else "")
        get = f"g({rename.get(key, key)!r})"
        parts.append(f"(None if (v := {get}) is None else {fn}(v))" if fn else get)
    src = f"def f(r):\n    g = r.get\n    return ({', '.join(parts)},)\n"
    ns: dict[str, Any] = {}
    exec(compile(src, f"<rows {table.name}>", "exec"), ns)  # noqa: S102 - column names only
    slow = ns["f"]
    kinds = [_PLAIN.get(type(table.c[key].type)) for key in keys]
    if None in kinds or len(keys) < 2:
        return slow
    # a row whose every value already has its column's exact type (what the engine builds)
    # is taken as it is: the coercions above would give back the same values
    types = tuple(kinds)
    get = itemgetter(*(rename.get(k, k) for k in keys))

    def fast(r: Row) -> tuple[Any, ...]:
        try:
            t = get(r)
        except KeyError:
            return slow(r)
        return t if tuple(map(type, t)) == types else slow(r)

    return fast


_COPY_TYPES = {"bigint": "int8", "integer": "int4", "double precision": "float8",
               "text": "text", "bytea": "bytea"}


class FastTable:
    """Bulk writes of one table through the DBAPI cursor (``executemany`` of prebuilt
    tuples): no statement compilation and no per-row SQLAlchemy parameter processing."""

    def __init__(self, table: Table, rename: dict[str, str] | None = None) -> None:
        self.table = table
        skip = _SKIP_AUTO.get(table.name, ())
        self.keys = [c.key for c in table.columns if c.key not in skip]
        self.pk = [c.name for c in table.primary_key.columns]
        self.rename = rename or {}
        self.to_tuple = _tuple_fn(table, self.keys, rename)
        self._sql: dict[tuple[str, str], str] = {}
        self._copy_types = [_COPY_TYPES[self._pg_type(k)] for k in self.keys]

    def _pg_type(self, key: str) -> str:
        t = self.table.c[key].type
        if isinstance(t, BigInteger):
            return "bigint"
        if isinstance(t, Integer):
            return "integer"
        if isinstance(t, Float):
            return "double precision"
        if isinstance(t, String):
            return "text"
        if isinstance(t, LargeBinary):
            return "bytea"
        raise NotImplementedError(f"{self.table.name}.{key}: {t!r}")

    def sql(self, conn: Connection, op: str, lits: tuple[str | None, ...] | None = None
            ) -> str:
        """The statement for ``op`` ("insert" or "upsert") on this connection's dialect
        (cached).

        SQLite: one ``executemany`` of a row statement; ``lits``: per column, a literal
        written in the statement instead of a bound value (None: bound). PostgreSQL:
        ``COPY`` for inserts, one ``INSERT ... SELECT FROM unnest(arrays)`` per upsert (one
        round trip each)."""
        if op not in ("insert", "upsert"):
            raise ValueError(f"no statement for {op!r}")
        dialect = conn.dialect
        key = (dialect.name, op, lits)
        got = self._sql.get(key)
        if got is None:
            q = dialect.identifier_preparer.quote
            pg = dialect.name == "postgresql"
            cols = ", ".join(q(k) for k in self.keys)
            name = q(self.table.name)
            if op == "insert" and pg:
                got = f"COPY {name} ({cols}) FROM STDIN (FORMAT BINARY)"
            elif pg:
                arrays = ", ".join(f"%b::{self._pg_type(k)}[]" for k in self.keys)
                got = (f"INSERT INTO {name} ({cols}) SELECT * FROM unnest({arrays})"
                       f"{self._conflict(q, op)}")
            else:
                got = self.values_sql(conn, op, lits, 1)
            self._sql[key] = got
        return got

    def _conflict(self, q: Callable[[str], str], op: str) -> str:
        """The ``ON CONFLICT`` clause of ``op`` ("" for an insert)."""
        if op != "upsert":
            return ""
        sets = ", ".join(f"{q(k)} = excluded.{q(k)}" for k in self.keys if k not in self.pk)
        return f" ON CONFLICT ({', '.join(q(k) for k in self.pk)}) DO UPDATE SET {sets}"

    def values_sql(self, conn: Connection, op: str, lits: tuple[str | None, ...] | None,
                   rows: int) -> str:
        """SQLite: the statement writing ``rows`` rows in one ``VALUES`` list, each row
        binding its values but for the literals of ``lits`` (None: every value bound)."""
        key = ("values", op, lits, rows)
        got = self._sql.get(key)
        if got is None:
            q = conn.dialect.identifier_preparer.quote
            row = "(" + ", ".join("?" if v is None else v
                                  for v in (lits or (None,) * len(self.keys))) + ")"
            got = (f"INSERT INTO {q(self.table.name)} ({', '.join(q(k) for k in self.keys)})"
                   f" VALUES {', '.join([row] * rows)}{self._conflict(q, op)}")
            if len(self._sql) > 256:  # the odd sizes of last statements
                self._sql.clear()
            self._sql[key] = got
        return got

    def _run(self, conn: Connection, op: str, params: Any) -> None:
        """``params``: a list of row tuples (an iterator of them for a PostgreSQL insert)."""
        if not params:
            return
        sql = self.sql(conn, op)
        cur = conn.connection.cursor()
        try:
            if conn.dialect.name != "postgresql" and len(params) >= _INLINE_ROWS:
                for stmt in _row_statements(  # multi-row statements (bound)
                        params, _rows_per_statement(conn, len(self.keys)),
                        lambda n: self.values_sql(conn, op, None, n)):
                    cur.execute(*stmt)
            elif conn.dialect.name != "postgresql":
                cur.executemany(sql, params)
            elif op == "insert":
                with cur.copy(sql) as copy:
                    copy.set_types(self._copy_types)
                    write = copy.write_row
                    for row in params:
                        write(row)
            elif len(params) > _STAGE_ROWS:
                self._staged(conn, cur, op, params)
            else:
                cur.execute(sql, [list(col) for col in zip(*params, strict=True)])
        finally:
            cur.close()

    def _staged(self, conn: Connection, cur: Any, op: str, params: list[tuple[Any, ...]]
                ) -> None:
        """PostgreSQL, many upserted rows: ``COPY`` them into a temporary table (binary
        rows written by the driver's C code, not arrays dumped value by value), then one
        ``INSERT ... SELECT ... ON CONFLICT``."""
        if op != "upsert":
            raise ValueError(f"only upserts are staged, not {op!r}")
        q = conn.dialect.identifier_preparer.quote
        name = q(self.table.name)
        cols = ", ".join(q(k) for k in self.keys)
        tmp = q(f"_stage_{self.table.name}_{op}")
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ON COMMIT DELETE ROWS AS "
                    f"SELECT {cols} FROM {name} WITH NO DATA")
        cur.execute(f"TRUNCATE {tmp}")
        with cur.copy(f"COPY {tmp} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(self._copy_types)
            write = copy.write_row
            for row in params:
                write(row)
        sets = ", ".join(f"{q(k)} = excluded.{q(k)}" for k in self.keys if k not in self.pk)
        cur.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT "
                    f"({', '.join(q(k) for k in self.pk)}) DO UPDATE SET {sets}")

    def _columns(self, blocks: list[Block], dedupe: bool, lazy: bool = False,
                 skip: tuple[Any, ...] | None = None) -> list[Any]:
        """The table's columns (in ``keys`` order) of ``blocks`` joined, as plain Python
        values (a missing key: None); ``dedupe``: only the last row of each key; ``lazy``:
        a value every row has may come as an iterator repeating it (for ``zip``); ``skip``:
        the columns whose item is not None are left out (dropped from the result)."""
        n = sum(b.n for b in blocks)
        cols: list[Any] = []
        for i, key in enumerate(self.keys):
            name = self.rename.get(key, key)
            if skip is not None and skip[i] is not None:
                cols.append(None)
            elif lazy and all(not isinstance(b.cols.get(name), (list, np.ndarray))
                            and b.cols.get(name) == blocks[0].cols.get(name) for b in blocks):
                cols.append(repeat(blocks[0].cols.get(name), n))
            elif len(blocks) == 1:
                cols.append(blocks[0].column(name) if name in blocks[0].cols else [None] * n)
            else:
                col: list[Any] = []
                for b in blocks:
                    col.extend(b.column(name) if name in b.cols else [None] * b.n)
                cols.append(col)
        if dedupe and len(blocks) > 1:
            pk = list(cols[self.keys.index(self.pk[0])])
            last = {k: i for i, k in enumerate(pk)}
            if len(last) < n:
                keep = sorted(last.values())
                cols = [None if c is None else [c[i] for i in keep]
                        for c in (None if c is None else list(c) for c in cols)]
        return cols if skip is None else [c for c in cols if c is not None]

    def write_blocks(self, conn: Connection, op: str, blocks: list[Block],
                     pipe: _Pipe | None = None) -> None:
        """Insert (``op`` "insert") or upsert ("upsert") rows given as columns.

        SQLite: many rows (or any, with ``pipe``) as multi-row statements
        (:meth:`bound`), run on ``pipe``'s thread when given, else here; a few rows as
        tuples zipped from the columns (``executemany``). PostgreSQL: ``COPY``, or one
        upsert over arrays (a staged ``COPY`` for many rows)."""
        blocks = [b for b in blocks if b.n]
        if not blocks:
            return
        if conn.dialect.name == "sqlite" and (
                pipe is not None or sum(b.n for b in blocks) >= _INLINE_ROWS):
            if pipe is not None:
                for job in self.bound(conn, op, blocks):
                    pipe.submit(*job)
                return
            cur = conn.connection.cursor()
            try:
                for job in self.bound(conn, op, blocks):
                    cur.execute(*job)
            finally:
                cur.close()
            return
        cols = self._columns(blocks, op == "upsert", lazy=True)
        pg = conn.dialect.name == "postgresql"
        if op == "upsert" and pg and self._all_new(conn, cols):
            op = "insert"  # every key past the table's last one: no row to update (COPY)
        rows = zip(*cols, strict=True)
        # PostgreSQL's COPY takes the rows as they are zipped: the server stores the first
        # ones while the later ones are built
        self._run(conn, op, rows if pg and op == "insert" else list(rows))

    def _literals(self, blocks: list[Block]) -> tuple[str | None, ...]:
        """Per column (``keys`` order): the SQLite literal of the one value every row of
        ``blocks`` holds in it (:func:`_literal`), else None; None for the key."""
        return tuple(None if k in self.pk else _literal(blocks, self.rename.get(k, k))
                     for k in self.keys)

    def bound(self, conn: Connection, op: str, blocks: list[Block]
              ) -> Iterator[tuple[str, list[Any]]]:
        """SQLite: the rows of ``blocks`` (an upsert's last row of each key when there are
        several blocks) as statements of up to ``_BULK_CHUNK`` rows in one ``VALUES``
        list, ``(sql, params)``: a column holding one integer, NULL or text value in
        every row is a literal of the statement (a stop-out's deals and orders have about
        half their columns constant), the others are bound, ``params`` row after row.
        The values stored are those of binding each row (``executemany``), at a fraction
        of the cost: the driver binds them in one call and SQLite runs the whole
        statement without Python's lock, while the next one is built."""
        lits = self._literals(blocks)
        if len(blocks) == 1:
            b = blocks[0]
            n = b.n
            cols = [b.cols.get(self.rename.get(k, k))
                    for k, lit in zip(self.keys, lits, strict=True) if lit is None]
        else:
            cols = self._columns(blocks, op == "upsert", skip=lits)
            n = len(cols[0])
        for c in cols:
            if isinstance(c, (list, np.ndarray)) and len(c) != n:
                raise ValueError(f"a column of {len(c)} values in a block of {n} rows")
        k = len(cols)
        per = _rows_per_statement(conn, k)
        for lo in range(0, n, per):
            rows = min(per, n - lo)
            params: list[Any] = [None] * (rows * k)
            for j, c in enumerate(cols):
                if isinstance(c, np.ndarray):
                    params[j::k] = c[lo:lo + rows].tolist()
                elif isinstance(c, list):
                    params[j::k] = c[lo:lo + rows]
                elif c is not None:
                    params[j::k] = [c] * rows
            yield self.values_sql(conn, op, lits, rows), params

    def _all_new(self, conn: Connection, cols: list[Any]) -> bool:
        """Whether every key of ``cols`` (many rows, an integer key) is greater than the
        largest key stored (one probe of the primary key's index). The writer holds the
        lease: no other session inserts meanwhile."""
        keys = cols[self.keys.index(self.pk[0])]
        if len(self.pk) != 1 or not isinstance(keys, list) or len(keys) <= _STAGE_ROWS:
            return False
        if len(set(keys)) != len(keys) or not all(type(k) is int for k in keys):
            return False
        q = conn.dialect.identifier_preparer.quote
        cur = conn.connection.cursor()
        try:
            cur.execute(f"SELECT max({q(self.pk[0])}) FROM {q(self.table.name)}")
            top = cur.fetchone()[0]
        finally:
            cur.close()
        return top is None or min(keys) > top

    def insert_block(self, conn: Connection, block: Block) -> None:
        self.write_blocks(conn, "insert", [block])

    def insert(self, conn: Connection, rows: Iterable[Row]) -> None:
        self._run(conn, "insert", list(map(self.to_tuple, rows)))

    def insert_tuples(self, conn: Connection, params: list[tuple[Any, ...]]) -> None:
        self._run(conn, "insert", params)

    def upsert(self, conn: Connection, rows: Iterable[Row]) -> None:
        self._run(conn, "upsert", list(map(self.to_tuple, rows)))


def _sql_literal(v: Any) -> str | None:
    """``v`` as an SQLite literal that stores what binding it would (an int in int64, None,
    or printable text), else None."""
    if v is None:
        return "NULL"
    if type(v) is int:
        return repr(v) if _INT64[0] <= v < _INT64[1] else None
    if type(v) is str and v.isprintable():
        return "'" + v.replace("'", "''") + "'"
    return None


_NOT_CONSTANT = object()


def _block_constant(b: Block, name: str) -> Any:
    """The one value ``name`` has in every row of ``b`` (ints, None or text only), else
    ``_NOT_CONSTANT``."""
    if name not in b.cols:
        return None
    v = b.cols[name]
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "iu" and v.ndim == 1 and v.min() == v.max():
            return int(v[0])
        return _NOT_CONSTANT
    if isinstance(v, list):
        first = v[0]
        if (first is None or type(first) is str) and v.count(first) == len(v):
            return first
        return _NOT_CONSTANT
    return v


def _literal(blocks: list[Block], name: str) -> str | None:
    """The SQLite literal of the value ``name`` has in every row of ``blocks``, or None."""
    first = _block_constant(blocks[0], name)
    if first is _NOT_CONSTANT:
        return None
    for b in blocks[1:]:
        other = _block_constant(b, name)
        if other is _NOT_CONSTANT or type(other) is not type(first) or other != first:
            return None
    return _sql_literal(first)


def _bind_limit(conn: Connection) -> int:
    """How many values one SQLite statement may bind on this connection."""
    try:
        return int(conn.connection.dbapi_connection.getlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    except (AttributeError, sqlite3.Error):
        return 999  # SQLite's limit before 3.32


def _rows_per_statement(conn: Connection, values_per_row: int) -> int:
    """SQLite: the rows of one multi-row statement: ``_BULK_CHUNK``, or fewer when their
    values would pass :func:`_bind_limit`."""
    return max(1, min(_BULK_CHUNK, _bind_limit(conn) // values_per_row))


def _row_statements(rows: list[tuple[Any, ...]], per: int, sql: Callable[[int], str]
                    ) -> Iterator[tuple[str, list[Any]]]:
    """Row tuples as ``(sql(n), values)`` of ``per`` rows at most each."""
    for lo in range(0, len(rows), per):
        part = rows[lo:lo + per]
        yield sql(len(part)), list(chain.from_iterable(part))


class _Pipe:
    """SQLite: statements run in order on one worker thread, on the caller's connection
    and in its transaction, while the caller builds the next ones (SQLite runs a
    multi-row statement without the GIL once the driver has bound its values). The caller's
    thread leaves the connection alone until it leaves the ``with`` block, which waits for
    the worker. The first error skips the statements after it and is raised by the next
    :meth:`submit` or on leaving the block (the caller's rollback then undoes all of it).
    A connection that refuses other threads (``check_same_thread``) runs each statement
    at once on the caller's thread."""

    def __init__(self, conn: Connection) -> None:
        self._cur = conn.connection.cursor()
        self._jobs: queue.Queue[tuple[str, list[Any]] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._shared, probed = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._work, args=(probed,),
                                        name="store-writer", daemon=True)
        self._thread.start()
        probed.wait()  # may the worker use this connection?

    def _work(self, probed: threading.Event) -> None:
        try:
            self._cur.execute("SELECT 1").fetchall()
            self._shared.set()
        except sqlite3.ProgrammingError:  # check_same_thread: the caller runs them
            return
        finally:
            probed.set()
        while (job := self._jobs.get()) is not None:
            try:
                if self._error is None:
                    self._cur.execute(*job)
            except BaseException as e:  # noqa: BLE001 - raised on the caller's thread
                self._error = e

    def submit(self, sql: str, params: list[Any]) -> None:
        self._raise()
        if self._shared.is_set():
            self._jobs.put((sql, params))
        else:
            self._cur.execute(sql, params)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _Pipe:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if self._shared.is_set():
            self._jobs.put(None)
        self._thread.join()
        self._cur.close()
        if exc_type is None:
            self._raise()


def _wants_pipe(conn: Connection, effects: Effects) -> bool:
    """SQLite and a block (or events) of at least ``_BULK_ROWS`` rows."""
    return conn.dialect.name == "sqlite" and (
        len(effects.events) >= _BULK_ROWS
        or any(b.n >= _BULK_ROWS for bl in effects.blocks.values() for b in bl))


def fast_supported(conn: Connection) -> bool:
    """SQLite through the stdlib driver, PostgreSQL through psycopg 3 (COPY, arrays)."""
    d = conn.dialect
    return ((d.name == "sqlite" and d.paramstyle == "qmark")
            or (d.name == "postgresql" and d.driver == "psycopg"))


JOURNAL = FastTable(m.JournalRow.__table__)
ACCOUNTS = FastTable(m.Account.__table__)
ORDERS = FastTable(m.Order.__table__)
DEALS = FastTable(m.Deal.__table__)
POSTINGS = FastTable(m.Posting.__table__)
POSTINGS_SRC_DST = FastTable(m.Posting.__table__, {"debit": "src", "credit": "dst"})
_BLOCK_WRITES = (("accounts", ACCOUNTS, "upsert"), ("orders", ORDERS, "upsert"),
                 ("deals", DEALS, "insert"), ("postings", POSTINGS_SRC_DST, "insert"))


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert or replace rows by primary key (``ON CONFLICT DO UPDATE``)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # portable fallback: delete then insert
        pk = list(table.primary_key.columns)[0]
        for chunk in _chunks([r[pk.key] for r in rows]):
            conn.execute(delete(table).where(pk.in_(chunk)))
        conn.execute(insert(table), rows)
        return
    pk_names = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=pk_names,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk_names},
    )
    conn.execute(stmt, rows)


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _posting(row: Row) -> Row:
    """Postings as ``cfd.effects`` names them (debit -> credit) or as the ledger does
    (src -> dst: the same direction)."""
    if "debit" in row or "src" not in row:
        return row
    return {**row, "debit": row["src"], "credit": row["dst"]}


_POSTING_SRC_DST = _tuple_fn(m.Posting.__table__, POSTINGS.keys,
                             {"debit": "src", "credit": "dst"})


def _postings_tuples(rows: list[Row]) -> list[tuple[Any, ...]]:
    """Postings named src/dst (the ledger's) or debit/credit (see :func:`_posting`)."""
    by_ledger, by_effects = _POSTING_SRC_DST, POSTINGS.to_tuple
    return [by_effects(r) if "debit" in r or "src" not in r else by_ledger(r) for r in rows]


def apply_effects(conn: Connection, effects: Effects, seq: int,
                  stage_rows: int | None = None) -> set[str]:
    """Write ``effects`` (those of the batch ending at journal ``seq``). Open positions
    have no table: the engine answers for them. ``stage_rows``: history blocks of at least
    this many rows are staged (:func:`cfd.store.staging.stage`), not written as rows; the
    tables staged are returned."""
    staged = set() if stage_rows is None else staging.stage(conn, effects, seq, stage_rows)
    if staged:
        effects = dataclasses.replace(effects, blocks={
            t: b for t, b in effects.blocks.items() if t not in staged})
    if not fast_supported(conn):
        _apply_effects_portable(conn, effects, seq)
        return staged
    piped = _wants_pipe(conn, effects)
    with _Pipe(conn) if piped else contextlib.nullcontext() as pipe:
        for table, fast, op in _BLOCK_WRITES:  # before the dicts: theirs are the newer rows
            if effects.blocks.get(table):
                fast.write_blocks(conn, op, effects.blocks[table], pipe)
        if pipe is not None:  # the events too (on leaving, the worker has run them all)
            for job in _events_bound(conn, effects.events, seq):
                pipe.submit(*job)
    if effects.accounts:
        ACCOUNTS.upsert(conn, effects.accounts.values())
    if effects.orders:
        ORDERS.upsert(conn, effects.orders.values())
    if effects.deals:
        DEALS.insert(conn, effects.deals)
    if effects.postings:
        POSTINGS.insert_tuples(conn, _postings_tuples(effects.postings))
    _apply_rare(conn, effects, seq, events=not piped)
    return staged


_JSON = json.JSONEncoder(default=_json_default, separators=(",", ":"))  # as schema._dumps
# the C encoder behind _JSON.encode, built once (encode builds it again for every call)
_C_ENCODE = (None if _json_encoder.c_make_encoder is None else _json_encoder.c_make_encoder(
    None, _json_default, _json_encoder.encode_basestring_ascii, None, ":", ",", False, False,
    True))


def _event_json(e: Row) -> str:
    """``_JSON.encode(e)`` of an event dict (no cycles: not checked for)."""
    out = fast_text(e)
    if out is not None:
        return out.decode()
    return _JSON.encode(e) if _C_ENCODE is None else "".join(_C_ENCODE(e, 0))

_EVENT_COPY = ("COPY events (seq, time_msc, kind, login, request_id, data) FROM STDIN "
               "(FORMAT BINARY)")
_EVENT_SQL_HEAD = "INSERT INTO events (seq, time_msc, kind, login, request_id, data) VALUES "
_EVENT_ROW = "(?, ?, ?, ?, ?, ?)"
_EVENT_COLUMNS = 6
_EVENT_SQL = _EVENT_SQL_HEAD + _EVENT_ROW


def _event_tuple(e: Row, seq: int) -> tuple[Any, ...]:
    t, login, kind = e.get("time_msc"), e.get("login"), str(e.get("kind", ""))
    rid = e.get("request_id") if kind == "order_result" else None
    return (seq, None if t is None else int(t), kind, None if login is None else int(login),
            int(rid) if rid else None, _event_json(e))


def _events_bound(conn: Connection, events: list[Row], seq: int
                  ) -> Iterator[tuple[str, list[Any]]]:
    """SQLite: ``events`` as multi-row statements (as :meth:`FastTable.bound`), in order
    (their ids)."""
    return _row_statements([_event_tuple(e, seq) for e in events],
                           _rows_per_statement(conn, _EVENT_COLUMNS),
                           lambda n: _EVENT_SQL_HEAD + ", ".join([_EVENT_ROW] * n))


def _insert_events(conn: Connection, events: list[Row], seq: int) -> None:
    """``events`` bound (the fast drivers): PostgreSQL by COPY, SQLite row by row or, for
    many, in multi-row statements."""
    rows = (_event_tuple(e, seq) for e in events)
    cur = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cur.copy(_EVENT_COPY) as copy:
                copy.set_types(["int8", "int8", "text", "int8", "int8", "text"])
                for row in rows:
                    copy.write_row(row)
        elif len(events) >= _INLINE_ROWS:
            for stmt in _events_bound(conn, events, seq):
                cur.execute(*stmt)
        else:
            cur.executemany(_EVENT_SQL, list(rows))
    finally:
        cur.close()


def _apply_rare(conn: Connection, effects: Effects, seq: int, events: bool = True) -> None:
    """Symbols, and (``events``) the events."""
    if effects.symbols:
        upsert(conn, m.Symbol.__table__, [
            {"name": str(name), "spec": dict(spec), "updated_seq": seq}
            for name, spec in effects.symbols.items()
        ])
    if not (events and effects.events):
        return
    if fast_supported(conn):
        # the JSON column's text as SQLAlchemy's JSON type writes it (the engine's
        # json_serializer), bound by the driver (SQLite: row by row or multi-row
        # statements; PostgreSQL: COPY, where json's binary form is its text): no per-row
        # SQLAlchemy work
        _insert_events(conn, effects.events, seq)
    else:
        conn.execute(insert(m.Event.__table__), [
            {
                "seq": seq,
                "time_msc": None if e.get("time_msc") is None else int(e["time_msc"]),
                "kind": str(e.get("kind", "")),
                "login": None if e.get("login") is None else int(e["login"]),
                "request_id": (int(e["request_id"]) if e.get("kind") == "order_result"
                               and e.get("request_id") else None),
                "data": dict(e),
            }
            for e in effects.events
        ])


def _apply_effects_portable(conn: Connection, effects: Effects, seq: int) -> None:
    """Through SQLAlchemy Core (any dialect)."""
    t_acc = m.Account.__table__
    t_ord = m.Order.__table__
    for table, fast, op in _BLOCK_WRITES:  # before the dicts: theirs are the newer rows
        for b in effects.blocks.get(table, ()):
            rows = [normalize(fast.table, _posting(r) if table == "postings" else r)
                    for r in b.rows()]
            if op == "upsert":
                upsert(conn, fast.table, rows)
            elif rows:
                conn.execute(insert(fast.table), rows)
    upsert(conn, t_acc, [normalize(t_acc, r) for r in effects.accounts.values()])
    upsert(conn, t_ord, [normalize(t_ord, r) for r in effects.orders.values()])
    if effects.deals:
        table = m.Deal.__table__
        conn.execute(insert(table), [normalize(table, r) for r in effects.deals])
    if effects.postings:
        table = m.Posting.__table__
        conn.execute(insert(table), [normalize(table, _posting(r)) for r in effects.postings])
    _apply_rare(conn, effects, seq)
