"""The store's tables, as SQLAlchemy 2 typed ORM classes.

Money is ``BigInteger`` minor units, prices ``BigInteger`` ``cfd.money.PRICE_SCALE`` units,
volumes ``BigInteger`` ``cfd.money.VOLUME_SCALE`` units, times ``BigInteger`` milliseconds
since 1970-01-01 UTC. Column names equal the keys of the rows in :mod:`cfd.effects`.

The tables are created by the Alembic migrations in ``cfd/store/migrations/``; these classes
describe them for queries, and a test checks that the two agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Database schema version: the Alembic head revision this code expects.
SCHEMA_REVISION = "0005"


class Base(DeclarativeBase):
    pass


#: A history table's key: ``bigint`` on PostgreSQL; on SQLite ``INTEGER PRIMARY KEY``, the
#: table's own rowid (no separate unique index to update on every insert).
RowKey = BigInteger().with_variant(Integer, "sqlite")


class JournalRow(Base):
    """One command, in the order the engine applied it. The source of truth."""

    __tablename__ = "journal"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time_msc: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    #: sha256 hex of (previous row's hash, this row's fields): see cfd.store.journal.
    hash: Mapped[str] = mapped_column(String(64))


class StoreMeta(Base):
    """The single row (id = 1) saying where the journal ends and who may write."""

    __tablename__ = "store_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    schema_version: Mapped[str] = mapped_column(String(32))
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_host: Mapped[str | None] = mapped_column(String(255))
    lease_pid: Mapped[int | None] = mapped_column(BigInteger)
    lease_acquired_msc: Mapped[int | None] = mapped_column(BigInteger)
    lease_heartbeat_msc: Mapped[int | None] = mapped_column(BigInteger)


class SnapshotRow(Base):
    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    state_hash: Mapped[str] = mapped_column(String(128))
    schema_version: Mapped[int] = mapped_column(Integer)
    created_msc: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[Any] = mapped_column(JSON)
    n_chunks: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    #: sha256 hex of the whole .npz blob, checked on load.
    blob_sha256: Mapped[str] = mapped_column(String(64))


class SnapshotChunk(Base):
    __tablename__ = "snapshot_chunks"

    snapshot_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Account(Base):
    __tablename__ = "accounts"

    login: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(String(255))
    group: Mapped[str | None] = mapped_column(String(255))
    leverage: Mapped[int | None] = mapped_column(BigInteger)
    margin_mode: Mapped[int | None] = mapped_column(Integer)
    margin_so_mode: Mapped[int | None] = mapped_column(Integer)
    margin_so_call: Mapped[float | None] = mapped_column(Float)
    margin_so_so: Mapped[float | None] = mapped_column(Float)
    balance: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(16))
    trade_mode: Mapped[int | None] = mapped_column(Integer)
    updated_msc: Mapped[int | None] = mapped_column(BigInteger)


class Order(Base):
    """Every order, active and finished (``state`` tells which)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_login_time_setup", "login", "time_setup_msc"),
        Index("ix_orders_position_id", "position_id"),
    )

    ticket: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    login: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(64))
    time_setup_msc: Mapped[int] = mapped_column(BigInteger)
    time_done_msc: Mapped[int | None] = mapped_column(BigInteger)
    time_expiration: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[int] = mapped_column(Integer)
    type_time: Mapped[int | None] = mapped_column(Integer)
    type_filling: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    magic: Mapped[int | None] = mapped_column(BigInteger)
    position_id: Mapped[int | None] = mapped_column(BigInteger)
    position_by_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[int | None] = mapped_column(Integer)
    volume_initial: Mapped[int] = mapped_column(BigInteger)
    volume_current: Mapped[int] = mapped_column(BigInteger)
    price_open: Mapped[int | None] = mapped_column(BigInteger)
    sl: Mapped[int | None] = mapped_column(BigInteger)
    tp: Mapped[int | None] = mapped_column(BigInteger)
    price_current: Mapped[int | None] = mapped_column(BigInteger)
    price_stoplimit: Mapped[int | None] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_login_time", "login", "time_msc"),
        Index("ix_deals_position_id", "position_id"),
        Index("ix_deals_order", "order"),
    )

    ticket: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    order: Mapped[int | None] = mapped_column(BigInteger)
    login: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str | None] = mapped_column(String(64))
    time_msc: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[int] = mapped_column(Integer)
    entry: Mapped[int | None] = mapped_column(Integer)
    magic: Mapped[int | None] = mapped_column(BigInteger)
    position_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[int | None] = mapped_column(Integer)
    volume: Mapped[int | None] = mapped_column(BigInteger)
    price: Mapped[int | None] = mapped_column(BigInteger)
    commission: Mapped[int] = mapped_column(BigInteger)
    swap: Mapped[int] = mapped_column(BigInteger)
    profit: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))


class Posting(Base):
    """One double-entry movement: ``amount`` minor units from ``debit`` to ``credit``."""

    __tablename__ = "postings"
    __table_args__ = (
        Index("ix_postings_login_time", "login", "time_msc"),
    )

    id: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    time_msc: Mapped[int] = mapped_column(BigInteger)
    debit: Mapped[str] = mapped_column(String(64))
    credit: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str | None] = mapped_column(String(32))
    login: Mapped[int | None] = mapped_column(BigInteger)
    deal: Mapped[int | None] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(String(255))


class Symbol(Base):
    __tablename__ = "symbols"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[Any] = mapped_column(JSON)
    updated_seq: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """Margin calls, stop-outs, admin actions: the whole event dict in ``data``."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_login_time", "login", "time_msc"),
        Index("ix_events_login_request", "login", "request_id"),
        Index("ix_events_kind", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    time_msc: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    login: Mapped[int | None] = mapped_column(BigInteger)
    request_id: Mapped[int | None] = mapped_column(BigInteger)  # of an order_result
    data: Mapped[Any] = mapped_column(JSON)


class StagedRows(Base):
    """A bulk booking's rows of one history table, durable as columns until the writer has
    written them into the table (:mod:`cfd.store.staging`)."""

    __tablename__ = "staged_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # the batch's last journal seq
    table_name: Mapped[str] = mapped_column(String(32))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    done_rows: Mapped[int] = mapped_column(BigInteger)  # rows already in the table
    data: Mapped[bytes] = mapped_column(LargeBinary)
