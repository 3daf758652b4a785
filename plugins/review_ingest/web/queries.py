"""What the review UI reads from the warehouse: SQLAlchemy 2 ``select()`` on models.py.

Every query is bounded, so that each page and API call stays fast on a warehouse of millions of
requests: lists read ``limit + 1`` rows in the order of an index (the extra row says whether
there is a next page), ``offset`` is at most ``MAX_OFFSET``, and ``total`` counts at most
``TOTAL_CAP + 1`` matching rows (above the cap it is ``TOTAL_CAP`` with ``total_is_lower_bound``
set). The CSV export reads every matching row in keyset-paged chunks instead.

Counts of requests by status (the tracking funnel, section 13) and per day are read from the
rollup (``request_counts`` for one merchant, ``request_count_totals`` for all, plus
``request_count_changes``: exact, triggers keep them so), except for what it cannot answer: the
requests of an order reference, an e-mail or an import (a few, found by their indexes), and
today's ``scheduled`` requests, split at ``now`` into scheduled and due.

Days are UTC days. Names (``firstname``, ``lastname``) are never selected; e-mails are selected
only to be masked by ``views``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    Engine,
    FromClause,
    RowMapping,
    Select,
    Subquery,
    and_,
    case,
    func,
    literal,
    not_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from review_ingest.store.models import (
    CANCELLED_STATUS,
    WITHDRAWN_STATUS,
    CancellationRow,
    ImportRow,
    RequestCountChangeRow,
    RequestCountRow,
    RequestCountTotalRow,
    ReviewRequestRow,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Skipping rows costs as much as reading them: deeper than this, narrow the filters instead.
MAX_OFFSET = 10_000
#: ``total`` is exact up to this many rows; above, it says "at least this many".
TOTAL_CAP = 10_000
#: The chart of requests per scheduled day covers at most this many days: counting a day costs
#: one index range of its requests, so this bounds the chart's cost.
MAX_CHART_DAYS = 31
#: Rows per round trip of the CSV export.
EXPORT_CHUNK = 2_000
#: Cancellations listed on an import's page, newest first.
MAX_CANCELLATIONS = 100

ImportStatus = Literal["loaded", "rejected", "already_imported"]
ImportSource = Literal["upload", "sftp", "backfill"]
#: The statuses a request shows and a filter takes: the stored ``status``, but ``scheduled`` is
#: split into ``scheduled`` (``scheduled_at`` in the future) and ``due`` (past, not yet sent).
RequestStatus = Literal[
    "scheduled",
    "due",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "reviewed",
    "not_delivered",
    "cancelled",
    "withdrawn",
]
WITHDRAWN = WITHDRAWN_STATUS
CANCELLED = CANCELLED_STATUS
#: The stored status of a request loaded and not yet sent, whether due or not.
SCHEDULED = "scheduled"
NOT_DELIVERED = "not_delivered"
RequestType = Literal["brand", "product"]

_IMPORT_ORDER = (ImportRow.processed_at.desc(), ImportRow.import_id.desc())
#: The columns of an import that the UI shows: all but ``profile``, the pipeline's own summary
#: of the file (what later files are compared with).
IMPORT_COLUMNS = tuple(c for c in ImportRow.__table__.columns if c.key != "profile")
_REQUEST_ORDER = (ReviewRequestRow.scheduled_at.desc(), ReviewRequestRow.request_id.desc())
#: The columns of a request that the UI shows; e-mail only to be masked, never the names.
REQUEST_COLUMNS = (
    ReviewRequestRow.request_id,
    ReviewRequestRow.import_id,
    ReviewRequestRow.merchant_id,
    ReviewRequestRow.request_type,
    ReviewRequestRow.order_ref,
    ReviewRequestRow.id_product,
    ReviewRequestRow.email,
    ReviewRequestRow.language,
    ReviewRequestRow.scheduled_at,
    ReviewRequestRow.status,
    ReviewRequestRow.sent_at,
    ReviewRequestRow.delivered_at,
    ReviewRequestRow.opened_at,
    ReviewRequestRow.clicked_at,
    ReviewRequestRow.reviewed_at,
    ReviewRequestRow.bounced_at,
    ReviewRequestRow.bounce_reason,
    ReviewRequestRow.rating,
)


@dataclass(frozen=True)
class Paging:
    limit: int = DEFAULT_LIMIT
    offset: int = 0


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows and how many rows match in all (see module docstring)."""

    rows: Sequence[RowMapping]
    total: int
    total_is_lower_bound: bool
    has_more: bool


