"""Loading delivery events (contract section 13) on SQLite and PostgreSQL: each event once,
statuses and step times whatever the order, bounces, ratings, opt-outs, unknown and cancelled
requests, each counted as the file's report counts them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from review_ingest.core.address_hash import address_hash
from review_ingest.core.events import Event
from review_ingest.core.merchants import load_merchants
from review_ingest.privacy import addresses, erasure
from review_ingest.store import events, warehouse, work_list
from review_ingest.store.models import (
    DeliveryEventRow,
    ReviewRequestRow,
    SuppressionRow,
)
from tests.kit.factories import write_merchants, yesterday
from tests.kit.warehouse import load_brand_requests

JANE = "jane.secret@example.org"
BOB = "bob.other@example.org"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def engine(warehouse_url: str) -> Engine:
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    return engine


@pytest.fixture
def ids(engine: Engine) -> dict[str, str]:
    """Requests of acme (Jane: J-1 due, J-2 and J-3 not yet; Bob: B-1 due) and beta (Jane:
    K-1 not yet due), by order_ref: their request_id as the mailer writes it."""
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["J-1"], now - HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["J-2", "J-3"], now + 24 * HOUR, email=JANE)
    load_brand_requests(engine, "acme", ["B-1"], now - HOUR, email=BOB)
    load_brand_requests(engine, "beta", ["K-1"], now + 24 * HOUR, email=JANE)
    query = select(ReviewRequestRow.order_ref, ReviewRequestRow.request_id)
    with engine.connect() as connection:
        return {ref: str(request_id) for ref, request_id in connection.execute(query)}


def event(event_id: str, request_id: str, kind: str, minutes: float = 0, **extra) -> Event:
    return Event(event_id, request_id, kind, T0 + minutes * MINUTE, **extra)


def load(engine: Engine, chunk: list[Event], file_id: str = "file-1") -> events.EventCounts:
    """One chunk in a transaction of its own, as one file's load commits."""
    with engine.begin() as connection:
        return events.load_events(connection, file_id, chunk, dt.datetime.now(dt.UTC))


def request(engine: Engine, request_id: str) -> dict:
    query = select(ReviewRequestRow.__table__).where(ReviewRequestRow.request_id == int(request_id))
    with engine.connect() as connection:
        return dict(connection.execute(query).one()._mapping)


def statuses(engine: Engine) -> dict[str, str]:
    query = select(ReviewRequestRow.order_ref, ReviewRequestRow.status)
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def stored_events(engine: Engine) -> list[tuple]:
    query = select(
        DeliveryEventRow.event_id,
        DeliveryEventRow.request_id,
        DeliveryEventRow.event_type,
        DeliveryEventRow.occurred_at,
        DeliveryEventRow.file_id,
    ).order_by(DeliveryEventRow.event_id)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


# --- each event once -------------------------------------------------------------------------


def test_the_same_chunk_twice_loads_once(engine: Engine, ids: dict[str, str]) -> None:
    j1 = ids["J-1"]
    chunk = [event("e1", j1, "sent"), event("e2", j1, "delivered", 1)]
    first = load(engine, chunk)
    assert (first.loaded, first.skipped_duplicates, first.by_type) == (
        2,
        0,
        {"sent": 1, "delivered": 1},
    )
    again = load(engine, chunk)
    assert (again.loaded, again.skipped_duplicates, again.by_type) == (0, 2, {})
    assert len(stored_events(engine)) == 2
    assert request(engine, j1)["status"] == "delivered"


def test_a_second_file_with_the_same_ids_changes_nothing_first_wins(
    engine: Engine, ids: dict[str, str]
) -> None:
    j1, b1 = ids["J-1"], ids["B-1"]
    load(engine, [event("e1", j1, "sent"), event("e2", j1, "delivered", 1)], "file-1")
    before = request(engine, j1)
    counts = load(
        engine,
        [
            event("e1", j1, "sent", 30),  # same id, another time
            event("e2", b1, "bounced", 2, reason="no"),  # same id, another request and type
            event("e3", b1, "sent", 3),
            event("e3", b1, "reviewed", 4, rating=5),  # repeated in this file: the first wins
        ],
        "file-2",
    )
    assert (counts.loaded, counts.skipped_duplicates, counts.unknown_request) == (1, 3, 0)
    assert counts.by_type == {"sent": 1}
    assert request(engine, j1) == before
    assert request(engine, b1)["status"] == "sent"
    assert stored_events(engine) == [
        ("e1", int(j1), "sent", T0, "file-1"),
        ("e2", int(j1), "delivered", T0 + MINUTE, "file-1"),
        ("e3", int(b1), "sent", T0 + 3 * MINUTE, "file-2"),
    ]


