"""Indexes of the review UI (contract section 10): newest files, requests by scheduled time,
by merchant, by order reference and by exact e-mail (case-insensitive).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_imports_processed_at", "imports", ["processed_at", "import_id"])
    op.create_index(
        "ix_imports_merchant_processed_at",
        "imports",
        ["merchant_id", "processed_at", "import_id"],
    )
    op.create_index(
        "ix_review_requests_scheduled_at",
        "review_requests",
        ["scheduled_at", "request_id", "request_type"],
    )
    op.create_index(
        "ix_review_requests_merchant_scheduled_at",
        "review_requests",
        ["merchant_id", "scheduled_at", "request_id", "request_type"],
    )
    op.create_index("ix_review_requests_order_ref", "review_requests", ["order_ref"])
    op.create_index(
        "ix_review_requests_email_lower", "review_requests", [sa.func.lower(sa.column("email"))]
    )


def downgrade() -> None:
    op.drop_index("ix_review_requests_email_lower", table_name="review_requests")
    op.drop_index("ix_review_requests_order_ref", table_name="review_requests")
    op.drop_index("ix_review_requests_merchant_scheduled_at", table_name="review_requests")
    op.drop_index("ix_review_requests_scheduled_at", table_name="review_requests")
    op.drop_index("ix_imports_merchant_processed_at", table_name="imports")
    op.drop_index("ix_imports_processed_at", table_name="imports")
