"""The report of a file (contract section 5): report.json, report.html and errors.csv."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from review_ingest.core import report
from review_ingest.core.outcomes import (
    Duplicate,
    ExistingProof,
    ImportRecord,
    Outcome,
    Rejection,
    RowError,
)
from review_ingest.core.warnings import FileWarning
from review_ingest.pipeline.ingest import Ingest
from tests.kit.factories import sample_for_yesterday

#: The example of contract section 5, with the keys of section 11 (opt-outs) and of issue 27
#: (signs of a filtered file).
CONTRACT_EXAMPLE = json.loads(
    """{
  "import_id": "x", "merchant_id": "acme", "source": "upload",
  "file_name": "orders.csv", "sha256": "x", "size_bytes": 123456, "template": "website_products",
  "status": "loaded",
  "rejection": null,
  "total_rows": 1000, "valid_rows": 990, "error_rows": 6, "duplicate_rows": 4,
  "suppressed_rows": 0,
  "requests": {"brand": 420, "product": 990, "due_now": 12},
  "errors": [{"line": 17, "column": "email", "code": "invalid_email", "message": "x"}],
  "duplicates": [{"line": 40, "duplicate_of_line": 12}],
  "existing_proofs": [],
  "warnings": [{"code": "volume_drop", "message": "x"}],
  "validation": {"suite": "website_products", "data_docs": "validations/x.html"}
}"""
)
AT = dt.datetime(2026, 11, 27, 10, 15, tzinfo=dt.UTC)
PAGE = (
    "validations/website_products/20261127T101500Z-1a2b3c4d/20261127T101501.000000Z/"
    "order_files-website_products.html"
)


def outcome(**changes) -> Outcome:
    record = ImportRecord(
        import_id="20261127T101500Z-1a2b3c4d",
        merchant_id="acme",
        source="upload",
        file_name="orders.csv",
        sha256="ab" * 32,
        size_bytes=123456,
        template="website_products",
        status="loaded",
        rejection_code=None,
        received_at=AT,
        processed_at=AT,
        total_rows=1000,
        valid_rows=990,
        error_rows=6,
        duplicate_rows=4,
        brand_requests=420,
        product_requests=990,
    )
    result = Outcome(
        record=record,
        errors=[RowError(17, "email", "invalid_email", "email is not a valid e-mail address")],
        duplicates=[Duplicate(40, 12)],
        due_now=12,
        suite="website_products",
        data_docs=PAGE,
        warnings=[FileWarning("volume_drop", "fewer rows than usual")],
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def rejected(code: str, message: str, proofs=()) -> Outcome:
    result = outcome(
        rejection=Rejection(code, message, tuple(proofs)), errors=[], duplicates=[], warnings=[]
    )
    result.record.status = "rejected"
    result.record.rejection_code = code
    result.record.brand_requests = result.record.product_requests = 0
    result.due_now = 0
    return result


def keys(value):
    """The shape of a JSON value: its keys, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


# --- report.json ----------------------------------------------------------------------------


def test_to_dict_has_exactly_the_keys_of_the_contract_example():
    got = report.to_dict(outcome())
    assert keys(got) == keys(CONTRACT_EXAMPLE)
    assert list(got) == list(CONTRACT_EXAMPLE)


def test_to_dict_values():
    got = report.to_dict(outcome())
    assert got["status"] == "loaded"
    assert got["rejection"] is None
    assert (got["total_rows"], got["valid_rows"], got["error_rows"], got["duplicate_rows"]) == (
        1000,
        990,
        6,
        4,
    )
    assert got["requests"] == {"brand": 420, "product": 990, "due_now": 12}
    assert got["errors"] == [
        {
            "line": 17,
            "column": "email",
            "code": "invalid_email",
            "message": "email is not a valid e-mail address",
        }
    ]
    assert got["duplicates"] == [{"line": 40, "duplicate_of_line": 12}]
    assert got["existing_proofs"] == []
    assert got["validation"] == {"suite": "website_products", "data_docs": PAGE}
    assert json.loads(report.to_json(outcome())) == got


def test_requests_always_has_brand_product_and_due_now():
    result = rejected("empty_file", "the file is empty")
    assert report.to_dict(result)["requests"] == {"brand": 0, "product": 0, "due_now": 0}


def test_wrong_field_count_has_column_null():
    result = outcome(errors=[RowError(3, None, "wrong_field_count", "5 fields, 7 columns")])
    assert report.to_dict(result)["errors"][0]["column"] is None


def test_rejection_shape():
    got = report.to_dict(rejected("missing_columns", "missing: order_date"))
    assert got["status"] == "rejected"
    assert got["rejection"] == {"code": "missing_columns", "message": "missing: order_date"}
    assert got["existing_proofs"] == []
    assert set(got) == set(CONTRACT_EXAMPLE)