@dataclass(frozen=True)
class ImportFilters:
    merchant_id: str | None = None
    status: ImportStatus | None = None
    source: ImportSource | None = None
    since: dt.date | None = None  # first UTC day of processed_at, inclusive
    until: dt.date | None = None  # last UTC day of processed_at, inclusive


@dataclass(frozen=True)
class RequestFilters:
    merchant_id: str | None = None
    status: RequestStatus | None = None
    request_type: RequestType | None = None
    order_ref: str | None = None
    email: str | None = None  # exact address, compared trimmed and case-insensitively
    scheduled_from: dt.date | None = None  # first UTC day of scheduled_at, inclusive
    scheduled_to: dt.date | None = None  # last UTC day of scheduled_at, inclusive
    import_id: str | None = None


@dataclass(frozen=True)
class DayCount:
    day: dt.date
    requests: int


@dataclass(frozen=True)
class StatusCount:
    """Matching requests of one status as the UI names it; for ``not_delivered``, of one bounce
    reason ('' when none was given)."""

    status: str
    bounce_reason: str
    requests: int


@dataclass(frozen=True)
class Activity:
    """Files processed and their rows, over some days and merchants."""

    files: int = 0
    rejected_files: int = 0
    rows: int = 0
    error_rows: int = 0

    @property
    def error_rate(self) -> float:
        """Rows refused for row errors, out of the rows read (0 when no row was read)."""
        return self.error_rows / self.rows if self.rows else 0.0

    def __add__(self, other: Activity) -> Activity:
        return Activity(
            self.files + other.files,
            self.rejected_files + other.rejected_files,
            self.rows + other.rows,
            self.error_rows + other.error_rows,
        )


@dataclass(frozen=True)
class MerchantDay:
    """One merchant's files on one UTC day of ``processed_at``."""

    merchant_id: str
    day: dt.date
    activity: Activity


class utc_day(FunctionElement[dt.date]):
    """The UTC calendar day of a timestamp column, on PostgreSQL and SQLite alike."""

    type = Date()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UtcDateTime as UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
    return f"date({compiler.process(element.clauses, **kw)})"


