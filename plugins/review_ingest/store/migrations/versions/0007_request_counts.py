"""Tracking (contract section 13) at scale: the rollup ``request_counts`` (requests per
merchant, UTC day of ``scheduled_at``, type, status, and bounce reason of the not delivered),
its sum over the merchants ``request_count_totals``, the triggers on ``review_requests`` that
keep both exact, and the indexes the status filter pages by.

The triggers run inside the transaction of every statement that changes ``review_requests``
(a load, events, a cancellation, an opt-out, an erasure, the retention), so the counts are
never behind. PostgreSQL: statement-level triggers with transition tables, so that the COPY of
a 40,000-row file costs one grouped statement. They only append their changes to
``request_count_changes`` (an insert waits on no one), then fold every change they can see into
the two rollups when the fold lock (a transaction-level advisory lock, tried, never waited
for) is free: writers never wait on each other's rollup rows, so no deadlock between a load and
an events file. Readers add the changes not yet folded. SQLite (one writer at a time): row
triggers that update both rollups directly.

SQLite drops a table's triggers when batch mode copies the table: a later migration that
alters ``review_requests`` there must create them again (``create_triggers``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Held by the transaction folding the changes into the rollups (store.audit's key + 1).
FOLD_LOCK_KEY = 0x5265766965770003
KEY = "merchant_id, day, request_type, status, bounce_reason"
TOTAL_KEY = "day, request_type, status, bounce_reason"
#: The rollup's key of a request, in each dialect's terms (``{r}``: the row's alias).
REQUEST_KEY = {
    "postgresql": (
        "{r}merchant_id, ({r}scheduled_at AT TIME ZONE 'UTC')::date AS day, {r}request_type, "
        "{r}status, CASE WHEN {r}status = 'not_delivered' THEN coalesce({r}bounce_reason, '') "
        "ELSE '' END AS bounce_reason"
    ),
    "sqlite": (
        "{r}merchant_id, date({r}scheduled_at), {r}request_type, {r}status, "
        "CASE WHEN {r}status = 'not_delivered' THEN coalesce({r}bounce_reason, '') ELSE '' END"
    ),
}
PG_KEY = REQUEST_KEY["postgresql"].format(r="")
#: PostgreSQL: (trigger, event, transition tables, the changes of one statement).
PG_TRIGGERS = (
    (
        "request_counts_insert",
        "INSERT",
        "NEW TABLE AS new_rows",
        f"SELECT {PG_KEY}, count(*) FROM new_rows GROUP BY 1, 2, 3, 4, 5",
    ),
    (
        "request_counts_delete",
        "DELETE",
        "OLD TABLE AS old_rows",
        f"SELECT {PG_KEY}, -count(*) FROM old_rows GROUP BY 1, 2, 3, 4, 5",
    ),
    (
        # The rows of an update that changes no key cancel out: nothing is written.
        "request_counts_update",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        f"SELECT {KEY}, sum(n) FROM (SELECT {PG_KEY}, 1 AS n FROM new_rows "
        f"UNION ALL SELECT {PG_KEY}, -1 FROM old_rows) AS d "
        "GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0",
    ),
)
#: Every change this transaction can see, moved into both rollups in one statement.
PG_FOLD = f"""
CREATE FUNCTION request_counts_fold() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock({FOLD_LOCK_KEY}) THEN
        RETURN;
    END IF;
    WITH moved AS (
        DELETE FROM request_count_changes RETURNING {KEY}, requests
    ), merchants AS (
        SELECT {KEY}, sum(requests) AS requests FROM moved GROUP BY 1, 2, 3, 4, 5
    ), per_merchant AS (
        INSERT INTO request_counts AS c ({KEY}, requests)
        SELECT * FROM merchants WHERE requests <> 0
        ON CONFLICT ({KEY}) DO UPDATE SET requests = c.requests + excluded.requests
    )
    INSERT INTO request_count_totals AS t ({TOTAL_KEY}, requests)
    SELECT {TOTAL_KEY}, sum(requests) FROM merchants GROUP BY 1, 2, 3, 4
    HAVING sum(requests) <> 0
    ON CONFLICT ({TOTAL_KEY}) DO UPDATE SET requests = t.requests + excluded.requests;
