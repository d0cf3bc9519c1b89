"""Idempotency results are looked up, not loaded: ``events.request_id`` and two indexes.

An ``order_result`` event carries its request id in a column of its own, indexed with the
login, so the server finds one retry's first result without reading every result at
start-up; start-up reads only the kinds it needs, through ``(kind, id)``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("request_id", sa.BigInteger(), nullable=True))
    events = sa.table("events", sa.column("id", sa.BigInteger()),
                      sa.column("kind", sa.String()), sa.column("data", sa.JSON()),
                      sa.column("request_id", sa.BigInteger()))
    conn = op.get_bind()
    rows = conn.execute(sa.select(events.c.id, events.c.data)
                        .where(events.c.kind == "order_result")).all()
    for row_id, data in rows:
        if isinstance(data, str):
            data = json.loads(data)
        rid = (data or {}).get("request_id")
        if rid:
            conn.execute(sa.update(events).where(events.c.id == row_id)
                         .values(request_id=int(rid)))
    op.create_index("ix_events_login_request", "events", ["login", "request_id"])
    op.create_index("ix_events_kind", "events", ["kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_kind", table_name="events")
    op.drop_index("ix_events_login_request", table_name="events")
    op.drop_column("events", "request_id")
