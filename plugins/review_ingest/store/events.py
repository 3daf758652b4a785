"""Loading delivery events (contract section 13): each event once, each request's status and
step times from them, and the opt-outs they carry.

``load_events`` works on a chunk of a file's events inside the caller's transaction (one
transaction per file), set-based: the chunk goes into a temporary table (COPY on PostgreSQL,
executemany elsewhere), the new events are inserted from it in one statement, then one UPDATE
applies them to their requests. Every rule is order-proof, so that files may arrive in any
order and a file loaded again changes nothing:

- an ``event_id`` already loaded, or repeated in the chunk, is skipped (the first one wins);
- an event whose ``request_id`` names no request (never existed, not a number, or erased) is
  not stored, only counted;
- each step keeps its first time; the status is the furthest step known (``reviewed`` over
  ``clicked`` over ... over ``sent``), ``not_delivered`` when a bounce or failure is known and
  no step after ``sent``; cancelled and withdrawn requests keep their status (their events are
  stored and counted ``after_cancel``);
- ``bounce_reason`` is the reason of the earliest bounce or failure that gives one, ``rating``
  the rating of the earliest review that gives one, read back from the stored events;
- ``unsubscribed`` and ``complained`` put the request's address hash on ``suppressions`` for
  its merchant (nothing when the address was erased, nor when it is already there), and
  withdraw that address's other requests of that merchant still ``scheduled``.

No event holds an address or a name, and nothing here logs one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.dml import ReturningInsert

from review_ingest.core.events import (
    NOT_DELIVERED_STATUS,
    NOT_DELIVERED_TYPES,
    OPT_OUT_TYPES,
    STEPS,
    Event,
    clean_reason,
)
from review_ingest.store import audit
from review_ingest.store.models import (
    CANCELLED_STATUS,
    WITHDRAWN_STATUS,
    DeliveryEventRow,
    EventFileRow,
    ReviewRequestRow,
    SuppressionRow,
    UtcDateTime,
)

#: Events per ``load_events`` call (``benchmarks/bench_events.py``, 1M events): 10,000 took
#: 8% longer than 50,000; 100,000 14% less, for twice the memory (50,000 hold about 20 MB).
CHUNK_EVENTS = 50_000
#: Requests whose status events never change (their events are still stored).
KEPT_STATUSES = (CANCELLED_STATUS, WITHDRAWN_STATUS)
_MAX_REQUEST_ID = 2**63 - 1  # review_requests.request_id is a bigint
_IN_CHUNK = 900  # values per IN list: SQLite before 3.32 allowed 999 parameters

_TEMPORARY = MetaData()
#: A chunk of events as given, its request ids as numbers (NULL when not one).
INCOMING = Table(
    "incoming_events",
    _TEMPORARY,
    Column("event_id", String),
    Column("request_id", BigInteger),
    Column("event_type", String),
    Column("occurred_at", UtcDateTime),
    Column("reason", String),
    Column("rating", SmallInteger),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
#: The chunk's events that were new and stored: what the requests are updated from.
NEW = Table(
    "new_events",
    _TEMPORARY,
    Column("event_id", String),
    Column("request_id", BigInteger),
    Column("event_type", String),
    Column("occurred_at", UtcDateTime),
    Column("reason", String),
    Column("rating", SmallInteger),
    # The request was cancelled or withdrawn: the event counts ``after_cancel``.
    Column("kept", Boolean),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_COLUMNS = ("event_id", "request_id", "event_type", "occurred_at", "reason", "rating")
_EVENTS = DeliveryEventRow.__table__
_REQUESTS = ReviewRequestRow.__table__
_SUPPRESSIONS = SuppressionRow.__table__


@dataclass
class EventCounts:
    """What loading some events did; ``by_type`` counts the events loaded, by type."""

    by_type: dict[str, int] = field(default_factory=dict)
    loaded: int = 0
    #: The event_id was already loaded, or came earlier in the same file: the first wins.
    skipped_duplicates: int = 0
    #: No such request: never existed, not a number, or erased.
    unknown_request: int = 0
    #: Loaded for a cancelled or withdrawn request, whose status stays.
    after_cancel: int = 0
    #: Addresses put on the opt-out list.
    opted_out: int = 0

    def merge(self, other: EventCounts) -> EventCounts:
        """Add ``other`` into these counts (a file's total over its chunks); returns self."""
        for kind, count in other.by_type.items():
            self.by_type[kind] = self.by_type.get(kind, 0) + count
        self.loaded += other.loaded
        self.skipped_duplicates += other.skipped_duplicates
        self.unknown_request += other.unknown_request
        self.after_cancel += other.after_cancel
        self.opted_out += other.opted_out
        return self


def load_events(
    connection: Connection, file_id: str, events: Sequence[Event], now: dt.datetime
) -> EventCounts:
    """Load a chunk of file ``file_id``'s events in the caller's transaction (see the module's
    doc); ``now`` is recorded as their ``loaded_at`` and as the time of new opt-outs."""
    if connection.dialect.name == "postgresql":
        _plan_each_statement(connection)
    firsts = {event.event_id: event for event in reversed(events)}  # the first one wins
    rows = [_row(event) for event in firsts.values()]
    named = _named(connection, rows)
    _stage(connection, rows)
    counts = _store_new(connection, file_id, now, named)
    if counts.unknown_request:
        counts.unknown_request -= _loaded_before(connection)
    counts.skipped_duplicates = len(events) - counts.loaded - counts.unknown_request
    if counts.loaded:
        connection.execute(_apply_steps(named))
    if any(counts.by_type.get(kind) for kind in OPT_OUT_TYPES):
        counts.opted_out = len(connection.execute(_opt_out(connection, now)).all())
        connection.execute(_withdraw())
    return counts


def _plan_each_statement(connection: Connection) -> None:
    """For the rest of the caller's transaction, plan every statement with its values and
    compile none (both measured by ``benchmarks/bench_events.py``).

    psycopg prepares a statement run 5 times, and PostgreSQL may then plan it once for any
    chunk, blind to the temporary tables' rows: 15 times slower. The planner, which guesses
    those rows, may also judge a chunk's statement costly enough for JIT compilation: 0.3 s
    measured, for statements that run in about half a second."""
    connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    connection.execute(text("SET LOCAL jit = off"))


def request_number(request_id: str) -> int | None:
    """The ``review_requests.request_id`` that ``request_id`` names, None when it names none
    (not a whole number in ASCII digits, or out of a bigint's range)."""
    if not (request_id.isascii() and request_id.isdigit()) or len(request_id) > 19:
        return None
    number = int(request_id)
    return number if number <= _MAX_REQUEST_ID else None


def _row(event: Event) -> tuple[Any, ...]:
    """An event as ``incoming_events`` holds it: its request as a number (None when it names
    none), its reason cleaned (an Event made elsewhere than ``parse_line`` may be raw)."""
    reason = None if event.reason is None else clean_reason(event.reason)
    return (
        event.event_id,
        request_number(event.request_id),
        event.type,
        event.at,
        reason,
        event.rating,
    )


def _named(connection: Connection, rows: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    """The requests the chunk names, as a condition on ``review_requests``.

    On PostgreSQL ``request_id = ANY(:ids)``: an index probe per id, so a chunk costs the same
    however large the table. Without it the planner, which knows nothing of a temporary
    table's rows, may merge-join the chunk with the whole primary key, chunk after chunk.
    Elsewhere no condition (SQLite probes the key of each row it joins)."""
    if connection.dialect.name != "postgresql":
        return true()
    ids = sorted({row[1] for row in rows if row[1] is not None})
    return _REQUESTS.c.request_id == any_(bindparam("named", ids, ARRAY(BigInteger)))


def _stage(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """The chunk into ``incoming_events``, emptied first; ``new_events`` emptied too."""
    for table in (INCOMING, NEW):
        connection.execute(CreateTable(table, if_not_exists=True))
    if connection.dialect.driver == "psycopg":
        connection.execute(text("TRUNCATE incoming_events, new_events"))
        _copy(connection, rows)
        return
    connection.execute(delete(INCOMING))
    connection.execute(delete(NEW))
    if rows:
        connection.execute(
            insert(INCOMING), [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        )


def _copy(connection: Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY the rows into ``incoming_events``, binary: no value is formatted as text."""
    statement = sql.SQL("COPY incoming_events ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    )
    driver_connection: psycopg.Connection[Any] = connection.connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["text", "int8", "text", "timestamptz", "text", "int2"])
        for row in rows:
            copy.write_row(row)


def _store_new(
    connection: Connection, file_id: str, now: dt.datetime, named: ColumnElement[bool]
) -> EventCounts:
    """Insert the staged events not loaded yet whose request exists into ``delivery_events``,
    and the same into ``new_events``; their counts, unknown requests included.

    On PostgreSQL one statement, ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` in CTEs that
    join the requests once and count what they did: a concurrent run loading the same events
    waits for it and stores each once. Elsewhere in steps (SQLite has one writer at a time)."""
    known = (
        select(
            *(INCOMING.c[name] for name in _COLUMNS),
            _REQUESTS.c.status.in_(KEPT_STATUSES).label("kept"),
        )
        .join(_REQUESTS, _REQUESTS.c.request_id == INCOMING.c.request_id)
        .where(named)
        .cte("known")
    )
    stored = (*_COLUMNS, "file_id", "loaded_at")
    loaded_at = (literal(file_id, String), literal(now, UtcDateTime))
    if connection.dialect.name != "postgresql":
        not_loaded = ~exists().where(_EVENTS.c.event_id == known.c.event_id)
        connection.execute(insert(NEW).from_select(NEW.c.keys(), select(known).where(not_loaded)))
        copied = select(*(NEW.c[name] for name in _COLUMNS), *loaded_at)
        connection.execute(insert(_EVENTS).from_select(stored, copied))
        return _counts(connection.execute(_counted(NEW)))
    in_key_order = select(*(known.c[name] for name in _COLUMNS), *loaded_at)
    inserted = (
        postgresql.insert(_EVENTS)
        .from_select(stored, in_key_order.order_by(known.c.event_id))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(*(_EVENTS.c[name] for name in _COLUMNS))
        .cte("inserted")
    )
    with_kept = select(inserted, known.c.kept).join(known, known.c.event_id == inserted.c.event_id)
    new = (
        insert(NEW)
        .from_select(NEW.c.keys(), with_kept)
        .returning(NEW.c.event_type, NEW.c.kept)
        .cte("new")
    )
    return _counts(connection.execute(_counted(new)))


def _counted(new: Any) -> Any:
    """The new events by type with those ``after_cancel``, and a row with a NULL type that
    counts the staged events naming no request."""
    kept = func.sum(case((new.c.kept, 1), else_=0))
    by_type = select(new.c.event_type, func.count(), kept).group_by(new.c.event_type)
    unknown = (
        select(literal(None, String), func.count(), literal(0))
        .select_from(INCOMING)
        .where(_names_no_request())
    )
    return by_type.union_all(unknown)


def _names_no_request() -> ColumnElement[bool]:
    """A staged event names no request. Asked row by row, as a scalar subquery with LIMIT,
    which the planner never makes a join: an index probe each, where a join planned blind to
    the staged rows' number may merge the chunk with the whole primary key."""
    return _first(_REQUESTS.c.request_id, INCOMING.c.request_id).is_(None)


def _loaded_before(connection: Connection) -> int:
    """How many staged events naming no request have an event_id already loaded: those are
    duplicates, not unknown requests. Asked apart, with the few ids in hand: in the statement
    that stores the chunk, a table the planner saw empty is scanned for each row."""
    ids = list(connection.scalars(select(INCOMING.c.event_id).where(_names_no_request())))
    return sum(
        connection.scalar(
            select(func.count())
            .select_from(_EVENTS)
            .where(_EVENTS.c.event_id.in_(ids[start : start + _IN_CHUNK]))
        )
        or 0
        for start in range(0, len(ids), _IN_CHUNK)
    )


def _first(column: ColumnElement[Any], value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` of a row where it equals ``value``, NULL when there is none."""
    return select(column).where(column == value).limit(1).scalar_subquery()


def _counts(rows: Iterable[Any]) -> EventCounts:
    """The counts of ``_counted``'s rows."""
    counts = EventCounts()
    for kind, count, after_cancel in rows:
        if kind is None:
            counts.unknown_request = count
            continue
        counts.by_type[kind] = count
        counts.loaded += count
        counts.after_cancel += after_cancel or 0
    return counts


def _apply_steps(named: ColumnElement[bool]) -> Any:
    """One UPDATE of the requests with new events: each step's first time, the status, and
    the bounce reason and rating when a new event gives one (each row is written once: an
    update of a request rewrites it and every index entry)."""
    times = {f"{step}_at": step for step in STEPS} | {"bounced_at": None}
    firsts = (
        select(
            NEW.c.request_id,
            *(
                func.min(case((_is_type(kind), NEW.c.occurred_at))).label(column)
                for column, kind in times.items()
            ),
            *(
                func.max(case((and_(_is_type(kind), NEW.c[source].is_not(None)), 1))).label(
                    f"new_{column}"
                )
                for column, (source, kind) in _FIRST_VALUES.items()
            ),
        )
        .where(NEW.c.event_type.in_((*STEPS, *NOT_DELIVERED_TYPES)))
        .group_by(NEW.c.request_id)
        .subquery()
    )
    values: dict[str, Any] = {
        column: _earliest(_REQUESTS.c[column], firsts.c[column]) for column in times
    }
    values["status"] = _status(firsts)
    for column, (source, kind) in _FIRST_VALUES.items():
        values[column] = case(
            (firsts.c[f"new_{column}"] == 1, _first_stored(source, kind)),
            else_=_REQUESTS.c[column],
        )
    return (
        update(_REQUESTS).where(_REQUESTS.c.request_id == firsts.c.request_id, named).values(values)
    )


#: ``review_requests`` columns taken from the earliest stored event that gives a value:
#: (the event's column, its type; None for a bounce or a failure).
_FIRST_VALUES = {"bounce_reason": ("reason", None), "rating": ("rating", "reviewed")}


def _first_stored(source: str, kind: str | None) -> ColumnElement[Any]:
    """``source`` of the request's earliest stored event of ``kind`` that has one: the same
    whatever order the events came in (the chunk's own are stored already)."""
    events = _EVENTS
    kinds = NOT_DELIVERED_TYPES if kind is None else (kind,)
    return (
        select(events.c[source])
        .where(
            events.c.request_id == _REQUESTS.c.request_id,
            events.c.event_type.in_(kinds),
            events.c[source].is_not(None),
        )
        .order_by(events.c.occurred_at, events.c.event_id)
        .limit(1)
        .scalar_subquery()
    )


def _is_type(kind: str | None) -> ColumnElement[bool]:
    """``kind``'s events; None stands for a bounce or a failure."""
    if kind is None:
        return NEW.c.event_type.in_(NOT_DELIVERED_TYPES)
    return NEW.c.event_type == kind


def _earliest(old: ColumnElement[Any], new: ColumnElement[Any]) -> ColumnElement[Any]:
    """The earlier of two times, either of them NULL (SQLite's ``min`` gives NULL then)."""
    return case((or_(old.is_(None), new < old), new), else_=old)


def _status(firsts: Any) -> ColumnElement[str]:
    """The status once the new step times are known: the furthest step; ``not_delivered``
    after a bounce or failure unless a step after ``sent`` is known; cancelled and withdrawn
    requests keep theirs."""

    def known(column: str) -> ColumnElement[bool]:
        return or_(_REQUESTS.c[column].is_not(None), firsts.c[column].is_not(None))

    later_steps = [(known(f"{step}_at"), literal(step)) for step in reversed(STEPS[1:])]
    return case(
        (_REQUESTS.c.status.in_(KEPT_STATUSES), _REQUESTS.c.status),
        *later_steps,
        (known("bounced_at"), literal(NOT_DELIVERED_STATUS)),
        (known("sent_at"), literal("sent")),
        else_=_REQUESTS.c.status,
    )


def _opting_out() -> Any:
    """The (merchant, address hash, address) of each request with a new opt-out event whose
    address is still there."""
    return (
        select(_REQUESTS.c.merchant_id, _REQUESTS.c.email_sha256, _REQUESTS.c.email)
        .join(NEW, NEW.c.request_id == _REQUESTS.c.request_id)
        .where(NEW.c.event_type.in_(OPT_OUT_TYPES), _REQUESTS.c.email_sha256.is_not(None))
    )


def _opt_out(connection: Connection, now: dt.datetime) -> ReturningInsert[tuple[int]]:
    """Put the opting-out addresses on ``suppressions`` for their merchant, unless already
    there for it or for every merchant; it returns a row per entry added (a driver's rowcount
    of an INSERT ... SELECT ... ON CONFLICT is not always given)."""
    opting = _opting_out().subquery()
    pairs = select(opting.c.merchant_id, opting.c.email_sha256).distinct().subquery()
    listed = _SUPPRESSIONS.c.merchant_id
    on_list = exists().where(
        _SUPPRESSIONS.c.email_sha256 == pairs.c.email_sha256,
        or_(listed.is_(None), listed == pairs.c.merchant_id),
    )
    source = select(pairs.c.email_sha256, pairs.c.merchant_id, literal(now, UtcDateTime))
    source = source.where(~on_list)
    columns = ("email_sha256", "merchant_id", "created_at")
    upsert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(connection.dialect.name)
    if upsert is None:
        statement = insert(_SUPPRESSIONS).from_select(columns, source)
    else:
        statement = upsert(_SUPPRESSIONS).from_select(columns, source).on_conflict_do_nothing()
    return statement.returning(_SUPPRESSIONS.c.suppression_id)


def _withdraw() -> Any:
    """The opting-out addresses' other requests of the same merchant still ``scheduled``
    become ``withdrawn`` (not the one the mailer sent: its own events tell its status).
    Matched by ``lower(email)``, which an index serves (the hash has none), from the few
    opting-out addresses: never a scan of every scheduled request."""
    opting = _opting_out().subquery()
    addresses = (
        select(opting.c.merchant_id, func.lower(opting.c.email).label("address"))
        .distinct()
        .subquery()
    )
    carrier = exists().where(
        NEW.c.request_id == _REQUESTS.c.request_id, NEW.c.event_type.in_(OPT_OUT_TYPES)
    )
    return (
        update(_REQUESTS)
        .where(
            func.lower(_REQUESTS.c.email) == addresses.c.address,
            _REQUESTS.c.merchant_id == addresses.c.merchant_id,
            _REQUESTS.c.status == "scheduled",
            ~carrier,
        )
        .values(status=WITHDRAWN_STATUS)
    )


def record_file(
    connection: Connection,
    file_id: str,
    file_name: str,
    sha256: str,
    size_bytes: int,
    status: str,
    report: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Record an event file and its report (``processed`` or ``rejected``) in the caller's
    transaction: committed with its events, so that a run killed before the file was moved
    finds the same report (``file_report``). Its opt-outs get their entry in the audit trail
    (a count, no address nor hash), last: the trail's lock is held until the commit."""
    connection.execute(
        insert(EventFileRow).values(
            file_id=file_id,
            file_name=file_name,
            sha256=sha256,
            size_bytes=size_bytes,
            status=status,
            report=json.dumps(report, ensure_ascii=False),
            processed_at=now,
        )
    )
    if report.get("opted_out"):
        details = {"source": "delivery_events", "sha256": sha256, "added": report["opted_out"]}
        audit.append(connection, "suppress", file_id, audit.process_actor(), details, now)


def file_report(connection: Connection, file_id: str) -> dict[str, Any] | None:
    """The report recorded for ``file_id``; None when no transaction committed one."""
    stored = connection.scalar(select(EventFileRow.report).where(EventFileRow.file_id == file_id))
    return None if stored is None else json.loads(stored)
