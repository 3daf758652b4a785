"""The review UI in a real browser, as a person uses it: Debian's headless Chromium via Selenium.

Against the real ``airflow api-server`` of ``tests/fixtures/api_server.py``: log in on Airflow's
own login page, open "Review imports" from Airflow's navigation (Airflow shows a ``nav`` external
view inside an iframe when it has a ``url_route``, as a new tab otherwise: both are handled), open
a rejected file, download its errors.csv, filter the requests by merchant and status and export
them, open a Data Docs page and see its validation table filled.

The browser may reach loopback only (``--host-resolver-rules``), and every request the pages made
is read back from Chrome's performance log: a URL off 127.0.0.1/localhost fails the test.
Each step leaves a screenshot in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.kit.api_server import ARTIFACTS_DIR, UI_PREFIX, VIEWER, UiServer
from tests.kit.browser import ChromeSession, chrome, remove_shots, require_chromium
from tests.kit.browser import is_local as _is_local
from tests.kit.warehouse import query

pytestmark = pytest.mark.ui

ARTIFACTS = ARTIFACTS_DIR
WINDOW_HEIGHT = 1000
MERCHANT = "shop-web"
STATUS = "scheduled"


# -- the browser -----------------------------------------------------------------------------


class Browser(ChromeSession):
    """The Chrome session on the test API server ``server``, downloads into ``downloads``."""

    def __init__(self, driver: WebDriver, downloads: Path, server: UiServer) -> None:
        super().__init__(driver, server.base_url, downloads=downloads)
        self.server = server


@pytest.fixture(scope="module")
def browser(ui_server: UiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium, fresh profile, downloads into a temporary folder."""
    try:
        require_chromium()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    remove_shots("*.png")  # this run's screenshots only
    root = tmp_path_factory.mktemp("chromium")
    downloads = root / "downloads"
    downloads.mkdir()
    with chrome(root, window_height=WINDOW_HEIGHT, downloads=downloads) as driver:
        yield Browser(driver, downloads, ui_server)


@pytest.fixture(scope="module")
def logged_in(browser: Browser) -> Browser:
    """Logged in as the viewer on Airflow's own login page, the way a person does."""
    browser.log_in(VIEWER, browser.server.passwords[VIEWER], shots=True)
    return browser


# -- the journey -----------------------------------------------------------------------------


def test_review_imports_opens_from_airflows_navigation(logged_in: Browser) -> None:
    from selenium.webdriver.common.by import By

    b = logged_in
    b.open_from_airflow_nav("Review imports")
    table = b.find(By.ID, "imports-table", "the imports table")
    assert b.page_path() == UI_PREFIX + "/imports", b.page_path()
    b.wait(lambda d: len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) > 0, "import rows")
    b.shot("review-imports")
    text = table.text
    for made in b.server.imports.values():
        assert made.file_name in text, made.file_name
    links = table.find_elements(By.CSS_SELECTOR, "a.import-link")
    assert len(links) == len(b.server.imports)
    assert b.off_loopback() == []


def test_paging_links_walk_the_imports(logged_in: Browser) -> None:
    from selenium.webdriver.common.by import By

    b = logged_in
    b.open_from_airflow_nav("Review imports")
    b.find(By.ID, "imports-table")
    # Pages of 3 (the page size is a query parameter; 7 imports make 3 pages).
    b.driver.execute_script("location.assign(location.pathname + '?limit=3')")
    b.wait(lambda d: "limit=3" in d.execute_script("return location.search"), "pages of 3")

    def shown() -> list[str]:
        table = b.find(By.ID, "imports-table")
        return [
            a.get_attribute("href") for a in table.find_elements(By.CSS_SELECTOR, "a.import-link")
        ]

    pages = [shown()]
    assert len(pages[0]) == 3 and not b.driver.find_elements(By.ID, "prev-page")
    while b.driver.find_elements(By.ID, "next-page"):
        b.find(By.ID, "next-page").click()
        b.wait(lambda d, before=pages[-1]: shown() != before, "the next page")
        pages.append(shown())
    b.shot("imports-last-page")
    seen = [href for page in pages for href in page]
    assert len(pages) == 3 and len(seen) == len(set(seen)) == len(b.server.imports)
    b.find(By.ID, "prev-page").click()
    b.wait(lambda d: shown() == pages[-2], "the previous page")
    assert b.off_loopback() == []


