"""When each review request is due (contract section 4), and the requests themselves."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

from review_ingest.core import rules
from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import Record, ReviewRequest
from review_ingest.core.template_columns import Template


def due_at(ordered: dt.datetime, delay_days: int, now: dt.datetime) -> tuple[dt.datetime, bool]:
    """``ordered`` + ``delay_days`` calendar days in its own time zone, as UTC; a time already
    past is due now (never dropped). Returns the time and whether it was brought to now."""
    local = ordered.replace(tzinfo=None) + dt.timedelta(days=delay_days)
    due = local.replace(tzinfo=ordered.tzinfo).astimezone(dt.UTC)
    if due < now:
        return now.astimezone(dt.UTC), True
    return due, False


def _delay(value: str, default: int, send_now: bool) -> int:
    return 0 if send_now else (int(value) if value else default)


def plan_requests(
    valid: list[Record],
    template: Template,
    merchant: Merchant,
    now: dt.datetime,
    send_now: bool = False,
) -> Iterator[tuple[str, Record, dt.datetime, dt.datetime, bool]]:
    """Each request due to the valid rows, in order: its kind, its row, the order time, when it
    is due and whether that was brought to now. One brand request per order and one product
    request per ordered product; ``valid`` holds only valid, non-duplicate rows.

    A file holds many requests but few distinct order times: each (order time, delay) is
    brought to UTC once."""
    orders: set[str] = set()
    due: dict[tuple[dt.datetime, int], tuple[dt.datetime, bool]] = {}
    for record in valid:
        v = record.values
        ordered = rules.parse_order_date(v["order_date"], merchant.tz)
        if ordered is None:
            raise ValueError(f"line {record.line}: a row with an invalid date reached scheduling")
        kinds = [] if v["order_ref"] in orders else ["brand"]
        orders.add(v["order_ref"])
        if template.with_products:
            kinds.append("product")
        for kind in kinds:
            default = merchant.default_delay if kind == "brand" else merchant.default_delay_product
            column = "delay" if kind == "brand" else "delay_product"
            key = (ordered, _delay(v.get(column, ""), default, send_now))
            if key not in due:
                due[key] = due_at(*key, now)
            yield (kind, record, ordered, *due[key])


def build_requests(
    valid: list[Record],
    template: Template,
    merchant: Merchant,
    now: dt.datetime,
    send_now: bool = False,
) -> tuple[list[ReviewRequest], int]:
    """The requests of ``plan_requests``, and how many of them are due now."""
    requests: list[ReviewRequest] = []
    due_now = 0
    for kind, record, ordered, scheduled, now_due in plan_requests(
        valid, template, merchant, now, send_now
    ):
        due_now += now_due
        requests.append(_request(kind, record.values, merchant, ordered.date(), scheduled))
    return requests, due_now


def count_requests(
    valid: list[Record], template: Template, merchant: Merchant, now: dt.datetime
) -> Counter[str]:
    """How many requests of each kind ``build_requests`` would make, and ``"due_now"``: what
    ``check`` reports, without making a request object per row."""
    counts: Counter[str] = Counter()
    for kind, _, _, _, now_due in plan_requests(valid, template, merchant, now):
        counts[kind] += 1
        counts["due_now"] += now_due
    return counts


def _request(
    kind: str, v: dict[str, str], merchant: Merchant, day: dt.date, scheduled: dt.datetime
) -> ReviewRequest:
    request = ReviewRequest(
        merchant_id=merchant.merchant_id,
        request_type=kind,
        order_ref=v["order_ref"],
        id_product=None,
        email=v["email"],
        firstname=v["firstname"],
        lastname=v["lastname"],
        language=(v.get("language") or merchant.language).lower(),
        shop_id=v.get("shop_id") or None,
        order_date=day,
        scheduled_at=scheduled,
    )
    if kind == "product":
        request.id_product = v["id_product"]
        request.name_product = v.get("name_product") or None
        request.url_product = v.get("url_product") or None
        request.url_image_product = v.get("url_image_product") or None
        request.gtin_ean = v.get("gtin_ean") or None
        request.sku = v.get("sku") or None
        request.brand_name = v.get("brand_name") or None
    return request
