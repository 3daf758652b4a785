"""The warehouse on a real SQLite file and a real PostgreSQL database (contract section 4)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from review_ingest.core.outcomes import Outcome, ReviewRequest, RowError
from review_ingest.store import warehouse
from review_ingest.store.models import Base, ImportErrorRow, ImportRow, ReviewRequestRow
from review_ingest.store.warehouse import (
    AlreadyImported,
    ProofConflict,
    engine_for,
    known_order_refs,
    loaded_import,
    migrate,
    save,
)
from tests.unit.test_warehouse import (
    PARIS,
    PROCESSED_AT,
    brand,
    import_record,
    insert_request,
    outcome,
    product,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {"imports", "review_requests", "import_errors"}


def count(engine: Engine, model: type[Base], **where: str) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    with engine.connect() as connection:
        return connection.scalar(query)


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    """A migrated, empty warehouse."""
    engine = engine_for(warehouse_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = engine_for(pg_url)
    migrate(engine)
    yield engine
    engine.dispose()


# --- engines and migrations ----------------------------------------------------------------


def test_migrate_creates_the_three_tables_and_is_idempotent(warehouse_url: str) -> None:
    engine = engine_for(warehouse_url)
    assert not TABLES & set(inspect(engine).get_table_names())

    migrate(engine)
    migrate(engine)

    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": warehouse.VERSION_TABLE}
        )
        heads = context.get_current_heads()
    assert len(heads) == 1, "the migrations form one line (each down_revision is the last)"
    assert heads == tuple(warehouse._head_revisions())
    engine.dispose()


@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": warehouse.VERSION_TABLE,
                # SQLite reflects no identity, so only PostgreSQL can compare defaults.
                "compare_server_default": engine.dialect.name == "postgresql",
            },
        )
        assert compare_metadata(context, Base.metadata) == []
    # compare_metadata skips expression and partial indexes: check that each one exists.
    assert {index.name for table in Base.metadata.tables.values() for index in table.indexes} <= (
        index_names(engine)
    )


def index_names(engine: Engine) -> set[str]:
    query = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
        "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
    }[engine.dialect.name]
    with engine.connect() as connection:
        return set(connection.scalars(text(query)))


MIGRATE_SCRIPT = """
import sys
from review_ingest.store import warehouse
engine = warehouse.engine_for(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
warehouse.migrate(engine)
"""


def test_concurrent_migrations_from_several_processes(warehouse_url: str) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_SCRIPT, warehouse_url],
            env=subprocess_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    # Both have imported everything: let them go at the same moment.
    assert [process.stdout.readline() for process in processes] == ["ready\n"] * 2
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    assert TABLES <= set(inspect(engine_for(warehouse_url)).get_table_names())
    engine_for(warehouse_url).dispose()


def subprocess_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
    }


# --- save ----------------------------------------------------------------------------------


def test_save_writes_the_import_its_requests_and_its_errors(engine: Engine) -> None:
    record = import_record(
        total_rows=5,
        valid_rows=3,
        error_rows=2,
        brand_requests=1,
        product_requests=2,
        suppressed_rows=1,
    )
    requests = [
        brand("ORD-1", shop_id="paris-1"),
        product(
            "ORD-1",
            "P1",
            url_product="https://shop.example/p1",
            url_image_product="https://shop.example/p1.jpg",
            gtin_ean="4006381333931",
            sku="SKU-1",
            brand_name="Acme",
            scheduled_at=dt.datetime(2026, 3, 20, 9, 15, tzinfo=PARIS),
        ),
        product("ORD-1", "P2", language=None),
    ]
    errors = [
        RowError(3, "email", "invalid_email", "not an e-mail address"),
        RowError(5, None, "wrong_field_count", "5 fields, the header has 6"),
    ]

    save(engine, outcome(record, requests, errors))

    with engine.connect() as connection:
        stored_import = connection.execute(select(ImportRow)).one()._asdict()
        stored = connection.execute(
            select(ReviewRequestRow).order_by(ReviewRequestRow.id_product.nullsfirst())
        ).all()
        stored_errors = connection.execute(
            select(ImportErrorRow).order_by(ImportErrorRow.line)
        ).all()

    assert stored_import == {
        "import_id": "imp-1", "merchant_id": "acme", "source": "upload",
        "file_name": "orders.csv", "sha256": "a" * 64, "size_bytes": 1234,
        "template": "website_products", "status": "loaded", "rejection_code": None,
        "total_rows": 5, "valid_rows": 3, "error_rows": 2, "duplicate_rows": 0,
        "brand_requests": 1, "product_requests": 2, "suppressed_rows": 1,
        "received_at": dt.datetime(2026, 3, 10, 11, 25, tzinfo=dt.UTC),
        "processed_at": PROCESSED_AT, "warnings": None, "profile": None,
    }  # fmt: skip
    assert len({row.request_id for row in stored}) == 3
    for row, request in zip(stored, requests, strict=True):
        assert row.import_id == "imp-1"
        assert row.status == "scheduled"
        assert row.created_at == PROCESSED_AT
        for name in ReviewRequest.__dataclass_fields__:
            assert getattr(row, name) == getattr(request, name), name
        assert row.scheduled_at.utcoffset() == dt.timedelta(0)
    assert stored[0].scheduled_at == dt.datetime(2026, 3, 11, 23, 0, tzinfo=dt.UTC)
    assert stored[1].scheduled_at == dt.datetime(2026, 3, 20, 8, 15, tzinfo=dt.UTC)
    assert [(e.import_id, e.line, e.column_name, e.code, e.message) for e in stored_errors] == [
        ("imp-1", 3, "email", "invalid_email", "not an e-mail address"),
        ("imp-1", 5, None, "wrong_field_count", "5 fields, the header has 6"),
    ]


@pytest.mark.postgres
def test_postgres_stores_times_as_timestamptz(pg_engine: Engine) -> None:
    columns = {
        (table, column["name"]): column["type"]
        for table in ("imports", "review_requests")
        for column in inspect(pg_engine).get_columns(table)
    }
    for key in [
        ("imports", "received_at"),
        ("imports", "processed_at"),
        ("review_requests", "scheduled_at"),
        ("review_requests", "created_at"),
    ]:
        assert columns[key].timezone is True, key
    save(pg_engine, outcome(import_record(), [brand("ORD-1")]))
    with pg_engine.connect() as connection:
        assert connection.scalar(select(func.pg_typeof(ReviewRequestRow.scheduled_at))) == (
            "timestamp with time zone"
        )


def test_save_keeps_each_request_time_to_the_microsecond(engine: Engine) -> None:
    """Times are written once per distinct instant (as text for COPY): every request keeps its
    own, whatever its time zone, and the same instant in two zones is one value."""
    winter = dt.datetime(2026, 3, 12, 8, 15, 30, 123456, tzinfo=PARIS)
    summer = dt.datetime(2026, 7, 1, 0, 0, 0, 1, tzinfo=PARIS)
    same_as_winter = winter.astimezone(ZoneInfo("America/New_York"))
    requests = [
        brand("ORD-1", scheduled_at=winter),
        brand("ORD-2", scheduled_at=summer),
        brand("ORD-3", scheduled_at=same_as_winter),
        brand("ORD-4", scheduled_at=winter),
    ]
    save(engine, outcome(import_record(), requests))
    query = select(
        ReviewRequestRow.order_ref, ReviewRequestRow.scheduled_at, ReviewRequestRow.created_at
    ).order_by(ReviewRequestRow.order_ref)
    with engine.connect() as connection:
        stored = connection.execute(query).all()
    assert [(ref, at) for ref, at, _ in stored] == [
        ("ORD-1", dt.datetime(2026, 3, 12, 7, 15, 30, 123456, tzinfo=dt.UTC)),
        ("ORD-2", dt.datetime(2026, 6, 30, 22, 0, 0, 1, tzinfo=dt.UTC)),
        ("ORD-3", dt.datetime(2026, 3, 12, 7, 15, 30, 123456, tzinfo=dt.UTC)),
        ("ORD-4", dt.datetime(2026, 3, 12, 7, 15, 30, 123456, tzinfo=dt.UTC)),
    ]
    assert {created for _, _, created in stored} == {PROCESSED_AT}


def test_save_refuses_a_naive_scheduled_at_and_writes_nothing(engine: Engine) -> None:
    naive = brand("ORD-1", scheduled_at=dt.datetime(2026, 3, 12))
    with pytest.raises(ValueError, match="naive"):
        save(engine, outcome(import_record(), [naive]))
    assert count(engine, ImportRow) == 0


def test_a_refused_row_does_not_show_its_personal_data(engine: Engine) -> None:
    bad = brand("ORD-2", order_date=None, firstname="Zoé-Secret")
    with pytest.raises((IntegrityError, psycopg.errors.NotNullViolation)) as raised:
        save(engine, outcome(import_record(), [brand("ORD-1"), bad]))
    shown = "".join(traceback.format_exception(raised.value))
    assert "order_date" in shown
    assert "Zoé-Secret" not in shown and "jane@example.com" not in shown
    assert count(engine, ImportRow) == 0


def test_save_records_rejected_files_too(engine: Engine) -> None:
    errors = [RowError(2, "order_date", "invalid_date", "31-02-2026 is not a date")]
    save(engine, outcome(import_record(status="rejected"), errors=errors))
    assert count(engine, ImportRow, status="rejected") == 1
    assert count(engine, ImportErrorRow) == 1
    assert count(engine, ReviewRequestRow) == 0


# --- one request per proof of purchase -----------------------------------------------------


@pytest.mark.parametrize(
    "again",
    [
        pytest.param(lambda: brand("ORD-1", email="other@example.com"), id="brand"),
        pytest.param(lambda: product("ORD-1", "P1", sku="other"), id="product"),
    ],
)
def test_the_database_refuses_a_second_request_for_the_same_proof(
    engine: Engine, again: Callable[[], ReviewRequest]
) -> None:
    save(engine, outcome(import_record(), [brand("ORD-1"), product("ORD-1", "P1")]))
    save(engine, outcome(import_record("imp-2", sha256="b" * 64, status="rejected")))

    with pytest.raises(IntegrityError):
        insert_request(engine, "imp-2", again())

    insert_request(engine, "imp-2", product("ORD-1", "P2"))  # another product of that order
    assert count(engine, ReviewRequestRow) == 3


def test_another_merchant_may_reuse_an_order_ref(engine: Engine) -> None:
    save(engine, outcome(import_record(), [brand("ORD-1"), product("ORD-1", "P1")]))
    other = [brand("ORD-1", "beta"), product("ORD-1", "P1", "beta")]
    save(engine, outcome(import_record("imp-2", "beta"), other))
    assert count(engine, ReviewRequestRow, order_ref="ORD-1") == 4


def test_proof_conflict_writes_nothing(engine: Engine) -> None:
    save(engine, outcome(import_record(), [brand("ORD-1")]))
    second = outcome(
        import_record("imp-2", sha256="b" * 64),
        [brand("ORD-2"), product("ORD-2", "P1"), brand("ORD-1")],
        [RowError(4, "email", "invalid_email", "not an e-mail address")],
    )
    with pytest.raises(ProofConflict):
        save(engine, second)
    assert count(engine, ImportRow, import_id="imp-2") == 0
    assert count(engine, ReviewRequestRow, import_id="imp-2") == 0
    assert count(engine, ImportErrorRow, import_id="imp-2") == 0


def test_the_same_bytes_load_once_per_merchant(engine: Engine) -> None:
    save(engine, outcome(import_record(), [brand("ORD-1")]))

    with pytest.raises(AlreadyImported) as raised:
        save(engine, outcome(import_record("imp-2"), [brand("ORD-2")]))

    assert raised.value.import_id == "imp-1"
    assert count(engine, ImportRow, import_id="imp-2") == 0
    assert count(engine, ReviewRequestRow, order_ref="ORD-2") == 0
    # Files that did not load are recorded, however many times they come.
    save(engine, outcome(import_record("imp-3", status="already_imported")))
    save(engine, outcome(import_record("imp-4", status="already_imported")))
    save(engine, outcome(import_record("imp-5", "beta"), [brand("ORD-1", "beta")]))
    assert count(engine, ImportRow) == 4


# --- look-ups ------------------------------------------------------------------------------


def test_loaded_import(engine: Engine) -> None:
    assert loaded_import(engine, "acme", "a" * 64) is None
    save(engine, outcome(import_record("imp-0", status="rejected")))
    assert loaded_import(engine, "acme", "a" * 64) is None

    save(engine, outcome(import_record(), [brand("ORD-1")]))

    assert loaded_import(engine, "acme", "a" * 64) == "imp-1"
    assert loaded_import(engine, "beta", "a" * 64) is None
    assert loaded_import(engine, "acme", "b" * 64) is None


def test_known_order_refs(engine: Engine) -> None:
    save(
        engine,
        outcome(import_record(), [brand("ORD-1"), product("ORD-1", "P1"), brand("ORD-2")]),
    )
    save(engine, outcome(import_record("imp-2", "beta"), [brand("ORD-3", "beta")]))

    assert known_order_refs(engine, "acme", ["ORD-1", "ORD-3", "ORD-9"]) == {"ORD-1"}
    assert known_order_refs(engine, "beta", {"ORD-1", "ORD-3"}) == {"ORD-3"}
    assert known_order_refs(engine, "acme", []) == set()


def test_known_order_refs_of_a_40000_row_file(engine: Engine) -> None:
    loaded = [brand(f"ORD-{i:05d}") for i in range(0, 40_000, 1000)]
    save(engine, outcome(import_record(), loaded))
    refs = [f"ORD-{i:05d}" for i in range(40_000)]

    known = known_order_refs(engine, "acme", refs)

    # Its speed at 10 million rows is measured by benchmarks/bench_warehouse.py, not here.
    assert known == {request.order_ref for request in loaded}


def test_known_order_refs_of_a_large_merchant_in_one_query_on_postgresql(engine: Engine) -> None:
    """On PostgreSQL the refs go as one array (a list of 900 bound values per chunk was
    compared element by element with each of the merchant's rows: 50 s for a merchant of
    41,000 requests); SQLite keeps chunks under its bound-parameter limit."""
    loaded = [brand(f"ORD-{i:05d}") for i in range(0, 3000, 2)]
    save(engine, outcome(import_record(), loaded))
    refs = [f"ORD-{i:05d}" for i in range(3000)]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)

    known = known_order_refs(engine, "acme", refs)

    assert known == {request.order_ref for request in loaded}
    lookups = [s for s in statements if "review_requests" in s]
    chunks = 1 if engine.dialect.name == "postgresql" else -(-len(refs) // warehouse.IN_CHUNK)
    assert len(lookups) == chunks


# --- concurrency and crashes (PostgreSQL) --------------------------------------------------


@pytest.mark.postgres
def test_concurrent_files_with_common_order_refs_one_loads(pg_engine: Engine) -> None:
    refs = [f"ORD-{i:05d}" for i in range(3000)]
    outcomes = [
        outcome(import_record("imp-1", sha256="a" * 64), [brand(ref) for ref in refs]),
        outcome(import_record("imp-2", sha256="b" * 64), [brand(ref) for ref in reversed(refs)]),
    ]
    results: list[str] = []
    start = threading.Barrier(2)

    def load(item: Outcome) -> None:
        start.wait()
        try:
            save(pg_engine, item)
            results.append("loaded")
        except ProofConflict:
            results.append("conflict")
        except Exception as exc:  # a deadlock would land here
            results.append(repr(exc))

    threads = [threading.Thread(target=load, args=(item,)) for item in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["conflict", "loaded"]
    assert count(pg_engine, ReviewRequestRow) == len(refs)


CRASH_ORDERS = 100_000  # three requests each: 300,000 rows


def crash_outcome() -> Outcome:
    """A big file (also built by the child process of the crash test, hence deterministic)."""
    requests = []
    for i in range(CRASH_ORDERS):
        ref = f"C{i:06d}"
        requests += [brand(ref), product(ref, "P1"), product(ref, "P2")]
    record = import_record("crash-1", sha256="c" * 64, valid_rows=2 * CRASH_ORDERS)
    record.brand_requests, record.product_requests = CRASH_ORDERS, 2 * CRASH_ORDERS
    return Outcome(record=record, requests=requests)


CRASH_SCRIPT = (
    "import sys; from tests.integration.test_warehouse import crash_outcome; "
    "from review_ingest.store import warehouse as w; "
    "w.save(w.engine_for(sys.argv[1]), crash_outcome())"
)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    pytest.fail(f"gave up after {timeout} s waiting for {what}")


def copy_backend(engine: Engine) -> Any:
    """The backend running a COPY into review_requests in this database, if any."""
    query = text(
        "SELECT pid, wait_event_type FROM pg_stat_activity"
        " WHERE datname = current_database() AND state = 'active'"
        " AND query LIKE 'COPY %review_requests%'"
    )
    with engine.connect() as connection:
        return connection.execute(query).first()


def backend_alive(engine: Engine, pid: int) -> bool:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    with engine.connect() as connection:
        return connection.scalar(query, {"pid": pid}) > 0


@pytest.mark.postgres
def test_a_process_killed_during_its_copy_leaves_nothing(pg_engine: Engine, pg_url: str) -> None:
    # Another transaction holds one order_ref of the big file: the child's COPY blocks there,
    # part-way through its rows, so that it is surely in progress when it is killed.
    holder = pg_engine.connect()
    holder.begin()
    holder.execute(insert(ImportRow), [vars(import_record("holder", sha256="d" * 64))])
    holder.execute(
        insert(ReviewRequestRow),
        [
            {
                **asdict(brand(f"C{CRASH_ORDERS // 2:06d}")),
                "import_id": "holder",
                "created_at": PROCESSED_AT,
            }
        ],
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, pg_url],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    expected = crash_outcome()  # built meanwhile: the same outcome, for the re-run
    try:

        def blocked_copy() -> Any:
            assert child.poll() is None, f"the child ended before its COPY: {child.stderr.read()}"
            backend = copy_backend(pg_engine)
            return backend if backend and backend.wait_event_type == "Lock" else None

        backend = wait_for("the child's COPY", blocked_copy)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        child.kill()
        holder.rollback()
        holder.close()
    wait_for(
        "the killed client's backend to end", lambda: not backend_alive(pg_engine, backend.pid)
    )

    for model in (ImportRow, ReviewRequestRow, ImportErrorRow):
        assert count(pg_engine, model, import_id="crash-1") == 0

    save(pg_engine, expected)
    assert count(pg_engine, ImportRow, import_id="crash-1") == 1
    assert count(pg_engine, ReviewRequestRow, import_id="crash-1") == 3 * CRASH_ORDERS
    with pytest.raises(AlreadyImported):
        save(pg_engine, outcome(import_record("crash-2", sha256="c" * 64)))
    assert count(pg_engine, ReviewRequestRow) == 3 * CRASH_ORDERS


def test_save_writes_every_row_of_a_large_file(engine: Engine) -> None:
    """More rows than one insert chunk, on both back-ends: none lost, none twice."""
    n = 2 * warehouse.INSERT_CHUNK + 7
    big = outcome(
        import_record("big"),
        [brand(f"O{i}") for i in range(n)],
        errors=[RowError(i + 2, "email", "invalid_email", "email is not valid") for i in range(n)],
    )

    warehouse.save(engine, big)

    assert count(engine, ReviewRequestRow, import_id="big") == n
    assert count(engine, ImportErrorRow, import_id="big") == n
