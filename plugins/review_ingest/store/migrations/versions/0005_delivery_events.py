"""Delivery events (contract section 13): each step's first time on ``review_requests``, the
address hash that lets the work list leave out opted-out addresses, the tables
``delivery_events`` and ``event_files``, and the view ``requests_to_send``. Withdrawn requests
get the contract's status name, ``withdrawn`` (``suppressed`` before).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen copies of the types in models.py: a migration must not change when the models do.
TIMESTAMP = sa.DateTime(timezone=True)
STEP_TIMES = ("sent_at", "delivered_at", "opened_at", "clicked_at", "reviewed_at", "bounced_at")
#: Rows hashed per round trip on SQLite, which has no SHA-256 in SQL.
HASH_BATCH = 5_000
VIEW_COLUMNS = (
    "request_id, import_id, merchant_id, request_type, order_ref, id_product, email, firstname, "
    "lastname, language, shop_id, order_date, scheduled_at, name_product, url_product, "
    "url_image_product, gtin_ean, sku, brand_name"
)
#: Now, in each dialect's own terms: SQLite compares the text SQLAlchemy stores.
NOW = {"postgresql": "now()", "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now')"}


def upgrade() -> None:
    for name in STEP_TIMES:
        op.add_column("review_requests", sa.Column(name, TIMESTAMP, nullable=True))
    op.add_column("review_requests", sa.Column("bounce_reason", sa.String(255), nullable=True))
    op.add_column("review_requests", sa.Column("rating", sa.SmallInteger(), nullable=True))
    op.add_column("review_requests", sa.Column("email_sha256", sa.String(64), nullable=True))
    _hash_addresses()
    op.execute("UPDATE review_requests SET status = 'withdrawn' WHERE status = 'suppressed'")
    op.create_table(
        "delivery_events",
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("loaded_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_delivery_events"),
    )
    op.create_index("ix_delivery_events_request_id", "delivery_events", ["request_id"])
    op.create_index("ix_delivery_events_file_id", "delivery_events", ["file_id"])
    op.create_table(
        "event_files",
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("processed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("file_id", name="pk_event_files"),
    )
    op.create_index("ix_event_files_processed_at", "event_files", ["processed_at"])
    now = NOW[op.get_context().dialect.name]
    op.execute(
        f"CREATE VIEW requests_to_send AS SELECT {VIEW_COLUMNS} FROM review_requests r "
        f"WHERE r.status = 'scheduled' AND r.scheduled_at <= {now} AND r.email IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_sha256 = r.email_sha256 "
        "AND (s.merchant_id IS NULL OR s.merchant_id = r.merchant_id))"
    )


def downgrade() -> None:
    op.execute("DROP VIEW requests_to_send")
    op.drop_index("ix_event_files_processed_at", table_name="event_files")
    op.drop_table("event_files")
    op.drop_index("ix_delivery_events_file_id", table_name="delivery_events")
    op.drop_index("ix_delivery_events_request_id", table_name="delivery_events")
    op.drop_table("delivery_events")
    op.execute("UPDATE review_requests SET status = 'suppressed' WHERE status = 'withdrawn'")
    _drop_request_columns((*STEP_TIMES, "bounce_reason", "rating", "email_sha256"))


def _drop_request_columns(names: tuple[str, ...]) -> None:
    """SQLite (3.35 and later) drops an unindexed column in place; batch mode would copy the
    table and lose the expression indexes that SQLite's reflection cannot read."""
    for name in names:
        op.execute(f"ALTER TABLE review_requests DROP COLUMN {name}")


def _hash_addresses() -> None:
    """``email_sha256`` of the requests already loaded: in SQL on PostgreSQL, in batches here
    on SQLite (privacy.addresses.address_hash's rule, frozen: trimmed, lower-cased)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "UPDATE review_requests SET email_sha256 = "
            "encode(sha256(convert_to(lower(btrim(email)), 'UTF8')), 'hex') "
            "WHERE email IS NOT NULL"
        )
        return
    select = sa.text(
        "SELECT request_id, email FROM review_requests "
        "WHERE email IS NOT NULL AND email_sha256 IS NULL LIMIT :n"
    )
    update = sa.text("UPDATE review_requests SET email_sha256 = :h WHERE request_id = :id")
    while rows := bind.execute(select, {"n": HASH_BATCH}).all():
        bind.execute(update, [{"h": _address_hash(email), "id": id_} for id_, email in rows])


def _address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()
