"""Reading and seeding a test warehouse, and reading request statuses at a settled moment."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

from sqlalchemy import Engine, create_engine, text

#: No request may fall due this soon after a test read the statuses it compares with the UI's.
STATUS_HORIZON = dt.timedelta(minutes=5)


def settled_now(scheduled: list[dt.datetime]) -> dt.datetime:
    """Now, at a moment when none of ``scheduled`` falls due within ``STATUS_HORIZON``.

    A request is ``scheduled`` until its time, then ``due`` (the sample files' requests turn
    due at midnight in Paris). When one is about to, this waits until it has, so that a test
    comparing statuses read now with the UI's answers a moment later sees none change.
    """
    now = dt.datetime.now(dt.UTC)
    soon = [at for at in scheduled if now <= at < now + STATUS_HORIZON]
    if soon:
        time.sleep((max(soon) - now).total_seconds() + 1)
        now = dt.datetime.now(dt.UTC)
    return now


def query(sqlalchemy_url: str, sql: str, **params: object) -> list[tuple]:
    """The rows of one statement on the warehouse at ``sqlalchemy_url``."""
    engine = create_engine(sqlalchemy_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def load_brand_requests(
    engine: Engine,
    merchant_id: str,
    order_refs: list[str],
    scheduled_at: dt.datetime,
    email: str = "jane.secret@example.org",
) -> None:
    """One loaded import of brand requests, due at ``scheduled_at``, written straight into
    the warehouse (a file cannot make a request due in the past: it would be due now)."""
    from review_ingest.core.outcomes import ImportRecord, Outcome, ReviewRequest
    from review_ingest.store import warehouse

    import_id = f"imp-{merchant_id}-{order_refs[0]}"
    record = ImportRecord(
        import_id=import_id,
        merchant_id=merchant_id,
        source="upload",
        file_name="orders.csv",
        sha256=hashlib.sha256(import_id.encode()).hexdigest(),
        size_bytes=1,
        template="website",
        status="loaded",
        rejection_code=None,
        received_at=scheduled_at,
        processed_at=scheduled_at,
        total_rows=len(order_refs),
        valid_rows=len(order_refs),
        brand_requests=len(order_refs),
    )
    requests = [
        ReviewRequest(
            merchant_id,
            "brand",
            ref,
            None,
            email,
            "Secretfirst",
            "Secretname",
            "fr",
            None,
            scheduled_at.date(),
            scheduled_at,
        )  # fmt: skip
        for ref in order_refs
    ]
    warehouse.save(engine, Outcome(record=record, requests=requests))
