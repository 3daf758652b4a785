"""Row-level checks (contract sections 1.2 and 3) through ``Ingest.check`` and Great Expectations.

Great Expectations is slow to start, so each template gets ONE file holding one row per case,
checked once per module; each case then asserts the exact errors of its own line.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pytest

from review_ingest.core import report
from review_ingest.core.outcomes import Outcome
from review_ingest.core.template_columns import TEMPLATES

AS_OF = dt.date(2026, 11, 5)  # the import's date; as_of - 92 days is 2026-08-05
OK_DATE = "01-11-2026"


@dataclass
class Row:
    """One row of a test file and the errors expected on its line: {(column, code)}."""

    id: str
    values: dict[str, str] = field(default_factory=dict)
    errors: set[tuple[str | None, str]] = field(default_factory=set)
    raw: str | None = None  # the row's text, as is, instead of values
    dup_of: str | None = None  # the id of the row this one repeats
    line: int = 0
    full: dict[str, str] = field(default_factory=dict)  # every value written, set by build()


def ok(id_: str, **values: str) -> Row:
    return Row(id_, values)


def bad(id_: str, column: str | None, code: str, **values: str) -> Row:
    return Row(id_, values, {(column, code)})


def _field(value: str) -> str:
    if any(c in value for c in ';"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def build(template_id: str, rows: list[Row], defaults: dict[str, str]) -> bytes:
    """The file text: header, then each row on its line (lines are set on the rows)."""
    columns = TEMPLATES[template_id].columns
    text = ";".join(columns) + "\n"
    for index, row in enumerate(rows):
        row.line = text.count("\n") + 1
        if row.raw is not None:
            text += row.raw + "\n"
            continue
        values = {**defaults, "order_ref": f"{row.id[:20]}-{index}", **row.values}
        row.full = values
        text += ";".join(_field(values.get(c, "")) for c in columns) + "\n"
    return text.encode("utf-8")


def errors_by_line(outcome: Outcome) -> dict[int, set[tuple[str | None, str]]]:
    found: dict[int, set[tuple[str | None, str]]] = {}
    for e in outcome.errors:
        found.setdefault(e.line, set()).add((e.column, e.code))
    return found


def params(rows: list[Row]) -> list:
    return [pytest.param(row, id=row.id) for row in rows]


BRAND_DEFAULTS = {
    "email": "jane@example.com",
    "lastname": "Doe",
    "firstname": "Jane",
    "order_date": OK_DATE,
    "delay": "",
    "language": "",
}

EMAIL_254 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
EMAIL_255 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com"

#: Personal values that must never appear in a report (contract section 5).
SECRET_EMAILS = ["secret.person.no-at-sign", "secret@person@example.com", EMAIL_255]
SECRET_LASTNAME = "Secretlastname" + "x" * 87  # 101 characters
SECRET_FIRSTNAME = "Secretfirstname" + "y" * 86  # 101 characters

# --- website: every column rule of the brand columns ----------------------------------------

WEBSITE_ROWS: list[Row] = [
    ok("valid"),
    # missing_value, for each mandatory column
    *[bad(f"missing-{c}", c, "missing_value", **{c: ""}) for c in TEMPLATES["website"].mandatory],
    bad("missing-spaces-only", "lastname", "missing_value", lastname="   \t "),
    Row(
        "missing-quoted-spaces",
        raw=f'W-QS;jane@example.com;Doe;"   ";{OK_DATE};;',
        errors={("firstname", "missing_value")},
    ),
    # invalid_email: syntax only
    bad("email-no-at", "email", "invalid_email", email=SECRET_EMAILS[0]),
    bad("email-two-at", "email", "invalid_email", email=SECRET_EMAILS[1]),
    bad("email-space", "email", "invalid_email", email="jane doe@example.com"),
    bad("email-no-local", "email", "invalid_email", email="@example.com"),
    ok("email-plus-tag", email="first.last+tag@example.co.uk"),
    ok("email-254", email=EMAIL_254),
    bad("email-255-too-long-only", "email", "value_too_long", email=EMAIL_255),
    # accepted date forms
    *[
        ok(f"date-{v}", order_date=v)
        for v in (
            "01-11-2026",
            "2026-11-01",
            "01/11/2026",
            "2026/11/01",
            "01-11-2026 14:30",
            "2026-11-01 14:30",
            "01/11/2026 14:30",
            "2026/11/01 14:30",
            "01-11-2026 14:30:59",
            "2026-11-01 23:59:59",
            "01/11/2026 00:00:00",
            "2026/11/01 14:30:05",
            "2026-11-01T14:30",
            "2026-11-01T14:30:59",
            "2026-11-01T14:30:59Z",
            "2026-11-01T14:30+02:00",
            "2026-11-01T14:30:00-05:00",
        )
    ],
    bad("leap-day-is-a-date", "order_date", "order_too_old", order_date="29-02-2024"),
    # invalid_date
    *[
        bad(f"date-{v}", "order_date", "invalid_date", order_date=v)
        for v in (
            "30-02-2026",
            "31-02-2026",
            "29-02-2026",
            "04/13/2026",
            "2026-13-01",
            "2026/11/05 25:00",
            "2026-11-01 14:60",
            "5-11-2026",
            "05-11-26",
            "20261105",
            "05-11/2026",
            "05.11.2026",
            "2026-11-01T14",
            "2026-11-01 14h30",
            "1 Nov 2026",
            "2026/11/01T14:30",
            "2026-11-01T14:30:00+0200",
        )
    ],
    # day first, always: 06/11/2026 is 6 November (future), 11/06/2026 is 11 June (too old)
    bad("day-first-future", "order_date", "future_date", order_date="06/11/2026"),
    bad("day-first-old", "order_date", "order_too_old", order_date="11/06/2026"),
    # future_date: the import's date is 5 November 2026 (Europe/Paris)
    ok("today", order_date="05-11-2026"),
    ok("today-late", order_date="2026-11-05 23:59:59"),
    bad("tomorrow", "order_date", "future_date", order_date="06-11-2026"),
    bad("tomorrow-midnight", "order_date", "future_date", order_date="2026-11-06 00:00"),
    bad("tomorrow-no-offset", "order_date", "future_date", order_date="2026-11-06T00:30"),
    # with Z or an offset, the moment converts to Europe/Paris before its date is taken
    ok("utc-still-today-in-paris", order_date="2026-11-05T22:59:59Z"),
    bad("utc-tomorrow-in-paris", "order_date", "future_date", order_date="2026-11-05T23:30:00Z"),
    ok("offset-still-today-in-paris", order_date="2026-11-06T00:30:00+02:00"),
    bad("offset-tomorrow", "order_date", "future_date", order_date="2026-11-05T20:00:00-05:00"),
    # order_too_old: more than 92 days before the import's date
    ok("oldest-day", order_date="2026-08-05"),
    bad("one-day-too-old", "order_date", "order_too_old", order_date="04-08-2026"),
    ok("utc-oldest-day-in-paris", order_date="2026-08-04T22:30:00Z"),
    bad("offset-too-old", "order_date", "order_too_old", order_date="2026-08-05T01:30:00+05:00"),
    # invalid_delay
    *[
        bad(f"delay-{v}", "delay", "invalid_delay", delay=v)
        for v in ("31", "-1", "1.5", "abc", "100", "+5", "\u0663", "3 0")
    ],
    *[ok(f"delay-{v}", delay=v) for v in ("0", "05", "30", "7", "")],
    # invalid_language
    *[
        bad(f"language-{v}", "language", "invalid_language", language=v)
        for v in ("xx", "fra", "f", "f1", "fr-FR", "\u212aA", "e\u017f")
    ],
    *[ok(f"language-{v}", language=v) for v in ("FR", "en", "De", "")],
    # value_too_long: that error only, even when the value also breaks another rule
    bad("order_ref-65", "order_ref", "value_too_long", order_ref="R" * 65),
    bad("order_ref-65-with-nul", "order_ref", "value_too_long",
        order_ref="R" * 60 + "\x00" + "R" * 4),
    ok("order_ref-64", order_ref="Q" * 64),
    bad("lastname-101", "lastname", "value_too_long", lastname=SECRET_LASTNAME),
    ok("lastname-100", lastname="L" * 100),
    ok("lastname-100-characters-not-bytes", lastname="\u00e9" * 100),
    bad("lastname-101-accented", "lastname", "value_too_long", lastname="\u00e9" * 101),
    bad("firstname-101", "firstname", "value_too_long", firstname=SECRET_FIRSTNAME),
    # invalid_characters
    bad("nul-in-lastname", "lastname", "invalid_characters", lastname="Do\x00e"),
    bad("cr-in-lastname", "lastname", "invalid_characters", lastname="Do\re"),
    bad("del-in-order_ref", "order_ref", "invalid_characters", order_ref="W\x7f1"),
    bad("tab-in-order_ref", "order_ref", "invalid_characters", order_ref="W\t1"),
    ok("tab-in-firstname", firstname="Jean\tPierre"),
    bad("control-in-email", "email", "invalid_characters", email="ja\x01ne@example.com"),
    Row(
        "line-break-in-quoted-firstname",
        raw=f'W-LB;jane@example.com;Doe;"Jean\nPierre";{OK_DATE};;',
        errors={("firstname", "invalid_characters")},
    ),
    ok("after-the-two-line-row"),
    # wrong_field_count
    Row("too-few-fields", raw=f"W-F1;jane@example.com;Doe;Jane;{OK_DATE}", errors={
        (None, "wrong_field_count")}),
    Row("too-many-fields", raw=f"W-F2;jane@example.com;Doe;Jane;{OK_DATE};;;x", errors={
        (None, "wrong_field_count")}),
    # several columns wrong: one error per column
    Row(
        "several-errors",
        {"email": "nope", "delay": "99", "language": "zz", "firstname": ""},
        {
            ("email", "invalid_email"),
            ("delay", "invalid_delay"),
            ("language", "invalid_language"),
            ("firstname", "missing_value"),
        },
    ),
    # duplicates: same order_ref; the first VALID row wins; error rows are never duplicates
    bad("dup-a-error-first", "email", "invalid_email", order_ref="DUP-1", email="x"),
    ok("dup-b-first-valid", order_ref="DUP-1"),
    Row("dup-c", {"order_ref": "DUP-1", "email": "other@example.com"}, dup_of="dup-b-first-valid"),
    bad("dup-d-error-row", "delay", "invalid_delay", order_ref="DUP-1", delay="31"),
    Row("dup-e", {"order_ref": "DUP-1", "delay": "3"}, dup_of="dup-b-first-valid"),
    Row("dup-f-wrong-field-count", raw="DUP-1;jane@example.com", errors={
        (None, "wrong_field_count")}),
]  # fmt: skip

# --- store: shop_id -------------------------------------------------------------------------

STORE_ROWS: list[Row] = [
    ok("valid"),
    bad("missing-shop_id", "shop_id", "missing_value", shop_id=""),
    bad("shop_id-65", "shop_id", "value_too_long", shop_id="S" * 65),
    ok("shop_id-64", shop_id="S" * 64),
    ok("tab-in-shop_id", shop_id="PARIS\t01"),
    bad("nul-in-shop_id", "shop_id", "invalid_characters", shop_id="PARIS\x0001"),
    ok("store-dup-first", order_ref="S-DUP"),
    Row("store-dup", {"order_ref": "S-DUP", "shop_id": "LYON"}, dup_of="store-dup-first"),
    *[bad(f"missing-{c}", c, "missing_value", **{c: ""}) for c in TEMPLATES["store"].mandatory],
]

# --- website_products: product columns, conflicting orders, product duplicates --------------

URL_2048 = "https://shop.example.com/p?" + "q" * (2048 - 27)
URL_2049 = URL_2048 + "q"


def c1(id_product: str, **values: str) -> dict[str, str]:
    """A row of order C1, whose reference row has language fr."""
    return {"order_ref": "C1", "id_product": id_product, "language": "fr", **values}


PRODUCT_ROWS: list[Row] = [
    ok("valid"),
    *[
        bad(f"missing-{c}", c, "missing_value", **{c: ""})
        for c in TEMPLATES["website_products"].mandatory
    ],
    # lengths
    bad("name_product-256", "name_product", "value_too_long", name_product="N" * 256),
    ok("name_product-255", name_product="N" * 255),
    bad("id_product-65", "id_product", "value_too_long", id_product="I" * 65),
    bad("sku-65", "sku", "value_too_long", sku="K" * 65),
    bad("brand_name-101", "brand_name", "value_too_long", brand_name="B" * 101),
    bad("url_product-2049", "url_product", "value_too_long", url_product=URL_2049),
    bad("url_image_product-2049", "url_image_product", "value_too_long",
        url_image_product=URL_2049),
    ok("url_product-2048", url_product=URL_2048),
    # characters
    ok("tab-in-name_product", name_product="Lampe\tArc"),
    bad("nul-in-name_product", "name_product", "invalid_characters", name_product="Lampe\x00"),
    ok("quoted-name_product", name_product='Lampe "Arc"; laiton'),
    # invalid_url
    *[
        bad(f"url-{v}", "url_product", "invalid_url", url_product=v)
        for v in (
            "ftp://x",
            "shop.example.com/p",
            "https://",
            "http://exa mple.com",
            "//shop.example.com/p",
            "https:/shop.example.com/p",
            "javascript:alert(1)",
            "mailto:a@example.com",
        )
    ],
    bad("url_image-ftp", "url_image_product", "invalid_url", url_image_product="ftp://x/i.jpg"),
    *[
        ok(f"url-{v}", url_product=v, url_image_product=v)
        for v in (
            "https://shop.example.com/p?id=1",
            "http://shop.example.com",
            "HTTPS://Shop.Example.com/P#top",
            "http://localhost:8080/a/b.jpg",
        )
    ],
    # invalid_gtin
    *[
        bad(f"gtin-{v}", "gtin_ean", "invalid_gtin", gtin_ean=v)
        for v in ("1234567", "123456789", "1234567890", "12345678901", "123456789012345",
                  "ABCDEFGH", "1234567X", "1234 5678")
    ],
    *[ok(f"gtin-{v}", gtin_ean=v) for v in ("12345670", "012345678905", "3700123456789",
                                            "13700123456786", "")],
    # delay_product
    *[
        bad(f"delay_product-{v}", "delay_product", "invalid_delay", delay_product=v)
        for v in ("31", "-1", "1.5", "abc", "100")
    ],
    *[ok(f"delay_product-{v}", delay_product=v) for v in ("0", "05", "30", "")],
    # conflicting orders: the reference is the first row of the order without errors
    bad("c1-error-before-reference", "gtin_ean", "invalid_gtin", order_ref="C1", id_product="P1",
        gtin_ean="1", firstname="Other", order_date="03-11-2026"),
    ok("c1-reference", **c1("P2")),
    ok("c1-language-case", **c1("P3", language="FR")),
    ok("c1-other-date-format", **c1("P4", order_date="2026-11-01")),
    ok("c1-same-day-other-time", **c1("P5", order_date="2026-11-01 18:00")),
    ok("c1-same-day-in-paris", **c1("P6", order_date="2026-10-31T23:30:00Z")),
    bad("c1-email", "email", "conflicting_order", **c1("P7", email="secret.other@example.com")),
    bad("c1-date", "order_date", "conflicting_order", **c1("P8", order_date="02-11-2026")),
    bad("c1-date-iso-other-day", "order_date", "conflicting_order",
        **c1("P9", order_date="2026-11-01T23:30:00Z")),
    bad("c1-language", "language", "conflicting_order", **c1("P10", language="en")),
    bad("c1-language-empty", "language", "conflicting_order", **c1("P11", language="")),
    bad("c1-delay", "delay", "conflicting_order", **c1("P12", delay="3")),
    Row("c1-names", c1("P13", lastname="Other", firstname="Else"),
        {("lastname", "conflicting_order"), ("firstname", "conflicting_order")}),
    # a row with errors of its own after the reference is still compared, column by column
    Row("c1-own-error-and-conflict", c1("P14", gtin_ean="1", lastname="Other"),
        {("gtin_ean", "invalid_gtin"), ("lastname", "conflicting_order")}),
    bad("c1-own-error-in-that-column", "email", "invalid_email",
        **c1("P15", email="not-an-email")),
    ok("c1-product-columns-may-differ", **c1("P16", name_product="Other", delay_product="9",
                                             sku="X", brand_name="Y")),
    ok("c2-reference-empty-language", order_ref="C2", id_product="P1"),
    bad("c2-language-not-empty", "language", "conflicting_order", order_ref="C2",
        id_product="P2", language="fr"),
    bad("c2-delay-empty-vs-zero", "delay", "conflicting_order", order_ref="C2",
        id_product="P3", delay="0"),
    # duplicates: the key is (order_ref, id_product)
    ok("k1-p1", order_ref="K1", id_product="P1"),
    ok("k1-p2-not-a-duplicate", order_ref="K1", id_product="P2"),
    Row("k1-p1-again", {"order_ref": "K1", "id_product": "P1", "name_product": "Other"},
        dup_of="k1-p1"),
    bad("k2-error-first", "gtin_ean", "invalid_gtin", order_ref="K2", id_product="P1",
        gtin_ean="1"),
    ok("k2-first-valid", order_ref="K2", id_product="P1"),
    Row("k2-again", {"order_ref": "K2", "id_product": "P1"}, dup_of="k2-first-valid"),
    bad("k2-conflicting-never-duplicate", "email", "conflicting_order", order_ref="K2",
        id_product="P1", email="other@example.com"),
]  # fmt: skip

PRODUCT_DEFAULTS = {
    **BRAND_DEFAULTS,
    "id_product": "LMP-01",
    "name_product": "Lampe de bureau",
    "url_product": "",
    "url_image_product": "",
    "gtin_ean": "",
    "sku": "",
    "brand_name": "",
    "delay_product": "",
}

# --- store_products: shop_id conflicts ------------------------------------------------------

STORE_PRODUCT_ROWS: list[Row] = [
    ok("valid"),
    *[
        bad(f"missing-{c}", c, "missing_value", **{c: ""})
        for c in TEMPLATES["store_products"].mandatory
    ],
    ok("s1-reference", order_ref="S1", id_product="P1", shop_id="PARIS-01"),
    bad("s1-other-shop", "shop_id", "conflicting_order", order_ref="S1", id_product="P2",
        shop_id="LYON-01"),
    bad("s1-shop-missing", "shop_id", "missing_value", order_ref="S1", id_product="P3",
        shop_id=""),
    ok("s1-same-shop", order_ref="S1", id_product="P4", shop_id="PARIS-01"),
    Row("s1-p1-again", {"order_ref": "S1", "id_product": "P1", "shop_id": "PARIS-01"},
        dup_of="s1-reference"),
]  # fmt: skip

FILES = {
    "website": (WEBSITE_ROWS, BRAND_DEFAULTS),
    "store": (STORE_ROWS, {**BRAND_DEFAULTS, "shop_id": "PARIS-01"}),
    "website_products": (PRODUCT_ROWS, PRODUCT_DEFAULTS),
    "store_products": (STORE_PRODUCT_ROWS, {**PRODUCT_DEFAULTS, "shop_id": "PARIS-01"}),
}
DATA = {template: build(template, rows, defaults) for template, (rows, defaults) in FILES.items()}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The outcome of ``check`` for each template's file, each checked once."""
    from review_ingest.pipeline.ingest import Ingest

    ingest = Ingest(data_dir=tmp_path_factory.mktemp("data"), data_docs=False)
    cache: dict[str, Outcome] = {}

    def get(template: str) -> Outcome:
        if template not in cache:
            cache[template] = ingest.check(DATA[template], f"{template}.csv", template, AS_OF)
        return cache[template]

    return get


