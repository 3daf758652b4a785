"""Tracking in the review UI (contract section 13) without a server: each request's status and
step times, the funnel's numbers and rates (zero denominators included), the bounce reasons,
the funnel's SVG and the CSV export's delivery columns."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from review_ingest.web import charts, csv_export, pages, views
from review_ingest.web.queries import StatusCount

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
SENT = dt.datetime(2026, 3, 9, 8, 0, tzinfo=dt.UTC)


def counts(**by_status: int) -> list[StatusCount]:
    return [StatusCount(status, "", n) for status, n in by_status.items()]


def step(funnel: views.Funnel, name: str) -> views.FunnelStep:
    return next(s for s in funnel.steps if s.step == name)


# --- statuses and items --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "scheduled_at", "shown"),
    [
        ("scheduled", NOW + dt.timedelta(seconds=1), "scheduled"),
        ("scheduled", NOW, "due"),
        *((s, NOW + dt.timedelta(days=1), s) for s in ("sent", "delivered", "opened")),
        *((s, NOW - dt.timedelta(days=1), s) for s in ("clicked", "reviewed", "not_delivered")),
        ("cancelled", NOW - dt.timedelta(days=1), "cancelled"),
        ("withdrawn", NOW + dt.timedelta(days=1), "withdrawn"),
    ],
)
def test_a_request_shows_its_stored_status_but_scheduled_splits_at_now(
    stored: str, scheduled_at: dt.datetime, shown: str
) -> None:
    assert views.request_status(scheduled_at, NOW, stored) == shown


def test_every_status_is_a_filter_value() -> None:
    assert pages.REQUEST_STATUSES == (
        "scheduled", "due", "sent", "delivered", "opened", "clicked", "reviewed",
        "not_delivered", "cancelled", "withdrawn",
    )  # fmt: skip


def row(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "request_id": 7,
        "import_id": "imp-1",
        "merchant_id": "acme",
        "request_type": "brand",
        "order_ref": "A-1",
        "id_product": None,
        "email": "jane.doe@example.com",
        "language": "fr",
        "scheduled_at": SENT - dt.timedelta(hours=1),
        "status": "not_delivered",
        "sent_at": SENT,
        "delivered_at": None,
        "opened_at": None,
        "clicked_at": None,
        "reviewed_at": None,
        "bounced_at": SENT + dt.timedelta(minutes=5),
        "bounce_reason": "550 5.1.1 <jane.doe@example.com>: no such user",
        "rating": None,
    }
    return base | changes


def test_an_item_carries_its_step_times_and_a_masked_bounce_reason() -> None:
    item = views.request_item(row(), NOW).model_dump(mode="json")

    assert item["status"] == "not_delivered"
    assert item["sent_at"] == "2026-03-09T08:00:00Z"
    assert item["bounced_at"] == "2026-03-09T08:05:00Z"
    assert item["delivered_at"] is None and item["rating"] is None
    assert item["bounce_reason"] == "550 5.1.1 <j***@example.com>: no such user"
    assert "jane.doe" not in str(item)
    reviewed = views.request_item(row(status="reviewed", bounce_reason=None, rating=4), NOW)
    assert (reviewed.status, reviewed.rating, reviewed.bounce_reason) == ("reviewed", 4, None)


def test_the_csv_export_appends_the_delivery_columns() -> None:
    lines = "".join(csv_export.request_lines([[row(), row(request_id=8, status="scheduled")]], NOW))
    parsed = list(csv.DictReader(io.StringIO(lines), delimiter=";"))

    header = lines.splitlines()[0].split(";")
    assert header[:10] == [
        "request_id", "import_id", "merchant_id", "request_type", "order_ref", "id_product",
        "email_masked", "language", "scheduled_at", "status",
    ]  # fmt: skip
    assert header[10:] == [
        "sent_at", "delivered_at", "opened_at", "clicked_at", "reviewed_at", "bounced_at",
        "bounce_reason", "rating",
    ]  # fmt: skip
    assert parsed[0]["sent_at"] == "2026-03-09T08:00:00Z"
    assert parsed[0]["bounce_reason"] == "550 5.1.1 <j***@example.com>: no such user"
    assert parsed[0]["delivered_at"] == "" and parsed[0]["rating"] == ""
    assert parsed[1]["status"] == "due"
    assert "jane.doe" not in lines


# --- the funnel ----------------------------------------------------------------------------


def test_each_step_counts_the_requests_that_reached_it_or_a_later_one() -> None:
    funnel = views.funnel(
        counts(
            scheduled=5, due=15, sent=10, delivered=20, opened=10, clicked=5, reviewed=15,
            not_delivered=20, cancelled=3, withdrawn=2,
        )
    )  # fmt: skip

    assert [(s.step, s.requests) for s in funnel.steps] == [
        ("scheduled_or_due", 100),
        ("sent", 80),  # not delivered was sent
        ("delivered", 50),
        ("opened", 30),  # clicked and reviewed were opened
        ("reviewed", 15),
    ]
    assert funnel.requests == 105
    assert (funnel.not_delivered, funnel.never_sent) == (20, 5)
    assert funnel.by_status["clicked"] == 5 and funnel.by_status["cancelled"] == 3
    assert step(funnel, "scheduled_or_due").rate_of_previous is None
    assert step(funnel, "scheduled_or_due").rate_of_sent is None
    assert step(funnel, "sent").rate_of_previous == 0.8
    assert step(funnel, "sent").rate_of_sent == 1.0
    assert step(funnel, "delivered").rate_of_previous == 50 / 80
    assert step(funnel, "opened").rate_of_previous == 30 / 50
    assert step(funnel, "reviewed").rate_of_previous == 0.5
    assert step(funnel, "reviewed").rate_of_sent == 15 / 80
    assert funnel.not_delivered_rate_of_sent == 0.25


def test_rates_over_nothing_are_none_not_zero() -> None:
    empty = views.funnel([])
    assert [s.requests for s in empty.steps] == [0, 0, 0, 0, 0]
    assert all(s.rate_of_previous is None and s.rate_of_sent is None for s in empty.steps)
    assert empty.not_delivered_rate_of_sent is None
    assert set(empty.by_status.values()) == {0} and len(empty.by_status) == 10

    waiting = views.funnel(counts(due=4))
    assert step(waiting, "sent").rate_of_previous == 0.0  # 0 of 4 sent: a real 0 %
    assert step(waiting, "delivered").rate_of_previous is None  # 0 of 0
    assert step(waiting, "delivered").rate_of_sent is None

    never = views.funnel(counts(cancelled=2))
    assert step(never, "scheduled_or_due").requests == 0 and never.never_sent == 2


def test_the_most_frequent_bounce_reasons_masked_and_the_rest_together() -> None:
    found = [StatusCount("not_delivered", f"reason {n:02}", n) for n in range(1, 13)]
    found += [
        StatusCount("not_delivered", "", 4),
        StatusCount("not_delivered", "550 <bob.smith@example.org> unknown", 30),
        StatusCount("delivered", "", 50),
    ]
    funnel = views.funnel(found)

    assert funnel.not_delivered == sum(range(1, 13)) + 4 + 30
    assert [(r.reason, r.requests) for r in funnel.reasons[:3]] == [
        ("550 <b***@example.org> unknown", 30),
        ("reason 12", 12),
        ("reason 11", 11),
    ]
    assert len(funnel.reasons) == views.TOP_REASONS
    assert ("no reason", 4) in [(r.reason or "no reason", r.requests) for r in funnel.reasons]
    listed = sum(r.requests for r in funnel.reasons)
    assert funnel.other_reasons == funnel.not_delivered - listed == 1 + 2 + 3 + 4


# --- the funnel's chart and figures ---------------------------------------------------------


def test_the_funnel_chart_writes_each_steps_name_count_and_rates() -> None:
    funnel = views.funnel(counts(scheduled=1, due=19, sent=10, delivered=60, reviewed=10))
    context = pages.funnel_context(funnel)
    svg = str(context["chart"])

    assert svg.startswith('<svg class="chart funnel"') and svg.endswith("</svg>")
    assert svg.count("<rect") == 5
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert texts[0::2] == ["Scheduled or due", "Sent", "Delivered", "Opened", "Reviewed"]
    assert texts[1] == "100 · not yet sent: 1 scheduled, 19 due"
    assert texts[3] == "80 · 80.0% of scheduled or due"
    assert texts[5] == "70 · 87.5% of sent"
    assert texts[7] == "10 · 14.3% of delivered, 12.5% of sent"
    assert texts[9] == "10 · 100.0% of opened, 12.5% of sent"
    assert context["not_delivered_rate"] == "0.0%"
    widths = [float(w) for w in re.findall(r'<rect[^>]*width="([0-9.]+)"', svg)]
    assert widths[0] == max(widths) and widths[1] == widths[0] * 0.8
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_an_empty_funnel_draws_zero_bars_and_says_n_a() -> None:
    context = pages.funnel_context(views.funnel([]))
    svg = str(context["chart"])

    assert re.findall(r'<rect[^>]*width="([0-9.]+)"', svg) == ["0.0"] * 5
    assert "0 · n/a of scheduled or due" in svg
    assert context["not_delivered_rate"] == "n/a"


def test_funnel_chart_escapes_its_text() -> None:
    svg = str(charts.funnel_chart([charts.Stage("<b>", 3, "a & b")], "T <i>"))
    assert "&lt;b&gt;" in svg and "a &amp; b" in svg and "T &lt;i&gt;" in svg
    assert "<b>" not in svg and "<i>" not in svg
