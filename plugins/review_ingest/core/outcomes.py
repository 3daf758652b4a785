"""The values that travel between the stages of the pipeline."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from review_ingest.core.address_hash import address_hash
from review_ingest.core.warnings import FileProfile, FileWarning

SOURCES = ("upload", "sftp", "backfill")


def new_import_id(now: dt.datetime) -> str:
    """Sortable by time, unique: ``20261127T101500Z-1a2b3c4d``."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class RowError:
    """One refused value of one row (``column`` is None for ``wrong_field_count``).

    Its ``message`` is given, or made from the refused ``value`` by ``rules.message`` when first
    read: an all-bad file has hundreds of thousands of errors, and ``check`` shows the first
    thousand only. A class with slots, as a frozen dataclass's ``__init__`` is far slower.
    """

    __slots__ = ("line", "column", "code", "_message", "_value")

    def __init__(
        self,
        line: int,
        column: str | None,
        code: str,
        message: str | None = None,
        value: str | None = None,
    ):
        self.line, self.column, self.code = line, column, code
        self._message, self._value = message, value

    @property
    def message(self) -> str:
        if self._message is None:
            from review_ingest.core import rules

            self._message = rules.message(self.code, self.column, self._value)
            self._value = None
        return self._message

    def _key(self) -> tuple[int, str | None, str, str]:
        return (self.line, self.column, self.code, self.message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RowError):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # as a dataclass that is not frozen

    def __repr__(self) -> str:
        line, column, code, message = self._key()
        return f"RowError({line=!r}, {column=!r}, {code=!r}, {message=!r})"


@dataclass(frozen=True, slots=True)
class Duplicate:
    line: int
    duplicate_of_line: int


@dataclass(frozen=True, slots=True)
class ExistingProof:
    order_ref: str
    line: int


@dataclass(frozen=True)
class Rejection:
    """Why a whole file was refused (section 2 of the contract)."""

    code: str
    message: str
    existing_proofs: tuple[ExistingProof, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """One data row of a file: its first physical line and its trimmed values by column."""

    line: int
    values: dict[str, str]


@dataclass(slots=True)
class ReviewRequest:
    """One row of ``review_requests``, before it is written; ``email_sha256`` is made from
    ``email`` (the opt-out list's rule), so every load stores it with the address."""

    merchant_id: str
    request_type: str  # "brand" or "product"
    order_ref: str
    id_product: str | None
    email: str
    firstname: str
    lastname: str
    language: str | None
    shop_id: str | None
    order_date: dt.date
    scheduled_at: dt.datetime  # aware, UTC
    name_product: str | None = None
    url_product: str | None = None
    url_image_product: str | None = None
    gtin_ean: str | None = None
    sku: str | None = None
    brand_name: str | None = None
    email_sha256: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.email_sha256 = address_hash(self.email)


@dataclass
class ImportRecord:
    """One row of ``imports``: every file seen, loaded or not."""

    import_id: str
    merchant_id: str
    source: str
    file_name: str
    sha256: str
    size_bytes: int
    template: str | None
    status: str  # "loaded", "rejected", "already_imported" (and "accepted" for dry runs)
    rejection_code: str | None
    received_at: dt.datetime
    processed_at: dt.datetime
    total_rows: int = 0
    valid_rows: int = 0
    error_rows: int = 0
    duplicate_rows: int = 0
    brand_requests: int = 0
    product_requests: int = 0
    #: Valid rows of an address that opted out: counted in ``valid_rows``, no request made.
    suppressed_rows: int = 0
    #: Signs of a filtered file, as JSON (a list of {"code", "message"}); None: not compared.
    warnings: str | None = None
    #: The file's compact summary (JSON) that later files of the merchant are compared with.
    profile: str | None = None


@dataclass
class Outcome:
    """Everything known about one processed file: the report is written from it."""

    record: ImportRecord
    rejection: Rejection | None = None
    errors: list[RowError] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    requests: list[ReviewRequest] = field(default_factory=list)
    due_now: int = 0
    suite: str | None = None
    #: The SHA-256 of the saved suite that validated the rows; None when none ran.
    suite_sha256: str | None = None
    #: The Data Docs page of the file's validation, relative to ``<data>/data_docs/``.
    data_docs: str | None = None
    earlier_import_id: str | None = None
    #: The first line of each order reference of the file, for the existing-proofs check.
    order_refs: dict[str, int] = field(default_factory=dict)
    #: The file's valid rows summed up, to compare with the merchant's other files.
    profile: FileProfile | None = None
    #: Signs that the file may have been filtered: noticed, never a rejection.
    warnings: list[FileWarning] = field(default_factory=list)
