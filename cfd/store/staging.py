"""Staged history rows: a bulk booking's deals, orders and postings made durable as columns,
written into their query tables after the batch is acknowledged.

A stop-out cascade books hundreds of thousands of deals in one batch. Writing them as rows
(three or four B-trees each) is most of the time between the shocked quotes and the commit:
on SQLite about 2 us per row, on one thread. A block of at least :data:`STAGE_ROWS` rows of
``deals``, ``orders`` or ``postings`` is instead stored as one ``staged_rows`` row holding
its columns (:func:`encode`), in the batch's own transaction: the batch is as durable as
before (a crash after the commit loses nothing; the store writes the rows on reopening),
and the writer acknowledges it without waiting for the indexes.

The writer then moves the staged rows into their tables in transactions of
:data:`INDEX_ROWS` rows (:meth:`cfd.store.Store.index_staged`), between batches and when it
is idle, oldest first, each transaction also recording how far it got. Until a block is
fully written, the history reads wait for it (``Store`` queries on deals, orders and
postings): a reader never sees a batch's history half there. A batch that writes an order
among the staged orders' tickets waits for them first (:func:`orders_within`), so no older
staged row overwrites a newer one.

The encoding is plain: a JSON header naming each column as a numpy array (dtype, bytes),
a list, or one value every row has; the arrays' bytes follow the header, then the lists
(of str, int, float and None only) in :mod:`marshal`'s format 4 (a quarter of JSON's
time for a cascade's text columns). Decoding builds those values and nothing else.
"""

from __future__ import annotations

import json
import marshal
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, insert, select, update

from cfd.effects import Block, Effects
from cfd.store import models as m
from cfd.store.errors import StoreBusy

#: A table's blocks of at least this many rows in one batch are staged (a cascade's; an
#: order batch's few rows are written as rows at once).
STAGE_ROWS = 50_000
#: Rows per transaction when the staged rows are written into their tables.
INDEX_ROWS = 65_536
#: The tables whose bulk blocks may be staged (history: read only through the store's
#: queries, which wait for staged rows).
STAGED_TABLES = ("orders", "deals", "postings")

_LEN = struct.Struct("<I")
_MARSHAL = 4  # marshal's format version (stable since Python 3.4)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _integers(v: np.ndarray) -> list[Any] | None:
    """A compact form of an integer column ``v``: one value every row has (``"v"``), a
    run counting up by one (``"r"``: dtype, first), else None (its bytes as they are)."""
    if v.dtype.kind not in "iu" or not len(v):
        return None
    first = v[0].item()
    if v[-1].item() == first and (v == first).all():
        return ["v", first]  # (a cascade's many constant columns)
    if v[-1].item() - first == len(v) - 1 and (np.diff(v) == 1).all():
        return ["r", v.dtype.str, first]  # (its tickets, orders, ids)
    return None


_I32 = np.iinfo(np.int32)


def _narrow(v: np.ndarray) -> np.ndarray:
    """``v``'s values in 32 bits when it holds 64-bit integers that fit (most logins,
    volumes and prices), else as they are."""
    if v.dtype == np.int64 and _I32.min <= v.min() and v.max() <= _I32.max:
        return v.astype(np.int32)
    return np.ascontiguousarray(v)


