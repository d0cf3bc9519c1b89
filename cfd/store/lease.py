"""The writer's lease in ``store_meta``: heartbeat, fencing, and sessions a standby can end.

The lease row names its holder (``lease_owner``: a token made fresh each time a process
opens the store for writing). Every batch moves the journal head with
``UPDATE store_meta ... WHERE lease_owner = <token> AND head_seq = <the head it read>`` in
the batch's own transaction (:meth:`cfd.store.Store.append_batch`), so the token is a
fencing token: once another process took the lease, the old holder's transactions roll
back, whatever it still believes; it can never journal again.

On PostgreSQL a writer's sessions carry its token in ``application_name``
(:func:`tag_sessions`). A standby that finds the heartbeat stale ends them
(:func:`end_sessions`): a frozen writer's open transaction rolls back, its advisory lock
(:mod:`cfd.store.lock`) goes with its session, and the standby takes the lock and the lease.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event, select, text, update

from cfd.store import models as m
from cfd.store.errors import StoreLeaseLost
from cfd.store.meta import now_msc

APP_PREFIX = "cfd-writer "


def tag_sessions(eng: Engine, owner: str) -> None:
    """PostgreSQL: every session of ``eng`` shows ``cfd-writer <owner>`` as its
    application_name (what :func:`end_sessions` looks for)."""
    if eng.dialect.name != "postgresql":
        return

    @event.listens_for(eng, "connect")
    def _tag(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SELECT set_config('application_name', %s, false)",
                    (APP_PREFIX + owner,))
        cur.close()
        dbapi_conn.commit()


def end_sessions(eng: Engine, owner: str) -> int:
    """PostgreSQL: terminate the sessions of the writer ``owner`` (its open transaction rolls
    back, its advisory lock is released); returns how many. Elsewhere: 0."""
    if eng.dialect.name != "postgresql" or not owner:
        return 0
    with eng.begin() as conn:
        pids = conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :app "
            "AND pid <> pg_backend_pid()"), {"app": APP_PREFIX + owner}).scalars().all()
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    return len(pids)


def heartbeat(conn: Connection, owner: str, url: str) -> None:
    """Record that the writer ``owner`` lives; raise :class:`StoreLeaseLost` if the lease is
    no longer its own (taken over: this writer is fenced)."""
    meta = m.StoreMeta.__table__
    res = conn.execute(update(meta).where(meta.c.id == 1, meta.c.lease_owner == owner)
                       .values(lease_heartbeat_msc=now_msc()))
    if res.rowcount != 1:
        raise StoreLeaseLost(f"the writer lease of {url} was taken over: this engine is "
                             "fenced and stops (a standby took over as writer)")


def read(eng: Engine) -> dict[str, Any] | None:
    """The lease and head: ``lease_owner, lease_heartbeat_msc, lease_pid, lease_host,
    head_seq``."""
    meta = m.StoreMeta.__table__
    with eng.connect() as conn:
        row = conn.execute(select(meta.c.lease_owner, meta.c.lease_heartbeat_msc,
                                  meta.c.lease_pid, meta.c.lease_host, meta.c.head_seq)
                           .where(meta.c.id == 1)).mappings().first()
    return None if row is None else dict(row)
