"""Tracking (contract section 13) in the warehouse, on a real SQLite file and a real PostgreSQL
database: the rollup ``request_counts`` stays equal to a direct count of ``review_requests``
through every path that changes it (loads, delivery events, cancellation, opt-out, erasure,
retention, a rolled-back transaction, migration 0007 itself); each status filter selects
exactly its requests; the funnel's and the chart's counts equal a count of the rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from sqlalchemy import Engine, create_engine, func, select, text, update

from review_ingest.core.events import Event
from review_ingest.core.outcomes import ImportRecord, Outcome, ReviewRequest
from review_ingest.privacy.erasure import erase
from review_ingest.privacy.retention import purge_requests
from review_ingest.privacy.suppressions import suppress
from review_ingest.store import warehouse
from review_ingest.store.cancellations import cancel
from review_ingest.store.events import load_events
from review_ingest.store.models import (
    RequestCountChangeRow,
    RequestCountRow,
    RequestCountTotalRow,
    ReviewRequestRow,
)
from review_ingest.web import queries, views
from review_ingest.web.queries import Paging, RequestFilters, StatusCount
from tests.integration.test_cancellation_warehouse import downgrade, upgrade

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
STATUSES: tuple[str, ...] = get_args(queries.RequestStatus)
BOUNCE = "550 5.1.1 <a***@example.com>: no such user"


def at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


#: (import, merchant, order_ref, id_product, e-mail, scheduled_at): past days, today on both
#: sides of NOW, future days; two merchants, brand and product requests.
REQUESTS = [
    ("imp-a", "acme", "A-1", None, "ann@example.com", at(7, 10)),
    ("imp-a", "acme", "A-1", "P1", "ann@example.com", at(7, 10)),
    ("imp-a", "acme", "A-2", None, "bob@example.com", at(8, 9)),
    ("imp-a", "acme", "A-3", None, "cat@example.com", at(9, 23)),
    ("imp-a", "acme", "A-4", None, "dan@example.com", at(10, 9)),  # today, due
    ("imp-a", "acme", "A-5", None, "eve@example.com", at(10, 15)),  # today, scheduled
    ("imp-a", "acme", "A-6", None, "fay@example.com", at(13)),
    ("imp-a", "acme", "A-6", "P2", "fay@example.com", at(13)),
    ("imp-b", "acme", "B-1", None, "ann@example.com", at(14)),
    ("imp-b", "acme", "B-2", None, "gus@example.com", at(8, 1)),
    ("imp-z", "zeta", "Z-1", None, "hal@example.net", at(6, 8)),
    ("imp-z", "zeta", "Z-2", None, "ivy@example.net", at(7, 8)),
    ("imp-z", "zeta", "Z-3", None, "jon@example.net", at(8, 8)),
    ("imp-z", "zeta", "Z-4", None, "kim@example.net", at(9, 8)),
    ("imp-z", "zeta", "Z-5", None, "lea@example.net", at(9, 9)),
    ("imp-z", "zeta", "Z-6", None, "max@example.net", at(10, 2)),
    ("imp-z", "zeta", "Z-7", None, "ned@example.net", at(10, 20)),
    ("imp-z", "zeta", "Z-8", None, "ola@example.net", at(11)),
    ("imp-z", "zeta", "Z-9", None, "ann@example.com", at(12)),
]
#: The mailer's story: (order_ref, id_product, event type, day of March, reason or rating).
EVENTS = [
    *(
        (ref, product, "sent", 9, None)
        for ref, product in [("A-1", None), ("A-1", "P1"), ("A-2", None), ("A-3", None)]
    ),
    *((f"Z-{n}", None, "sent", 9, None) for n in range(1, 6)),
    ("B-2", None, "sent", 9, None),
    ("A-1", None, "reviewed", 9, 5),  # before its delivered and opened: order does not matter
    ("A-1", None, "delivered", 9, None),
    ("A-1", None, "opened", 9, None),
    ("A-1", "P1", "bounced", 9, BOUNCE),
    ("A-2", None, "delivered", 9, None),
    ("A-3", None, "failed", 9, None),  # no reason given
    ("Z-1", None, "failed", 9, "mailbox full"),
    ("Z-2", None, "clicked", 9, None),
    ("Z-3", None, "bounced", 9, BOUNCE),
    ("Z-4", None, "bounced", 9, "mailbox full"),
    ("Z-4", None, "delivered", 10, None),  # delivered after a soft bounce: delivered
    ("Z-5", None, "opened", 9, None),
]


def record(import_id: str, merchant_id: str) -> ImportRecord:
    return ImportRecord(
        import_id=import_id,
        merchant_id=merchant_id,
        source="upload",
        file_name=f"{import_id}.csv",
        sha256=import_id.ljust(64, "0"),
        size_bytes=100,
        template="website_products",
        status="loaded",
        rejection_code=None,
        received_at=at(5),
        processed_at=at(5),
    )


def save_imports(engine: Engine, import_ids: tuple[str, ...] = ("imp-a", "imp-b", "imp-z")) -> None:
    for import_id in import_ids:
        rows = [r for r in REQUESTS if r[0] == import_id]
        requests = [
            ReviewRequest(
                merchant,
                "product" if product else "brand",
                ref,
                product,
                email,
                "First",
                "Last",
                "fr",
                None,
                dt.date(2026, 3, 1),
                scheduled,
            )  # fmt: skip
            for _, merchant, ref, product, email, scheduled in rows
        ]
        outcome = Outcome(record=record(import_id, rows[0][1]), requests=requests)
        warehouse.save(engine, outcome)


def request_ids(engine: Engine) -> dict[tuple[str, str | None], int]:
    r = ReviewRequestRow
    with engine.connect() as connection:
        rows = connection.execute(select(r.order_ref, r.id_product, r.request_id)).all()
    return {(ref, product): id_ for ref, product, id_ in rows}


def deliver(engine: Engine, events: list[tuple[Any, ...]], file_id: str) -> None:
    """``events`` loaded as one file is, in one transaction, in chunks of 5."""
    ids = request_ids(engine)
    loaded = [
        Event(
            f"{file_id}-{n}",
            str(ids[(ref, product)]),
            kind,
            at(day, 10 + n % 10),
            value if isinstance(value, str) else None,
            value if isinstance(value, int) else None,
        )
        for n, (ref, product, kind, day, value) in enumerate(events)
    ]
    with engine.begin() as connection:
        for start in range(0, len(loaded), 5):
            load_events(connection, file_id, loaded[start : start + 5], NOW)


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def tracked(engine: Engine) -> Engine:
    """The requests loaded, the events delivered, one order cancelled, one address opted out."""
    save_imports(engine)
    deliver(engine, EVENTS, "file-1")
    cancel(engine, "imp-a", "refunded", ["A-6"], who="test", now=NOW)
    suppress(engine, "ola@example.net", "zeta", NOW)
    return engine


# --- what the rows say, counted in Python ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    merchant_id: str
    request_type: str
    order_ref: str
    import_id: str
    email: str | None
    scheduled_at: dt.datetime
    status: str
    bounce_reason: str | None

    @property
    def shown(self) -> str:
        if self.status != "scheduled":
            return self.status
        return "due" if self.scheduled_at <= NOW else "scheduled"

    @property
    def reason(self) -> str:
        return (self.bounce_reason or "") if self.status == "not_delivered" else ""

    def matches(self, f: RequestFilters) -> bool:
        day = self.scheduled_at.date()
        return (
            f.merchant_id in (None, self.merchant_id)
            and f.status in (None, self.shown)
            and f.request_type in (None, self.request_type)
            and f.order_ref in (None, self.order_ref)
            and f.import_id in (None, self.import_id)
            and (f.email is None or (self.email or "").lower() == f.email.strip().lower())
            and (f.scheduled_from is None or f.scheduled_from <= day)
            and (f.scheduled_to is None or day <= f.scheduled_to)
        )


def rows(engine: Engine) -> list[Row]:
    r = ReviewRequestRow
    columns = [getattr(r, f.name) for f in dataclasses.fields(Row)]
    with engine.connect() as connection:
        return [Row(*found) for found in connection.execute(select(*columns))]


def direct(engine: Engine) -> Counter[tuple[Any, ...]]:
    found = rows(engine)
    return Counter(
        (r.merchant_id, r.scheduled_at.date(), r.request_type, r.status, r.reason) for r in found
    )


def summed(engine: Engine, *tables: Any, merchant: bool = True) -> Counter[tuple[Any, ...]]:
    """The rows of ``tables`` added up by key (with or without the merchant)."""
    counted: Counter[tuple[Any, ...]] = Counter()
    with engine.connect() as connection:
        for t in tables:
            key = [t.day, t.request_type, t.status, t.bounce_reason]
            key = [t.merchant_id, *key] if merchant else key
            for *found, n in connection.execute(select(*key, t.requests)):
                counted[tuple(found)] += n
    return +counted  # rows that fell to 0 stay in the tables; they count nothing


def rollup(engine: Engine) -> Counter[tuple[Any, ...]]:
    """Per merchant: the rollup with the changes not yet folded into it."""
    return summed(engine, RequestCountRow, RequestCountChangeRow)


def assert_exact(engine: Engine) -> None:
    counted = direct(engine)
    assert rollup(engine) == counted
    totals = summed(engine, RequestCountTotalRow, RequestCountChangeRow, merchant=False)
    everyone: Counter[tuple[Any, ...]] = Counter()
    for (_, *key), n in counted.items():
        everyone[tuple(key)] += n
    assert totals == everyone


def rows_of(engine: Engine, order_ref: str) -> list[str]:
    return [r.status for r in rows(engine) if r.order_ref == order_ref]


def status_counts(found: list[Row], f: RequestFilters) -> Counter[tuple[str, str]]:
    return Counter((r.shown, r.reason) for r in found if r.matches(f))


# --- the rollup ----------------------------------------------------------------------------


def test_the_rollup_stays_exact_through_every_change(engine: Engine, tmp_path: Path) -> None:
    save_imports(engine)
    assert_exact(engine)
    assert sum(rollup(engine).values()) == len(REQUESTS)

    deliver(engine, EVENTS, "file-1")
    assert_exact(engine)
    assert ("zeta", dt.date(2026, 3, 8), "brand", "not_delivered", BOUNCE) in rollup(engine)
    deliver(engine, EVENTS, "file-1-again")  # the same events under new ids: same statuses
    assert_exact(engine)

    cancel(engine, "imp-a", "refunded", ["A-6"], who="test", now=NOW)
    assert_exact(engine)
    suppress(engine, "ola@example.net", "zeta", NOW)  # Z-8 withdrawn
    assert_exact(engine)
    # An unsubscription withdraws the address's other scheduled requests of that merchant.
    deliver(engine, [("A-1", None, "unsubscribed", 10, None)], "file-2")  # B-1 withdrawn
    deliver(engine, [("B-1", None, "sent", 10, None)], "file-3")  # after it: stays withdrawn
    assert_exact(engine)
    assert rows_of(engine, "B-1") == ["withdrawn"]
    cancel(engine, "imp-z", "wrong_file", None, who="test", now=NOW)  # Z-7, Z-9
    assert_exact(engine)

    erase(engine, tmp_path, "ann@example.com", None, NOW)  # deletes B-1, Z-9; anonymises A-1
    assert rows_of(engine, "B-1") == rows_of(engine, "Z-9") == []
    assert_exact(engine)
    purge_requests(engine, at(9), batch_rows=3)
    assert_exact(engine)

    with engine.begin() as connection:  # a change of day, of merchant, of type
        r = ReviewRequestRow
        connection.execute(update(r).where(r.order_ref == "A-2").values(scheduled_at=at(20)))
        connection.execute(update(r).where(r.order_ref == "Z-5").values(merchant_id="acme"))
        connection.execute(update(r).where(r.order_ref == "Z-6").values(request_type="product"))
    assert_exact(engine)
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(update(ReviewRequestRow).values(status="sent"))
        raise RuntimeError("rolled back")
    assert_exact(engine)

    with engine.begin() as connection:
        connection.execute(ReviewRequestRow.__table__.delete())
    assert rollup(engine) == Counter() == direct(engine)


@pytest.mark.postgres
def test_writers_never_wait_on_the_fold_and_readers_add_what_waits(pg_url: str) -> None:
    """PostgreSQL: while one transaction holds the fold lock (a long events file), a load
    commits without waiting, its changes wait in ``request_count_changes``, and every count
    read meanwhile is exact; the next statement after the commit folds them."""
    engine = warehouse.engine_for(pg_url)
    warehouse.migrate(engine)
    save_imports(engine, ("imp-a",))
    impatient = create_engine(
        pg_url, connect_args={"options": "-c lock_timeout=5000 -c statement_timeout=20000"}
    )
    try:
        with engine.begin() as holding:  # an events file's first chunk: it folds, keeps the lock
            # A-2 is acme's brand request of 8 March, as is B-2 of the load below: their
            # counts are one rollup row, which a load would otherwise wait for.
            holding.execute(update(ReviewRequestRow).where(ReviewRequestRow.order_ref == "A-2")
                            .values(status="sent"))  # fmt: skip
            save_imports(impatient, ("imp-b",))  # would raise on a lock wait
            with impatient.connect() as reading:
                waiting = reading.scalar(select(func.count()).select_from(RequestCountChangeRow))
            assert waiting > 0
            assert_exact(impatient)
            found = rows(impatient)
            for f in (
                RequestFilters(),
                RequestFilters(merchant_id="acme"),
                RequestFilters(status="due", scheduled_to=dt.date(2026, 3, 8)),
            ):
                counted = queries.status_counts(impatient, f, NOW)
                assert Counter({(c.status, c.bounce_reason): c.requests for c in counted}) == (
                    status_counts(found, f)
                ), f
        save_imports(engine, ("imp-z",))
        with engine.connect() as reading:
            assert reading.scalar(select(func.count()).select_from(RequestCountChangeRow)) == 0
        assert_exact(engine)
    finally:
        impatient.dispose()
        engine.dispose()


def test_statuses_after_the_events(tracked: Engine) -> None:
    shown = {(r.order_ref, r.request_type): r.shown for r in rows(tracked)}
    assert shown == {
        ("A-1", "brand"): "reviewed",
        ("A-1", "product"): "not_delivered",
        ("A-2", "brand"): "delivered",
        ("A-3", "brand"): "not_delivered",
        ("A-4", "brand"): "due",
        ("A-5", "brand"): "scheduled",
        ("A-6", "brand"): "cancelled",
        ("A-6", "product"): "cancelled",
        ("B-1", "brand"): "scheduled",
        ("B-2", "brand"): "sent",
        ("Z-1", "brand"): "not_delivered",
        ("Z-2", "brand"): "clicked",
        ("Z-3", "brand"): "not_delivered",
        ("Z-4", "brand"): "delivered",
        ("Z-5", "brand"): "opened",
        ("Z-6", "brand"): "due",
        ("Z-7", "brand"): "scheduled",
        ("Z-8", "brand"): "withdrawn",
        ("Z-9", "brand"): "scheduled",
    }
    assert set(shown.values()) == set(STATUSES)


def test_migration_0007_counts_the_requests_already_there(engine: Engine) -> None:
    downgrade(engine, "0006")
    save_imports(engine, ("imp-a", "imp-z"))
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE review_requests SET status = 'not_delivered', bounce_reason = :r "
                "WHERE order_ref IN ('A-1', 'Z-1')"
            ),  # fmt: skip
            {"r": BOUNCE},
        )
    upgrade(engine, "0007")

    assert_exact(engine)
    assert rollup(engine)[("zeta", dt.date(2026, 3, 6), "brand", "not_delivered", BOUNCE)] == 1
    save_imports(engine, ("imp-b",))  # and the triggers count what comes next
    assert_exact(engine)
    downgrade(engine, "0006")  # without the table, its triggers are gone too: loads still work
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM review_requests WHERE order_ref = 'B-1'"))


# --- filters and counts --------------------------------------------------------------------


def test_each_status_filter_selects_exactly_its_requests(tracked: Engine) -> None:
    found = rows(tracked)
    for status in STATUSES:
        f = RequestFilters(status=status)  # type: ignore[arg-type]
        expected = sorted(r.order_ref + r.request_type for r in found if r.matches(f))

        page = queries.list_requests(tracked, f, Paging(limit=500), NOW)
        chunks = queries.iter_requests(tracked, f, NOW, chunk=2)

        assert sorted(r["order_ref"] + r["request_type"] for r in page.rows) == expected, status
        exported = [row["request_id"] for chunk in chunks for row in chunk]
        assert exported == [r["request_id"] for r in page.rows], status
        assert (page.total, page.total_is_lower_bound) == (len(expected), False), status
        shown = {views.request_status(r["scheduled_at"], NOW, r["status"]) for r in page.rows}
        assert shown == {status}


FILTERS = [
    RequestFilters(),
    RequestFilters(merchant_id="acme"),
    RequestFilters(merchant_id="zeta", request_type="brand"),
    RequestFilters(request_type="product"),
    *(RequestFilters(status=s) for s in STATUSES),  # type: ignore[arg-type]
    RequestFilters(merchant_id="acme", status="due"),
    RequestFilters(merchant_id="zeta", status="scheduled"),
    RequestFilters(scheduled_from=TODAY, scheduled_to=TODAY),
    RequestFilters(scheduled_from=TODAY, status="due"),
    RequestFilters(scheduled_to=TODAY - dt.timedelta(days=1), status="due"),
    RequestFilters(scheduled_from=dt.date(2026, 3, 8), scheduled_to=dt.date(2026, 3, 9)),
    RequestFilters(scheduled_from=dt.date.min, scheduled_to=dt.date.max),
    RequestFilters(scheduled_from=dt.date.max),
    RequestFilters(order_ref="A-1"),
    RequestFilters(order_ref="A-1", status="not_delivered"),
    RequestFilters(email="  ANN@example.com "),
    RequestFilters(import_id="imp-a"),
    RequestFilters(import_id="imp-a", status="due", scheduled_from=TODAY),
    RequestFilters(import_id="imp-nothing"),
]


def test_funnel_and_chart_counts_equal_a_count_of_the_rows(tracked: Engine) -> None:
    found = rows(tracked)
    days = [dt.date(2026, 3, 5) + dt.timedelta(days=n) for n in range(12)]
    for f in FILTERS:
        counted = queries.status_counts(tracked, f, NOW)
        per_day = queries.requests_per_day(tracked, f, days, NOW)

        assert all(c.requests > 0 for c in counted), f
        keys = [(c.status, c.bounce_reason) for c in counted]
        assert len(set(keys)) == len(keys), f
        by_key = Counter(dict(zip(keys, (c.requests for c in counted), strict=True)))
        assert by_key == status_counts(found, f), f
        by_day = Counter(r.scheduled_at.date() for r in found if r.matches(f))
        assert [(d.day, d.requests) for d in per_day] == [(d, by_day[d]) for d in days], f


def test_the_funnel_splits_todays_requests_at_now(tracked: Engine) -> None:
    today = RequestFilters(scheduled_from=TODAY, scheduled_to=TODAY)
    counted = {c.status: c.requests for c in queries.status_counts(tracked, today, NOW)}
    assert (counted["due"], counted["scheduled"]) == (2, 2)  # A-4, Z-6; A-5, Z-7
    later = queries.status_counts(tracked, today, at(10, 23))
    assert {c.status: c.requests for c in later}["due"] == 4


def test_reasons_of_the_not_delivered(tracked: Engine) -> None:
    counted = queries.status_counts(tracked, RequestFilters(status="not_delivered"), NOW)
    assert sorted(counted, key=lambda c: c.bounce_reason) == [
        StatusCount("not_delivered", "", 1),
        StatusCount("not_delivered", BOUNCE, 2),
        StatusCount("not_delivered", "mailbox full", 1),
    ]


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"status": "delivered"}, "ix_review_requests_status_scheduled_at"),
        ({"status": "due"}, "ix_review_requests_status_scheduled_at"),
        (
            {"status": "opened", "merchant_id": "acme"},
            "ix_review_requests_merchant_status_scheduled_at",
        ),
    ],
)
def test_the_status_filter_pages_by_its_index(
    tracked: Engine, filters: dict[str, Any], index: str
) -> None:
    conditions = queries.request_conditions(RequestFilters(**filters), NOW)
    query = (
        select(*queries.REQUEST_COLUMNS)
        .where(*conditions)
        .order_by(ReviewRequestRow.scheduled_at.desc(), ReviewRequestRow.request_id.desc())
        .limit(51)
    )
    sql = str(query.compile(dialect=tracked.dialect, compile_kwargs={"literal_binds": True}))
    with tracked.connect() as connection:
        if tracked.dialect.name == "postgresql":
            # A small table is read whole by default: forbid that to see that the index fits.
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_bitmapscan = off"))
            plan = "\n".join(connection.scalars(text(f"EXPLAIN {sql}")))
        else:
            plan = "\n".join(
                row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            )
    assert index in plan, plan