def _assert_row(outcome: Outcome, rows: list[Row], row: Row) -> None:
    assert errors_by_line(outcome).get(row.line, set()) == row.errors
    duplicates = {d.line: d.duplicate_of_line for d in outcome.duplicates}
    if row.dup_of:
        original = next(r for r in rows if r.id == row.dup_of)
        assert duplicates.get(row.line) == original.line
    else:
        assert row.line not in duplicates


@pytest.mark.parametrize("row", params(WEBSITE_ROWS))
def test_website_row(checked, row):
    _assert_row(checked("website"), WEBSITE_ROWS, row)


@pytest.mark.parametrize("row", params(STORE_ROWS))
def test_store_row(checked, row):
    _assert_row(checked("store"), STORE_ROWS, row)


@pytest.mark.parametrize("row", params(PRODUCT_ROWS))
def test_website_products_row(checked, row):
    _assert_row(checked("website_products"), PRODUCT_ROWS, row)


@pytest.mark.parametrize("row", params(STORE_PRODUCT_ROWS))
def test_store_products_row(checked, row):
    _assert_row(checked("store_products"), STORE_PRODUCT_ROWS, row)


@pytest.mark.parametrize("template", list(FILES))
def test_no_error_on_a_line_where_no_row_starts(checked, template):
    rows = FILES[template][0]
    starts = {r.line for r in rows}
    assert {e.line for e in checked(template).errors} <= starts