def encode(block: Block) -> bytes:
    """``block``'s columns as bytes (see the module's docstring)."""
    cols: list[list[Any]] = []
    arrays: list[bytes] = []
    lists: list[list[Any]] = []
    for name, v in block.cols.items():
        if isinstance(v, np.ndarray) and v.dtype != object:
            if v.ndim != 1 or len(v) != block.n:
                raise ValueError(f"column {name!r}: {v.shape} values for {block.n} rows")
            kind = _integers(v)
            if kind is not None:
                cols.append([name, *kind])
                continue
            a = _narrow(v)
            cols.append([name, "a", a.dtype.str, a.nbytes, v.dtype.str])
            arrays.append(a.tobytes())
        elif isinstance(v, (list, np.ndarray)):
            if len(v) != block.n:
                raise ValueError(f"column {name!r}: {len(v)} values for {block.n} rows")
            cols.append([name, "l", len(lists)])
            lists.append(v if isinstance(v, list) else v.tolist())
        else:
            cols.append([name, "v", _plain(v)])
    head = json.dumps({"n": block.n, "cols": cols}, separators=(",", ":")).encode()
    try:
        tail = marshal.dumps(lists, _MARSHAL)
    except ValueError:  # numpy scalars among the values: as plain ones
        tail = marshal.dumps([[_plain(x) for x in c] for c in lists], _MARSHAL)
    return b"".join([_LEN.pack(len(head)), head, *arrays, tail])


def decode(data: bytes) -> Block:
    """The :class:`Block` that :func:`encode` gave ``data``."""
    buf = memoryview(data)
    (hl,) = _LEN.unpack_from(buf)
    head = json.loads(bytes(buf[4:4 + hl]))
    at = 4 + hl
    out: dict[str, Any] = {}
    pending: list[tuple[str, int]] = []
    for c in head["cols"]:
        name, kind = c[0], c[1]
        if kind == "a":
            size = c[3]
            out[name] = np.frombuffer(buf[at:at + size], dtype=np.dtype(c[2])).astype(
                np.dtype(c[4]))
            at += size
        elif kind == "r":
            out[name] = np.arange(c[3], c[3] + head["n"], dtype=np.dtype(c[2]))
        elif kind == "l":
            out[name] = None
            pending.append((name, c[2]))
        else:
            out[name] = c[2]
    if pending:
        lists = marshal.loads(buf[at:])
        for name, i in pending:
            out[name] = lists[i]
            if not isinstance(out[name], list) or len(out[name]) != head["n"]:
                raise ValueError(f"staged column {name!r} is not a list of {head['n']}")
    return Block(head["n"], out)


def rows_of(block: Block, lo: int, hi: int) -> Block:
    """Rows ``lo`` to ``hi`` of ``block``."""
    return Block(hi - lo, {k: v[lo:hi] if isinstance(v, (list, np.ndarray)) else v
                           for k, v in block.cols.items()})


def stage(conn: Connection, effects: Effects, seq: int, min_rows: int | None = None
          ) -> set[str]:
    """Store the bulk blocks of ``effects`` worth staging as ``staged_rows`` (in
    ``conn``'s transaction); the names of the tables staged (their blocks are then not to
    be written as rows now). Orders are staged only when the batch's order rows outside
    its blocks (a stop-out's cancelled pending orders) lie outside the blocks' tickets: a
    row of the same ticket would be newer, and must be written after the block's."""
    min_rows = STAGE_ROWS if min_rows is None else min_rows
    t = m.StagedRows.__table__
    done: set[str] = set()
    for table in STAGED_TABLES:
        blocks = [b for b in effects.blocks.get(table, ()) if b.n]
        if not blocks or sum(b.n for b in blocks) < min_rows:
            continue
        if table == "orders" and _keys_within(effects.orders, *ticket_span(blocks)):
            continue
        try:
            data = [encode(b) for b in blocks]
        except (TypeError, ValueError):  # a value marshal does not take: written as rows
            continue
        conn.execute(insert(t), [{"seq": seq, "table_name": table, "n_rows": b.n,
                                  "done_rows": 0, "data": d}
                                 for b, d in zip(blocks, data, strict=True)])
        done.add(table)
    return done


def ticket_span(blocks: list[Block], span: tuple[int, int] | None = None
                ) -> tuple[int, int]:
    """The smallest and largest ticket of the order ``blocks`` (and of ``span``)."""
    lo, hi = span if span is not None else (np.iinfo(np.int64).max, np.iinfo(np.int64).min)
    for b in blocks:
        t = np.asarray(b.cols["ticket"])
        if len(t):
            lo, hi = min(lo, int(t.min())), max(hi, int(t.max()))
    return lo, hi


