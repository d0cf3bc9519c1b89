"""Ticks leave the journal's database: drop ``ticks`` and ``tick_stats``.

Accepted ticks and the bars built from them are stored by ``cfd.marketdata`` (columnar
chunks, in their own database on SQLite), off the writer's transaction; the per-tick rows
written in every batch are no longer written or read. The journal still holds every tick.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_ticks_symbol_time", table_name="ticks")
    op.drop_table("ticks")
    op.drop_table("tick_stats")


def downgrade() -> None:
    _big = sa.BigInteger()
    op.create_table(
        "ticks",
        sa.Column("id", _big.with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time_msc", _big, nullable=False),
        *(sa.Column(k, _big, nullable=True) for k in ("bid", "ask", "last", "volume")),
        sa.Column("flags", sa.Integer(), nullable=True),
    )
    op.create_index("ix_ticks_symbol_time", "ticks", ["symbol", "time_msc"])
    op.create_table(
        "tick_stats",
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("time_msc", _big, nullable=False),
        *(sa.Column(k, _big, nullable=True) for k in (
            "bid", "ask", "last", "bid_high", "bid_low", "ask_high", "ask_low")),
        sa.Column("tick_count", _big, nullable=False),
    )