@pytest.mark.parametrize("template", list(FILES))
def test_counts(checked, template):
    rows = FILES[template][0]
    outcome = checked(template)
    rec = outcome.record
    assert outcome.rejection is None
    assert rec.status == "accepted"
    assert rec.total_rows == len(rows)
    assert rec.error_rows == sum(1 for r in rows if r.errors)
    assert rec.duplicate_rows == sum(1 for r in rows if r.dup_of)
    assert rec.total_rows == rec.valid_rows + rec.error_rows + rec.duplicate_rows


@pytest.mark.parametrize("template", list(FILES))
def test_requests(checked, template):
    """One brand request per distinct order_ref, one product request per (order_ref, id_product)
    of the valid, non-duplicate rows: ``check`` counts them (``test_scheduling`` holds the
    counts equal to the requests an import makes)."""
    rows = FILES[template][0]
    outcome = checked(template)
    loaded = [r.full for r in rows if not r.errors and not r.dup_of]
    with_products = TEMPLATES[template].with_products
    assert outcome.record.valid_rows == len(loaded)
    expected_brand = {v["order_ref"] for v in loaded}
    expected_product = {(v["order_ref"], v.get("id_product")) for v in loaded}
    if not with_products:
        expected_product = set()
    assert outcome.requests == []
    assert outcome.record.brand_requests == len(expected_brand)
    assert outcome.record.product_requests == len(expected_product)
    got = report.to_dict(outcome)["requests"]
    assert (got["brand"], got["product"]) == (len(expected_brand), len(expected_product))
    assert 0 <= got["due_now"] <= len(expected_brand) + len(expected_product)


