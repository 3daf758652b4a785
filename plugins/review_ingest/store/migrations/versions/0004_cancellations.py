"""Cancelling an import (contract section 12): the table ``cancellations``, and the proof index
``uq_review_requests_proof`` made partial, leaving out cancelled requests, so that a corrected
file can load the proofs of a cancelled one again.

Downgrading fails while a proof has a cancelled request and a live one: the full index cannot
hold both.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copies of the types in models.py: a migration must not change when the models do.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
PROOF_COLUMNS = [
    "merchant_id",
    "order_ref",
    "request_type",
    sa.func.coalesce(sa.column("id_product"), ""),
]
NOT_CANCELLED = sa.column("status") != "cancelled"


def counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), server_default="0", nullable=False)


def upgrade() -> None:
    op.drop_index("uq_review_requests_proof", table_name="review_requests")
    op.create_index(
        "uq_review_requests_proof",
        "review_requests",
        PROOF_COLUMNS,
        unique=True,
        postgresql_where=NOT_CANCELLED,
        sqlite_where=NOT_CANCELLED,
    )
    op.create_table(
        "cancellations",
        sa.Column("cancellation_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("cancelled_at", TIMESTAMP, nullable=False),
        sa.Column("cancelled_by", sa.String(255), nullable=False),
        sa.Column("import_id", sa.String(40), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("order_refs", sa.Text(), nullable=True),
        counter("cancelled"),
        counter("already_due"),
        counter("already_cancelled"),
        counter("not_found"),
        sa.PrimaryKeyConstraint("cancellation_id", name="pk_cancellations"),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.import_id"], name="fk_cancellations_import_id_imports"
        ),
    )
    op.create_index("ix_cancellations_import_id", "cancellations", ["import_id"])


def downgrade() -> None:
    op.drop_index("ix_cancellations_import_id", table_name="cancellations")
    op.drop_table("cancellations")
    op.drop_index("uq_review_requests_proof", table_name="review_requests")
    op.create_index("uq_review_requests_proof", "review_requests", PROOF_COLUMNS, unique=True)
