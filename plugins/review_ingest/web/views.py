"""View models of the review UI: what the API answers and the pages show.

Personal data: an e-mail leaves the server only masked (``a***@example.com``), and first and
last names never (the queries do not even select them). Bounce reasons are stored masked, and
masked again on the way out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any, get_args
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from review_ingest.core.events import mask_addresses
from review_ingest.web import queries

#: Lines shown for each error code on an import's page.
FIRST_LINES = 10
#: Order references one cancellation may name through the API.
MAX_ORDER_REFS = 10_000
#: Bounce reasons a funnel lists by name, most frequent first; the rest are counted together.
TOP_REASONS = 10
REQUEST_STATUSES: tuple[str, ...] = get_args(queries.RequestStatus)
#: The tracking funnel (contract section 13): each step counts the requests whose status is
#: that step or a later one; ``not_delivered`` was sent. Clicked counts as opened.
FUNNEL_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "scheduled_or_due",
        ("scheduled", "due", "sent", "delivered", "opened", "clicked", "reviewed", "not_delivered"),
    ),
    ("sent", ("sent", "delivered", "opened", "clicked", "reviewed", "not_delivered")),
    ("delivered", ("delivered", "opened", "clicked", "reviewed")),
    ("opened", ("opened", "clicked", "reviewed")),
    ("reviewed", ("reviewed",)),
)
TOTAL_DESCRIPTION = (
    f"Matching rows. Exact when `total_is_lower_bound` is false. Counting stops after "
    f"{queries.TOTAL_CAP:,} rows so that every call stays fast: then `total_is_lower_bound` is "
    "true and there are at least `total` matching rows (narrow the filters, or page on while "
    "`has_more` is true)."
)


def mask_email(email: str | None) -> str | None:
    """``alice@example.com`` -> ``a***@example.com``: first character, ``***``, the domain.

    None stays None (the address was erased, contract section 11).
    """
    if email is None:
        return None
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}***@{domain}"


def request_status(
    scheduled_at: dt.datetime, now: dt.datetime, stored: str = "scheduled"
) -> queries.RequestStatus:
    """The stored status (``stored``: sent, delivered, ..., cancelled, withdrawn), but a request
    not yet sent is ``scheduled`` while ``scheduled_at`` is in the future and ``due`` after."""
    if stored != queries.SCHEDULED:
        return stored  # type: ignore[return-value]  # the table holds only these values
    return "scheduled" if scheduled_at > now else "due"


class WarningItem(BaseModel):
    """A sign that a file may have been filtered (``core.warnings``)."""

    code: str
    message: str


class ImportItem(BaseModel):
    """One file seen, loaded or not: every ``imports`` column of contract section 4."""

    import_id: str
    merchant_id: str
    source: str
    file_name: str
    sha256: str
    size_bytes: int
    template: str | None
    status: str
    rejection_code: str | None
    total_rows: int
    valid_rows: int
    error_rows: int
    duplicate_rows: int
    suppressed_rows: int = Field(
        description="valid rows of customers who opted out: counted in valid_rows, no request"
    )
    brand_requests: int
    product_requests: int
    received_at: dt.datetime
    processed_at: dt.datetime
    warnings: list[WarningItem] = Field(
        default_factory=list,
        description="signs that the file may have been filtered (every customer must be asked): "
        "`volume_drop`, `order_ref_gaps`, `missing_shop`, `missing_language`; noticed, never a "
        "rejection. Empty when none, and for files not compared (rejected, already imported)",
    )

    @field_validator("warnings", mode="before")
    @classmethod
    def _warnings_from_json(cls, value: object) -> object:
        """The table keeps them as a JSON list; null (not compared) is none."""
        return json.loads(value) if isinstance(value, str) else value or []


class RequestItem(BaseModel):
    """One review request; the e-mail masked, no name."""

    request_id: int
    import_id: str
    merchant_id: str
    request_type: queries.RequestType
    order_ref: str
    id_product: str | None
    email_masked: str | None = Field(
        description="`a***@example.com`: first character, `***`, the domain (null once erased)"
    )
    language: str | None
    scheduled_at: dt.datetime = Field(description="ISO 8601, UTC")
    status: queries.RequestStatus = Field(
        description="`scheduled` while `scheduled_at` is in the future, `due` once it is past "
        "(not yet sent); then the furthest step the mailer reported: `sent`, `delivered`, "
        "`opened`, `clicked`, `reviewed`, or `not_delivered` (bounced or failed, no later step); "
        "`withdrawn` when the customer opted out before it was sent, `cancelled` when its "
        "import or order was cancelled before it was due (nothing is sent for either)"
    )
    sent_at: dt.datetime | None = Field(description="first time of each step, ISO 8601, UTC")
    delivered_at: dt.datetime | None
    opened_at: dt.datetime | None
    clicked_at: dt.datetime | None
    reviewed_at: dt.datetime | None
    bounced_at: dt.datetime | None
    bounce_reason: str | None = Field(description="of the first bounce, addresses masked")
    rating: int | None = Field(description="the review's rating, 1 to 5")


class FunnelStep(BaseModel):
    """One step of the tracking funnel."""

    step: str = Field(description="`scheduled_or_due`, `sent`, `delivered`, `opened`, `reviewed`")
    requests: int = Field(description="requests that reached this step or a later one")
    rate_of_previous: float | None = Field(
        description="`requests` / the previous step's (null for the first step, or when the "
        "previous step has none)"
    )
    rate_of_sent: float | None = Field(
        description="`requests` / the `sent` step's (null before it, or when none was sent)"
    )


class ReasonCount(BaseModel):
    reason: str | None = Field(description="the bounce reason, addresses masked; null: none given")
    requests: int


class Funnel(BaseModel):
    """What happened to the requests a filter selects (contract section 13)."""

    requests: int = Field(description="every matching request")
    by_status: dict[str, int] = Field(description="matching requests of each status, 0 included")
    steps: list[FunnelStep]
    not_delivered: int = Field(description="sent, then bounced or failed, no later step known")
    not_delivered_rate_of_sent: float | None
    never_sent: int = Field(description="cancelled or withdrawn: outside the funnel")
    reasons: list[ReasonCount] = Field(
        description=f"why not delivered: the {TOP_REASONS} most frequent bounce reasons"
    )
    other_reasons: int = Field(description="not delivered requests of the other reasons")


class CancelRequest(BaseModel):
    """The body of ``POST /api/imports/{import_id}/cancel`` (contract section 12)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        description="any reason for the whole import (e.g. `wrong_file`); with `order_refs` one "
        "of `refunded`, `order_cancelled`, `test_order`, `duplicate_order`"
    )
    order_refs: list[str] | None = Field(
        default=None,
        max_length=MAX_ORDER_REFS,
        description="only these orders' requests; left out: every request of the import",
    )
    dry_run: bool = Field(default=False, description="count, change nothing")