def test_a_conflicting_order_message_names_the_reference_line(checked):
    outcome = checked("website_products")
    row = next(r for r in PRODUCT_ROWS if r.id == "c1-date")
    reference = next(r for r in PRODUCT_ROWS if r.id == "c1-reference")
    (error,) = [e for e in outcome.errors if e.line == row.line]
    assert str(reference.line) in error.message


@pytest.mark.parametrize("template", ["website", "website_products"])
def test_personal_values_never_appear_in_the_report(checked, template):
    outcome = checked(template)
    texts = [json.dumps(report.to_dict(outcome), ensure_ascii=False), report.errors_csv(outcome)]
    texts.append(report.to_html(outcome))
    secrets = [*SECRET_EMAILS, SECRET_LASTNAME, SECRET_FIRSTNAME, "secret.other@example.com"]
    secrets += ["jane doe@example.com", "not-an-email", "Do\x00e", "Jean\nPierre"]
    for text in texts:
        for secret in secrets:
            assert secret not in text
            assert json.dumps(secret)[1:-1] not in text
    # the rules did find those rows
    assert outcome.errors


def test_a_row_is_reported_at_the_line_where_its_record_starts(checked):
    rows = WEBSITE_ROWS
    two_lines = next(r for r in rows if r.id == "line-break-in-quoted-firstname")
    after = next(r for r in rows if r.id == "after-the-two-line-row")
    assert after.line == two_lines.line + 2
    errors = errors_by_line(checked("website"))
    assert errors.get(two_lines.line) == {("firstname", "invalid_characters")}
    assert after.line not in errors and two_lines.line + 1 not in errors


