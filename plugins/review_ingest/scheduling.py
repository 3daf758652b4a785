"""When each review request is due (contract section 4), and the requests themselves."""

from __future__ import annotations

import datetime as dt

from review_ingest import rules
from review_ingest.merchants import Merchant
from review_ingest.records import Record, ReviewRequest
from review_ingest.templates import Template

_PRODUCT_FIELDS = (
    "name_product",
    "url_product",
    "url_image_product",
    "gtin_ean",
    "sku",
    "brand_name",
)


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


def build_requests(
    valid: list[Record],
    template: Template,
    merchant: Merchant,
    now: dt.datetime,
    send_now: bool = False,
) -> tuple[list[ReviewRequest], int]:
    """One brand request per order and one product request per ordered product; and how many
    of them are due now. ``valid`` holds only valid, non-duplicate rows."""
    requests: list[ReviewRequest] = []
    due_now = 0
    orders: set[str] = set()
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
            scheduled, now_due = due_at(ordered, _delay(v.get(column, ""), default, send_now), now)
            due_now += now_due
            requests.append(_request(kind, v, merchant, ordered.date(), scheduled))
    return requests, due_now


def _request(
    kind: str, v: dict[str, str], merchant: Merchant, day: dt.date, scheduled: dt.datetime
) -> ReviewRequest:
    product = kind == "product"
    return ReviewRequest(
        merchant_id=merchant.merchant_id,
        request_type=kind,
        order_ref=v["order_ref"],
        id_product=v["id_product"] if product else None,
        email=v["email"],
        firstname=v["firstname"],
        lastname=v["lastname"],
        language=(v.get("language") or merchant.language).lower(),
        shop_id=v.get("shop_id") or None,
        order_date=day,
        scheduled_at=scheduled,
        **{f: (v.get(f) or None) if product else None for f in _PRODUCT_FIELDS},
    )
