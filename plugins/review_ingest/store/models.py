"""The warehouse tables: ``imports``, ``review_requests``, ``import_errors`` (contract section 4),
the personal-data tables ``suppressions`` and ``erasures`` (section 11), ``cancellations``
(section 12), the mailer's ``delivery_events`` and ``event_files`` (section 13) with the
review UI's rollup ``request_counts`` (and its totals and changes), and the ``audit_log`` and
the e-mail ``outbox``.

The migrations in ``migrations/versions/`` create exactly these tables; a test compares them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no 64-bit identity column: only INTEGER PRIMARY KEY is its auto-numbered rowid.
ID_TYPE = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime stored in UTC; always read back aware, in UTC.

    PostgreSQL keeps it as ``timestamptz``. SQLite's DATETIME is text without an offset, so
    the value is converted to UTC before SQLAlchemy drops the offset, and UTC is put back
    on read. A naive datetime is refused instead of being guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else to_utc(value)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def to_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive datetime is a bug upstream, so it is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} refused: its time zone is unknown")
    return value.astimezone(dt.UTC)


#: ``review_requests.status`` of a request withdrawn because its customer opted out (section 11).
WITHDRAWN_STATUS = "withdrawn"
#: ``review_requests.status`` of a request whose import or order was cancelled (section 12): it
#: is never sent, and no longer proves its order was imported.
CANCELLED_STATUS = "cancelled"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ImportRow(Base):
    """One row per file seen, loaded or not."""

    __tablename__ = "imports"

    import_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # None when the file never reached a template (unknown merchant).
    template: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    rejection_code: Mapped[str | None] = mapped_column(String(40))
    total_rows: Mapped[int] = mapped_column(default=0, server_default="0")
    valid_rows: Mapped[int] = mapped_column(default=0, server_default="0")
    error_rows: Mapped[int] = mapped_column(default=0, server_default="0")
    duplicate_rows: Mapped[int] = mapped_column(default=0, server_default="0")
    brand_requests: Mapped[int] = mapped_column(default=0, server_default="0")
    product_requests: Mapped[int] = mapped_column(default=0, server_default="0")
    # Valid rows of an opted-out address (section 11): counted as valid, no request made.
    suppressed_rows: Mapped[int] = mapped_column(default=0, server_default="0")
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    processed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # Signs of a filtered file: a JSON list of {"code", "message"}; None before they existed.
    warnings: Mapped[str | None] = mapped_column(Text)
    # A compact JSON summary of the file that later files of the merchant are compared with.
    profile: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The same bytes load once per merchant: the database settles two concurrent runs.
        Index(
            "uq_imports_loaded_sha256",
            "merchant_id",
            "sha256",
            unique=True,
            postgresql_where=status == "loaded",
            sqlite_where=status == "loaded",
        ),
        # The review UI lists files newest first, for all merchants or one; import_id breaks
        # ties so that the order (and so the paging) is stable.
        Index("ix_imports_processed_at", "processed_at", "import_id"),
        Index("ix_imports_merchant_processed_at", "merchant_id", "processed_at", "import_id"),
    )


class ReviewRequestRow(Base):
    """One row per review request."""

    __tablename__ = "review_requests"

    request_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    import_id: Mapped[str] = mapped_column(ForeignKey("imports.import_id"), index=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    request_type: Mapped[str] = mapped_column(String(16))
    order_ref: Mapped[str] = mapped_column(String(64))
    id_product: Mapped[str | None] = mapped_column(String(64))
    # Personal data: null once past retention or erased (contract section 11).
    email: Mapped[str | None] = mapped_column(String(254))
    firstname: Mapped[str | None] = mapped_column(String(100))
    lastname: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(2))
    shop_id: Mapped[str | None] = mapped_column(String(64))
    order_date: Mapped[dt.date] = mapped_column(Date)
    scheduled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(20), default="scheduled", server_default="scheduled")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    name_product: Mapped[str | None] = mapped_column(String(255))
    url_product: Mapped[str | None] = mapped_column(String(2048))
    url_image_product: Mapped[str | None] = mapped_column(String(2048))
    gtin_ean: Mapped[str | None] = mapped_column(String(14))
    sku: Mapped[str | None] = mapped_column(String(64))
    brand_name: Mapped[str | None] = mapped_column(String(100))
    # SHA-256 of the trimmed, lower-cased address (as ``suppressions`` keeps it), so that the
    # work list can leave out opted-out addresses; personal data, nulled with ``email``.
    email_sha256: Mapped[str | None] = mapped_column(String(64))
    # Delivery (section 13): each step's first time, the bounce reason (addresses masked) and
    # the rating of a review.
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    clicked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    bounce_reason: Mapped[str | None] = mapped_column(String(255))
    rating: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (
        # One request per proof of purchase, brand requests (id_product NULL) included: NULLs
        # never collide in a unique index, hence coalesce. order_ref comes second so that this
        # index is also the one that finds a merchant's order_refs (known_order_refs). Cancelled
        # requests are left out: a corrected file loads those proofs again.
        Index(
            "uq_review_requests_proof",
            "merchant_id",
            "order_ref",
            "request_type",
            func.coalesce(id_product, ""),
            unique=True,
            postgresql_where=status != CANCELLED_STATUS,
            sqlite_where=status != CANCELLED_STATUS,
        ),
        # The review UI: requests by scheduled time (request_id breaks ties for keyset paging;
        # request_type last so that the per-day chart counts from the index alone), per
        # merchant, by order reference without a merchant, and by exact e-mail compared
        # case-insensitively (the query compares lower(email), so the index is on lower(email)).
        Index("ix_review_requests_scheduled_at", "scheduled_at", "request_id", "request_type"),
        Index(
            "ix_review_requests_merchant_scheduled_at",
            "merchant_id",
            "scheduled_at",
            "request_id",
            "request_type",
        ),
        Index("ix_review_requests_order_ref", "order_ref"),
        Index("ix_review_requests_email_lower", func.lower(email)),
        # Tracking (section 13): requests of one status by scheduled time, for all merchants
        # or one; request_type last, as above, so that a day's count reads the index alone.
        Index(
            "ix_review_requests_status_scheduled_at",
            "status",
            "scheduled_at",
            "request_id",
            "request_type",
        ),
        Index(
            "ix_review_requests_merchant_status_scheduled_at",
            "merchant_id",
            "status",
            "scheduled_at",
            "request_id",
            "request_type",
        ),
    )


class RequestCountRow(Base):
    """How many requests each (merchant, UTC day of ``scheduled_at``, type, status) holds, and
    for ``not_delivered`` each bounce reason: the review UI counts millions of requests from
    these few rows. Exact with ``request_count_changes``: the sum of both is the count of
    ``review_requests`` (triggers of migration 0007, in the transaction of every change)."""

    __tablename__ = "request_counts"

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    request_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    # The bounce reason of a ``not_delivered`` request ('' when none was given); '' otherwise.
    bounce_reason: Mapped[str] = mapped_column(String(255), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)


class RequestCountTotalRow(Base):
    """``request_counts`` summed over the merchants, for the counts of every merchant; exact with
    ``request_count_changes`` as well."""

    __tablename__ = "request_count_totals"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    request_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    bounce_reason: Mapped[str] = mapped_column(String(255), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)


class RequestCountChangeRow(Base):
    """Changes of the counts not yet added to ``request_counts`` and ``request_count_totals``
    (PostgreSQL): each statement on ``review_requests`` appends its own, so that writers never
    wait on each other's rows, and whichever transaction holds the fold lock moves them."""

    __tablename__ = "request_count_changes"

    change_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    request_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    bounce_reason: Mapped[str] = mapped_column(String(255))
    requests: Mapped[int] = mapped_column(BigInteger)


