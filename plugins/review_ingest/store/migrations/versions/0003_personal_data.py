"""Personal data (contract section 11): the person's fields of a request may become null,
``imports.suppressed_rows``, and the tables ``suppressions`` and ``erasures``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the types in models.py: a migration must not change when the models do.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
PERSONAL = {"email": sa.String(254), "firstname": sa.String(100), "lastname": sa.String(100)}


def counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), server_default="0", nullable=False)


def upgrade() -> None:
    op.add_column("imports", counter("suppressed_rows"))
    _set_personal_nullable(True)
    op.create_table(
        "suppressions",
        sa.Column("suppression_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("email_sha256", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("suppression_id", name="pk_suppressions"),
    )
    op.create_index(
        "uq_suppressions_email_sha256",
        "suppressions",
        ["email_sha256", sa.func.coalesce(sa.column("merchant_id"), "")],
        unique=True,
    )
    op.create_table(
        "erasures",
        sa.Column("erasure_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("erased_at", TIMESTAMP, nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=True),
        counter("requests_deleted"),
        counter("requests_anonymised"),
        counter("files_deleted"),
        sa.PrimaryKeyConstraint("erasure_id", name="pk_erasures"),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.drop_index("uq_suppressions_email_sha256", table_name="suppressions")
    op.drop_table("suppressions")
    _set_personal_nullable(False)
    op.drop_column("imports", "suppressed_rows")


def _set_personal_nullable(nullable: bool) -> None:
    """On SQLite, batch mode copies the table, and the copy loses the expression indexes that
    SQLite's reflection cannot read: they are dropped first and made again on the copy."""
    sqlite = op.get_context().dialect.name == "sqlite"
    if sqlite:
        op.drop_index("uq_review_requests_proof", table_name="review_requests")
        op.drop_index("ix_review_requests_email_lower", table_name="review_requests")
    with op.batch_alter_table("review_requests") as batch:
        for column, type_ in PERSONAL.items():
            batch.alter_column(column, existing_type=type_, nullable=nullable)
    if sqlite:
        _create_expression_indexes()


def _create_expression_indexes() -> None:
    """As 0001 and 0002 made them."""
    op.create_index(
        "uq_review_requests_proof",
        "review_requests",
        ["merchant_id", "order_ref", "request_type", sa.func.coalesce(sa.column("id_product"), "")],
        unique=True,
    )
    op.create_index(
        "ix_review_requests_email_lower", "review_requests", [sa.func.lower(sa.column("email"))]
    )