def day_start(day: dt.date) -> dt.datetime:
    """00:00 UTC of ``day``."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _next_day_start(day: dt.date) -> dt.datetime | None:
    """00:00 UTC of the day after ``day``; None after the last day Python knows."""
    if day == dt.date.max:
        return None
    return day_start(day) + dt.timedelta(days=1)


def normalized_email(email: str) -> str:
    return email.strip().lower()


# --- imports -------------------------------------------------------------------------------


def import_conditions(filters: ImportFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.merchant_id is not None:
        conditions.append(ImportRow.merchant_id == filters.merchant_id)
    if filters.status is not None:
        conditions.append(ImportRow.status == filters.status)
    if filters.source is not None:
        conditions.append(ImportRow.source == filters.source)
    if filters.since is not None:
        conditions.append(ImportRow.processed_at >= day_start(filters.since))
    if filters.until is not None and (end := _next_day_start(filters.until)) is not None:
        conditions.append(ImportRow.processed_at < end)
    return conditions


def list_imports(engine: Engine, filters: ImportFilters, paging: Paging) -> Page:
    """Files newest first (``processed_at``, then ``import_id``), every ``imports`` column
    shown (``IMPORT_COLUMNS``)."""
    conditions = import_conditions(filters)
    query = select(*IMPORT_COLUMNS).where(*conditions).order_by(*_IMPORT_ORDER)
    return _page(engine, query, ImportRow.__table__, conditions, paging)


def get_import(engine: Engine, import_id: str) -> RowMapping | None:
    """The ``imports`` row of ``import_id`` (``IMPORT_COLUMNS``), or None."""
    query = select(*IMPORT_COLUMNS).where(ImportRow.import_id == import_id)
    with engine.connect() as connection:
        return connection.execute(query).mappings().first()


# --- requests ------------------------------------------------------------------------------


def request_conditions(filters: RequestFilters, now: dt.datetime) -> list[ColumnElement[bool]]:
    """The filters of ``/api/requests``; ``scheduled`` and ``due`` compare ``scheduled_at``
    with ``now``, every other status is the stored one."""
    r = ReviewRequestRow
    conditions: list[ColumnElement[bool]] = []
    if filters.merchant_id is not None:
        conditions.append(r.merchant_id == filters.merchant_id)
    if filters.status is not None:
        conditions += _status_conditions(filters.status, now)
    if filters.request_type is not None:
        conditions.append(r.request_type == filters.request_type)
    if filters.order_ref is not None:
        conditions.append(r.order_ref == filters.order_ref)
    if filters.email is not None:
        # Both sides through the database's lower(): the same folding whatever the dialect
        # (SQLite folds ASCII only), and the left side is the indexed expression.
        conditions.append(func.lower(r.email) == func.lower(normalized_email(filters.email)))
    if filters.scheduled_from is not None:
        conditions.append(r.scheduled_at >= day_start(filters.scheduled_from))
    if filters.scheduled_to is not None and (end := _next_day_start(filters.scheduled_to)):
        conditions.append(r.scheduled_at < end)
    if filters.import_id is not None:
        conditions.append(r.import_id == filters.import_id)
    return conditions


def _status_conditions(status: RequestStatus, now: dt.datetime) -> list[ColumnElement[bool]]:
    r = ReviewRequestRow
    if status == "scheduled":
        return [r.status == SCHEDULED, r.scheduled_at > now]
    if status == "due":
        return [r.status == SCHEDULED, r.scheduled_at <= now]
    return [r.status == status]


def list_requests(
    engine: Engine, filters: RequestFilters, paging: Paging, now: dt.datetime
) -> Page:
    """Requests by ``scheduled_at``, latest first; e-mails still to be masked."""
    conditions = request_conditions(filters, now)
    query = select(*REQUEST_COLUMNS).where(*conditions).order_by(*_REQUEST_ORDER)
    return _page(engine, query, ReviewRequestRow.__table__, conditions, paging)


def iter_requests(
    engine: Engine, filters: RequestFilters, now: dt.datetime, chunk: int = EXPORT_CHUNK
) -> Iterator[Sequence[RowMapping]]:
    """Every matching request, in the order of ``list_requests``, ``chunk`` rows at a time.

    Keyset paging: each chunk is one short query starting after the last row of the previous
    one, so memory stays flat and no connection is held while the caller sends a chunk.
    """
    conditions = request_conditions(filters, now)
    after: tuple[dt.datetime, int] | None = None
    while True:
        query = select(*REQUEST_COLUMNS).where(*conditions).order_by(*_REQUEST_ORDER).limit(chunk)
        if after is not None:
            query = query.where(
                tuple_(ReviewRequestRow.scheduled_at, ReviewRequestRow.request_id)
                < tuple_(
                    literal(after[0], ReviewRequestRow.scheduled_at.type),
                    literal(after[1], ReviewRequestRow.request_id.type),
                )
            )
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        after = (rows[-1]["scheduled_at"], rows[-1]["request_id"])


def chart_days(filters: RequestFilters, today: dt.date) -> list[dt.date]:
    """The days of the per-day chart: the filter's scheduled dates, else the 15 days before and
    after ``today``; at most ``MAX_CHART_DAYS`` days from the first one."""
    first, last = filters.scheduled_from, filters.scheduled_to
    if first is None:
        first = _add_days(today, -15) if last is None else _add_days(last, 1 - MAX_CHART_DAYS)
    if last is None:
        last = _add_days(first, MAX_CHART_DAYS - 1)
    last = min(last, _add_days(first, MAX_CHART_DAYS - 1))
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def requests_per_day(
    engine: Engine, filters: RequestFilters, days: Sequence[dt.date], now: dt.datetime
) -> list[DayCount]:
    """Matching requests per UTC day of ``scheduled_at``, for each of ``days`` (0 included)."""
    if not days:
        return []
    with _snapshot(engine) as connection:
        if _rollup_answers(filters):
            counts = _rollup_per_day(connection, filters, days, now)
        else:
            counts = _direct_per_day(connection, filters, days, now)
    return [DayCount(day, counts.get(day, 0)) for day in days]


def status_counts(engine: Engine, filters: RequestFilters, now: dt.datetime) -> list[StatusCount]:
    """Every matching request counted by status (``scheduled`` and ``due`` apart) and, for
    ``not_delivered``, by bounce reason: what the tracking funnel is drawn from."""
    with _snapshot(engine) as connection:
        if not _rollup_answers(filters):
            return _direct_status_counts(connection, filters, now)
        found = _rollup_status_counts(connection, filters, now)
        found += _today_counts(connection, filters, now)
    merged: dict[tuple[str, str], int] = {}
    for count in found:
        key = (count.status, count.bounce_reason)
        merged[key] = merged.get(key, 0) + count.requests
    return [StatusCount(status, reason, n) for (status, reason), n in merged.items()]


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements all see the same moment (PostgreSQL: REPEATABLE READ), so
    that counts read from the rollup and from ``review_requests`` add up."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def _rollup_answers(filters: RequestFilters) -> bool:
    """Whether the rollup holds the counts of ``filters``: not when they name an order, an
    e-mail or an import (small selections, counted from their own indexes)."""
    return filters.order_ref is None and filters.email is None and filters.import_id is None


def _rollup(merchant_id: str | None) -> Subquery:
    """The rollup's rows of one merchant (``request_counts``) or of all (their totals), with
    the changes not yet folded into them: together, exact."""
    base = RequestCountRow if merchant_id is not None else RequestCountTotalRow
    parts = []
    for table in (base, RequestCountChangeRow):
        part = select(
            table.day, table.request_type, table.status, table.bounce_reason, table.requests
        )
        if merchant_id is not None:
            part = part.where(table.merchant_id == merchant_id)  # type: ignore[union-attr]
        parts.append(part)
    return union_all(*parts).subquery()


def _rollup_conditions(
    c: ReadOnlyColumnCollection[str, Any], filters: RequestFilters, today: dt.date
) -> list[ColumnElement[bool]]:
    """``filters`` but the merchant on the rollup's columns ``c``, leaving out today's
    ``scheduled`` rows, which hold requests on both sides of now: ``_today_counts`` counts
    those from ``review_requests``."""
    conditions = [not_(and_(c.status == SCHEDULED, c.day == today))]
    if filters.request_type is not None:
        conditions.append(c.request_type == filters.request_type)
    if filters.scheduled_from is not None:
        conditions.append(c.day >= filters.scheduled_from)
    if filters.scheduled_to is not None:
        conditions.append(c.day <= filters.scheduled_to)
    if filters.status in ("scheduled", "due"):
        conditions.append(c.status == SCHEDULED)
        conditions.append(c.day > today if filters.status == "scheduled" else c.day < today)
    elif filters.status is not None:
        conditions.append(c.status == filters.status)
    return conditions


def _rollup_status_counts(
    connection: Connection, filters: RequestFilters, now: dt.datetime
) -> list[StatusCount]:
    c = _rollup(filters.merchant_id).c
    today = now.astimezone(dt.UTC).date()
    shown = case((c.status != SCHEDULED, c.status), (c.day < today, "due"), else_="scheduled")
    rows = (
        select(shown.label("status"), c.bounce_reason, c.requests)
        .where(*_rollup_conditions(c, filters, today))
        .subquery()
    )
    query = select(rows.c.status, rows.c.bounce_reason, func.sum(rows.c.requests)).group_by(
        rows.c.status, rows.c.bounce_reason
    )
    rows_found = connection.execute(query).tuples()
    return [StatusCount(status, reason, int(n)) for status, reason, n in rows_found if n]


def _today_counts(
    connection: Connection, filters: RequestFilters, now: dt.datetime
) -> list[StatusCount]:
    """Today's ``scheduled`` requests, due and not yet due, when ``filters`` take them in."""
    today = now.astimezone(dt.UTC).date()
    if filters.status not in (None, "scheduled", "due") or not _within(filters, today):
        return []
    r = ReviewRequestRow
    conditions = [r.status == SCHEDULED, *_scheduled_on(today)]
    if filters.merchant_id is not None:
        conditions.append(r.merchant_id == filters.merchant_id)
    if filters.request_type is not None:
        conditions.append(r.request_type == filters.request_type)
    due, scheduled = connection.execute(
        select(
            func.count().filter(r.scheduled_at <= now), func.count().filter(r.scheduled_at > now)
        ).where(*conditions)
    ).one()
    counts = [StatusCount("due", "", due or 0), StatusCount("scheduled", "", scheduled or 0)]
    return [n for n in counts if n.requests and filters.status in (None, n.status)]