def test_an_event_repeated_across_chunks_of_one_file_loads_once(
    engine: Engine, ids: dict[str, str]
) -> None:
    j1 = ids["J-1"]
    with engine.begin() as connection:
        now = dt.datetime.now(dt.UTC)
        first = events.load_events(connection, "f", [event("e1", j1, "sent")], now)
        second = events.load_events(connection, "f", [event("e1", j1, "opened", 5)], now)
    assert (first.loaded, second.loaded, second.skipped_duplicates) == (1, 0, 1)
    assert request(engine, j1)["status"] == "sent"


# --- statuses and times, whatever the order ----------------------------------------------------


def test_the_furthest_step_wins_whatever_the_order(engine: Engine, ids: dict[str, str]) -> None:
    j1, b1 = ids["J-1"], ids["B-1"]
    load(engine, [event("r", j1, "reviewed", 60, rating=4)], "file-1")
    load(engine, [event("s", j1, "sent", 0)], "file-2")
    row = request(engine, j1)
    assert (row["status"], row["sent_at"], row["reviewed_at"], row["rating"]) == (
        "reviewed",
        T0,
        T0 + 60 * MINUTE,
        4,
    )
    load(engine, [event("o", b1, "opened", 30)], "file-1")
    load(engine, [event("d", b1, "delivered", 2)], "file-2")
    row = request(engine, b1)
    assert (row["status"], row["opened_at"], row["delivered_at"], row["sent_at"]) == (
        "opened",
        T0 + 30 * MINUTE,
        T0 + 2 * MINUTE,
        None,
    )


def test_each_step_keeps_its_first_time(engine: Engine, ids: dict[str, str]) -> None:
    j1 = ids["J-1"]
    load(engine, [event("o2", j1, "opened", 90), event("o3", j1, "opened", 120)])
    load(engine, [event("o1", j1, "opened", 45), event("o4", j1, "opened", 200)])
    load(engine, [event("c1", j1, "clicked", 50), event("c0", j1, "clicked", 46)])
    row = request(engine, j1)
    assert (row["status"], row["opened_at"], row["clicked_at"]) == (
        "clicked",
        T0 + 45 * MINUTE,
        T0 + 46 * MINUTE,
    )


def test_a_bounce_after_sent_is_not_delivered(engine: Engine, ids: dict[str, str]) -> None:
    """The reason is stored masked, even from an Event that ``parse_line`` did not make."""
    j1, b1 = ids["J-1"], ids["B-1"]
    reason = f"550 5.1.1 <{JANE}> unknown"
    load(engine, [event("s", j1, "sent"), event("b", j1, "bounced", 1, reason=reason)])
    row = request(engine, j1)
    assert (row["status"], row["bounced_at"], row["bounce_reason"]) == (
        "not_delivered",
        T0 + MINUTE,
        "550 5.1.1 <j***@example.org> unknown",
    )
    load(engine, [event("f", b1, "failed", 3, reason="421 try later"), event("s2", b1, "sent")])
    assert request(engine, b1)["status"] == "not_delivered"
    assert request(engine, b1)["bounce_reason"] == "421 try later"


