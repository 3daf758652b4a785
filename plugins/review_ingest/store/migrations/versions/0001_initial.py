"""The three tables of contract section 4: imports, review_requests, import_errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types in models.py: a migration must not change when the models do.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def counter(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("import_id", sa.String(40), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("template", sa.String(32), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rejection_code", sa.String(40), nullable=True),
        counter("total_rows"),
        counter("valid_rows"),
        counter("error_rows"),
        counter("duplicate_rows"),
        counter("brand_requests"),
        counter("product_requests"),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("processed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("import_id", name="pk_imports"),
    )
    op.create_index(
        "uq_imports_loaded_sha256",
        "imports",
        ["merchant_id", "sha256"],
        unique=True,
        postgresql_where=sa.text("status = 'loaded'"),
        sqlite_where=sa.text("status = 'loaded'"),
    )

    op.create_table(
        "review_requests",
        sa.Column("request_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("import_id", sa.String(40), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("request_type", sa.String(16), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("id_product", sa.String(64), nullable=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("firstname", sa.String(100), nullable=False),
        sa.Column("lastname", sa.String(100), nullable=False),
        sa.Column("language", sa.String(2), nullable=True),
        sa.Column("shop_id", sa.String(64), nullable=True),
        sa.Column("order_date", sa.Date(), nullable=False),
        sa.Column("scheduled_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(20), server_default="scheduled", nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("name_product", sa.String(255), nullable=True),
        sa.Column("url_product", sa.String(2048), nullable=True),
        sa.Column("url_image_product", sa.String(2048), nullable=True),
        sa.Column("gtin_ean", sa.String(14), nullable=True),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("brand_name", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_review_requests"),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.import_id"], name="fk_review_requests_import_id_imports"
        ),
    )
    op.create_index("ix_review_requests_import_id", "review_requests", ["import_id"])
    op.create_index(
        "uq_review_requests_proof",
        "review_requests",
        ["merchant_id", "order_ref", "request_type", sa.func.coalesce(sa.column("id_product"), "")],
        unique=True,
    )

    op.create_table(
        "import_errors",
        sa.Column("error_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("import_id", sa.String(40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("column_name", sa.String(64), nullable=True),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("error_id", name="pk_import_errors"),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.import_id"], name="fk_import_errors_import_id_imports"
        ),
    )
    op.create_index("ix_import_errors_import_id", "import_errors", ["import_id"])


def downgrade() -> None:
    op.drop_table("import_errors")
    op.drop_table("review_requests")
    op.drop_table("imports")