def test_the_file_is_read_with_sep_line_and_crlf(checked, tmp_path):
    """The same rows with ``sep=;`` first and CRLF line ends: every line number moves by one."""
    from review_ingest.pipeline.ingest import Ingest

    text = DATA["store"].decode().replace("\n", "\r\n")
    outcome = Ingest(data_dir=tmp_path, data_docs=False).check(
        b"sep=;\r\n" + text.encode(), "store.csv", "store", AS_OF
    )
    plain = checked("store")
    assert [(e.line - 1, e.column, e.code) for e in outcome.errors] == [
        (e.line, e.column, e.code) for e in plain.errors
    ]
    assert [(d.line - 1, d.duplicate_of_line - 1) for d in outcome.duplicates] == [
        (d.line, d.duplicate_of_line) for d in plain.duplicates
    ]


def test_the_saved_url_rule_accepts_an_ipv6_literal_host():
    import re

    from review_ingest.settings import EXPECTATIONS_DIR

    suite = json.loads((EXPECTATIONS_DIR / "website_products.json").read_text("utf-8"))
    (regex,) = [
        e["kwargs"]["regex"]
        for e in suite["expectations"]
        if e["meta"]["column"] == "url_product" and e["meta"]["code"] == "invalid_url"
    ]
    assert re.match(regex, "https://shop.example.com/p")
    assert re.match(regex, "http://[2001:db8::1]/p")


def test_check_as_of_imports_at_noon_in_the_merchant_time_zone(tmp_path):
    """``check --as-of``: the import time is 12:00 that day in Paris (11:00 UTC), so a delay-0
    order of 11:00 is due now and those of 12:30 and 13:00 are not (contract section 9); at noon
    UTC the 12:30 one (11:30 UTC) would be due too."""
    from review_ingest.pipeline.ingest import Ingest

    header = "order_ref;email;lastname;firstname;order_date;delay\n"
    rows = (
        "M;a@example.com;M;A;2026-11-20 11:00;0\n"
        "B;a@example.com;M;A;2026-11-20 12:30;0\n"
        "A;a@example.com;M;A;2026-11-20 13:00;0\n"
    )

    outcome = Ingest(data_dir=tmp_path, data_docs=False).check(
        (header + rows).encode(), "f.csv", "website", dt.date(2026, 11, 20)
    )

    assert outcome.record.status == "accepted" and outcome.record.brand_requests == 3
    assert outcome.due_now == 1
