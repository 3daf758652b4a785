"""What each page of the review UI shows: the template's context, from queries and views.

Links are relative (the API server may sit behind a proxy under a prefix): ``root`` leads from
a page back to the app's root (``""`` at depth one, ``"../"`` on an import's page). A search by
e-mail keeps its filter in links as ``email_token`` (see ``email_filter``): no page holds an
address in clear.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, get_args
from urllib.parse import urlencode

from sqlalchemy import Engine, RowMapping

from review_ingest.store.cancellations import ORDER_REASONS
from review_ingest.web import charts, email_filter, queries, views
from review_ingest.web.queries import ImportFilters, Paging, RequestFilters

OVERVIEW_DAYS = 30
IMPORT_STATUSES = get_args(queries.ImportStatus)
IMPORT_SOURCES = get_args(queries.ImportSource)
REQUEST_STATUSES = get_args(queries.RequestStatus)
REQUEST_TYPES = get_args(queries.RequestType)
#: Duplicates and existing proofs listed on an import's page.
LISTED = 100
#: The reasons the import page's form offers: a whole import's usual one, then those that may
#: also cancel single orders.
CANCEL_REASONS = ("wrong_file", *ORDER_REASONS)
FUNNEL_LABELS = {
    "scheduled_or_due": "Scheduled or due",
    "sent": "Sent",
    "delivered": "Delivered",
    "opened": "Opened",
    "reviewed": "Reviewed",
}


def filter_params(filters: ImportFilters | RequestFilters) -> dict[str, str]:
    """The filters that are set, as query parameters."""
    params = {}
    for field in dataclasses.fields(filters):
        value = getattr(filters, field.name)
        if value is not None:
            params[field.name] = value.isoformat() if isinstance(value, dt.date) else str(value)
    return params


def query(params: Mapping[str, object]) -> str:
    """``?a=1&b=2`` (empty when there is nothing to say)."""
    return "?" + urlencode(params) if params else ""


def paging_links(params: Mapping[str, str], paging: Paging, page: queries.Page) -> dict[str, Any]:
    """The previous and next pages' links (None at either end), and this page's range."""
    sized = dict(params)
    if paging.limit != queries.DEFAULT_LIMIT:
        sized["limit"] = str(paging.limit)
    previous = next_ = None
    if paging.offset > 0:
        back = max(0, paging.offset - paging.limit)
        previous = query({**sized, "offset": str(back)} if back else sized) or "?"
    if page.has_more and paging.offset + paging.limit <= queries.MAX_OFFSET:
        next_ = query({**sized, "offset": str(paging.offset + paging.limit)})
    return {
        "previous": previous,
        "next": next_,
        "first": paging.offset + 1 if page.rows else 0,
        "last": paging.offset + len(page.rows),
        "total": page.total,
        "total_is_lower_bound": page.total_is_lower_bound,
    }


def imports_context(engine: Engine, filters: ImportFilters, paging: Paging) -> dict[str, Any]:
    page = queries.list_imports(engine, filters, paging)
    params = filter_params(filters)
    return {
        "root": "",
        "title": "Imports",
        "filters": params,
        "statuses": IMPORT_STATUSES,
        "sources": IMPORT_SOURCES,
        "items": views.import_list(page).items,
        "paging": paging_links(params, paging, page),
    }


def import_context(
    row: RowMapping,
    report: Mapping[str, Any] | None,
    cancellations: Sequence[Mapping[str, Any]] = (),
    funnel: views.Funnel | None = None,
) -> dict[str, Any]:
    """An import's page: its ``imports`` row, what its report says when there is one, its
    cancellations (a loaded import's page has the form that cancels) and the funnel of its
    requests."""
    item = views.ImportItem.model_validate(dict(row))
    context: dict[str, Any] = {
        "root": "../",
        "title": f"Import {item.import_id}",
        "item": item,
        "report": report,
        "cancellations": [views.CancellationItem.model_validate(dict(c)) for c in cancellations],
        "cancel_reasons": CANCEL_REASONS if item.status == "loaded" else (),
        "funnel": funnel_context(funnel) if funnel is not None else None,
        "requests_href": "../requests" + query({"import_id": item.import_id}),
    }
    if report is not None:
        validation = report.get("validation") or {}
        context |= {
            "rejection": report.get("rejection"),
            "requests": report.get("requests") or {},
            "errors_by_code": views.errors_by_code(report),
            "duplicates": (report.get("duplicates") or [])[:LISTED],
            "duplicates_total": report.get("duplicates_total", len(report.get("duplicates") or [])),
            "existing_proofs": (report.get("existing_proofs") or [])[:LISTED],
            "existing_proofs_total": len(report.get("existing_proofs") or []),
            "earlier_import_id": report.get("earlier_import_id"),
            "data_docs_href": views.data_docs_href(validation.get("data_docs"), "../"),
        }
    return context


def requests_context(
    engine: Engine,
    filters: RequestFilters,
    paging: Paging,
    now: dt.datetime,
    secret: str,
) -> dict[str, Any]:
    page = queries.list_requests(engine, filters, paging, now)
    params = filter_params(filters)
    email = params.pop("email", None)
    if email is not None:
        params["email_token"] = email_filter.seal(email, secret)
    days = queries.chart_days(filters, now.date())
    counts = queries.requests_per_day(engine, filters, days, now)
    funnel = views.funnel(queries.status_counts(engine, filters, now))
    chart = charts.bar_chart(
        [charts.Bar(c.day.isoformat(), c.requests) for c in counts],
        "Requests per scheduled day (UTC)",
    )
    return {
        "root": "",
        "title": "Review requests",
        "filters": params,
        "email_masked": views.mask_email(email) if email else None,
        "statuses": REQUEST_STATUSES,
        "types": REQUEST_TYPES,
        "items": views.request_list(page, now).items,
        "paging": paging_links(params, paging, page),
        "chart": chart,
        "chart_days": (days[0], days[-1]) if days else None,
        "export_href": "api/requests.csv" + query(params),
        "without_email": query({k: v for k, v in params.items() if k != "email_token"}) or "?",
        "without_import": query({k: v for k, v in params.items() if k != "import_id"}) or "?",
        "funnel": funnel_context(funnel),
    }


def funnel_context(funnel: views.Funnel) -> dict[str, Any]:
    """The funnel as a page shows it: its chart, every figure written out, and the reasons."""
    stages = [
        charts.Stage(FUNNEL_LABELS[step.step], step.requests, _step_note(step, previous, funnel))
        for step, previous in zip(funnel.steps, [None, *funnel.steps], strict=False)
    ]
    title = "What happened to these requests: each step counts those that reached it or beyond"
    return {
        "data": funnel,
        "chart": charts.funnel_chart(stages, title),
        "not_delivered_rate": percent(funnel.not_delivered_rate_of_sent),
    }


def _step_note(
    step: views.FunnelStep, previous: views.FunnelStep | None, funnel: views.Funnel
) -> str:
    """A step's rates in words; the first step says how many are not yet sent."""
    if previous is None:
        waiting = funnel.by_status["scheduled"], funnel.by_status["due"]
        return f"not yet sent: {waiting[0]:,} scheduled, {waiting[1]:,} due"
    note = f"{percent(step.rate_of_previous)} of {FUNNEL_LABELS[previous.step].lower()}"
    if previous.step not in ("scheduled_or_due", "sent"):
        note += f", {percent(step.rate_of_sent)} of sent"
    return note


def percent(rate: float | None) -> str:
    """``12.3%``; ``n/a`` when there is no rate (nothing in the step before)."""
    return "n/a" if rate is None else f"{rate:.1%}"


def overview_context(engine: Engine, merchant_id: str | None, today: dt.date) -> dict[str, Any]:
    """The last ``OVERVIEW_DAYS`` UTC days: each merchant's totals, and per-day charts of files,
    rows and error rate for one merchant (or all of them together)."""
    first = today - dt.timedelta(days=OVERVIEW_DAYS - 1)
    days = [first + dt.timedelta(days=n) for n in range(OVERVIEW_DAYS)]
    totals: dict[str, queries.Activity] = defaultdict(queries.Activity)
    per_day = {day: queries.Activity() for day in days}
    for entry in queries.merchant_activity(engine, first, today):
        totals[entry.merchant_id] += entry.activity
        if merchant_id in (None, entry.merchant_id) and entry.day in per_day:
            per_day[entry.day] += entry.activity
    labels = [day.isoformat() for day in days]
    files = [charts.Bar(d, a.files) for d, a in zip(labels, per_day.values(), strict=True)]
    rows = [charts.Bar(d, a.rows) for d, a in zip(labels, per_day.values(), strict=True)]
    rates = [charts.Bar(d, a.error_rate) for d, a in zip(labels, per_day.values(), strict=True)]
    titles = ("Files per day", "Rows per day", "Error rate per day (rows with errors / rows)")
    return {
        "root": "",
        "title": "Overview",
        "merchant_id": merchant_id,
        "first": first,
        "last": today,
        "merchants": sorted(totals.items()),
        "warned_files": [
            {**row, "warnings": json.loads(row["warnings"])}
            for row in queries.warned_files(engine, first, today, merchant_id)
        ],
        "charts": [
            (titles[0], charts.bar_chart(files, titles[0])),
            (titles[1], charts.bar_chart(rows, titles[1])),
            (
                titles[2],
                charts.bar_chart(
                    rates,
                    titles[2],
                    value_text=lambda v: f"{v:.1%}",
                    scale_max=max(b.value for b in rates) or 1.0,
                ),
            ),
        ],
    }
