"""Cancelling an import (contract section 12) on a real SQLite file and a real PostgreSQL
database: migration 0004 on a warehouse holding data, the load path (COPY on PostgreSQL) beside
cancelled requests, the proof lookup on its partial index, one transaction per cancellation."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, bindparam, inspect, text
from sqlalchemy.exc import DBAPIError

from review_ingest.store import warehouse
from review_ingest.store.cancellations import cancel
from review_ingest.store.models import ReviewRequestRow, UtcDateTime
from tests.kit.warehouse import query
from tests.unit.test_warehouse import brand, import_record, outcome, product

NOW = dt.datetime.now(dt.UTC)
LATER = NOW + dt.timedelta(days=3)


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    yield engine
    engine.dispose()


def upgrade(engine: Engine, revision: str) -> None:
    config = warehouse._alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = warehouse._alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def load_at_0003(
    engine: Engine, import_id: str, sha256: str, order_ref: str, scheduled_at: dt.datetime
) -> None:
    """An import and its brand request as revision 0003's columns hold them (today's save()
    writes columns that 0003 does not have)."""
    at = {"at": scheduled_at, "now": NOW}
    stamps = [bindparam(name, type_=UtcDateTime) for name in at]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, "
                "size_bytes, template, status, received_at, processed_at) VALUES (:id, 'acme', "
                "'upload', 'f.csv', :sha, 1, 'website', 'loaded', :now, :now)"
            ).bindparams(*stamps[1:]),
            {"id": import_id, "sha": sha256, "now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO review_requests (import_id, merchant_id, request_type, order_ref, "
                "email, order_date, scheduled_at, status, created_at) VALUES (:id, 'acme', "
                "'brand', :ref, 'a@example.com', :day, :at, 'scheduled', :now)"
            ).bindparams(*stamps),
            {"id": import_id, "ref": order_ref, "day": NOW.date(), **at},
        )


def proof_index(engine: Engine) -> str:
    """The definition of ``uq_review_requests_proof`` as the database holds it."""
    sql = {
        "sqlite": "SELECT sql FROM sqlite_master WHERE name = :name",
        "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = :name",
    }[engine.dialect.name]
    with engine.connect() as connection:
        return connection.scalar(text(sql), {"name": "uq_review_requests_proof"})


def test_upgrade_from_0003_keeps_the_rows_and_makes_the_proof_index_partial(warehouse_url):
    engine = warehouse.engine_for(warehouse_url)
    upgrade(engine, "0003")
    assert "WHERE" not in proof_index(engine)
    load_at_0003(engine, "imp-1", "a" * 64, "A", LATER)
    load_at_0003(engine, "imp-2", "b" * 64, "B", NOW)

    warehouse.migrate(engine)

    assert query(warehouse_url, "SELECT import_id, order_ref, status FROM review_requests") == [
        ("imp-1", "A", "scheduled"),
        ("imp-2", "B", "scheduled"),
    ]
    assert "cancellations" in inspect(engine).get_table_names()
    definition = proof_index(engine)
    assert definition.startswith("CREATE UNIQUE INDEX uq_review_requests_proof")
    assert definition.endswith(
        {
            "sqlite": "WHERE status != 'cancelled'",
            "postgresql": "WHERE ((status)::text <> 'cancelled'::text)",
        }[engine.dialect.name]
    )
    assert cancel(engine, "imp-1", "wrong_file", who="cli:t", now=NOW).cancelled == 1
    warehouse.save(engine, outcome(import_record("imp-3", sha256="c" * 64), [brand("A")]))
    with pytest.raises(warehouse.ProofConflict):
        warehouse.save(engine, outcome(import_record("imp-4", sha256="d" * 64), [brand("B")]))
    engine.dispose()


def test_downgrade_to_0003_and_back(warehouse_url):
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    warehouse.save(engine, outcome(import_record("imp-1"), [brand("A", scheduled_at=LATER)]))

    downgrade(engine, "0003")
    assert "cancellations" not in inspect(engine).get_table_names()
    assert "WHERE" not in proof_index(engine)
    warehouse.migrate(engine)

    assert "WHERE" in proof_index(engine)
    assert query(warehouse_url, "SELECT order_ref FROM review_requests") == [("A",)]
    engine.dispose()


def test_the_load_path_writes_beside_cancelled_requests(engine: Engine, warehouse_url: str) -> None:
    """On PostgreSQL the requests go by COPY, on SQLite by the driver's executemany: both load
    the proofs of a cancelled import again, and both still refuse a live proof twice."""
    requests = [brand("A", scheduled_at=LATER), product("A", "P1", scheduled_at=LATER)]
    warehouse.save(engine, outcome(import_record("imp-1"), requests))
    assert warehouse.known_order_refs(engine, "acme", ["A"]) == {"A"}
    cancel(engine, "imp-1", "wrong_file", who="cli:t", now=NOW)
    assert warehouse.known_order_refs(engine, "acme", ["A"]) == set()

    warehouse.save(engine, outcome(import_record("imp-2", sha256="b" * 64), requests))

    assert warehouse.known_order_refs(engine, "acme", ["A"]) == {"A"}
    with pytest.raises(warehouse.ProofConflict):
        warehouse.save(engine, outcome(import_record("imp-3", sha256="c" * 64), requests))
    assert query(warehouse_url, "SELECT count(*) FROM review_requests") == [(4,)]


def test_an_order_partly_cancelled_is_still_a_proof(engine: Engine) -> None:
    requests = [brand("A", scheduled_at=LATER), product("A", "P1", scheduled_at=NOW)]
    warehouse.save(engine, outcome(import_record("imp-1"), requests))

    done = cancel(engine, "imp-1", "refunded", ["A"], who="cli:t", now=NOW)

    assert (done.cancelled, done.already_due) == (1, 1)
    assert warehouse.known_order_refs(engine, "acme", ["A"]) == {"A"}


@pytest.mark.postgres
def test_the_proof_lookup_uses_the_partial_index_on_postgresql(pg_url: str) -> None:
    engine = warehouse.engine_for(pg_url)
    warehouse.migrate(engine)
    query_ = warehouse.found_query(
        engine,
        ReviewRequestRow.order_ref,
        ["A", "B"],
        *warehouse.proof_conditions("acme"),
    )
    compiled = query_.compile(engine, compile_kwargs={"render_postcompile": True})
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        plan = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars().all()
    assert any("uq_review_requests_proof" in line for line in plan), plan
    engine.dispose()


@pytest.mark.postgres
def test_a_cancellation_that_cannot_be_recorded_cancels_nothing(pg_url: str) -> None:
    engine = warehouse.engine_for(pg_url)
    warehouse.migrate(engine)
    warehouse.save(engine, outcome(import_record("imp-1"), [brand("A", scheduled_at=LATER)]))

    with pytest.raises(DBAPIError):
        cancel(engine, "imp-1", "wrong_file", who="x" * 300, now=NOW)  # too long to record

    assert query(pg_url, "SELECT status FROM review_requests") == [("scheduled",)]
    assert query(pg_url, "SELECT count(*) FROM cancellations") == [(0,)]
    engine.dispose()


@pytest.mark.postgres
def test_two_concurrent_cancellations_count_each_request_once(pg_url: str) -> None:
    engine = warehouse.engine_for(pg_url)
    warehouse.migrate(engine)
    requests = [brand(f"A-{n}", scheduled_at=LATER) for n in range(200)]
    warehouse.save(engine, outcome(import_record("imp-1"), requests))
    results = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        results.append(cancel(engine, "imp-1", "wrong_file", who="cli:t", now=NOW))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted((r.cancelled, r.already_cancelled) for r in results) == [(0, 200), (200, 0)]
    engine.dispose()
