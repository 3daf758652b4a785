"""The review UI's plain parts, without a server: masking, Data Docs links, safe files, sealed
e-mail filters, SVG charts, the CSV export's lines and the pages' links."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from pathlib import Path

import pytest

from review_ingest.web import charts, csv_export, email_filter, files, pages, queries, views

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("alice@example.com", "a***@example.com"),
        ("Bob.Martin@Example.ORG", "B***@Example.ORG"),
        ("x@y.fr", "x***@y.fr"),
        ('"a@b"@example.com', '"***@example.com'),
        (None, None),
    ],
)
def test_mask_email(email: str | None, masked: str | None) -> None:
    assert views.mask_email(email) == masked


def test_status_is_due_from_the_scheduled_moment_on() -> None:
    assert views.request_status(NOW + dt.timedelta(seconds=1), NOW) == "scheduled"
    assert views.request_status(NOW, NOW) == "due"


def test_a_request_withdrawn_by_an_opt_out_stays_withdrawn() -> None:
    assert views.request_status(NOW + dt.timedelta(days=1), NOW, "withdrawn") == "withdrawn"
    assert views.request_status(NOW - dt.timedelta(days=1), NOW, "withdrawn") == "withdrawn"
    assert views.request_status(NOW + dt.timedelta(days=1), NOW, "scheduled") == "scheduled"


@pytest.mark.parametrize(
    ("data_docs", "href"),
    [
        ("validations/web/run 1/page.html", "../data-docs/validations/web/run%201/page.html"),
        ("index.html", "../data-docs/index.html"),
        (None, None),
        ("", None),
        ("/srv/data/data_docs/index.html", None),
        ("validations/../../warehouse.db", None),
        ("validations\\..\\x.html", None),
        ("./index.html", None),
        (42, None),
    ],
)
def test_data_docs_href(data_docs: object, href: str | None) -> None:
    assert views.data_docs_href(data_docs, "../") == href


def test_errors_by_code_counts_and_first_lines() -> None:
    errors = [{"line": n, "code": "invalid_email"} for n in range(2, 30)]
    errors += [{"line": 40, "code": "invalid_date"}]
    grouped = views.errors_by_code({"errors": errors})
    assert grouped == [
        {"code": "invalid_email", "count": 28, "first_lines": list(range(2, 12))},
        {"code": "invalid_date", "count": 1, "first_lines": [40]},
    ]
    # A report that lists its first errors only gives the counts of every error.
    long = views.errors_by_code({"errors": errors, "errors_by_code": {"invalid_email": 5000}})
    assert long == [{"code": "invalid_email", "count": 5000, "first_lines": list(range(2, 12))}]


# --- files ---------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    docs = tmp_path / "data_docs"
    (docs / "validations").mkdir(parents=True)
    (docs / "index.html").write_text("<html>index</html>")
    (docs / "validations" / "page.html").write_text("<html>page</html>")
    (tmp_path / "warehouse.db").write_text("secret")
    (docs / "escape").symlink_to(tmp_path / "warehouse.db")
    (docs / ".build.lock").write_text("")
    report = tmp_path / "reports" / "acme" / "imp-1"
    report.mkdir(parents=True)
    (report / "report.json").write_text("{}")
    (report / "report.html").write_text("<html></html>")
    return tmp_path


def test_data_docs_files_stay_inside_the_folder(data_dir: Path) -> None:
    docs = data_dir / "data_docs"
    assert files.data_docs_file(data_dir, "") == docs / "index.html"
    assert files.data_docs_file(data_dir, "validations/page.html") == (
        docs / "validations" / "page.html"
    )
    for path in (
        "../warehouse.db",
        "validations/../../warehouse.db",
        "/etc/passwd",
        str(data_dir / "warehouse.db"),
        "validations\\..\\..\\warehouse.db",
        "index.html\0.png",
        "escape",  # a symbolic link out of the folder
        "validations",  # a folder
        "missing.html",
        "./index.html",
        ".build.lock",  # the builders' lock: hidden files are not part of the docs
        "x" * 5000,
    ):
        assert files.data_docs_file(data_dir, path) is None, path


def test_report_files(data_dir: Path) -> None:
    folder = data_dir / "reports" / "acme" / "imp-1"
    assert files.report_file(data_dir, "acme", "imp-1", "report.json") == folder / "report.json"
    assert files.report_file(data_dir, "acme", "imp-1", "errors.csv") is None  # not written
    assert files.report_file(data_dir, "acme", "imp-1", "report.html") is None  # not served
    assert files.report_file(data_dir, "acme", "..", "report.json") is None


# --- sealed e-mail filters -----------------------------------------------------------------


def test_email_filter_tokens() -> None:
    token = email_filter.seal("  Jane.Doe@Example.com ", "secret")

    assert "jane" not in token.lower() and "example" not in token.lower()
    assert email_filter.unseal(token, "secret") == "jane.doe@example.com"
    assert email_filter.unseal(token, "another secret") is None
    assert email_filter.unseal(token[:-4] + "AAAA", "secret") is None
    assert email_filter.unseal("not-a-token", "secret") is None
    day_ago = int(time.time()) - email_filter.TOKEN_TTL_SECONDS - 60
    expired = email_filter._fernet("secret").encrypt_at_time(b"jane@example.com", day_ago)
    assert email_filter.unseal(expired.decode(), "secret") is None


# --- charts --------------------------------------------------------------------------------


def test_bar_chart_is_inline_svg_with_a_bar_and_tooltip_per_value() -> None:
    bars = [charts.Bar("2026-03-01", 3), charts.Bar("2026-03-02", 0), charts.Bar("<b>", 6)]
    svg = str(charts.bar_chart(bars, "Requests & more"))

    assert svg.startswith('<svg class="chart"') and svg.endswith("</svg>")
    assert svg.count("<rect") == 3
    assert "<title>2026-03-01: 3</title>" in svg
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert "Requests &amp; more" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert str(charts.bar_chart([], "Nothing")).count("<rect") == 0
    rate = str(charts.bar_chart([charts.Bar("d", 0.25)], "Rate", lambda v: f"{v:.0%}", 1.0))
    assert "<title>d: 25%</title>" in rate and ">100%</text>" in rate


# --- CSV export ----------------------------------------------------------------------------


def test_csv_lines_mask_emails_and_defuse_formulas() -> None:
    row = {
        "request_id": 7,
        "import_id": "imp-1",
        "merchant_id": "acme",
        "request_type": "product",
        "order_ref": "=HYPERLINK(1)",
        "id_product": "-P1",
        "email": "jane.doe@example.com",
        "language": None,
        "scheduled_at": dt.datetime(2026, 3, 12, 23, tzinfo=dt.UTC),
        "status": "scheduled",
        **dict.fromkeys(csv_export.HEADER[10:]),  # the delivery columns: none yet
    }
    lines = list(csv_export.request_lines([[row], [row | {"request_id": 8}]], NOW))

    assert len(lines) == 3  # the header, then one string per chunk
    parsed = list(csv.reader(io.StringIO("".join(lines)), delimiter=";"))
    assert parsed[0] == list(csv_export.HEADER)
    assert parsed[1] == [
        "7",
        "imp-1",
        "acme",
        "product",
        "'=HYPERLINK(1)",
        "'-P1",
        "j***@example.com",
        "",
        "2026-03-12T23:00:00Z",
        "scheduled",
        *[""] * 8,
    ]
    assert parsed[2][0] == "8"
    assert "jane.doe" not in "".join(lines)


# --- pages' links --------------------------------------------------------------------------


def test_filter_params_and_paging_links() -> None:
    filters = queries.RequestFilters(merchant_id="acme", scheduled_from=dt.date(2026, 3, 1))
    params = pages.filter_params(filters)
    assert params == {"merchant_id": "acme", "scheduled_from": "2026-03-01"}

    def links(limit: int, offset: int, has_more: bool, rows: int) -> dict:
        page = queries.Page([{}] * rows, 1000, False, has_more)
        return pages.paging_links(params, queries.Paging(limit, offset), page)

    first = links(50, 0, True, 50)
    assert first["previous"] is None
    assert first["next"] == "?merchant_id=acme&scheduled_from=2026-03-01&offset=50"
    middle = links(20, 30, True, 20)
    assert middle["previous"] == "?merchant_id=acme&scheduled_from=2026-03-01&limit=20&offset=10"
    assert middle["next"].endswith("&limit=20&offset=50")
    assert (middle["first"], middle["last"]) == (31, 50)
    last = links(50, 50, False, 3)
    assert (
        last["next"] is None and last["previous"] == "?merchant_id=acme&scheduled_from=2026-03-01"
    )
    # No next link past the deepest offset the API accepts.
    assert links(500, queries.MAX_OFFSET, True, 500)["next"] is None