def _within(filters: RequestFilters, day: dt.date) -> bool:
    """Whether ``day`` is within the filter's scheduled days."""
    return (filters.scheduled_from is None or filters.scheduled_from <= day) and (
        filters.scheduled_to is None or day <= filters.scheduled_to
    )


def _direct_status_counts(
    connection: Connection, filters: RequestFilters, now: dt.datetime
) -> list[StatusCount]:
    r = ReviewRequestRow
    shown = case((and_(r.status == SCHEDULED, r.scheduled_at <= now), "due"), else_=r.status)
    reason = case((r.status == NOT_DELIVERED, func.coalesce(r.bounce_reason, "")), else_="")
    rows = (
        select(shown.label("status"), reason.label("bounce_reason"))
        .where(*request_conditions(filters, now))
        .subquery()
    )
    query = select(rows.c.status, rows.c.bounce_reason, func.count()).group_by(
        rows.c.status, rows.c.bounce_reason
    )
    return [StatusCount(*row) for row in connection.execute(query)]


def _rollup_per_day(
    connection: Connection, filters: RequestFilters, days: Sequence[dt.date], now: dt.datetime
) -> dict[dt.date, int]:
    c = _rollup(filters.merchant_id).c
    today = now.astimezone(dt.UTC).date()
    query = (
        select(c.day, func.sum(c.requests))
        .where(*_rollup_conditions(c, filters, today), c.day >= days[0], c.day <= days[-1])
        .group_by(c.day)
    )
    counts = {day: int(n) for day, n in connection.execute(query)}
    if days[0] <= today <= days[-1]:
        counts[today] = counts.get(today, 0) + sum(
            n.requests for n in _today_counts(connection, filters, now)
        )
    return counts