def test_existing_proofs_are_listed_with_their_lines():
    proofs = [ExistingProof("WEB-1", 2), ExistingProof("WEB-9", 7)]
    got = report.to_dict(rejected("existing_proofs", "2 orders already imported", proofs))
    assert got["rejection"] == {"code": "existing_proofs", "message": "2 orders already imported"}
    assert got["existing_proofs"] == [
        {"order_ref": "WEB-1", "line": 2},
        {"order_ref": "WEB-9", "line": 7},
    ]


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty_file"), (b"order_ref,email,lastname,firstname,order_date\n", "wrong_separator")],
)
def test_a_file_rejected_by_check_has_the_report_shape(tmp_path, data, code):
    checked = Ingest(data_dir=tmp_path, data_docs=False).check(data, "f.csv", "website")
    got = report.to_dict(checked)
    same_lists = {"errors": [], "duplicates": [], "rejection": None, "warnings": []}
    assert keys(got) | same_lists == keys(CONTRACT_EXAMPLE) | same_lists
    assert got["status"] == "rejected"
    assert set(got["rejection"]) == {"code", "message"}
    assert got["rejection"]["code"] == code
    assert got["requests"] == {"brand": 0, "product": 0, "due_now": 0}
    assert got["file_name"] == "f.csv"
    assert got["size_bytes"] == len(data)
    assert got["template"] == "website"


def test_check_builds_no_data_docs_so_the_report_names_no_page(tmp_path):
    data = sample_for_yesterday("website").encode()
    checked = Ingest(data_dir=tmp_path, data_docs=False).check(data, "f.csv", "website")
    assert checked.record.status == "accepted"
    assert report.to_dict(checked)["validation"] == {"suite": "website", "data_docs": None}


def test_the_merchant_copy_has_no_data_docs_key():
    full = report.to_dict(outcome())
    copy = report.for_merchant(full)
    assert copy["validation"] == {"suite": "website_products"}
    assert {k: v for k, v in copy.items() if k != "validation"} == {
        k: v for k, v in full.items() if k != "validation"
    }
    assert full["validation"]["data_docs"] == PAGE, "the local report keeps its page"


# --- errors.csv -----------------------------------------------------------------------------


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def test_errors_csv_has_its_header_even_with_no_error():
    text = report.errors_csv(outcome(errors=[]))
    assert text.splitlines() == ["line;column;code;message"]


def test_errors_csv_rows():
    result = outcome(
        errors=[
            RowError(17, "email", "invalid_email", "email is not a valid e-mail address"),
            RowError(18, None, "wrong_field_count", 'has 3 fields; "the header" has 5'),
        ]
    )
    rows = parse_csv(report.errors_csv(result))
    assert rows == [
        ["line", "column", "code", "message"],
        ["17", "email", "invalid_email", "email is not a valid e-mail address"],
        ["18", "", "wrong_field_count", 'has 3 fields; "the header" has 5'],
    ]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_errors_csv_values_that_a_spreadsheet_would_run_are_prefixed(start):
    value = f'{start}HYPERLINK("http://evil.example","x")'
    result = outcome(errors=[RowError(5, "order_ref", "invalid_characters", value)])
    rows = parse_csv(report.errors_csv(result))
    assert rows[1][3] == "'" + value
    assert rows[1][:3] == ["5", "order_ref", "invalid_characters"]


def test_errors_csv_other_values_are_not_prefixed():
    result = outcome(errors=[RowError(5, "sku", "value_too_long", "sku = too long; -1")])
    assert parse_csv(report.errors_csv(result))[1][3] == "sku = too long; -1"


# --- report.html ----------------------------------------------------------------------------


def test_html_shows_counts_then_errors():
    page = report.to_html(outcome())
    for count in ("1000", "990", "420"):
        assert f"<td>{count}</td>" in page
    assert "invalid_email" in page
    assert page.index("1000") < page.index("invalid_email")


def test_html_escapes_values():
    proofs = [ExistingProof("<script>alert(1)</script>", 2)]
    result = rejected(
        "existing_proofs",
        "1 order reference(s) were already imported: '<script>alert(1)</script>' (line 2)",
        proofs,
    )
    result.record.file_name = "<b>orders</b>.csv"
    result.errors = [RowError(3, "order_ref", "invalid_characters", "<script>x</script> & co")]
    page = report.to_html(result)
    assert "<script>" not in page
    assert "<b>orders" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;orders&lt;/b&gt;.csv" in page
    assert "&amp; co" in page