def test_a_bounce_after_delivered_stays_delivered(engine: Engine, ids: dict[str, str]) -> None:
    """A step after ``sent`` is known: the bounce does not undo it, whatever the order."""
    j1, b1 = ids["J-1"], ids["B-1"]
    load(engine, [event("s", j1, "sent"), event("d", j1, "delivered", 1)], "file-1")
    load(engine, [event("b", j1, "bounced", 5, reason="late")], "file-2")
    row = request(engine, j1)
    assert (row["status"], row["delivered_at"], row["bounced_at"]) == (
        "delivered",
        T0 + MINUTE,
        T0 + 5 * MINUTE,
    )
    load(engine, [event("b2", b1, "bounced", 5)], "file-1")
    assert request(engine, b1)["status"] == "not_delivered"
    load(engine, [event("o2", b1, "opened", 9)], "file-2")
    assert request(engine, b1)["status"] == "opened"


def test_the_reason_of_the_first_bounce_and_the_rating_of_the_first_review_are_kept(
    engine: Engine, ids: dict[str, str]
) -> None:
    """Loaded latest first: the earliest still wins."""
    j1, b1 = ids["J-1"], ids["B-1"]
    load(engine, [event("b2", j1, "bounced", 20, reason="second")], "file-1")
    load(engine, [event("b0", j1, "failed", 5), event("b1", j1, "bounced", 10, reason="first")])
    assert request(engine, j1)["bounce_reason"] == "first"
    assert request(engine, j1)["bounced_at"] == T0 + 5 * MINUTE
    load(engine, [event("r2", b1, "reviewed", 90, rating=2)], "file-1")
    load(engine, [event("r1", b1, "reviewed", 60, rating=5)], "file-2")
    assert (request(engine, b1)["rating"], request(engine, b1)["reviewed_at"]) == (
        5,
        T0 + 60 * MINUTE,
    )


# --- opt-out ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unsubscribed", "complained"])
def test_an_opt_out_event_puts_the_address_on_the_list_for_that_merchant(
    engine: Engine, ids: dict[str, str], kind: str
) -> None:
    j1 = ids["J-1"]
    counts = load(engine, [event("s", j1, "sent"), event("u", j1, kind, 10)])
    assert counts.opted_out == 1
    with engine.connect() as connection:
        rows = connection.execute(
            select(SuppressionRow.email_sha256, SuppressionRow.merchant_id)
        ).all()
    assert [tuple(r) for r in rows] == [(address_hash(JANE), "acme")]
    # Jane's other acme requests are withdrawn; hers at beta and Bob's are not.
    assert statuses(engine) == {
        "J-1": "sent",
        "J-2": "withdrawn",
        "J-3": "withdrawn",
        "B-1": "scheduled",
        "K-1": "scheduled",
    }
    again = load(engine, [event("u2", j1, "unsubscribed", 20)], "file-2")
    assert (again.opted_out, again.loaded) == (0, 1), "already on the list"


def test_an_opted_out_address_leaves_the_work_list(engine: Engine, ids: dict[str, str]) -> None:
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "acme", ["J-9"], now - 2 * HOUR, email=JANE)
    assert {r["order_ref"] for r in work_list.due_requests(engine)} == {"J-1", "J-9", "B-1"}
    load(engine, [event("s", ids["J-1"], "sent"), event("u", ids["J-1"], "unsubscribed", 1)])
    assert [r["order_ref"] for r in work_list.due_requests(engine)] == ["B-1"]


def test_a_later_file_creates_no_request_for_an_opted_out_address(
    engine: Engine, ids: dict[str, str], warehouse_url: str, tmp_path: Path
) -> None:
    from review_ingest.pipeline.ingest import Ingest

    load(engine, [event("c", ids["J-1"], "complained")])
    merchants = write_merchants(tmp_path / "merchants.yaml", {"acme": "website"})
    orders = tmp_path / "later.csv"
    orders.write_text(
        "order_ref;email;lastname;firstname;order_date;delay;language\n"
        f"L-1;{JANE.upper()};Secretname;Secretfirst;{yesterday():%Y-%m-%d};0;fr\n"
        f"L-2;{BOB};Othername;Otherfirst;{yesterday():%Y-%m-%d};0;fr\n",
        encoding="utf-8",
    )
    ingest = Ingest(tmp_path / "data", load_merchants(merchants), warehouse_url, data_docs=False)
    outcome = ingest.import_file(orders, "acme", "upload")
    ingest.finish(index=False)
    assert (outcome.record.status, outcome.record.suppressed_rows) == ("loaded", 1)
    assert "L-1" not in statuses(engine) and statuses(engine)["L-2"] == "scheduled"


