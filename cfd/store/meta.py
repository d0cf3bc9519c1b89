"""The ``store_meta`` row's journal head, and the wall clock the store stamps on its rows
(snapshot creation, lease heartbeats; never an input of the engine)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from cfd.store import models as m
from cfd.store.errors import StoreCorrupted


def now_msc() -> int:
    return time.time_ns() // 1_000_000


def read_head(conn: Connection) -> tuple[int, str]:
    meta = m.StoreMeta.__table__
    row = conn.execute(select(meta.c.head_seq, meta.c.head_hash).where(meta.c.id == 1)).first()
    if row is None:
        raise StoreCorrupted("the store_meta row (journal head) is missing")
    return int(row.head_seq), row.head_hash