def orders_within(effects: Effects, lo: int, hi: int) -> bool:
    """Whether ``effects`` write an order whose ticket lies in ``[lo, hi]`` (those of
    staged orders: such a batch must wait until they are in their table). A bulk close's
    orders are new and finished; later batches write orders of other tickets (new ones,
    above them, and older pending ones, below), so they need not wait."""
    return _keys_within(effects.orders, lo, hi) or any(
        s[0] <= hi and s[1] >= lo
        for s in (ticket_span([b]) for b in effects.blocks.get("orders", ()) if b.n))


def _keys_within(keys: dict[int, Any], lo: int, hi: int) -> bool:
    return any(lo <= k <= hi for k in keys)


def pending(conn: Connection) -> bool:
    """Whether any staged rows wait to be written into their tables."""
    t = m.StagedRows.__table__
    return conn.execute(select(t.c.id).limit(1)).first() is not None


def oldest(conn: Connection) -> Any:
    """The oldest staged block's row (id, seq, table_name, n_rows, done_rows; not its
    data)."""
    t = m.StagedRows.__table__
    return conn.execute(select(t.c.id, t.c.seq, t.c.table_name, t.c.n_rows, t.c.done_rows)
                        .order_by(t.c.id).limit(1)).first()


def data_of(conn: Connection, row_id: int) -> bytes:
    t = m.StagedRows.__table__
    return bytes(conn.execute(select(t.c.data).where(t.c.id == row_id)).scalar_one())


def advance(conn: Connection, row_id: int, done_rows: int, n_rows: int) -> None:
    """Record that the staged block ``row_id`` is written up to ``done_rows`` (gone once
    all are)."""
    t = m.StagedRows.__table__
    if done_rows >= n_rows:
        conn.execute(delete(t).where(t.c.id == row_id))
    else:
        conn.execute(update(t).where(t.c.id == row_id).values(done_rows=done_rows))


def write_next(conn: Connection, write: Callable[[Connection, Effects, int], Any],
               cache: dict[int, Block]) -> tuple[int, bool]:
    """Write the next :data:`INDEX_ROWS` staged rows of the oldest block into its table
    with ``write`` (``cfd.store.writes.apply_effects``), in ``conn``'s transaction, and
    record how far it got; ``(rows written, whether staged rows remain)``. ``cache``
    keeps the decoded block between calls."""
    row = oldest(conn)
    if row is None:
        return 0, False
    block = cache.get(row.id)
    if block is None:
        cache.clear()
        block = cache[row.id] = decode(data_of(conn, row.id))
    hi = min(row.n_rows, row.done_rows + INDEX_ROWS)
    write(conn, Effects(blocks={row.table_name: [rows_of(block, row.done_rows, hi)]}),
          row.seq)
    advance(conn, row.id, hi, row.n_rows)
    if hi >= row.n_rows:
        cache.pop(row.id, None)
    return hi - row.done_rows, hi < row.n_rows or pending(conn)


#: How long a read-only store's history read waits for staged rows to be written (the -30%
#: cascade on the 10M book takes about 3 s on SQLite, 6.5 s on PostgreSQL); then
#: :class:`StoreBusy` (the API answers 503 with Retry-After).
WAIT_S = 20.0
_POLL_S = 0.02


def wait_written(conn: Connection, timeout_s: float | None = None) -> None:
    """Return once no staged rows are pending, in ``conn``'s read transaction (its
    snapshot then holds every row of the batches it sees); raise :class:`StoreBusy`
    after ``timeout_s`` (default :data:`WAIT_S`)."""
    deadline = time.monotonic() + (WAIT_S if timeout_s is None else timeout_s)
    while pending(conn):
        if time.monotonic() >= deadline:
            raise StoreBusy("the writer is still writing a bulk booking's history rows "
                            "into their tables (staged_rows): retry shortly")
        conn.rollback()  # a new snapshot on the next try
        time.sleep(_POLL_S)
