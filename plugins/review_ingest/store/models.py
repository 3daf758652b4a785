"""The warehouse tables: ``imports``, ``review_requests``, ``import_errors`` (contract section 4),
the personal-data tables ``suppressions`` and ``erasures`` (section 11) and ``cancellations``
(section 12).

The migrations in ``migrations/versions/`` create exactly these tables; a test compares them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
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
WITHDRAWN_STATUS = "suppressed"
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
    )


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
