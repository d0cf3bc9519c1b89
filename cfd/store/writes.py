"""Writing a batch's :class:`cfd.effects.Effects` into the query tables (one connection,
inside the caller's transaction)."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
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
from cfd.store import models as m
from cfd.store.schema import _json_default

_CHUNK = 500  # rows per IN (...) list
_STAGE_ROWS = 2_000  # PostgreSQL: more upserts than this are staged by COPY
_INLINE_ROWS = 256  # SQLite: blocks of this many rows or more write constant columns inline
_INT64 = (-(1 << 63), 1 << 63)
_PACK_ROWS = 20_000  # SQLite: a block of this many rows or more goes as packed statements
_PACK_CHUNK = 50_000  # rows per packed statement (the first goes while the next is packed)


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
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            cols = ", ".join(q(k) for k in self.keys)
            name = q(self.table.name)
            if op == "insert" and pg:
                got = f"COPY {name} ({cols}) FROM STDIN (FORMAT BINARY)"
            else:
                if pg:
                    arrays = ", ".join(f"%b::{self._pg_type(k)}[]" for k in self.keys)
                    got = f"INSERT INTO {name} ({cols}) SELECT * FROM unnest({arrays})"
                else:
                    values = ", ".join(mark if v is None else v
                                       for v in (lits or (None,) * len(self.keys)))
                    got = f"INSERT INTO {name} ({cols}) VALUES ({values})"
                if op == "upsert":
                    sets = ", ".join(f"{q(k)} = excluded.{q(k)}" for k in self.keys
                                     if k not in self.pk)
                    got += (f" ON CONFLICT ({', '.join(q(k) for k in self.pk)}) "
                            f"DO UPDATE SET {sets}")
            self._sql[key] = got
        return got

    def _run(self, conn: Connection, op: str, params: Any) -> None:
        """``params``: a list of row tuples (an iterator of them for a PostgreSQL insert)."""
        if not params:
            return
        sql = self.sql(conn, op)
        cur = conn.connection.cursor()
        try:
            if conn.dialect.name != "postgresql":
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
        """Insert (``op`` "insert") or upsert ("upsert") rows given as columns, as tuples
        zipped from the columns (SQLite: ``executemany``; PostgreSQL: ``COPY``).

        SQLite, many rows: a column holding one integer, NULL or text value in every row
        is written as a literal of the statement, not bound row by row (the same stored
        value; a stop-out's deals and orders have about half their columns constant).
        ``pipe`` (SQLite): one block of many rows whose columns pack (:func:`_pack`) goes
        to it as packed statements; rows that do not pack go bound here, once its
        statements ran."""
        blocks = [b for b in blocks if b.n]
        if not blocks:
            return
        if pipe is not None:
            done = False
            for lo, job in self.packed(conn, op, blocks):
                done = job is not None
                if not done:  # a column that does not pack: these rows go bound
                    blocks = [_rows_from(blocks[0], lo)]
                    break
                pipe.submit(*job)
            if done:
                return
            pipe.drain()  # the rows left go bound, on this thread
        if conn.dialect.name == "sqlite" and sum(b.n for b in blocks) >= _INLINE_ROWS:
            lits = self._literals(blocks)
            if any(v is not None for v in lits):
                self._run_inline(conn, op, blocks, lits)
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

    def packed(self, conn: Connection, op: str, blocks: list[Block]
               ) -> Iterator[tuple[int, tuple[str, list[Any]] | None]]:
        """SQLite, one block of at least ``_PACK_ROWS`` rows (else nothing): the rows from
        ``lo`` on, ``_PACK_CHUNK`` at a time, as ``(lo, job)``: ``job`` the statement and
        parameters of one ``INSERT ... SELECT`` over packed columns (see :func:`_pack`),
        or None once a column does not pack (the rest go bound)."""
        if (conn.dialect.name != "sqlite" or len(blocks) != 1
                or blocks[0].n < _PACK_ROWS):
            return
        b = blocks[0]
        names = [self.rename.get(k, k) for k in self.keys]
        lits = self._literals(blocks)
        cols = []
        for name, lit in zip(names, lits, strict=True):
            if lit is None:
                v = b.cols.get(name)
                if v is None or not isinstance(v, (list, np.ndarray)):
                    yield 0, None  # one value in every row, not written as a literal
                    return
                cols.append(v)
        q = conn.dialect.identifier_preparer.quote
        head = f"INSERT INTO {q(self.table.name)} ({', '.join(q(k) for k in self.keys)}) "
        tail = ""
        if op == "upsert":
            sets = ", ".join(f"{q(k)} = excluded.{q(k)}" for k in self.keys
                             if k not in self.pk)
            tail = (f" WHERE true ON CONFLICT ({', '.join(q(k) for k in self.pk)}) "
                    f"DO UPDATE SET {sets}")
        for lo in range(0, b.n, _PACK_CHUNK):
            hi = min(lo + _PACK_CHUNK, b.n)
            got = _pack([c[lo:hi] for c in cols], hi - lo)
            if got is None:
                yield lo, None
                return
            exprs, params = got
            it = iter(exprs)
            values = [next(it) if lit is None else lit for lit in lits]
            yield lo, (f"{head}SELECT {', '.join(values)} FROM {_ROWS}{tail}",
                       [_row_keys(hi - lo), *params])

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

    def _run_inline(self, conn: Connection, op: str, blocks: list[Block],
                    lits: tuple[str | None, ...]) -> None:
        """SQLite: ``executemany`` binding only the columns without a literal in ``lits``."""
        sql = self.sql(conn, op, lits)
        bound = self._columns(blocks, op == "upsert", lazy=True, skip=lits)
        cur = conn.connection.cursor()
        try:
            cur.executemany(sql, list(zip(*bound, strict=True)))
        finally:
            cur.close()

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


_ROWS = "json_each(?1) AS r"  # the rows r.key = 0 .. n - 1 of a packed statement


def _row_keys(n: int) -> str:
    """``?1`` of a packed statement: a JSON array of ``n`` items (the cheapest row source
    SQLite has built in: a recursive CTE costs eight times as much per row)."""
    return "[" + "0," * (n - 1) + "0]"


def _digits(a: np.ndarray, null: np.ndarray | None = None) -> np.ndarray:
    """Integers (int64 range) as fixed-width ASCII decimal, one row each: a sign byte
    (``-``, ``0``, or ``N`` where ``null``) then the digits, zero-padded; what SQLite's
    ``CAST(... AS INTEGER)`` reads back exactly."""
    a = a.astype(np.int64, copy=False)
    neg = a < 0
    u = np.where(neg, -a, a).astype(np.uint64)  # -(-2**63) wraps, and casts to 2**63
    top = int(u.max())
    if top < 1 << 32:
        u = u.astype(np.uint32)
    width = len(str(top)) + 1
    out = np.empty((len(a), width), np.uint8)
    for k in range(width - 1, 0, -1):
        q = u // 10
        out[:, k] = u - q * 10
        u = q
    out[:, 1:] += 48
    out[:, 0] = np.where(neg, 45, 48)
    if null is not None:
        out[null, 0] = 78
    return out


_FLOAT_DISTINCT = 64  # SQLite: a float column with more distinct values goes bound
_FLOAT_TEXT: dict[tuple[float, int], bool] = {}  # (value, width): SQLite reads it back?
_FLOAT_CHECK: list[sqlite3.Connection] = []  # an in-memory database asked once opened
_FLOAT_LOCK = threading.Lock()


def _float_column(v: list[Any] | np.ndarray) -> np.ndarray | None:
    """A column of a few distinct floats as fixed-width text (``repr``, space-padded),
    each checked once to be read back by SQLite's ``CAST(... AS REAL)`` as the very
    double binding it stores; else None (NaN, infinities, -0.0, many values)."""
    if isinstance(v, np.ndarray):
        if v.dtype != np.float64:
            return None
        a = v
    else:
        if set(map(type, v)) != {float}:
            return None
        a = np.array(v, np.float64)
    if not np.isfinite(a).all() or (np.signbit(a) & (a == 0)).any():
        return None
    uniq, inv = np.unique(a, return_inverse=True)
    if len(uniq) > _FLOAT_DISTINCT:
        return None
    texts = [repr(x) for x in uniq.tolist()]
    width = max(map(len, texts))
    with _FLOAT_LOCK:
        if len(_FLOAT_TEXT) > 100_000:
            _FLOAT_TEXT.clear()
        for x, t in zip(uniq.tolist(), texts, strict=True):
            ok = _FLOAT_TEXT.get((x, width))
            if ok is None:
                if not _FLOAT_CHECK:
                    _FLOAT_CHECK.append(sqlite3.connect(":memory:", check_same_thread=False))
                got = _FLOAT_CHECK[0].execute("SELECT CAST(CAST(? AS BLOB) AS REAL)",
                                              (t.ljust(width),)).fetchone()[0]
                ok = _FLOAT_TEXT[(x, width)] = type(got) is float and got == x
            if not ok:
                return None
    table = np.array([t.ljust(width).encode("ascii") for t in texts], dtype=f"S{width}")
    return table[inv.ravel()].view(np.uint8).reshape(len(a), width)


def _int_column(v: list[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A column of integers (None: NULL) as an int64 array and its NULL mask, or None when
    it holds anything else (or an integer beyond int64)."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
        if v.dtype.kind == "u" and v.size and int(v.max()) >= _INT64[1]:
            return None
        return v, None
    vals = v.tolist() if isinstance(v, np.ndarray) else v
    kinds = set(map(type, vals))
    if not kinds <= {int, type(None)} or int not in kinds:
        return None
    null = None
    if type(None) in kinds:
        null = np.fromiter((x is None for x in vals), np.bool_, len(vals))
        vals = [0 if x is None else x for x in vals]
    if min(vals) < _INT64[0] or max(vals) >= _INT64[1]:
        return None
    return np.array(vals, np.int64), null


def _pack(cols: list[list[Any] | np.ndarray], n: int) -> tuple[list[str], list[Any]] | None:
    """SQLite: ``n`` rows of ``cols`` (integers, text, NULLs) as parameters of one
    ``INSERT ... SELECT`` over the rows ``r.key`` of :data:`_ROWS` (``?1``: :func:`_row_keys`),
    and the SQL expression of each column; None when a column holds anything else
    (floats, blobs, non-ASCII text).

    ``?2`` packs every row's integers as fixed-width decimal text (:func:`_digits`),
    ``CAST`` back to the same integers; a text column is one ASCII blob (``?3``...) cut by
    the offset and length its rows hold in ``?2``: the same values as binding each row
    stores, but one statement runs through without the GIL (and binds nothing per row)."""
    fields: list[np.ndarray] = []  # (n, width) digit blocks of ?2, in order
    exprs: list[tuple[Any, ...]] = []
    texts: list[bytes] = []
    for v in cols:
        if len(v) != n:
            raise ValueError(f"a column of {len(v)} values in a block of {n} rows")
        got = _int_column(v)
        if got is not None:
            fields.append(_digits(*got))
            exprs.append(("int", len(fields) - 1, got[1] is not None))
            continue
        floats = _float_column(v)
        if floats is not None:
            fields.append(floats)
            exprs.append(("real", len(fields) - 1))
            continue
        vals = v.tolist() if isinstance(v, np.ndarray) else v
        kinds = set(map(type, vals))
        if not kinds <= {str, type(None)}:
            return None
        if type(None) in kinds:
            vals = [("", None) if x is None else (x, x) for x in vals]
            lens = np.fromiter((-1 if x is None else len(s) for s, x in vals), np.int64, n)
            vals = [s for s, _ in vals]
        else:
            lens = np.fromiter(map(len, vals), np.int64, n)
        joined = "".join(vals)
        if not joined.isascii() or "\x00" in joined:
            return None
        texts.append(joined.encode("ascii"))
        offs = np.cumsum(lens.clip(0)) - lens.clip(0)
        fields.append(_digits(offs))
        fields.append(_digits(lens))
        exprs.append(("text", len(fields) - 2, len(texts) + 2, bool((lens < 0).any())))
    mat = np.concatenate(fields, axis=1) if fields else np.empty((n, 0), np.uint8)
    width = mat.shape[1]
    starts = np.cumsum([0] + [f.shape[1] for f in fields]).tolist()

    def field(j: int, length: int | None = None) -> str:
        n = fields[j].shape[1] if length is None else length
        return f"substr(?2, r.key * {width} + {starts[j] + 1}, {n})"

    out = []
    for e in exprs:
        if e[0] == "real":
            sql = f"CAST({field(e[1])} AS REAL)"
        elif e[0] == "int":
            sql = f"CAST({field(e[1])} AS INTEGER)"
            if e[2]:
                sql = f"CASE WHEN {field(e[1], 1)} = x'4E' THEN NULL ELSE {sql} END"
        else:
            off, ln = (f"CAST({field(j)} AS INTEGER)" for j in (e[1], e[1] + 1))
            sql = f"CAST(substr(?{e[2]}, {off} + 1, {ln}) AS TEXT)"
            if e[3]:
                sql = f"CASE WHEN {ln} < 0 THEN NULL ELSE {sql} END"
        out.append(sql)
    return out, [mat.tobytes(), *texts]


class _Pipe:
    """SQLite: statements run in order on one worker thread, on the caller's connection
    and in its transaction, while the caller builds the next ones (one ``INSERT ...
    SELECT`` over packed rows runs without the GIL from start to end). The caller's
    thread leaves the connection alone until :meth:`drain` returns. The first error
    skips the statements after it and is raised by ``drain`` or on leaving the ``with``
    block (which waits for the worker: the caller's rollback then undoes all of it).
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
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    self._cur.execute(*job)
            except BaseException as e:  # noqa: BLE001 - raised on the caller's thread
                self._error = e
            finally:
                self._jobs.task_done()

    def submit(self, sql: str, params: list[Any]) -> None:
        self._raise()
        if self._shared.is_set():
            self._jobs.put((sql, params))
        else:
            self._cur.execute(sql, params)

    def drain(self) -> None:
        """Wait until every submitted statement ran (raise the first error)."""
        self._jobs.join()
        self._raise()

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
    """SQLite and a block (or events) of at least ``_PACK_ROWS`` rows."""
    return conn.dialect.name == "sqlite" and (
        len(effects.events) >= _PACK_ROWS
        or any(b.n >= _PACK_ROWS for bl in effects.blocks.values() for b in bl))


def _rows_from(b: Block, lo: int) -> Block:
    """The rows of ``b`` from ``lo`` on."""
    return Block(b.n - lo, {k: v[lo:] if isinstance(v, (list, np.ndarray)) else v
                            for k, v in b.cols.items()})


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


def apply_effects(conn: Connection, effects: Effects, seq: int) -> None:
    """Write ``effects`` (those of the batch ending at journal ``seq``). Open positions
    have no table: the engine answers for them."""
    if not fast_supported(conn):
        _apply_effects_portable(conn, effects, seq)
        return
    events = True
    if _wants_pipe(conn, effects):
        with _Pipe(conn) as pipe:
            for table, fast, op in _BLOCK_WRITES:
                if effects.blocks.get(table):
                    fast.write_blocks(conn, op, effects.blocks[table], pipe)
                if table == "postings":
                    for lo, job in _events_packed(effects.events, seq):
                        events = False
                        if job is None:  # the rest bound, after those packed
                            pipe.drain()
                            _insert_events(conn, effects.events[lo:], seq)
                            break
                        pipe.submit(*job)
            pipe.drain()
    else:
        for table, fast, op in _BLOCK_WRITES:  # before the dicts: theirs are the newer rows
            if effects.blocks.get(table):
                fast.write_blocks(conn, op, effects.blocks[table])
    if effects.accounts:
        ACCOUNTS.upsert(conn, effects.accounts.values())
    if effects.orders:
        ORDERS.upsert(conn, effects.orders.values())
    if effects.deals:
        DEALS.insert(conn, effects.deals)
    if effects.postings:
        POSTINGS.insert_tuples(conn, _postings_tuples(effects.postings))
    _apply_rare(conn, effects, seq, events)


_JSON = json.JSONEncoder(default=_json_default, separators=(",", ":"))  # as schema._dumps
# the C encoder behind _JSON.encode, built once (encode builds it again for every call)
_C_ENCODE = (None if _json_encoder.c_make_encoder is None else _json_encoder.c_make_encoder(
    None, _json_default, _json_encoder.encode_basestring_ascii, None, ":", ",", False, False,
    True))


def _event_json(e: Row) -> str:
    """``_JSON.encode(e)`` of an event dict (no cycles: not checked for)."""
    return _JSON.encode(e) if _C_ENCODE is None else "".join(_C_ENCODE(e, 0))

_EVENT_COPY = ("COPY events (seq, time_msc, kind, login, request_id, data) FROM STDIN "
               "(FORMAT BINARY)")
_EVENT_SQL = ("INSERT INTO events (seq, time_msc, kind, login, request_id, data) "
              "VALUES (?, ?, ?, ?, ?, ?)")


def _event_tuple(e: Row, seq: int) -> tuple[Any, ...]:
    t, login, kind = e.get("time_msc"), e.get("login"), str(e.get("kind", ""))
    rid = e.get("request_id") if kind == "order_result" else None
    return (seq, None if t is None else int(t), kind, None if login is None else int(login),
            int(rid) if rid else None, _event_json(e))


def _events_packed(events: list[Row], seq: int
                   ) -> Iterator[tuple[int, tuple[str, list[Any]] | None]]:
    """SQLite, at least ``_PACK_ROWS`` events (else nothing): as :meth:`FastTable.packed`,
    the events from ``lo`` on in order (their ids)."""
    if len(events) < _PACK_ROWS:
        return
    for lo in range(0, len(events), _PACK_CHUNK):
        part = events[lo:lo + _PACK_CHUNK]
        cols = list(zip(*(_event_tuple(e, seq) for e in part), strict=True))
        got = _pack([list(c) for c in cols[1:]], len(part))
        if got is None:
            yield lo, None
            return
        exprs, params = got
        yield lo, (f"INSERT INTO events (seq, time_msc, kind, login, request_id, data) "
                   f"SELECT {int(seq)}, {', '.join(exprs)} FROM {_ROWS} ORDER BY r.key",
                   [_row_keys(len(part)), *params])


def _insert_events(conn: Connection, events: list[Row], seq: int) -> None:
    """``events`` bound row by row (the fast drivers)."""
    rows = (_event_tuple(e, seq) for e in events)
    cur = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cur.copy(_EVENT_COPY) as copy:
                copy.set_types(["int8", "int8", "text", "int8", "int8", "text"])
                for row in rows:
                    copy.write_row(row)
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
    if not events:
        pass
    elif effects.events and fast_supported(conn):
        # the JSON column's text as SQLAlchemy's JSON type writes it (the engine's
        # json_serializer), bound by the driver (executemany; PostgreSQL: COPY, where
        # json's binary form is its text): no per-row SQLAlchemy work
        _insert_events(conn, effects.events, seq)
    elif effects.events:
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