def test_an_erased_address_is_not_put_on_the_list(
    engine: Engine, ids: dict[str, str], tmp_path: Path
) -> None:
    j1 = ids["J-1"]
    erasure.erase(engine, tmp_path, addresses.parse(JANE), "acme", dt.datetime.now(dt.UTC))
    counts = load(engine, [event("u", j1, "unsubscribed")])
    assert (counts.loaded, counts.opted_out) == (1, 0)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(SuppressionRow)) == 0


# --- unknown and cancelled requests ----------------------------------------------------------


def test_events_for_unknown_requests_are_counted_not_stored(
    engine: Engine, ids: dict[str, str], tmp_path: Path
) -> None:
    j2 = ids["J-2"]  # not yet due: the erasure deletes it
    erasure.erase(engine, tmp_path, addresses.parse(JANE), "acme", dt.datetime.now(dt.UTC))
    counts = load(
        engine,
        [
            event("u1", "999999", "sent"),
            event("u2", "abc", "sent"),
            event("u3", "99999999999999999999", "sent"),
            event("u4", "", "sent"),
            event("u5", j2, "sent"),
            event("u5", j2, "delivered"),  # a repeat is a duplicate, known request or not
            event("ok", ids["B-1"], "sent"),
        ],
    )
    assert (counts.loaded, counts.unknown_request, counts.skipped_duplicates) == (1, 5, 1)
    assert [e[0] for e in stored_events(engine)] == ["ok"]


def test_a_known_event_id_naming_an_unknown_request_is_a_duplicate(
    engine: Engine, ids: dict[str, str]
) -> None:
    load(engine, [event("e1", ids["J-1"], "sent")])
    counts = load(engine, [event("e1", "999999", "sent")], "file-2")
    assert (counts.skipped_duplicates, counts.unknown_request) == (1, 0)


@pytest.mark.parametrize("status", ["cancelled", "withdrawn"])
def test_events_after_a_cancel_are_stored_and_the_status_kept(
    engine: Engine, ids: dict[str, str], status: str
) -> None:
    j1 = ids["J-1"]
    with engine.begin() as connection:
        connection.execute(
            update(ReviewRequestRow)
            .where(ReviewRequestRow.request_id == int(j1))
            .values(status=status)
        )
    counts = load(
        engine,
        [event("s", j1, "sent"), event("d", j1, "delivered", 1), event("x", ids["B-1"], "sent")],
    )
    assert (counts.loaded, counts.after_cancel) == (3, 2)
    row = request(engine, j1)
    assert (row["status"], row["sent_at"], row["delivered_at"]) == (status, T0, T0 + MINUTE)
    assert [e[0] for e in stored_events(engine)] == ["d", "s", "x"]


def test_counts_merge_over_a_files_chunks(engine: Engine, ids: dict[str, str]) -> None:
    j1, b1 = ids["J-1"], ids["B-1"]
    total = events.EventCounts()
    total.merge(load(engine, [event("a", j1, "sent"), event("u", b1, "unsubscribed")]))
    total.merge(
        load(engine, [event("a", j1, "sent"), event("b", b1, "sent"), event("z", "x", "sent")])
    )
    assert total == events.EventCounts(
        by_type={"sent": 2, "unsubscribed": 1},
        loaded=3,
        skipped_duplicates=1,
        unknown_request=1,
        after_cancel=0,
        opted_out=1,
    )


# --- the file's record -----------------------------------------------------------------------


def test_a_files_report_is_recorded_and_read_back(engine: Engine) -> None:
    report = {"file_name": "events-1.jsonl", "loaded": 3, "errors": [{"line": 2}]}
    with engine.connect() as connection:
        assert events.file_report(connection, "claim-1") is None
    with engine.begin() as connection:
        events.record_file(
            connection, "claim-1", "events-1.jsonl", "a" * 64, 120, "processed", report, T0
        )
    with engine.connect() as connection:
        assert events.file_report(connection, "claim-1") == report
