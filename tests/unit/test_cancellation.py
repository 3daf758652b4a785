"""Cancelling an import (contract section 12) on a SQLite file, in-process: the counts, the
reasons rule, idempotence, the ``cancellations`` record, dry runs, the status ``cancelled`` in
the UI's queries and views and the CSV export, and the existing-proof rule. The command line
and PostgreSQL: tests/integration/test_cancellation_*.py."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from review_ingest.errors import UsageError
from review_ingest.store import cancellations, warehouse
from review_ingest.store.cancellations import ORDER_REASONS, UnknownImport, cancel
from review_ingest.store.models import (
    CANCELLED_STATUS,
    WITHDRAWN_STATUS,
    CancellationRow,
    ReviewRequestRow,
)
from review_ingest.web import csv_export, queries, views
from tests.unit.test_warehouse import brand, import_record, outcome, product

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=2)  # not yet due at NOW
EARLIER = NOW - dt.timedelta(days=1)  # already due at NOW
WHO = "cli:support"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = warehouse.engine_for(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    """Import ``imp-1`` of acme: A (brand and product, not yet due), B (brand, due), C (brand
    not yet due, product due); and ``imp-2`` of acme: D, not yet due."""
    requests = [
        brand("A", scheduled_at=LATER),
        product("A", "P1", scheduled_at=LATER),
        brand("B", scheduled_at=EARLIER),
        brand("C", scheduled_at=LATER),
        product("C", "P2", scheduled_at=EARLIER),
    ]
    warehouse.save(engine, outcome(import_record("imp-1"), requests))
    warehouse.save(
        engine, outcome(import_record("imp-2", sha256="b" * 64), [brand("D", scheduled_at=LATER)])
    )
    return engine


def statuses(engine: Engine) -> dict[tuple[str, str | None], str]:
    query = select(ReviewRequestRow.order_ref, ReviewRequestRow.id_product, ReviewRequestRow.status)
    with engine.connect() as connection:
        return {(ref, product_id): status for ref, product_id, status in connection.execute(query)}


def records(engine: Engine) -> list[dict]:
    query = select(CancellationRow.__table__).order_by(CancellationRow.cancellation_id)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def counts(result: cancellations.CancelResult) -> tuple[int, int, int, int]:
    return result.cancelled, result.already_due, result.already_cancelled, result.not_found


# --- the counts ----------------------------------------------------------------------------


def test_a_whole_import_cancels_every_request_not_yet_due(loaded: Engine) -> None:
    result = cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW)

    assert counts(result) == (3, 2, 0, 0)
    assert statuses(loaded) == {
        ("A", None): CANCELLED_STATUS,
        ("A", "P1"): CANCELLED_STATUS,
        ("B", None): "scheduled",  # already due: left as it is
        ("C", None): CANCELLED_STATUS,
        ("C", "P2"): "scheduled",
        ("D", None): "scheduled",  # another import
    }


def test_order_refs_cancel_only_theirs_and_count_those_not_in_the_import(loaded: Engine) -> None:
    result = cancel(loaded, "imp-1", "refunded", ["A", "B", "D", "Z"], who=WHO, now=NOW)

    assert counts(result) == (2, 1, 0, 2)  # D is in another import, Z nowhere
    assert result.order_refs == ["A", "B", "D", "Z"]
    assert statuses(loaded)[("C", None)] == "scheduled"
    assert statuses(loaded)[("D", None)] == "scheduled"


def test_order_refs_are_trimmed_and_counted_once(loaded: Engine) -> None:
    result = cancel(loaded, "imp-1", "test_order", [" A ", "A", "Z", "Z"], who=WHO, now=NOW)
    assert (result.order_refs, counts(result)) == (["A", "Z"], (2, 0, 0, 1))


def test_a_request_withdrawn_by_an_opt_out_is_cancelled_too(engine: Engine) -> None:
    """Nothing was to be sent either way; cancelled, its order stops being a proof."""
    warehouse.save(engine, outcome(import_record("imp-1"), [brand("A", scheduled_at=LATER)]))
    with engine.begin() as connection:
        connection.execute(ReviewRequestRow.__table__.update().values(status=WITHDRAWN_STATUS))

    assert counts(cancel(engine, "imp-1", "wrong_file", who=WHO, now=NOW)) == (1, 0, 0, 0)
    assert warehouse.known_order_refs(engine, "acme", ["A"]) == set()


# --- the reasons rule ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["wrong_file", "sent twice by mistake", *ORDER_REASONS])
def test_a_whole_import_takes_any_reason(loaded: Engine, reason: str) -> None:
    assert cancel(loaded, "imp-1", reason, who=WHO, now=NOW).cancelled == 3


@pytest.mark.parametrize("reason", ORDER_REASONS)
def test_single_orders_take_the_four_reasons(loaded: Engine, reason: str) -> None:
    assert cancel(loaded, "imp-1", reason, ["A"], who=WHO, now=NOW).cancelled == 2


@pytest.mark.parametrize(
    ("reason", "order_refs", "words"),
    [
        ("wrong_file", ["A"], "refunded, order_cancelled, test_order, duplicate_order"),
        ("Refunded", ["A"], "not allowed"),
        ("", None, "reason"),
        ("   ", ["A"], "reason"),
        ("line\nbreak", None, "control character"),
        ("x" * 101, None, "100 characters"),
        ("jane asked: jane@example.com", None, "no e-mail address"),
        ("refunded", [], "at least one"),
        ("refunded", ["A", " "], "empty"),
        ("refunded", ["A" * 65], "64 characters"),
    ],
)
def test_refused_reasons_and_order_refs_change_nothing(
    loaded: Engine, reason: str, order_refs: list[str] | None, words: str
) -> None:
    before = statuses(loaded)
    with pytest.raises(UsageError, match=words):
        cancel(loaded, "imp-1", reason, order_refs, who=WHO, now=NOW)
    assert statuses(loaded) == before
    assert records(loaded) == []


def test_an_unknown_import_is_a_usage_error_naming_it(loaded: Engine) -> None:
    with pytest.raises(UnknownImport, match="unknown import 'imp-9'"):
        cancel(loaded, "imp-9", "wrong_file", who=WHO, now=NOW)
    assert issubclass(UnknownImport, UsageError)
    assert records(loaded) == []


# --- idempotence, the record, dry runs ----------------------------------------------------


def test_cancelling_again_cancels_nothing_more_and_says_so(loaded: Engine) -> None:
    cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW)
    again = cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW + dt.timedelta(hours=1))
    assert counts(again) == (0, 2, 3, 0)
    assert again.as_dict()["already_cancelled"] == 3

    by_order = cancel(loaded, "imp-1", "refunded", ["A", "B"], who=WHO, now=NOW)
    assert counts(by_order) == (0, 1, 2, 0)


def test_each_cancellation_is_recorded_with_who_when_and_its_counts(loaded: Engine) -> None:
    cancel(loaded, "imp-1", "refunded", ["A", "Z"], who=WHO, now=NOW)
    cancel(loaded, "imp-1", "wrong_file", who="admin", now=LATER)

    first, second = records(loaded)
    assert {k: v for k, v in first.items() if k != "cancellation_id"} == {
        "cancelled_at": NOW,
        "cancelled_by": WHO,
        "import_id": "imp-1",
        "merchant_id": "acme",
        "reason": "refunded",
        "order_refs": json.dumps(["A", "Z"]),
        "cancelled": 2,
        "already_due": 0,
        "already_cancelled": 0,
        "not_found": 1,
    }
    # At LATER, C's brand request is due too: only what is still ahead is cancelled.
    assert (second["cancelled_by"], second["order_refs"]) == ("admin", None)
    assert (second["cancelled"], second["already_due"], second["already_cancelled"]) == (0, 3, 2)


def test_a_dry_run_counts_and_changes_and_records_nothing(loaded: Engine) -> None:
    before = statuses(loaded)

    dry = cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW, dry_run=True)

    assert (dry.dry_run, counts(dry)) == (True, (3, 2, 0, 0))
    assert statuses(loaded) == before
    assert records(loaded) == []
    real = cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW)
    assert counts(real) == counts(dry)
    assert cancel(loaded, "imp-1", "duplicate_order", ["A"], who=WHO, now=NOW, dry_run=True) == (
        cancellations.CancelResult("imp-1", "acme", "duplicate_order", ["A"], True, 0, 0, 2, 0)
    )


def test_the_answer_names_the_command_and_no_person(loaded: Engine) -> None:
    done = cancel(loaded, "imp-1", "refunded", ["A"], who=WHO, now=NOW).as_dict()
    assert done == {
        "command": "cancel",
        "import_id": "imp-1",
        "merchant_id": "acme",
        "reason": "refunded",
        "order_refs": ["A"],
        "dry_run": False,
        "cancelled": 2,
        "already_due": 0,
        "already_cancelled": 0,
        "not_found": 0,
    }
    assert "example.com" not in json.dumps(done)


# --- never due, and shown cancelled --------------------------------------------------------


def test_a_cancelled_request_never_becomes_due(loaded: Engine) -> None:
    cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW)
    much_later = NOW + dt.timedelta(days=30)  # every scheduled_at is past

    def listed(status: queries.RequestStatus | None) -> list[tuple[str, str | None, str]]:
        filters = queries.RequestFilters(status=status)
        page = queries.list_requests(loaded, filters, queries.Paging(), much_later)
        items = views.request_list(page, much_later).items
        rows = [(i.order_ref, i.id_product, i.status) for i in items]
        return sorted(rows, key=lambda row: (row[0], row[1] or ""))

    assert listed("cancelled") == [
        ("A", None, "cancelled"),
        ("A", "P1", "cancelled"),
        ("C", None, "cancelled"),
    ]
    assert listed("due") == [("B", None, "due"), ("C", "P2", "due"), ("D", None, "due")]
    assert listed("scheduled") == []
    assert [i for i in listed(None) if i[2] == "cancelled"] == listed("cancelled")
    assert views.request_status(EARLIER, NOW, CANCELLED_STATUS) == "cancelled"
    assert views.request_status(LATER, NOW, CANCELLED_STATUS) == "cancelled"


def test_the_csv_export_shows_cancelled(loaded: Engine) -> None:
    cancel(loaded, "imp-1", "refunded", ["A"], who=WHO, now=NOW)
    filters = queries.RequestFilters(status="cancelled")
    lines = "".join(
        csv_export.request_lines(queries.iter_requests(loaded, filters, NOW), NOW)
    ).splitlines()
    assert len(lines) == 3
    assert all(";cancelled;" in line and ";A;" in line for line in lines[1:])


def test_the_filter_values_of_the_pages_offer_cancelled() -> None:
    from review_ingest.web import pages

    assert "cancelled" in pages.REQUEST_STATUSES


def test_an_imports_cancellations_newest_first(loaded: Engine) -> None:
    cancel(loaded, "imp-1", "refunded", ["A"], who=WHO, now=NOW)
    cancel(loaded, "imp-1", "wrong_file", who="admin", now=LATER)
    cancel(loaded, "imp-2", "wrong_file", who="admin", now=LATER)

    listed = queries.list_cancellations(loaded, "imp-1")

    assert [(row["cancelled_by"], row["reason"], row["cancelled"]) for row in listed] == [
        ("admin", "wrong_file", 0),
        (WHO, "refunded", 2),
    ]
    item = views.CancellationItem.model_validate(dict(listed[1]))
    assert (item.order_refs, item.not_found) == (["A"], 0)


# --- existing proofs -----------------------------------------------------------------------


def test_an_order_all_cancelled_is_no_longer_a_proof_one_partly_cancelled_still_is(
    loaded: Engine,
) -> None:
    assert warehouse.known_order_refs(loaded, "acme", ["A", "B", "C"]) == {"A", "B", "C"}

    cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW)

    # A: both requests cancelled. B: due, not cancelled. C: brand cancelled, product due.
    assert warehouse.known_order_refs(loaded, "acme", ["A", "B", "C"]) == {"B", "C"}


def test_the_corrected_orders_load_beside_the_cancelled_ones(loaded: Engine) -> None:
    cancel(loaded, "imp-1", "wrong_file", who=WHO, now=NOW)
    corrected = [brand("A", scheduled_at=LATER), product("A", "P1", scheduled_at=LATER)]

    warehouse.save(loaded, outcome(import_record("imp-3", sha256="c" * 64), corrected))

    with loaded.connect() as connection:
        rows = connection.execute(
            select(ReviewRequestRow.import_id, ReviewRequestRow.status)
            .where(ReviewRequestRow.order_ref == "A")
            .order_by(ReviewRequestRow.import_id, ReviewRequestRow.request_id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("imp-1", "cancelled"),
        ("imp-1", "cancelled"),
        ("imp-3", "scheduled"),
        ("imp-3", "scheduled"),
    ]
    # The same proof twice outside the cancelled ones is still refused.
    with pytest.raises(warehouse.ProofConflict):
        warehouse.save(loaded, outcome(import_record("imp-4", sha256="d" * 64), corrected))


def test_the_proof_index_excludes_cancelled_requests_and_the_lookup_uses_it(
    loaded: Engine,
) -> None:
    (index,) = [
        i for i in ReviewRequestRow.__table__.indexes if i.name == "uq_review_requests_proof"
    ]
    for dialect in ("postgresql", "sqlite"):
        where = index.dialect_options[dialect]["where"]
        assert str(where.compile(compile_kwargs={"literal_binds": True})) == (
            "review_requests.status != 'cancelled'"
        )
    with loaded.connect() as connection:
        sql = connection.scalar(
            text("SELECT sql FROM sqlite_master WHERE name = 'uq_review_requests_proof'")
        )
        assert sql.endswith("WHERE status != 'cancelled'")
        query = warehouse.found_query(
            loaded, ReviewRequestRow.order_ref, ["A"], *warehouse.proof_conditions("acme")
        )
        compiled = query.compile(loaded, compile_kwargs={"render_postcompile": True})
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
    assert any("uq_review_requests_proof" in row[-1] for row in plan), plan
