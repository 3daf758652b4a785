"""The warehouse: engines, schema migrations, and the one-transaction load of a processed file.

Any SQLAlchemy URL works (contract section 7). On PostgreSQL through psycopg 3, requests and
errors are streamed with COPY; on SQLite they go to its driver's executemany as tuples;
elsewhere through SQLAlchemy's executemany.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from review_ingest.core import outcomes, warnings
from review_ingest.store import audit
from review_ingest.store.models import (
    CANCELLED_STATUS,
    ImportErrorRow,
    ImportRow,
    ReviewRequestRow,
    UtcDateTime,
    to_utc,
)

log = logging.getLogger(__name__)

VERSION_TABLE = "review_ingest_alembic_version"  # not alembic_version: Airflow's own table
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any bigint will do, as long as every process that migrates uses the same one.
MIGRATION_LOCK_KEY = 0x5265766965770001
# SQLite before 3.32 allowed 999 bound parameters per statement.
IN_CHUNK = 900
SQLITE_BUSY_TIMEOUT_SECONDS = 60

_REQUEST_FIELDS = tuple(f.name for f in fields(outcomes.ReviewRequest) if f.name != "scheduled_at")
_request_values = attrgetter(*_REQUEST_FIELDS)
REQUEST_COLUMNS = ("import_id", "status", "created_at", "scheduled_at", *_REQUEST_FIELDS)
ERROR_COLUMNS = ("import_id", "line", "column_name", "code", "message")
INSERT_CHUNK = 5000


class ProofConflict(Exception):
    """Another file of the merchant loaded one of these order_refs first; nothing was written."""


class AlreadyImported(Exception):
    """The same bytes were already loaded for this merchant, as import ``import_id``."""

    def __init__(self, import_id: str) -> None:
        super().__init__(f"these bytes were already loaded as import {import_id}")
        self.import_id = import_id


@functools.cache
def engine_for(url: str) -> Engine:
    """The engine of a warehouse URL, one per URL and process.

    Errors never show their parameters: a row's parameters hold e-mails and names.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgres", "postgresql"):
        # save() streams with psycopg 3's COPY, whatever driver the URL names.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)


