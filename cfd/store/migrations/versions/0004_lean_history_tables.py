"""Leaner query tables: no ``positions`` table, two unread indexes dropped, and on SQLite
the history tables keyed by their rowid.

* ``positions`` (the open positions) is dropped: no read path uses it (the engine answers
  ``positions_get`` from memory, and recovery rebuilds positions from the snapshot and the
  journal); keeping it cost a delete per closed position in a random place of a table as
  large as the book (a stop-out cascade rewrote most of its pages).
* ``ix_postings_deal`` (no query looks postings up by deal) and ``ix_orders_login_state``
  (the open orders of a login are found through ``ix_orders_login_time_setup``, whose
  first column is the login) are dropped.
* SQLite: ``deals.ticket``, ``orders.ticket``, ``postings.id`` and ``accounts.login`` become
  ``INTEGER PRIMARY KEY`` (the table's rowid) instead of ``BIGINT`` with a separate unique
  index: one B-tree less per row written, the same values. PostgreSQL keeps ``bigint``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ROWID_KEYS = (("deals", "ticket"), ("orders", "ticket"), ("postings", "id"),
               ("accounts", "login"))


def _retype_keys(new: sa.types.TypeEngine, old: sa.types.TypeEngine) -> None:
    """SQLite: rebuild each table with its key column of type ``new`` (copying the rows;
    the table's indexes are rebuilt with it)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, key in _ROWID_KEYS:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column(key, type_=new, existing_type=old, existing_nullable=False)


def upgrade() -> None:
    op.drop_index("ix_positions_login", table_name="positions")
    op.drop_table("positions")
    op.drop_index("ix_postings_deal", table_name="postings")
    op.drop_index("ix_orders_login_state", table_name="orders")
    _retype_keys(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    """The positions table comes back empty (the engine no longer writes it)."""
    _retype_keys(sa.BigInteger(), sa.Integer())
    op.create_index("ix_orders_login_state", "orders", ["login", "state"])
    op.create_index("ix_postings_deal", "postings", ["deal"])
    _big = sa.BigInteger()
    op.create_table(
        "positions",
        sa.Column("ticket", _big, primary_key=True, autoincrement=False),
        sa.Column("login", _big, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time_msc", _big, nullable=False),
        sa.Column("time_update_msc", _big, nullable=True),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("magic", _big, nullable=True),
        sa.Column("identifier", _big, nullable=True),
        sa.Column("reason", sa.Integer(), nullable=True),
        sa.Column("volume", _big, nullable=False),
        sa.Column("price_open", _big, nullable=False),
        sa.Column("sl", _big, nullable=True),
        sa.Column("tp", _big, nullable=True),
        sa.Column("swap", _big, nullable=True),
        sa.Column("comment", sa.String(255), nullable=True),
        sa.Column("external_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_positions_login", "positions", ["login"])
