"""The review UI's queries (review_ingest.web.queries) on a real SQLite file and a real
PostgreSQL database: filters, order, paging, capped totals, keyset export, per-day counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from review_ingest.core.outcomes import ImportRecord, Outcome, ReviewRequest
from review_ingest.store.warehouse import engine_for, migrate, save
from review_ingest.web import queries, views
from review_ingest.web.queries import ImportFilters, Paging, RequestFilters

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


def record(
    import_id: str,
    merchant_id: str,
    source: str,
    status: str,
    processed: dt.datetime,
    **counts: int,
) -> ImportRecord:
    return ImportRecord(
        import_id=import_id,
        merchant_id=merchant_id,
        source=source,
        file_name=f"{import_id}.csv",
        sha256=import_id.ljust(64, "0"),
        size_bytes=100,
        template="website_products",
        status=status,
        rejection_code="existing_proofs" if status == "rejected" else None,
        received_at=processed - dt.timedelta(minutes=5),
        processed_at=processed,
        **counts,
    )


def request(
    merchant_id: str,
    order_ref: str,
    email: str,
    scheduled_at: dt.datetime,
    id_product: str | None = None,
) -> ReviewRequest:
    return ReviewRequest(
        merchant_id=merchant_id,
        request_type="product" if id_product else "brand",
        order_ref=order_ref,
        id_product=id_product,
        email=email,
        firstname="Firstname",
        lastname="Lastname",
        language="fr",
        shop_id=None,
        order_date=dt.date(2026, 3, 1),
        scheduled_at=scheduled_at,
    )


#: Processed on 8, 9 (two at the same time: import_id breaks the tie) and 10 March.
IMPORTS = {
    "imp-a": record("imp-a", "acme", "upload", "loaded", at(8, 10), total_rows=10, error_rows=2),
    "imp-b": record("imp-b", "acme", "sftp", "rejected", at(9, 10), total_rows=5, error_rows=1),
    "imp-c": record("imp-c", "zeta", "backfill", "loaded", at(9, 10), total_rows=6),
    "imp-d": record("imp-d", "zeta", "upload", "already_imported", at(10, 8)),
}
REQUESTS = {
    "imp-a": [
        request("acme", "A-1", "Jane.Doe@Example.com", at(9, 23)),  # due; 00:00 in Paris
        request("acme", "A-1", "Jane.Doe@Example.com", at(12), id_product="P1"),  # scheduled
        request("acme", "A-2", "bob@example.org", NOW),  # due: scheduled_at == now is past
    ],
    "imp-c": [
        request("zeta", "Z-1", "jane.doe@example.com", at(11, 5)),
        # Five requests at the same moment: keyset paging must neither skip nor repeat one.
        *(request("zeta", f"Z-{n}", f"z{n}@example.net", at(15)) for n in range(2, 7)),
    ],
}


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    engine = engine_for(warehouse_url)
    migrate(engine)
    for import_id, rec in IMPORTS.items():
        save(engine, Outcome(record=rec, requests=REQUESTS.get(import_id, [])))
    yield engine
    engine.dispose()


def import_ids(page: queries.Page) -> list[str]:
    return [row["import_id"] for row in page.rows]


def refs(rows: Any) -> list[tuple[str, str | None]]:
    return [(row["order_ref"], row["id_product"]) for row in rows]


def list_requests(engine: Engine, **filters: Any) -> queries.Page:
    return queries.list_requests(engine, RequestFilters(**filters), Paging(limit=500), NOW)


# --- imports -------------------------------------------------------------------------------


def test_imports_newest_first_with_every_column(engine: Engine) -> None:
    page = queries.list_imports(engine, ImportFilters(), Paging())

    assert import_ids(page) == ["imp-d", "imp-c", "imp-b", "imp-a"]
    assert (page.total, page.total_is_lower_bound, page.has_more) == (4, False, False)
    first = page.rows[-1]
    every = {c.name for c in IMPORTS["imp-a"].__dataclass_fields__.values()}
    assert set(first.keys()) == every - {"profile"}, "the file's profile is the pipeline's own"
    assert first["processed_at"] == at(8, 10)
    assert (first["total_rows"], first["error_rows"], first["brand_requests"]) == (10, 2, 0)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (ImportFilters(merchant_id="acme"), ["imp-b", "imp-a"]),
        (ImportFilters(status="rejected"), ["imp-b"]),
        (ImportFilters(status="already_imported"), ["imp-d"]),
        (ImportFilters(source="backfill"), ["imp-c"]),
        (ImportFilters(since=dt.date(2026, 3, 9)), ["imp-d", "imp-c", "imp-b"]),
        (ImportFilters(until=dt.date(2026, 3, 9)), ["imp-c", "imp-b", "imp-a"]),
        (ImportFilters(since=dt.date(2026, 3, 9), until=dt.date(2026, 3, 9)), ["imp-c", "imp-b"]),
        (ImportFilters(merchant_id="zeta", source="upload"), ["imp-d"]),
        (ImportFilters(merchant_id="nobody"), []),
        (ImportFilters(since=dt.date.min, until=dt.date.max), ["imp-d", "imp-c", "imp-b", "imp-a"]),
        (ImportFilters(since=dt.date.max), []),
    ],
)
def test_import_filters(engine: Engine, filters: ImportFilters, expected: list[str]) -> None:
    page = queries.list_imports(engine, filters, Paging())
    assert import_ids(page) == expected
    assert page.total == len(expected)


def test_import_paging(engine: Engine) -> None:
    first = queries.list_imports(engine, ImportFilters(), Paging(limit=2))
    second = queries.list_imports(engine, ImportFilters(), Paging(limit=2, offset=2))
    beyond = queries.list_imports(engine, ImportFilters(), Paging(limit=2, offset=10))

    assert (import_ids(first), first.total, first.has_more) == (["imp-d", "imp-c"], 4, True)
    assert (import_ids(second), second.total, second.has_more) == (["imp-b", "imp-a"], 4, False)
    assert (import_ids(beyond), beyond.total, beyond.has_more) == ([], 4, False)


def test_get_import(engine: Engine) -> None:
    row = queries.get_import(engine, "imp-b")
    assert row is not None
    assert (row["merchant_id"], row["status"], row["rejection_code"]) == (
        "acme",
        "rejected",
        "existing_proofs",
    )
    assert queries.get_import(engine, "imp-unknown") is None


# --- requests ------------------------------------------------------------------------------


def test_requests_latest_first_without_names(engine: Engine) -> None:
    page = list_requests(engine)

    assert refs(page.rows) == [
        *(("Z-" + str(n), None) for n in range(6, 1, -1)),  # same time: newest id first
        ("A-1", "P1"),
        ("Z-1", None),
        ("A-2", None),
        ("A-1", None),
    ]
    assert (page.total, page.has_more) == (9, False)
    assert set(page.rows[0].keys()) == {c.key for c in queries.REQUEST_COLUMNS}
    assert not {"firstname", "lastname"} & set(page.rows[0].keys())


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"merchant_id": "acme"}, {("A-1", "P1"), ("A-2", None), ("A-1", None)}),
        # scheduled_at == now is due (past), not scheduled.
        ({"status": "due"}, {("A-2", None), ("A-1", None)}),
        ({"status": "scheduled", "merchant_id": "acme"}, {("A-1", "P1")}),
        ({"request_type": "product"}, {("A-1", "P1")}),
        ({"order_ref": "A-1"}, {("A-1", "P1"), ("A-1", None)}),
        ({"order_ref": "a-1"}, set()),
        # Exact address, trimmed, case-insensitive, whatever the merchant.
        ({"email": "  JANE.doe@EXAMPLE.com "}, {("A-1", "P1"), ("A-1", None), ("Z-1", None)}),
        ({"email": "jane.doe@example.com", "merchant_id": "zeta"}, {("Z-1", None)}),
        ({"email": "jane@example.com"}, set()),
        # Days of scheduled_at in UTC, both ends included.
        ({"scheduled_from": dt.date(2026, 3, 10), "scheduled_to": dt.date(2026, 3, 11)},
         {("A-2", None), ("Z-1", None)}),
        ({"scheduled_to": dt.date(2026, 3, 9)}, {("A-1", None)}),
        ({"scheduled_from": dt.date(2026, 3, 15)}, {(f"Z-{n}", None) for n in range(2, 7)}),
        ({"scheduled_from": dt.date.min, "scheduled_to": dt.date.max, "merchant_id": "acme"},
         {("A-1", "P1"), ("A-2", None), ("A-1", None)}),
    ],
)  # fmt: skip
def test_request_filters(engine: Engine, filters: dict[str, Any], expected: set) -> None:
    page = list_requests(engine, **filters)
    assert set(refs(page.rows)) == expected
    assert (page.total, page.total_is_lower_bound) == (len(expected), False)


def test_request_paging_reaches_every_row_once(engine: Engine) -> None:
    pages = [
        queries.list_requests(engine, RequestFilters(), Paging(limit=4, offset=offset), NOW)
        for offset in (0, 4, 8)
    ]
    assert [len(p.rows) for p in pages] == [4, 4, 1]
    assert [p.has_more for p in pages] == [True, True, False]
    assert {p.total for p in pages} == {9}
    assert refs(r for p in pages for r in p.rows) == refs(list_requests(engine).rows)


def test_email_search_uses_the_lower_email_index(engine: Engine) -> None:
    conditions = queries.request_conditions(RequestFilters(email="Jane.Doe@example.com"), NOW)
    query = select(*queries.REQUEST_COLUMNS).where(*conditions)
    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # A 9-row table is read whole by default: forbid that to see that the index fits.
            connection.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(connection.scalars(text(f"EXPLAIN {sql}")))
        else:
            plan = "\n".join(
                row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            )
    assert "ix_review_requests_email_lower" in plan, plan


def test_total_is_capped_and_flagged_above_the_cap(engine: Engine) -> None:
    big = [
        request("big", f"B-{n}", f"b{n}@example.com", at(20) + dt.timedelta(seconds=n))
        for n in range(queries.TOTAL_CAP + 5)
    ]
    save(engine, Outcome(record=record("imp-big", "big", "upload", "loaded", at(10)), requests=big))
    filters = RequestFilters(merchant_id="big")

    first = queries.list_requests(engine, filters, Paging(limit=10), NOW)
    deep = queries.list_requests(engine, filters, Paging(limit=500, offset=queries.TOTAL_CAP), NOW)
    near = queries.list_requests(engine, filters, Paging(limit=500, offset=9_500), NOW)

    assert (len(first.rows), first.has_more) == (10, True)
    assert (first.total, first.total_is_lower_bound) == (queries.TOTAL_CAP, True)
    # The last page knows the exact count without counting.
    assert (len(deep.rows), deep.has_more) == (5, False)
    assert (deep.total, deep.total_is_lower_bound) == (queries.TOTAL_CAP + 5, False)
    # Capped, and past the cap: at least every row up to the end of this page, and one more.
    assert (near.has_more, near.total, near.total_is_lower_bound) == (True, 10_001, True)
    assert first.rows[0]["order_ref"] == f"B-{queries.TOTAL_CAP + 4}"


def test_iter_requests_gives_every_row_once_in_list_order(engine: Engine) -> None:
    for filters in (
        RequestFilters(),
        RequestFilters(merchant_id="zeta"),
        RequestFilters(status="due"),
    ):
        chunks = list(queries.iter_requests(engine, filters, NOW, chunk=2))
        assert all(0 < len(chunk) <= 2 for chunk in chunks)
        exported = [row for chunk in chunks for row in chunk]
        listed = queries.list_requests(engine, filters, Paging(limit=500), NOW).rows
        assert [r["request_id"] for r in exported] == [r["request_id"] for r in listed]
    assert list(queries.iter_requests(engine, RequestFilters(merchant_id="nobody"), NOW)) == []


# --- per-day counts ------------------------------------------------------------------------


def test_requests_per_utc_day(engine: Engine) -> None:
    days = [dt.date(2026, 3, 9) + dt.timedelta(days=n) for n in range(8)]

    counts = queries.requests_per_day(engine, RequestFilters(), days, NOW)
    acme = queries.requests_per_day(engine, RequestFilters(merchant_id="acme"), days, NOW)
    scheduled = queries.requests_per_day(engine, RequestFilters(status="scheduled"), days, NOW)

    assert [c.day for c in counts] == days
    # 9 March 23:00 UTC counts on the 9th (UTC days), though it is the 10th in Paris.
    assert [c.requests for c in counts] == [1, 1, 1, 1, 0, 0, 5, 0]
    assert [c.requests for c in acme] == [1, 1, 0, 1, 0, 0, 0, 0]
    assert [c.requests for c in scheduled] == [0, 0, 1, 1, 0, 0, 5, 0]
    assert queries.requests_per_day(engine, RequestFilters(), [], NOW) == []
    last = queries.requests_per_day(engine, RequestFilters(), [dt.date.max], NOW)
    assert [c.requests for c in last] == [0]


def test_merchant_activity_per_utc_day(engine: Engine) -> None:
    activity = queries.merchant_activity(engine, dt.date(2026, 3, 8), dt.date(2026, 3, 10))

    got = {(a.merchant_id, a.day): dataclasses.astuple(a.activity) for a in activity}
    assert got == {
        ("acme", dt.date(2026, 3, 8)): (1, 0, 10, 2),
        ("acme", dt.date(2026, 3, 9)): (1, 1, 5, 1),
        ("zeta", dt.date(2026, 3, 9)): (1, 0, 6, 0),
        ("zeta", dt.date(2026, 3, 10)): (1, 0, 0, 0),
    }
    one = queries.merchant_activity(engine, dt.date(2026, 3, 9), dt.date(2026, 3, 9), "acme")
    assert [(a.merchant_id, a.day, a.activity.error_rate) for a in one] == [
        ("acme", dt.date(2026, 3, 9), 0.2)
    ]
    assert queries.Activity().error_rate == 0.0
    assert queries.merchant_activity(engine, dt.date(2026, 3, 11), dt.date.max) == []


def test_requests_withdrawn_by_an_opt_out_have_their_own_status(engine: Engine) -> None:
    from review_ingest.privacy import suppressions

    # Z-2..Z-6 are not yet due at NOW: z3's is withdrawn; a due request never is.
    assert suppressions.suppress(engine, "z3@example.net", None, NOW).requests_withdrawn == 1
    assert suppressions.suppress(engine, "bob@example.org", None, NOW).requests_withdrawn == 0

    assert set(refs(list_requests(engine, status="withdrawn").rows)) == {("Z-3", None)}
    scheduled = set(refs(list_requests(engine, status="scheduled").rows))
    assert ("Z-3", None) not in scheduled and ("Z-4", None) in scheduled
    rows = {row["order_ref"]: row for row in list_requests(engine).rows}
    assert views.request_item(rows["Z-3"], NOW).status == "withdrawn"
    assert views.request_item(rows["Z-4"], NOW).status == "scheduled"
