"""The warehouse on a SQLite file, no server (contract section 4): engines, what SQLite stores;
the row builders the PostgreSQL half (tests/integration/test_warehouse.py) uses too."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, String, cast, insert, select
from sqlalchemy.exc import IntegrityError

from review_ingest.core.outcomes import ImportRecord, Outcome, ReviewRequest, RowError
from review_ingest.store.models import ImportErrorRow, ReviewRequestRow
from review_ingest.store.warehouse import engine_for, migrate, save

PARIS = ZoneInfo("Europe/Paris")
PROCESSED_AT = dt.datetime(2026, 3, 10, 11, 30, tzinfo=dt.UTC)


# --- builders ------------------------------------------------------------------------------


def import_record(
    import_id: str = "imp-1",
    merchant_id: str = "acme",
    sha256: str = "a" * 64,
    status: str = "loaded",
    **counts: int,
) -> ImportRecord:
    return ImportRecord(
        import_id=import_id,
        merchant_id=merchant_id,
        source="upload",
        file_name="orders.csv",
        sha256=sha256,
        size_bytes=1234,
        template="website_products",
        status=status,
        rejection_code="existing_proofs" if status == "rejected" else None,
        received_at=PROCESSED_AT - dt.timedelta(minutes=5),
        processed_at=PROCESSED_AT,
        **counts,
    )


def brand(order_ref: str, merchant_id: str = "acme", **values: Any) -> ReviewRequest:
    defaults: dict[str, Any] = {
        "email": "jane@example.com",
        "firstname": "Jane",
        "lastname": "Doe",
        "language": "fr",
        "shop_id": None,
        "order_date": dt.date(2026, 3, 9),
        # Due at midnight in Paris: 23:00 UTC the day before (UTC+1 in March).
        "scheduled_at": dt.datetime(2026, 3, 12, tzinfo=PARIS),
    }
    return ReviewRequest(merchant_id, "brand", order_ref, None, **{**defaults, **values})


def product(
    order_ref: str, id_product: str, merchant_id: str = "acme", **values: Any
) -> ReviewRequest:
    request = brand(order_ref, merchant_id, **values)
    request.request_type = "product"
    request.id_product = id_product
    request.name_product = values.get("name_product", f"Product {id_product}")
    return request


def outcome(
    record: ImportRecord,
    requests: list[ReviewRequest] | None = None,
    errors: list[RowError] | None = None,
) -> Outcome:
    return Outcome(record=record, requests=requests or [], errors=errors or [])


def insert_request(engine: Engine, import_id: str, request: ReviewRequest) -> None:
    values = {name: getattr(request, name) for name in ReviewRequest.__dataclass_fields__}
    with engine.begin() as connection:
        connection.execute(
            insert(ReviewRequestRow),
            [{**values, "import_id": import_id, "created_at": PROCESSED_AT}],
        )


# --- engines, and what SQLite stores -------------------------------------------------------


def test_engine_for_uses_psycopg_3_and_one_engine_per_url() -> None:
    url = "postgresql://someone@db.invalid:5432/warehouse"
    assert engine_for(url) is engine_for(url)
    assert engine_for(url).dialect.driver == "psycopg"
    assert engine_for("postgres://someone@db.invalid/warehouse").dialect.driver == "psycopg"


def test_sqlite_enforces_foreign_keys_and_uses_wal(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'new folder' / 'warehouse.db'}")
    migrate(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(ImportErrorRow), [error_values("no-such-import")])


def error_values(import_id: str) -> dict[str, Any]:
    return {"import_id": import_id, "line": 2, "column_name": None, "code": "c", "message": "m"}


def test_sqlite_stores_scheduled_at_as_utc_text(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    save(engine, outcome(import_record(), [brand("ORD-1")]))
    with engine.connect() as connection:
        stored = connection.scalar(select(cast(ReviewRequestRow.scheduled_at, String)))
    assert stored == "2026-03-11 23:00:00.000000"


def test_sqlite_stores_what_sqlalchemy_would_store(tmp_path: Path) -> None:
    """``save`` hands SQLite's driver tuples of its own; each stored value is the text an
    INSERT through SQLAlchemy stores (times, dates, NULLs), so queries read both the same."""
    engine = engine_for(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    full = product(
        "ORD-1",
        "P1",
        shop_id="paris-1",
        url_product="https://shop.example/p1",
        gtin_ean="4006381333931",
        scheduled_at=dt.datetime(2026, 7, 20, 9, 15, 30, 250000, tzinfo=PARIS),
    )
    save(engine, outcome(import_record(), [full, brand("ORD-2", language=None)]))
    save(engine, outcome(import_record("imp-2", sha256="b" * 64)))
    insert_request(engine, "imp-2", replace(full, order_ref="ORD-1B"))
    insert_request(engine, "imp-2", brand("ORD-2B", language=None))
    columns = [c for c in ReviewRequestRow.__table__.columns if c.key != "request_id"]
    query = select(*(cast(c, String).label(c.key) for c in columns)).order_by(
        ReviewRequestRow.request_id
    )
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    saved_1, saved_2, inserted_1, inserted_2 = rows
    for saved, inserted in [(saved_1, inserted_1), (saved_2, inserted_2)]:
        del saved["import_id"], saved["order_ref"], inserted["import_id"], inserted["order_ref"]
        assert saved == inserted
    assert saved_1["scheduled_at"] == "2026-07-20 07:15:30.250000"
    assert saved_1["order_date"] == "2026-03-09"
    assert saved_2["language"] is None
