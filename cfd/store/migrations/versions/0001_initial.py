"""Initial schema: journal, store meta, snapshots and the query tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_auto_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time_msc", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "store_meta",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("schema_version", sa.String(32), nullable=False),
        sa.Column("head_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_host", sa.String(255), nullable=True),
        sa.Column("lease_pid", sa.BigInteger(), nullable=True),
        sa.Column("lease_acquired_msc", sa.BigInteger(), nullable=True),
        sa.Column("lease_heartbeat_msc", sa.BigInteger(), nullable=True),
    )
    op.bulk_insert(
        sa.table(
            "store_meta",
            sa.column("id", sa.Integer()),
            sa.column("schema_version", sa.String()),
            sa.column("head_seq", sa.BigInteger()),
            sa.column("head_hash", sa.String()),
        ),
        [{"id": 1, "schema_version": "0001", "head_seq": 0, "head_hash": "0" * 64}],
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("state_hash", sa.String(128), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("created_msc", sa.BigInteger(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_snapshots_seq", "snapshots", ["seq"])
    op.create_table(
        "snapshot_chunks",
        sa.Column("snapshot_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("login", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("group", sa.String(255), nullable=True),
        sa.Column("leverage", sa.BigInteger(), nullable=True),
        sa.Column("margin_mode", sa.Integer(), nullable=True),
        sa.Column("margin_so_mode", sa.Integer(), nullable=True),
        sa.Column("margin_so_call", sa.Float(), nullable=True),
        sa.Column("margin_so_so", sa.Float(), nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(16), nullable=True),
        sa.Column("trade_mode", sa.Integer(), nullable=True),
        sa.Column("updated_msc", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "positions",
        sa.Column("ticket", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("login", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time_msc", sa.BigInteger(), nullable=False),
        sa.Column("time_update_msc", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("magic", sa.BigInteger(), nullable=True),
        sa.Column("identifier", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Integer(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("price_open", sa.BigInteger(), nullable=False),
        sa.Column("sl", sa.BigInteger(), nullable=True),
        sa.Column("tp", sa.BigInteger(), nullable=True),
        sa.Column("swap", sa.BigInteger(), nullable=True),
        sa.Column("comment", sa.String(255), nullable=True),
        sa.Column("external_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_positions_login", "positions", ["login"])
    op.create_table(
        "orders",
        sa.Column("ticket", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("login", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time_setup_msc", sa.BigInteger(), nullable=False),
        sa.Column("time_done_msc", sa.BigInteger(), nullable=True),
        sa.Column("time_expiration", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("type_time", sa.Integer(), nullable=True),
        sa.Column("type_filling", sa.Integer(), nullable=True),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("magic", sa.BigInteger(), nullable=True),
        sa.Column("position_id", sa.BigInteger(), nullable=True),
        sa.Column("position_by_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Integer(), nullable=True),
        sa.Column("volume_initial", sa.BigInteger(), nullable=False),
        sa.Column("volume_current", sa.BigInteger(), nullable=False),
        sa.Column("price_open", sa.BigInteger(), nullable=True),
        sa.Column("sl", sa.BigInteger(), nullable=True),
        sa.Column("tp", sa.BigInteger(), nullable=True),
        sa.Column("price_current", sa.BigInteger(), nullable=True),
        sa.Column("price_stoplimit", sa.BigInteger(), nullable=True),
        sa.Column("comment", sa.String(255), nullable=True),
        sa.Column("external_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_orders_login_time_setup", "orders", ["login", "time_setup_msc"])
    op.create_index("ix_orders_login_state", "orders", ["login", "state"])
    op.create_index("ix_orders_position_id", "orders", ["position_id"])
    op.create_table(
        "deals",
        sa.Column("ticket", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("order", sa.BigInteger(), nullable=True),
        sa.Column("login", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("time_msc", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=True),
        sa.Column("magic", sa.BigInteger(), nullable=True),
        sa.Column("position_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Integer(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("commission", sa.BigInteger(), nullable=False),
        sa.Column("swap", sa.BigInteger(), nullable=False),
        sa.Column("profit", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("comment", sa.String(255), nullable=True),
        sa.Column("external_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_deals_login_time", "deals", ["login", "time_msc"])
    op.create_index("ix_deals_position_id", "deals", ["position_id"])
    op.create_index("ix_deals_order", "deals", ["order"])
    op.create_table(
        "postings",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time_msc", sa.BigInteger(), nullable=False),
        sa.Column("debit", sa.String(64), nullable=False),
        sa.Column("credit", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("login", sa.BigInteger(), nullable=True),
        sa.Column("deal", sa.BigInteger(), nullable=True),
        sa.Column("comment", sa.String(255), nullable=True),
    )
    op.create_index("ix_postings_login_time", "postings", ["login", "time_msc"])
    op.create_index("ix_postings_deal", "postings", ["deal"])
    op.create_table(
        "ticks",
        sa.Column("id", _auto_id, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time_msc", sa.BigInteger(), nullable=False),
        sa.Column("bid", sa.BigInteger(), nullable=True),
        sa.Column("ask", sa.BigInteger(), nullable=True),
        sa.Column("last", sa.BigInteger(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=True),
        sa.Column("flags", sa.Integer(), nullable=True),
    )
    op.create_index("ix_ticks_symbol_time", "ticks", ["symbol", "time_msc"])
    op.create_table(
        "tick_stats",
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("time_msc", sa.BigInteger(), nullable=False),
        sa.Column("bid", sa.BigInteger(), nullable=True),
        sa.Column("ask", sa.BigInteger(), nullable=True),
        sa.Column("last", sa.BigInteger(), nullable=True),
        sa.Column("bid_high", sa.BigInteger(), nullable=True),
        sa.Column("bid_low", sa.BigInteger(), nullable=True),
        sa.Column("ask_high", sa.BigInteger(), nullable=True),
        sa.Column("ask_low", sa.BigInteger(), nullable=True),
        sa.Column("tick_count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "symbols",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("updated_seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", _auto_id, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("time_msc", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("login", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_events_login_time", "events", ["login", "time_msc"])


def downgrade() -> None:
    for table in ("events", "symbols", "tick_stats", "ticks", "postings", "deals", "orders",
                  "positions", "accounts", "snapshot_chunks", "snapshots", "store_meta",
                  "journal"):
        op.drop_table(table)