def test_a_rejected_files_errors_csv_downloads(logged_in: Browser) -> None:
    from selenium.webdriver.common.by import By

    b = logged_in
    made = b.server.by_label("existing-proofs")
    b.open_from_airflow_nav("Review imports")
    form = b.find(By.ID, "filters", "the filter form")
    _set_field(form, "status", "rejected")
    _set_field(form, "merchant_id", made.merchant_id)
    b.find(By.ID, "apply").click()
    b.wait(lambda d: "status=rejected" in d.execute_script("return location.search"), "filter")
    table = b.find(By.ID, "imports-table")
    b.wait(
        lambda d: made.file_name in d.find_element(By.ID, "imports-table").text,
        "the rejected file in the filtered table",
    )
    b.shot("imports-rejected")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    rejected = [m for m in b.server.imports.values() if m.status == "rejected"]
    assert len(rows) == len([m for m in rejected if m.merchant_id == made.merchant_id])
    link = next(
        a
        for a in table.find_elements(By.CSS_SELECTOR, "a.import-link")
        if made.import_id in a.get_attribute("href")
    )
    b.follow(link)
    errors_link = b.find(By.ID, "download-errors", "the errors.csv link of the import page")
    assert b.page_path() == f"{UI_PREFIX}/imports/{made.import_id}", b.page_path()
    body = b.driver.find_element(By.TAG_NAME, "body").text
    assert "existing_proofs" in body and made.file_name in body
    b.shot("rejected-import")

    path = b.download(errors_link.click, "errors.csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert rows[0] == ["line", "column", "code", "message"]
    stored = query(
        b.server.warehouse_url,
        "SELECT line, column_name, code FROM import_errors WHERE import_id = :i",
        i=made.import_id,
    )
    assert sorted((int(r[0]), r[1], r[2]) for r in rows[1:]) == sorted(stored)
    assert ("3", "email", "invalid_email") in {(r[0], r[1], r[2]) for r in rows[1:]}
    assert b.off_loopback() == []


def test_requests_filter_by_merchant_and_status_then_export(logged_in: Browser) -> None:
    from selenium.webdriver.common.by import By

    b = logged_in
    statuses = b.server.request_statuses(MERCHANT)  # before the UI is asked (see its docstring)
    b.open_from_airflow_nav("Review requests")
    form = b.find(By.ID, "filters", "the requests filter form")
    _set_field(form, "merchant_id", MERCHANT)
    _set_field(form, "status", STATUS)
    b.find(By.ID, "apply").click()
    b.wait(lambda d: f"status={STATUS}" in d.execute_script("return location.search"), "filter")
    expected = sorted(ref for ref, status in statuses.items() if status == STATUS)
    assert expected, "the fixture holds scheduled requests for the merchant"
    table = b.find(By.ID, "requests-table", "the requests table")
    b.wait(
        lambda d: all(ref in d.find_element(By.ID, "requests-table").text for ref in expected),
        "the merchant's scheduled requests",
    )
    b.shot("requests-filtered")
    chart = b.find(By.CSS_SELECTOR, "svg.chart", "the requests chart (<svg class='chart'>)")
    assert chart.find_elements(By.CSS_SELECTOR, "rect, path, line, circle"), "an empty chart"
    shown = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(shown) == len(expected), [r.text[:40] for r in shown]
    others = set(statuses) - set(expected)
    assert not any(ref in table.text for ref in others)
    # The funnel of what the filter selects (contract section 13): none of these sent yet.
    funnel = b.find(By.CSS_SELECTOR, "svg.chart.funnel", "the tracking funnel")
    b.driver.execute_script("arguments[0].scrollIntoView()", funnel)
    steps = {
        row.get_attribute("data-step"): row.find_elements(By.TAG_NAME, "td")[1].text
        for row in b.find(By.ID, "funnel-table").find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert steps == {"scheduled_or_due": str(len(expected)), "sent": "0", "delivered": "0",
                     "opened": "0", "reviewed": "0"}, steps  # fmt: skip
    assert f"not yet sent: {len(expected)} scheduled, 0 due" in funnel.get_attribute("textContent")
    b.shot("requests-funnel")
    b.driver.execute_script("window.scrollTo(0, 0)")

    export = b.find(By.ID, "export-csv", "the CSV export link")
    path = b.download(export.click, "requests CSV")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert sorted(r["order_ref"] for r in rows) == expected
    assert {r["merchant_id"] for r in rows} == {MERCHANT}
    assert {r["status"] for r in rows} == {STATUS}
    assert all(r["email_masked"][1:].startswith("***@") for r in rows), "masked e-mails"
    assert b.off_loopback() == []


def test_a_data_docs_page_shows_its_validation_table(logged_in: Browser) -> None:
    from selenium.webdriver.common.by import By

    b = logged_in
    made = b.server.by_label("row-errors")
    b.open_from_airflow_nav("Review imports")
    table = b.find(By.ID, "imports-table")
    link = next(
        a
        for a in table.find_elements(By.CSS_SELECTOR, "a.import-link")
        if made.import_id in a.get_attribute("href")
    )
    b.follow(link)
    docs = b.find(By.ID, "data-docs-link", "the Data Docs link of the import page")
    b.shot("import-with-row-errors")
    b.follow(docs)
    b.wait(
        lambda d: (
            d.execute_script("return location.pathname").startswith(UI_PREFIX + "/data-docs/")
            and d.execute_script("return document.readyState") == "complete"
        ),
        "the Data Docs page",
    )
    assert b.page_path().endswith(made.report["validation"]["data_docs"]), b.page_path()
    b.wait(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "table tbody tr")) > 0,
        "rows in the validation page's tables",
    )
    b.shot("data-docs-validation")
    body = b.driver.find_element(By.TAG_NAME, "body").text
    assert made.report["validation"]["suite"] in body

    # The index: a bootstrap-table filled by its scripts, served from this server only.
    b.driver.get(b.server.url(UI_PREFIX + "/data-docs/index.html"))
    b.wait(
        lambda d: [
            r
            for r in d.find_elements(By.CSS_SELECTOR, "table tbody tr[data-index]")
            if r.is_displayed()
        ],
        "the Data Docs index's validation table to fill",
    )
    b.shot("data-docs-index")
    rows = b.driver.find_elements(By.CSS_SELECTOR, "table tbody tr[data-index]")
    assert len(rows) >= 5, len(rows)
    assert "No matching records" not in b.driver.find_element(By.TAG_NAME, "body").text
    assert b.off_loopback() == []


def test_every_request_stayed_on_loopback(browser: Browser) -> None:
    """The whole session: not one request left 127.0.0.1/localhost (data: and blob: are fine)."""
    off = browser.off_loopback()
    local = [u for u in browser.requested if _is_local(u)]
    assert local, "the performance log recorded no request at all: the check would prove nothing"
    assert off == [], f"requests off loopback: {off}"
    print(
        f"{len(browser.requested)} requests from the pages, all on loopback"
        f" ({len(browser.internal)} more by Chromium's own pages); screenshots in {ARTIFACTS}"
    )


def _set_field(form, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    field = form.find_element(By.NAME, name)
    if field.tag_name.lower() == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)