class Cancellation(BaseModel):
    """What a cancellation did (or, in a dry run, would do)."""

    import_id: str
    merchant_id: str
    reason: str
    order_refs: list[str] | None = Field(description="the orders asked; null: the whole import")
    dry_run: bool
    cancelled: int = Field(description="requests not yet due, now cancelled")
    already_due: int = Field(description="requests already due, left as they are")
    already_cancelled: int = Field(description="requests cancelled before")
    not_found: int = Field(description="order references with no request in this import")


class CancellationItem(BaseModel):
    """One row of ``cancellations``, as an import's page lists it."""

    cancelled_at: dt.datetime
    cancelled_by: str
    reason: str
    order_refs: list[str] | None
    cancelled: int
    already_due: int
    already_cancelled: int
    not_found: int

    @field_validator("order_refs", mode="before")
    @classmethod
    def _from_json(cls, value: object) -> object:
        """The table keeps the list as JSON text."""
        return json.loads(value) if isinstance(value, str) else value


class ImportList(BaseModel):
    total: int = Field(description=TOTAL_DESCRIPTION)
    total_is_lower_bound: bool
    has_more: bool = Field(description="whether a next page (offset + limit) has rows")
    items: list[ImportItem] = Field(description="newest first (processed_at, then import_id)")


class RequestList(BaseModel):
    total: int = Field(description=TOTAL_DESCRIPTION)
    total_is_lower_bound: bool
    has_more: bool = Field(description="whether a next page (offset + limit) has rows")
    items: list[RequestItem] = Field(description="latest scheduled_at first")


class RejectionItem(BaseModel):
    code: str
    message: str


class RequestCounts(BaseModel):
    brand: int
    product: int
    due_now: int


class ValidationItem(BaseModel):
    suite: str | None
    data_docs: str | None = Field(
        description="the file's Data Docs page, relative to the data_docs folder "
        "(served at ../data-docs/<path>), or null"
    )


class Report(BaseModel):
    """A file's ``report.json``, contract section 5 (served as written by the pipeline)."""

    model_config = ConfigDict(extra="allow")

    import_id: str
    merchant_id: str
    source: str
    file_name: str
    sha256: str
    size_bytes: int
    template: str | None
    status: str
    rejection: RejectionItem | None
    total_rows: int
    valid_rows: int
    error_rows: int
    duplicate_rows: int
    #: Reports written before opt-out existed (contract section 11) have no such key.
    suppressed_rows: int = 0
    requests: RequestCounts
    errors: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    existing_proofs: list[dict[str, Any]]
    validation: ValidationItem