def _sqlite_engine(url: URL) -> Engine:
    database = _sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)  # an empty data folder works
    engine = create_engine(
        url, hide_parameters=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys are off by default in SQLite; WAL lets readers run while a file loads.

    Switching a new database to WAL needs an exclusive lock that SQLite's busy timeout does not
    wait for: when another process holds the database (its first migration), try again.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.close()


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None in memory or for ``file:`` URIs."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (an empty database works).

    Cheap when already there. Concurrent callers queue on a lock (an advisory lock on
    PostgreSQL, a lock file next to a SQLite database): the first one migrates, the next ones
    then find the schema up to date.
    """
    if set(_schema_revisions(engine)) == set(_head_revisions()):
        return
    with _migration_lock(engine) as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _schema_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_heads()


@functools.cache
def _head_revisions() -> tuple[str, ...]:
    return ScriptDirectory.from_config(_alembic_config()).get_heads()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one migrating process holds at a time."""
    with ExitStack() as stack:
        database = _sqlite_file(engine.url) if engine.dialect.name == "sqlite" else None
        if database is not None:
            lock_file = stack.enter_context(open(f"{database}.migrate-lock", "a"))
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        connection = stack.enter_context(engine.begin())
        if engine.dialect.name == "postgresql":
            # Released by the commit or rollback, or when the process dies.
            connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        yield connection


def loaded_import(engine: Engine, merchant_id: str, sha256: str) -> str | None:
    """The import that already loaded these bytes for this merchant, if any."""
    query = select(ImportRow.import_id).where(
        ImportRow.merchant_id == merchant_id,
        ImportRow.sha256 == sha256,
        ImportRow.status == "loaded",
    )
    with engine.connect() as connection:
        return connection.scalar(query)


def import_record(engine: Engine, import_id: str) -> outcomes.ImportRecord | None:
    """The ``imports`` row of ``import_id``, None when no transaction committed it."""
    with engine.connect() as connection:
        row = connection.execute(
            select(ImportRow.__table__).where(ImportRow.import_id == import_id)
        ).first()
    if row is None:
        return None
    values = row._mapping
    return outcomes.ImportRecord(**{f.name: values[f.name] for f in fields(outcomes.ImportRecord)})


def recent_loaded_files(
    engine: Engine, merchant_id: str, limit: int, tz: dt.tzinfo
) -> list[warnings.PastFile]:
    """The merchant's last ``limit`` loaded files, newest first, each with the weekday (in
    ``tz``) it was processed on: what a new file is compared with (``core.warnings``)."""
    query = (
        select(ImportRow.valid_rows, ImportRow.profile, ImportRow.processed_at)
        .where(ImportRow.merchant_id == merchant_id, ImportRow.status == "loaded")
        .order_by(ImportRow.processed_at.desc(), ImportRow.import_id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        warnings.PastFile(
            row.valid_rows,
            warnings.read_profile(row.profile),
            row.processed_at.astimezone(tz).weekday(),
        )
        for row in rows
    ]


def known_order_refs(engine: Engine, merchant_id: str, order_refs: Collection[str]) -> set[str]:
    """Those of ``order_refs`` that already have a request of this merchant, not cancelled."""
    return found(engine, ReviewRequestRow.order_ref, order_refs, *proof_conditions(merchant_id))


def proof_conditions(merchant_id: str) -> tuple[ColumnElement[bool], ...]:
    """The requests that prove an order of ``merchant_id`` was imported: all but cancelled ones.

    The status is written into the SQL, not bound: only then may the planner (PostgreSQL's, for
    a generic plan, and SQLite's) use the partial index ``uq_review_requests_proof``.
    """
    return (
        ReviewRequestRow.merchant_id == merchant_id,
        ReviewRequestRow.status != literal(CANCELLED_STATUS, literal_execute=True),
    )


def found(
    engine: Engine,
    column: ColumnElement[str],
    values: Collection[str],
    *where: ColumnElement[bool],
) -> set[str]:
    """Those of ``values`` that ``column`` holds in a row matching ``where``.

    On PostgreSQL one query, whatever the number of values; elsewhere chunks of ``IN_CHUNK``.
    """
    wanted = sorted(set(values))
    chunk = max(len(wanted), 1) if engine.dialect.name == "postgresql" else IN_CHUNK
    result: set[str] = set()
    with engine.connect() as connection:
        for start in range(0, len(wanted), chunk):
            query = found_query(engine, column, wanted[start : start + chunk], *where)
            result.update(connection.scalars(query))
    return result


def found_query(
    engine: Engine,
    column: ColumnElement[str],
    values: Sequence[str],
    *where: ColumnElement[bool],
) -> Select[tuple[str]]:
    """One query of ``found`` (apart so that benchmarks can show its plan).

    On PostgreSQL the values go as one array parameter, ``column = ANY(:values)``, filtered with
    a hash when the plan scans the rows ``where`` selects; a list ``IN (:p1, ...)`` is compared
    element by element with each of those rows, quadratic for a merchant with a long history.
    """
    if engine.dialect.name == "postgresql":
        matches = column == any_(bindparam("values", list(values), ARRAY(String)))
    else:
        matches = column.in_(values)
    return select(column).distinct().where(*where, matches)


def save(
    engine: Engine,
    outcome: outcomes.Outcome,
    *,
    actor: str | None = None,
    also: Callable[[Connection], object] | None = None,
) -> None:
    """Write a processed file in one transaction: its imports row, requests and errors, and its
    entry in the audit trail on behalf of ``actor`` (None: ``audit.process_actor()``); ``also``
    writes what must commit with them (the merchant's e-mail in the outbox).

    Raises AlreadyImported when these bytes were loaded for the merchant meanwhile, and
    ProofConflict when another file of the merchant loaded one of its order_refs meanwhile;
    then nothing is written.
    """
    record = outcome.record
    try:
        with engine.begin() as connection:
            connection.execute(insert(ImportRow), [_import_values(record)])
            _write_requests(connection, record, outcome.requests)
            if outcome.errors:
                _write(connection, ImportErrorRow.__table__, ERROR_COLUMNS, _error_rows(outcome))
            if also is not None:
                also(connection)
            # Last: the audit trail's lock is held from here to the commit.
            details = audit.import_details(outcome)
            who = actor or audit.process_actor()
            audit.append(connection, "import", record.import_id, who, details, record.processed_at)
    except IntegrityError as exc:
        if not (_is_unique_violation(exc) and record.status == "loaded"):
            raise
        earlier = loaded_import(engine, record.merchant_id, record.sha256)
        if earlier is None:
            raise
        raise AlreadyImported(earlier) from exc
    log.info(
        "import %s saved: %s, %d requests, %d errors",
        record.import_id,
        record.status,
        len(outcome.requests),
        len(outcome.errors),
    )


def _import_values(record: outcomes.ImportRecord) -> dict[str, Any]:
    return {column.key: getattr(record, column.key) for column in ImportRow.__table__.columns}


def _write_requests(
    connection: Connection,
    record: outcomes.ImportRecord,
    requests: Sequence[outcomes.ReviewRequest],
) -> None:
    rows = [
        (record.import_id, "scheduled", record.processed_at, r.scheduled_at) + _request_values(r)
        for r in requests
    ]
    # The same insertion order in every process: two concurrent files with common order_refs
    # then wait for each other on the unique index instead of deadlocking.
    rows.sort(key=_proof_key)
    if not rows:
        return
    try:
        _write(connection, ReviewRequestRow.__table__, REQUEST_COLUMNS, rows)
    except (DBAPIError, psycopg.Error) as exc:
        if _is_unique_violation(exc):
            raise ProofConflict(
                f"another file of merchant {record.merchant_id} loaded some of these order_refs"
            ) from exc
        raise


_ORDER_REF = REQUEST_COLUMNS.index("order_ref")
_REQUEST_TYPE = REQUEST_COLUMNS.index("request_type")
_ID_PRODUCT = REQUEST_COLUMNS.index("id_product")


def _proof_key(row: tuple[Any, ...]) -> tuple[str, str, str]:
    return row[_ORDER_REF], row[_REQUEST_TYPE], row[_ID_PRODUCT] or ""


def _error_rows(outcome: outcomes.Outcome) -> Iterator[tuple[Any, ...]]:
    """One at a time: an all-bad file's error rows are never all held at once."""
    import_id = outcome.record.import_id
    return ((import_id, e.line, e.column, e.code, e.message) for e in outcome.errors)


def _write(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` into ``table``: COPY with psycopg 3, executemany with other drivers."""
    if connection.dialect.driver == "psycopg":
        _copy(connection, table, columns, rows)
        return
    if connection.dialect.name == "sqlite":
        _driver_executemany(connection, table, columns, rows)
        return
    # In chunks: one dict per row for a whole all-bad file would be held at once.
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, INSERT_CHUNK)):
        connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in chunk])


def _driver_executemany(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """The INSERT compiled once, the rows handed to the driver as tuples in chunks, each value
    through its column type's bind processor (times to UTC text, dates).

    Faster than SQLAlchemy's executemany of dicts, which processes every row itself. Errors are
    wrapped as SQLAlchemy's, without the parameters (``hide_parameters``).
    """
    dialect = connection.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    in_order = itemgetter(*(columns.index(key) for key in compiled.positiontup or ()))
    encoders = {
        column: processor
        for column in columns
        if (processor := table.c[column].type.dialect_impl(dialect).bind_processor(dialect))
    }
    rows = _encoded(rows, columns, encoders)
    while chunk := list(itertools.islice(rows, INSERT_CHUNK)):
        connection.exec_driver_sql(compiled.string, list(map(in_order, chunk)))


def _encoded(
    rows: Iterable[tuple[Any, ...]],
    columns: Sequence[str],
    encoders: dict[str, Callable[[Any], Any]],
) -> Iterable[Sequence[Any]]:
    """``rows`` with the values of these columns through their encoder, each distinct value
    once: the encoded columns are times and dates, which a file's requests share (order time +
    delay), and formatting an aware datetime is most of the cost of writing a request row."""
    if not encoders:
        return rows
    at = [(columns.index(column), functools.cache(encode)) for column, encode in encoders.items()]

    def encode(row: tuple[Any, ...]) -> list[Any]:
        values = list(row)
        for index, cached in at:
            values[index] = cached(values[index])
        return values

    return map(encode, rows)


def _utc_text(value: dt.datetime | None) -> str | None:
    """A ``UtcDateTime`` for COPY: ISO text in UTC (a naive time is refused, as on insert)."""
    return None if value is None else to_utc(value).isoformat()


def _copy(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY on the psycopg connection under ``connection``: same transaction as the rest."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    driver_connection: psycopg.Connection[Any] = connection.connection.driver_connection
    times = {c: _utc_text for c in columns if isinstance(table.c[c].type, UtcDateTime)}
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in _encoded(rows, columns, times):
                copy.write_row(row)
    except psycopg.errors.UniqueViolation:
        raise  # its detail names the key only: merchant, order_ref, type, product
    except psycopg.Error as exc:
        # PostgreSQL quotes the refused row (e-mails, names) in DETAIL and CONTEXT, and these
        # errors end up in logs: keep the class and the primary message only.
        message = f"{table.name}: {exc.diag.message_primary or type(exc).__name__}"
        raise type(exc)(message) from None


def _is_unique_violation(exc: BaseException) -> bool:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return (
        isinstance(cause, psycopg.errors.UniqueViolation)
        or getattr(cause, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_UNIQUE"
    )
