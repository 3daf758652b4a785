"""When review requests are due, and which requests valid rows make (contract section 4)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from review_ingest.core.merchants import Merchant
from review_ingest.core.outcomes import Record
from review_ingest.core.scheduling import build_requests, count_requests, due_at
from review_ingest.core.template_columns import TEMPLATES

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- due_at ---------------------------------------------------------------------------------


def test_delay_counts_calendar_days_across_the_end_of_daylight_saving_time():
    # 25 October 2026: Paris goes from UTC+2 to UTC+1. Two calendar days after 24 October at
    # 00:00 is 26 October at 00:00 Paris, i.e. 23:00 UTC on the 25th (not 22:00).
    due, now_due = due_at(paris(2026, 10, 24), 2, now=utc(2026, 10, 20))
    assert due == utc(2026, 10, 25, 23)
    assert due.utcoffset() == dt.timedelta(0)
    assert now_due is False


def test_delay_counts_calendar_days_across_the_start_of_daylight_saving_time():
    # 29 March 2026: Paris goes from UTC+1 to UTC+2.
    due, _ = due_at(paris(2026, 3, 28), 2, now=utc(2026, 3, 1))
    assert due == utc(2026, 3, 29, 22)
    due, _ = due_at(paris(2026, 3, 28, 18, 30), 1, now=utc(2026, 3, 1))
    assert due == utc(2026, 3, 29, 16, 30)


def test_the_time_of_the_order_is_kept():
    due, _ = due_at(paris(2026, 10, 24, 18, 30), 2, now=utc(2026, 10, 1))
    assert due == utc(2026, 10, 26, 17, 30)


def test_delay_zero_is_the_order_time():
    due, now_due = due_at(paris(2026, 11, 5), 0, now=utc(2026, 11, 1))
    assert due == utc(2026, 11, 4, 23)
    assert now_due is False


def test_calendar_days_in_another_time_zone():
    # 1 November 2026: New York goes from UTC-4 to UTC-5.
    ordered = dt.datetime(2026, 10, 31, tzinfo=NEW_YORK)
    assert due_at(ordered, 1, now=utc(2026, 10, 1))[0] == utc(2026, 11, 1, 4)
    assert due_at(ordered, 2, now=utc(2026, 10, 1))[0] == utc(2026, 11, 2, 5)


def test_a_due_time_already_past_is_the_import_time_and_due_now():
    now = utc(2026, 11, 27, 11, 0, 5)
    due, now_due = due_at(paris(2026, 11, 1), 3, now=now)
    assert due == now
    assert now_due is True


def test_a_due_time_in_the_future_is_kept():
    now = utc(2026, 11, 27, 11)
    due, now_due = due_at(paris(2026, 11, 27, 9), 1, now=now)
    assert due == utc(2026, 11, 28, 8)
    assert now_due is False


# --- build_requests -------------------------------------------------------------------------

NOW = utc(2026, 11, 27, 11)  # 12:00 in Paris

BRAND_ROW = {
    "order_ref": "",
    "email": "a@example.com",
    "lastname": "Doe",
    "firstname": "Jane",
    "order_date": "",
    "delay": "",
    "language": "",
}
PRODUCT_ROW = {
    **BRAND_ROW,
    "id_product": "",
    "name_product": "Lamp",
    "url_product": "",
    "url_image_product": "",
    "gtin_ean": "",
    "sku": "",
    "brand_name": "",
    "delay_product": "",
}


def rec(line: int, base: dict[str, str] = BRAND_ROW, **values: str) -> Record:
    return Record(line, {**base, **values})


def merchant(template: str = "website", **settings) -> Merchant:
    return Merchant(merchant_id="acme", template=template, **settings)


def test_one_brand_request_per_row_of_a_website_file():
    rows = [
        rec(2, order_ref="W1", order_date="26-11-2026", delay="3"),
        rec(3, order_ref="W2", order_date="2026-11-27 08:00", delay="0"),
    ]
    requests, due_now = build_requests(rows, TEMPLATES["website"], merchant(), NOW)
    assert [(r.request_type, r.order_ref, r.id_product) for r in requests] == [
        ("brand", "W1", None),
        ("brand", "W2", None),
    ]
    assert requests[0].scheduled_at == utc(2026, 11, 28, 23)  # 29 Nov 00:00 Paris
    assert requests[0].order_date == dt.date(2026, 11, 26)
    assert requests[1].scheduled_at == NOW  # 27 Nov 08:00 Paris is past: due now
    assert due_now == 1
    assert requests[0].merchant_id == "acme"
    assert (requests[0].email, requests[0].firstname, requests[0].lastname) == (
        "a@example.com",
        "Jane",
        "Doe",
    )
    assert requests[0].shop_id is None
    assert requests[0].name_product is None


def test_empty_delay_takes_the_merchant_default():
    rows = [rec(2, order_ref="W1", order_date="26-11-2026")]
    requests, due_now = build_requests(rows, TEMPLATES["website"], merchant(default_delay=4), NOW)
    assert requests[0].scheduled_at == utc(2026, 11, 29, 23)  # 30 Nov 00:00 Paris
    assert due_now == 0


def test_empty_delay_product_takes_the_merchant_default_product_delay():
    rows = [
        rec(2, PRODUCT_ROW, order_ref="P1", id_product="A", order_date="26-11-2026"),
        rec(3, PRODUCT_ROW, order_ref="P1", id_product="B", order_date="26-11-2026",
            delay_product="1"),
    ]  # fmt: skip
    m = merchant("website_products", default_delay=2, default_delay_product=5)
    requests, _ = build_requests(rows, TEMPLATES["website_products"], m, NOW)
    by = {(r.request_type, r.id_product): r.scheduled_at for r in requests}
    assert by == {
        ("brand", None): utc(2026, 11, 27, 23),  # 28 Nov 00:00 Paris
        ("product", "A"): utc(2026, 11, 30, 23),  # 1 Dec 00:00 Paris
        ("product", "B"): NOW,  # 27 Nov 00:00 Paris is past
    }


def test_the_default_delays_are_zero():
    rows = [rec(2, PRODUCT_ROW, order_ref="P1", id_product="A", order_date="28-11-2026")]
    requests, due_now = build_requests(
        rows, TEMPLATES["website_products"], merchant("website_products"), NOW
    )
    assert {r.scheduled_at for r in requests} == {utc(2026, 11, 27, 23)}
    assert due_now == 0


def test_send_now_treats_every_delay_as_zero():
    rows = [
        rec(2, PRODUCT_ROW, order_ref="P1", id_product="A", order_date="26-11-2026", delay="30",
            delay_product="30"),
        rec(3, PRODUCT_ROW, order_ref="P2", id_product="A", order_date="27-11-2026"),
    ]  # fmt: skip
    m = merchant("website_products", default_delay=10, default_delay_product=10)
    requests, due_now = build_requests(rows, TEMPLATES["website_products"], m, NOW, send_now=True)
    assert len(requests) == 4
    assert {r.scheduled_at for r in requests} == {NOW}
    assert due_now == 4


def test_send_now_keeps_a_future_order_time():
    rows = [rec(2, order_ref="W1", order_date="2026-11-27 18:00", delay="5")]
    requests, due_now = build_requests(rows, TEMPLATES["website"], merchant(), NOW, send_now=True)
    assert requests[0].scheduled_at == utc(2026, 11, 27, 17)
    assert due_now == 0


def test_a_backfill_of_three_months_with_delay_zero_asks_everyone_now():
    rows = [
        rec(i + 2, order_ref=f"W{i}", order_date=(dt.date(2026, 8, 28) + dt.timedelta(days=i))
            .strftime("%d-%m-%Y"), delay="0")
        for i in range(90)
    ]  # fmt: skip
    requests, due_now = build_requests(rows, TEMPLATES["website"], merchant(), NOW)
    assert len(requests) == 90
    assert due_now == 90
    assert {r.scheduled_at for r in requests} == {NOW}


@pytest.mark.parametrize(
    ("value", "expected"), [("", "de"), ("FR", "fr"), ("en", "en"), ("Es", "es")]
)
def test_language_empty_takes_the_merchant_language_and_is_stored_lower_case(value, expected):
    rows = [rec(2, order_ref="W1", order_date="26-11-2026", language=value)]
    requests, _ = build_requests(rows, TEMPLATES["website"], merchant(language="de"), NOW)
    assert requests[0].language == expected


def test_one_brand_request_per_order_and_one_product_request_per_ordered_product():
    rows = [
        rec(2, PRODUCT_ROW, order_ref="O1", id_product="A", order_date="26-11-2026", delay="2",
            delay_product="9", url_product="https://x.example/a", gtin_ean="12345670",
            sku="SKU-A", brand_name="Lumio", shop_id="S1"),
        rec(3, PRODUCT_ROW, order_ref="O1", id_product="B", order_date="26-11-2026", delay="2",
            name_product="Bulb", url_image_product="https://x.example/b.jpg", shop_id="S1"),
        rec(4, PRODUCT_ROW, order_ref="O2", id_product="A", order_date="26-11-2026",
            shop_id="S2"),
    ]  # fmt: skip
    requests, _ = build_requests(rows, TEMPLATES["store_products"], merchant("store_products"), NOW)
    assert sorted((r.request_type, r.order_ref, r.id_product) for r in requests) == [
        ("brand", "O1", None),
        ("brand", "O2", None),
        ("product", "O1", "A"),
        ("product", "O1", "B"),
        ("product", "O2", "A"),
    ]
    brand = next(r for r in requests if r.request_type == "brand" and r.order_ref == "O1")
    assert brand.scheduled_at == utc(2026, 11, 27, 23)  # delay 2
    assert brand.shop_id == "S1"
    assert brand.name_product is brand.url_product is brand.gtin_ean is None
    product_a = next(r for r in requests if r.order_ref == "O1" and r.id_product == "A")
    assert product_a.scheduled_at == utc(2026, 12, 4, 23)  # delay_product 9
    assert (product_a.name_product, product_a.url_product, product_a.gtin_ean) == (
        "Lamp",
        "https://x.example/a",
        "12345670",
    )
    assert (product_a.sku, product_a.brand_name, product_a.url_image_product) == (
        "SKU-A",
        "Lumio",
        None,
    )
    product_b = next(r for r in requests if r.order_ref == "O1" and r.id_product == "B")
    assert product_b.name_product == "Bulb"
    assert product_b.url_image_product == "https://x.example/b.jpg"
    assert product_b.url_product is None


def test_an_order_date_with_an_offset_is_scheduled_from_its_moment_in_the_merchant_zone():
    rows = [rec(2, order_ref="W1", order_date="2026-11-27T23:30:00Z", delay="1")]
    requests, _ = build_requests(rows, TEMPLATES["website"], merchant(), NOW)
    assert requests[0].order_date == dt.date(2026, 11, 28)  # 00:30 in Paris
    assert requests[0].scheduled_at == utc(2026, 11, 28, 23, 30)


def test_scheduled_at_is_utc():
    rows = [rec(2, order_ref="W1", order_date="30-11-2026")]
    requests, _ = build_requests(rows, TEMPLATES["website"], merchant(), NOW)
    assert requests[0].scheduled_at.utcoffset() == dt.timedelta(0)


def test_rows_of_one_order_time_each_get_the_due_time_of_their_own_delays():
    # Due times are worked out once per (order time, delay) and handed to every row that has
    # them: rows sharing an order time but not a delay, or a delay but not a time, differ.
    rows = [
        rec(2, PRODUCT_ROW, order_ref="A", id_product="1", order_date="26-11-2026", delay="3"),
        rec(3, PRODUCT_ROW, order_ref="B", id_product="1", order_date="26-11-2026", delay="5"),
        rec(4, PRODUCT_ROW, order_ref="C", id_product="1", order_date="26-11-2026", delay="3"),
        rec(5, PRODUCT_ROW, order_ref="D", id_product="1", order_date="2026-11-26 12:00"),
        rec(6, PRODUCT_ROW, order_ref="A", id_product="2", order_date="26-11-2026", delay="3"),
    ]
    template = TEMPLATES["website_products"]
    requests, due_now = build_requests(rows, template, merchant(default_delay_product=3), NOW)
    due = {(r.order_ref, r.request_type, r.id_product): r.scheduled_at for r in requests}
    assert due == {
        ("A", "brand", None): utc(2026, 11, 28, 23),
        ("A", "product", "1"): utc(2026, 11, 28, 23),
        ("B", "brand", None): utc(2026, 11, 30, 23),
        ("B", "product", "1"): utc(2026, 11, 28, 23),
        ("C", "brand", None): utc(2026, 11, 28, 23),
        ("C", "product", "1"): utc(2026, 11, 28, 23),
        ("D", "brand", None): NOW,  # no delay, merchant default 0: 26 Nov 12:00 is past
        ("D", "product", "1"): utc(2026, 11, 29, 11),
        ("A", "product", "2"): utc(2026, 11, 28, 23),
    }
    assert due_now == 1
    assert [r.name_product for r in requests if r.request_type == "product"] == ["Lamp"] * 5
    assert all(r.name_product is None for r in requests if r.request_type == "brand")


@pytest.mark.parametrize("template", ["website", "website_products", "store_products"])
def test_check_counts_the_requests_an_import_makes(template):
    """``check`` counts the requests with ``count_requests``: the same brand, product and
    due-now figures as the requests an import builds, for orders of one or several products,
    past and future, with and without delays."""
    base = PRODUCT_ROW if TEMPLATES[template].with_products else BRAND_ROW
    base = {**base, "shop_id": "S1"} if template.startswith("store") else base
    rows = [
        rec(2, base, order_ref="A", id_product="1", order_date="26-11-2026", delay="3"),
        rec(3, base, order_ref="A", id_product="2", order_date="26-11-2026", delay="3"),
        rec(4, base, order_ref="B", id_product="1", order_date="2026-11-20 08:00", delay="0"),
        rec(5, base, order_ref="C", id_product="3", order_date="28-11-2026",
            delay_product="12"),
    ]  # fmt: skip
    m = merchant(template, default_delay=1, default_delay_product=2)
    requests, due_now = build_requests(rows, TEMPLATES[template], m, NOW)
    counts = count_requests(rows, TEMPLATES[template], m, NOW)
    made = Counter(r.request_type for r in requests)
    assert (counts["brand"], counts["product"], counts["due_now"]) == (
        made["brand"],
        made["product"],
        due_now,
    )
    assert counts["brand"] == 3
    assert counts["product"] == (4 if TEMPLATES[template].with_products else 0)
    assert 0 < due_now < len(requests)