class ImportErrorRow(Base):
    """One row per row-level error of a file."""

    __tablename__ = "import_errors"

    error_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    import_id: Mapped[str] = mapped_column(ForeignKey("imports.import_id"), index=True)
    line: Mapped[int]
    column_name: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)


class SuppressionRow(Base):
    """A person who asked not to be contacted: the SHA-256 of their address, never the address.

    ``merchant_id`` null means every merchant. One entry per (address, merchant): the unique
    index coalesces the null, which would otherwise never collide.
    """

    __tablename__ = "suppressions"

    suppression_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    email_sha256: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(
            "uq_suppressions_email_sha256",
            "email_sha256",
            func.coalesce(merchant_id, ""),
            unique=True,
        ),
    )


class ErasureRow(Base):
    """One erasure of a person's data: when, where and how much; no address, not even hashed."""

    __tablename__ = "erasures"

    erasure_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # None: every merchant.
    merchant_id: Mapped[str | None] = mapped_column(String(64))
    requests_deleted: Mapped[int] = mapped_column(default=0, server_default="0")
    requests_anonymised: Mapped[int] = mapped_column(default=0, server_default="0")
    files_deleted: Mapped[int] = mapped_column(default=0, server_default="0")


class CancellationRow(Base):
    """One cancellation of an import, or of some of its orders (contract section 12): when,
    who, why, and what it did. No e-mail or name."""

    __tablename__ = "cancellations"

    cancellation_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    cancelled_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # The Airflow user, or ``cli:<system user>`` for the command line.
    cancelled_by: Mapped[str] = mapped_column(String(255))
    import_id: Mapped[str] = mapped_column(ForeignKey("imports.import_id"), index=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(100))
    # The order references asked, as a JSON list; None: the whole import.
    order_refs: Mapped[str | None] = mapped_column(Text)
    cancelled: Mapped[int] = mapped_column(default=0, server_default="0")
    already_due: Mapped[int] = mapped_column(default=0, server_default="0")
    already_cancelled: Mapped[int] = mapped_column(default=0, server_default="0")
    not_found: Mapped[int] = mapped_column(default=0, server_default="0")


