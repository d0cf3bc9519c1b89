"""Durable store: the command journal (source of truth), snapshots and query tables.

SQLite (WAL) file ``cfd.sqlite`` in the working directory by default; PostgreSQL with
``CFD_DATABASE_URL=postgresql+psycopg://...`` (same code). See :class:`Store`.
"""

from cfd.store.errors import (
    RecoveryMismatch,
    SnapshotSchemaMismatch,
    StoreCorrupted,
    StoreError,
    StoreLeaseLost,
    StoreLocked,
    StoreReadOnly,
    StoreSchemaMismatch,
)
from cfd.store.journal import GENESIS_HASH, JournalEntry, chain_hash
from cfd.store.store import SNAPSHOT_SCHEMA_VERSION, Snapshot, Store

__all__ = [
    "GENESIS_HASH",
    "SNAPSHOT_SCHEMA_VERSION",
    "JournalEntry",
    "RecoveryMismatch",
    "Snapshot",
    "SnapshotSchemaMismatch",
    "Store",
    "StoreCorrupted",
    "StoreError",
    "StoreLeaseLost",
    "StoreLocked",
    "StoreReadOnly",
    "StoreSchemaMismatch",
    "chain_hash",
]
