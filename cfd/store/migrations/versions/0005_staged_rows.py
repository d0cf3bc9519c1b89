"""``staged_rows``: a bulk booking's history rows, durable as columns until the writer has
written them into their tables (cfd.store.staging).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staged_rows",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("done_rows", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # stored as they come: a block is read once and deleted, and compressing tens of
        # megabytes on the way in cost PostgreSQL 1.6 s of a cascade's 2.3 s of staging
        op.execute("ALTER TABLE staged_rows ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("staged_rows")
