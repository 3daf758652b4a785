"""Watching the flow: the chained ``audit_log``, the e-mail ``outbox``, and an import's
``warnings`` (signs of a filtered file) with the ``profile`` later files are compared with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen copies of the types in models.py: a migration must not change when the models do.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
PENDING = sa.column("sent_at").is_(None)


def upgrade() -> None:
    op.add_column("imports", sa.Column("warnings", sa.Text(), nullable=True))
    op.add_column("imports", sa.Column("profile", sa.Text(), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("entry_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name="pk_audit_log"),
        sa.UniqueConstraint("entry_hash", name="uq_audit_log_entry_hash"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )
    op.create_index("ix_audit_log_recorded_at", "audit_log", ["recorded_at"])
    op.create_table(
        "outbox",
        sa.Column("message_id", ID_TYPE, sa.Identity(), nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attachment_name", sa.String(255), nullable=True),
        sa.Column("attachment", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("message_id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_audit_log_recorded_at", table_name="audit_log")
    op.drop_table("audit_log")
    # Not batch mode: on SQLite it would copy ``imports``, which other tables reference.
    op.execute("ALTER TABLE imports DROP COLUMN profile")
    op.execute("ALTER TABLE imports DROP COLUMN warnings")
