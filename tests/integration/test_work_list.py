"""The mailer's work list, the view ``requests_to_send`` (contract section 13), and the address
hash it relies on, on SQLite and PostgreSQL: each request that must not be sent is left out,
and ``email_sha256`` is written with every load and nulled with the address."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, update

from review_ingest.core.address_hash import address_hash
from review_ingest.privacy import addresses, erasure, retention, suppressions
from review_ingest.store import warehouse, work_list
from review_ingest.store.models import REQUESTS_TO_SEND, ReviewRequestRow
from tests.kit.warehouse import load_brand_requests

JANE = "Jane.Secret@Example.org"
BOB = "bob.other@example.org"
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def engine(warehouse_url: str) -> Engine:
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    return engine


def listed(engine: Engine) -> list[str]:
    return sorted(row["order_ref"] for row in work_list.due_requests(engine))


def set_status(engine: Engine, order_ref: str, **values: object) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(ReviewRequestRow).where(ReviewRequestRow.order_ref == order_ref).values(values)
        )


def hashes(engine: Engine) -> dict[str, str | None]:
    query = select(ReviewRequestRow.order_ref, ReviewRequestRow.email_sha256)
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def test_the_view_has_the_columns_of_its_table(engine: Engine) -> None:
    columns = inspect(engine).get_columns("requests_to_send")
    assert [c["name"] for c in columns] == [c.name for c in REQUESTS_TO_SEND.columns]
    assert "requests_to_send" not in inspect(engine).get_table_names()


def test_due_scheduled_requests_are_listed_the_longest_due_first(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["LATE"], now - 2 * HOUR, email=BOB)
    load_brand_requests(engine, "acme", ["LATER"], now - HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["SOON"], now + HOUR, email=BOB)
    rows = work_list.due_requests(engine)
    assert [row["order_ref"] for row in rows] == ["LATE", "LATER"]
    assert rows[1]["email"] == JANE and rows[1]["scheduled_at"] == now - HOUR
    assert [row["order_ref"] for row in work_list.due_requests(engine, limit=1)] == ["LATE"]


@pytest.mark.parametrize(
    "status", ["cancelled", "withdrawn", "sent", "delivered", "opened", "not_delivered"]
)
def test_a_request_no_longer_scheduled_is_left_out(engine: Engine, status: str) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["KEEP"], now - HOUR, email=BOB)
    load_brand_requests(engine, "acme", ["OUT"], now - HOUR, email=BOB)
    assert listed(engine) == ["KEEP", "OUT"]
    set_status(engine, "OUT", status=status)
    assert listed(engine) == ["KEEP"]


def test_an_erased_address_is_left_out(engine: Engine, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["JANE-1"], now - HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["BOB-1"], now - HOUR, email=BOB)
    erasure.erase(engine, tmp_path, addresses.parse(JANE), None, now)
    assert listed(engine) == ["BOB-1"]


@pytest.mark.parametrize("scope", ["acme", None])
def test_an_address_opted_out_for_its_merchant_or_all_is_left_out(
    engine: Engine, scope: str | None
) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["JANE-1"], now - HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["BOB-1"], now - HOUR, email=BOB)
    suppressions.suppress(engine, addresses.parse(JANE), scope, now)
    assert listed(engine) == ["BOB-1"]


def test_an_address_opted_out_for_another_merchant_is_still_listed(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["ACME-1"], now - HOUR, email=JANE)
    load_brand_requests(engine, "beta", ["BETA-1"], now - HOUR, email=JANE)
    suppressions.suppress(engine, addresses.parse(JANE), "beta", now)
    assert listed(engine) == ["ACME-1"]


# --- the address hash ------------------------------------------------------------------------


def test_a_loaded_request_holds_the_hash_of_its_address(engine: Engine) -> None:
    """Through the load path itself: COPY on PostgreSQL, the driver's executemany on SQLite."""
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["A-1", "A-2"], now + HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["B-1"], now + HOUR, email=BOB)
    assert hashes(engine) == {
        "A-1": address_hash(JANE),
        "A-2": address_hash(JANE),
        "B-1": address_hash(BOB),
    }
    assert address_hash(JANE) == address_hash(" jane.secret@example.ORG ")


def test_the_purge_nulls_the_hash_with_the_address(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["OLD"], now - 40 * 24 * HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["NEW"], now - HOUR, email=JANE)
    assert retention.purge_requests(engine, now - 30 * 24 * HOUR) == 1
    assert hashes(engine) == {"OLD": None, "NEW": address_hash(JANE)}


def test_a_purge_finds_a_request_left_with_its_hash_only(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["OLD"], now - 40 * 24 * HOUR, email=JANE)
    set_status(engine, "OLD", email=None, firstname=None, lastname=None)
    assert retention.purge_requests(engine, now - 30 * 24 * HOUR) == 1
    assert hashes(engine) == {"OLD": None}


def test_an_erasure_nulls_the_hash_with_the_address(engine: Engine, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["DUE"], now - HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["BOB"], now - HOUR, email=BOB)
    result = erasure.erase(engine, tmp_path, addresses.parse(JANE), None, now)
    assert result.requests_anonymised == 1
    assert hashes(engine) == {"DUE": None, "BOB": address_hash(BOB)}