def import_list(page: queries.Page) -> ImportList:
    return ImportList(
        total=page.total,
        total_is_lower_bound=page.total_is_lower_bound,
        has_more=page.has_more,
        items=[ImportItem.model_validate(dict(row)) for row in page.rows],
    )


def request_item(row: Mapping[str, Any], now: dt.datetime) -> RequestItem:
    return RequestItem(
        request_id=row["request_id"],
        import_id=row["import_id"],
        merchant_id=row["merchant_id"],
        request_type=row["request_type"],
        order_ref=row["order_ref"],
        id_product=row["id_product"],
        email_masked=mask_email(row["email"]),
        language=row["language"],
        scheduled_at=row["scheduled_at"],
        status=request_status(row["scheduled_at"], now, row["status"]),
        sent_at=row["sent_at"],
        delivered_at=row["delivered_at"],
        opened_at=row["opened_at"],
        clicked_at=row["clicked_at"],
        reviewed_at=row["reviewed_at"],
        bounced_at=row["bounced_at"],
        bounce_reason=_masked_reason(row["bounce_reason"]),
        rating=row["rating"],
    )


def _masked_reason(reason: str | None) -> str | None:
    """A bounce reason with every address masked; '' and None are no reason."""
    return mask_addresses(reason) if reason else None


def rate(part: int, whole: int) -> float | None:
    """``part / whole``; None when ``whole`` is 0 (no rate, rather than a false 0 %)."""
    return part / whole if whole else None


def funnel(counts: Iterable[queries.StatusCount]) -> Funnel:
    """The funnel of ``counts`` (``queries.status_counts``): each step's requests and rates,
    the not delivered and their most frequent reasons."""
    by_status = dict.fromkeys(REQUEST_STATUSES, 0)
    reasons: dict[str | None, int] = {}
    for count in counts:
        by_status[count.status] = by_status.get(count.status, 0) + count.requests
        if count.status == queries.NOT_DELIVERED:
            reason = _masked_reason(count.bounce_reason)
            reasons[reason] = reasons.get(reason, 0) + count.requests
    reached = [sum(by_status[s] for s in statuses) for _, statuses in FUNNEL_STEPS]
    sent = reached[1]
    steps = [
        FunnelStep(
            step=name,
            requests=n,
            rate_of_previous=rate(n, reached[i - 1]) if i else None,
            rate_of_sent=rate(n, sent) if i else None,
        )
        for i, ((name, _), n) in enumerate(zip(FUNNEL_STEPS, reached, strict=True))
    ]
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0] or ""))
    top = [ReasonCount(reason=r, requests=n) for r, n in ranked[:TOP_REASONS]]
    not_delivered = by_status[queries.NOT_DELIVERED]
    return Funnel(
        requests=sum(by_status.values()),
        by_status=by_status,
        steps=steps,
        not_delivered=not_delivered,
        not_delivered_rate_of_sent=rate(not_delivered, sent),
        never_sent=by_status[queries.CANCELLED] + by_status[queries.WITHDRAWN],
        reasons=top,
        other_reasons=sum(n for _, n in ranked[TOP_REASONS:]),
    )


def request_list(page: queries.Page, now: dt.datetime) -> RequestList:
    return RequestList(
        total=page.total,
        total_is_lower_bound=page.total_is_lower_bound,
        has_more=page.has_more,
        items=[request_item(row, now) for row in page.rows],
    )


def iso_utc(moment: dt.datetime) -> str:
    """``2026-03-12T23:00:00Z``: the form the API and the CSV export give."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def utc_text(moment: dt.datetime) -> str:
    """``2026-03-12 23:00:00``: a moment in UTC as the pages show it."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def data_docs_href(data_docs: object, prefix: str) -> str | None:
    """The link to a report's Data Docs page, or None when there is none to link to.

    ``validation.data_docs`` is a path relative to ``<data>/data_docs/``; anything else (null,
    an absolute path, a path that climbs out with ``..``) gets no link.
    """
    if not isinstance(data_docs, str) or not data_docs:
        return None
    parts = data_docs.replace("\\", "/").split("/")
    if data_docs.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return prefix + "data-docs/" + "/".join(quote(p) for p in parts)


def errors_by_code(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A report's errors grouped by code, most frequent first, each with its first lines.

    The counts are the report's ``errors_by_code`` when it has one (a report lists the first
    1,000 errors only), else those of the listed errors.
    """
    lines: dict[str, list[int]] = {}
    for error in report.get("errors") or ():
        lines.setdefault(str(error.get("code")), []).append(error.get("line"))
    counts = report.get("errors_by_code") or {code: len(found) for code, found in lines.items()}
    return [
        {"code": code, "count": count, "first_lines": lines.get(code, [])[:FIRST_LINES]}
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