def test_html_links_the_data_docs_page_relatively(tmp_path):
    folder = report.write(outcome(), tmp_path / "reports" / "acme" / "20261127T101500Z-1a2b3c4d")
    page = (folder / "report.html").read_text("utf-8")
    href = f"../../../data_docs/{PAGE}"
    assert f'<a href="{href}">{PAGE}</a>' in page
    (tmp_path / "data_docs" / PAGE).parent.mkdir(parents=True)
    (tmp_path / "data_docs" / PAGE).write_text("<html></html>")
    assert (folder / href).resolve() == (tmp_path / "data_docs" / PAGE).resolve()
    assert (folder / href).is_file()
    assert str(tmp_path) not in page


def test_html_without_data_docs_has_no_link():
    assert "Data Docs" not in report.to_html(outcome(data_docs=None))


def test_html_of_bytes_already_imported_names_the_earlier_import():
    again = outcome(errors=[], duplicates=[], earlier_import_id="20261126T090000Z-0f0f0f0f")
    again.record.status = "already_imported"
    assert "loaded before by import 20261126T090000Z-0f0f0f0f" in report.to_html(again)
    assert report.to_dict(again)["earlier_import_id"] == "20261126T090000Z-0f0f0f0f"


# --- write ----------------------------------------------------------------------------------


def test_write_writes_the_three_files(tmp_path):
    result = outcome()
    folder = report.write(result, tmp_path / "reports" / "acme" / result.record.import_id)
    assert folder == tmp_path / "reports" / "acme" / result.record.import_id
    assert sorted(p.name for p in folder.iterdir()) == ["errors.csv", "report.html", "report.json"]
    assert json.loads((folder / "report.json").read_text("utf-8")) == report.to_dict(result)
    assert (folder / "errors.csv").read_text("utf-8").splitlines()[0] == "line;column;code;message"
    assert "invalid_email" in (folder / "report.html").read_text("utf-8")


def test_write_a_rejected_file_with_no_error_still_writes_three_files(tmp_path):
    result = rejected("not_utf8", "the file is not UTF-8 text: line 3")
    folder = report.write(result, tmp_path / "r")
    assert sorted(p.name for p in folder.iterdir()) == ["errors.csv", "report.html", "report.json"]
    assert (folder / "errors.csv").read_text("utf-8") == "line;column;code;message\n"
    assert json.loads((folder / "report.json").read_text("utf-8"))["rejection"]["code"] == (
        "not_utf8"
    )
    assert "line 3" in (folder / "report.html").read_text("utf-8")


def test_report_json_keeps_non_ascii_text_readable(tmp_path):
    result = outcome(errors=[RowError(4, "name_product", "value_too_long", "Théière trop longue")])
    folder = report.write(result, tmp_path / "r")
    got = json.loads((folder / "report.json").read_text("utf-8"))
    assert got["errors"][0]["message"] == "Théière trop longue"


def test_an_all_bad_file_lists_the_first_errors_and_keeps_every_one_in_errors_csv(tmp_path):
    many = [
        RowError(line, "email", "invalid_email", "email is not valid")
        for line in range(2, 2 + report.MAX_LISTED + 500)
    ]
    dups = [Duplicate(line, 2) for line in range(5000, 5000 + report.MAX_LISTED + 1)]
    bad = outcome(errors=many, duplicates=dups)

    as_dict = report.to_dict(bad)
    folder = report.write(bad, tmp_path / "r")

    assert len(as_dict["errors"]) == report.MAX_LISTED
    assert as_dict["errors_total"] == len(many)
    assert as_dict["errors_by_code"] == {"invalid_email": len(many)}
    assert len(as_dict["duplicates"]) == report.MAX_LISTED
    assert as_dict["duplicates_total"] == len(dups)
    lines = (folder / "errors.csv").read_text().splitlines()
    assert len(lines) == 1 + len(many)
    assert f"the first {report.MAX_LISTED} of {len(many)}" in (folder / "report.html").read_text()


def test_a_short_list_has_exactly_the_keys_of_the_contract():
    assert set(report.to_dict(outcome())) == set(CONTRACT_EXAMPLE)


def test_warnings_are_listed_in_the_json_and_on_the_page_and_empty_when_none():
    signs = [
        FileWarning("volume_drop", "this file has 80 valid rows, less than half the usual 200"),
        FileWarning("missing_shop", "shop_id '<PAR-02>' has no order in this file"),
    ]

    got = report.to_dict(outcome(warnings=signs))
    page = report.to_html(outcome(warnings=signs))

    assert got["warnings"] == [{"code": w.code, "message": w.message} for w in signs]
    assert got["status"] == "loaded", "a sign of filtering never rejects"
    assert "Signs of a filtered file" in page
    assert "less than half the usual 200" in page and "&lt;PAR-02&gt;" in page
    assert report.to_dict(outcome(warnings=[]))["warnings"] == []
    assert "Signs of a filtered file" not in report.to_html(outcome(warnings=[]))