class DeliveryEventRow(Base):
    """One event the mailer reported (contract section 13), loaded once by ``event_id``. No
    address or name: a bounce reason is stored with its addresses masked."""

    __tablename__ = "delivery_events"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    # No foreign key: erasure deletes requests, and their events stay as counts.
    request_id: Mapped[int] = mapped_column(BigInteger, index=True)
    event_type: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(String(255))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    file_id: Mapped[str] = mapped_column(String(40), index=True)
    loaded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class EventFileRow(Base):
    """One event file taken from ``events/incoming/``: its report is committed with its events,
    so a run killed before the file was moved finishes the move and writes the same report."""

    __tablename__ = "event_files"

    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # ``processed`` or ``rejected`` (not one line could be read).
    status: Mapped[str] = mapped_column(String(16))
    # The report of section 13 as JSON: counts and errors by line, no address or name.
    report: Mapped[str] = mapped_column(Text)
    processed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


#: Views, read only: on a MetaData of their own, so that ``create_all`` and the comparison of the
#: migrated schema with these models never take one for a table. Migration 0005 makes them.
VIEWS = MetaData()

#: The mailer's work list (contract section 13): the requests due and still ``scheduled`` (not
#: cancelled, withdrawn or sent), whose address is there (not erased) and has not opted out for
#: their merchant or for every merchant. Read it with ``store.work_list``.
REQUESTS_TO_SEND = Table(
    "requests_to_send",
    VIEWS,
    *(
        Column(name, ReviewRequestRow.__table__.c[name].type)
        for name in (
            "request_id import_id merchant_id request_type order_ref id_product email firstname "
            "lastname language shop_id order_date scheduled_at name_product url_product "
            "url_image_product gtin_ean sku brand_name"
        ).split()
    ),
)


class AuditEntryRow(Base):
    """One entry of the audit trail: an import, cancellation, erasure, suppression or purge,
    chained to the previous entry by SHA-256 so that a changed or deleted entry shows."""

    __tablename__ = "audit_log"

    entry_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    # Never goes back from one entry to the next: a range of days is a run of entries.
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    action: Mapped[str] = mapped_column(String(32))
    # What the entry is about: an import_id, a merchant, ...; None when it is about everything.
    subject: Mapped[str | None] = mapped_column(String(255))
    # The Airflow user, ``cli:<system user>`` or ``dag:<dag_id>``.
    actor: Mapped[str] = mapped_column(String(255))
    # Canonical JSON (sorted keys): file hashes, suite versions, counts; no address or name.
    details: Mapped[str] = mapped_column(Text)
    # Unique: two entries chained to the same one would be a fork.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class OutboxRow(Base):
    """An e-mail waiting to be sent, or sent: written in the transaction of what it tells, sent
    when the SMTP server answers; ``dedupe_key`` makes one message of one fact."""

    __tablename__ = "outbox"

    message_id: Mapped[int] = mapped_column(ID_TYPE, Identity(), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    # ``merchant_report``, ``alert_digest``, ``stuck_file``.
    kind: Mapped[str] = mapped_column(String(32))
    # A JSON list of addresses (merchants' staff and the data team, never customers).
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    attachment_name: Mapped[str | None] = mapped_column(String(255))
    attachment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=sent_at.is_(None),
            sqlite_where=sent_at.is_(None),
        ),
    )