def _direct_per_day(
    connection: Connection, filters: RequestFilters, days: Sequence[dt.date], now: dt.datetime
) -> dict[dt.date, int]:
    r = ReviewRequestRow
    day = utc_day(r.scheduled_at)
    within = [r.scheduled_at >= day_start(days[0])]
    if (end := _next_day_start(days[-1])) is not None:
        within.append(r.scheduled_at < end)
    query = (
        select(day, func.count()).where(*request_conditions(filters, now), *within).group_by(day)
    )
    return dict(connection.execute(query).tuples().all())


def _scheduled_on(day: dt.date) -> list[ColumnElement[bool]]:
    """``scheduled_at`` within the UTC day ``day``."""
    on = [ReviewRequestRow.scheduled_at >= day_start(day)]
    if (end := _next_day_start(day)) is not None:
        on.append(ReviewRequestRow.scheduled_at < end)
    return on


# --- cancellations -------------------------------------------------------------------------


def list_cancellations(engine: Engine, import_id: str) -> Sequence[RowMapping]:
    """The cancellations of ``import_id``, newest first, at most ``MAX_CANCELLATIONS``."""
    c = CancellationRow
    query = (
        select(*c.__table__.columns)
        .where(c.import_id == import_id)
        .order_by(c.cancelled_at.desc(), c.cancellation_id.desc())
        .limit(MAX_CANCELLATIONS)
    )
    with engine.connect() as connection:
        return connection.execute(query).mappings().all()