END $$
"""
SQLITE_KEY_CHANGED = (
    " OR ".join(
        f"OLD.{c} IS NOT NEW.{c}"
        for c in ("merchant_id", "request_type", "status", "bounce_reason")
    )
    + " OR date(OLD.scheduled_at) IS NOT date(NEW.scheduled_at)"
)
SQLITE_OLD_REASON = (
    "CASE WHEN OLD.status = 'not_delivered' THEN coalesce(OLD.bounce_reason, '') ELSE '' END"
)
SQLITE_OLD_TOTAL = (
    "day = date(OLD.scheduled_at) AND request_type = OLD.request_type "
    f"AND status = OLD.status AND bounce_reason = {SQLITE_OLD_REASON}"
)
SQLITE_NEW_KEY = REQUEST_KEY["sqlite"].format(r="NEW.")
SQLITE_ADD = (
    f"INSERT INTO request_counts ({KEY}, requests) SELECT {SQLITE_NEW_KEY}, 1 WHERE true "
    f"ON CONFLICT ({KEY}) DO UPDATE SET requests = requests + 1; "
    f"INSERT INTO request_count_totals ({TOTAL_KEY}, requests) "
    f"SELECT {SQLITE_NEW_KEY.split(', ', 1)[1]}, 1 WHERE true "
    f"ON CONFLICT ({TOTAL_KEY}) DO UPDATE SET requests = requests + 1;"
)
SQLITE_REMOVE = (
    "UPDATE request_counts SET requests = requests - 1 "
    f"WHERE merchant_id = OLD.merchant_id AND {SQLITE_OLD_TOTAL}; "
    f"UPDATE request_count_totals SET requests = requests - 1 WHERE {SQLITE_OLD_TOTAL};"
)
#: SQLite: (trigger, when it runs, its statements), one run per row.
SQLITE_TRIGGERS = (
    ("request_counts_insert", "AFTER INSERT ON review_requests", SQLITE_ADD),
    ("request_counts_delete", "AFTER DELETE ON review_requests", SQLITE_REMOVE),
    (
        "request_counts_update",
        "AFTER UPDATE OF merchant_id, scheduled_at, request_type, status, bounce_reason "
        f"ON review_requests WHEN {SQLITE_KEY_CHANGED}",
        f"{SQLITE_REMOVE} {SQLITE_ADD}",
    ),
)
STATUS_INDEXES = {
    "ix_review_requests_status_scheduled_at": [
        "status",
        "scheduled_at",
        "request_id",
        "request_type",
    ],
    "ix_review_requests_merchant_status_scheduled_at": [
        "merchant_id",
        "status",
        "scheduled_at",
        "request_id",
        "request_type",
    ],
}
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def key_columns(merchant: bool = True) -> list[sa.Column]:
    """The rollups' key columns: frozen copies of models.py's."""
    columns = [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("request_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("bounce_reason", sa.String(255), nullable=False),
    ]
    if merchant:
        columns.insert(0, sa.Column("merchant_id", sa.String(64), nullable=False))
    return columns


def upgrade() -> None:
    for name, columns in STATUS_INDEXES.items():
        op.create_index(name, "review_requests", columns)
    op.create_table(
        "request_counts",
        *key_columns(),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY.split(", "), name="pk_request_counts"),
    )
    op.create_table(
        "request_count_totals",
        *key_columns(merchant=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*TOTAL_KEY.split(", "), name="pk_request_count_totals"),
    )
    op.create_table(
        "request_count_changes",
        sa.Column("change_id", ID_TYPE, sa.Identity(), nullable=False),
        *key_columns(),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("change_id", name="pk_request_count_changes"),
    )
    # Triggers first: creating them locks out writers, so the counts below miss no row.
    create_triggers()
    key = REQUEST_KEY[op.get_context().dialect.name].format(r="")
    op.execute(
        f"INSERT INTO request_counts ({KEY}, requests) "
        f"SELECT {key}, count(*) FROM review_requests GROUP BY 1, 2, 3, 4, 5"
    )
    op.execute(
        f"INSERT INTO request_count_totals ({TOTAL_KEY}, requests) "
        f"SELECT {TOTAL_KEY}, sum(requests) FROM request_counts GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    drop_triggers()
    for table in ("request_count_changes", "request_count_totals", "request_counts"):
        op.drop_table(table)
    for name in STATUS_INDEXES:
        op.drop_index(name, table_name="review_requests")


def create_triggers() -> None:
    """The triggers that keep the rollups exact, in the dialect of the connection."""
    if op.get_context().dialect.name != "postgresql":
        for name, when, statements in SQLITE_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {statements} END")
        return
    op.execute(PG_FOLD)
    for name, event, tables, changes in PG_TRIGGERS:
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"INSERT INTO request_count_changes ({KEY}, requests) {changes}; "
            "PERFORM request_counts_fold(); RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON review_requests "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    op.execute(
        "CREATE FUNCTION request_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "DELETE FROM request_count_changes; DELETE FROM request_counts; "
        "DELETE FROM request_count_totals; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER request_counts_truncate AFTER TRUNCATE ON review_requests "
        "FOR EACH STATEMENT EXECUTE FUNCTION request_counts_truncate()"
    )


def drop_triggers() -> None:
    names = [name for name, *_ in PG_TRIGGERS]
    if op.get_context().dialect.name != "postgresql":
        for name in names:
            op.execute(f"DROP TRIGGER {name}")
        return
    for name in [*names, "request_counts_truncate"]:
        op.execute(f"DROP TRIGGER {name} ON review_requests")
        op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP FUNCTION request_counts_fold()")