# --- overview ------------------------------------------------------------------------------


#: Files with signs of filtering listed on the overview, newest first.
MAX_WARNED_FILES = 20


def warned_files(
    engine: Engine, first: dt.date, last: dt.date, merchant_id: str | None = None
) -> list[RowMapping]:
    """The newest files processed in [first, last] whose import noticed signs of filtering."""
    i = ImportRow
    conditions = [i.processed_at >= day_start(first), i.warnings.is_not(None), i.warnings != "[]"]
    if (end := _next_day_start(last)) is not None:
        conditions.append(i.processed_at < end)
    if merchant_id is not None:
        conditions.append(i.merchant_id == merchant_id)
    query = (
        select(i.import_id, i.merchant_id, i.file_name, i.processed_at, i.warnings)
        .where(*conditions)
        .order_by(*_IMPORT_ORDER)
        .limit(MAX_WARNED_FILES)
    )
    with engine.connect() as connection:
        return list(connection.execute(query).mappings())


def merchant_activity(
    engine: Engine, first: dt.date, last: dt.date, merchant_id: str | None = None
) -> list[MerchantDay]:
    """Files, rows and errors per merchant and UTC day of ``processed_at``, by merchant."""
    i = ImportRow
    day = utc_day(i.processed_at).label("day")
    conditions = [i.processed_at >= day_start(first)]
    if (end := _next_day_start(last)) is not None:
        conditions.append(i.processed_at < end)
    if merchant_id is not None:
        conditions.append(i.merchant_id == merchant_id)
    query = (
        select(
            i.merchant_id,
            day,
            func.count().label("files"),
            func.count().filter(i.status == "rejected").label("rejected_files"),
            func.coalesce(func.sum(i.total_rows), 0).label("rows"),
            func.coalesce(func.sum(i.error_rows), 0).label("error_rows"),
        )
        .where(*conditions)
        .group_by(i.merchant_id, day)
        .order_by(i.merchant_id, day)
    )
    with engine.connect() as connection:
        return [
            MerchantDay(
                row.merchant_id,
                row.day,
                Activity(row.files, row.rejected_files, row.rows, row.error_rows),
            )
            for row in connection.execute(query)
        ]


# --- paging --------------------------------------------------------------------------------


def _page(
    engine: Engine,
    query: Select[Any],
    table: FromClause,
    conditions: Sequence[ColumnElement[bool]],
    paging: Paging,
) -> Page:
    with engine.connect() as connection:
        rows = (
            connection.execute(query.offset(paging.offset).limit(paging.limit + 1)).mappings().all()
        )
        has_more = len(rows) > paging.limit
        if not has_more and (rows or paging.offset == 0):
            # This page reaches the end: the count is known without counting.
            return Page(rows, paging.offset + len(rows), False, False)
        total, capped = _capped_count(connection, table, conditions)
    if capped:
        # At least the cap, and at least every row up to this page and the next one.
        total = max(total, paging.offset + paging.limit + 1)
    return Page(rows[: paging.limit], total, capped, has_more)


def _capped_count(
    connection: Connection, table: FromClause, conditions: Sequence[ColumnElement[bool]]
) -> tuple[int, bool]:
    """The number of matching rows, reading at most ``TOTAL_CAP + 1`` of them; and whether
    there are more than ``TOTAL_CAP``."""
    matching = select(literal(1)).select_from(table).where(*conditions).limit(TOTAL_CAP + 1)
    counted = connection.scalar(select(func.count()).select_from(matching.subquery())) or 0
    return min(counted, TOTAL_CAP), counted > TOTAL_CAP


def _add_days(day: dt.date, days: int) -> dt.date:
    """``day`` moved by ``days``, kept within the calendar Python knows (years 1 to 9999)."""
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min
