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
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.kit.api_server import ARTIFACTS_DIR, UI_PREFIX, VIEWER, UiServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.ui

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ARTIFACTS_DIR
#: python-svc.md: without the background-networking flags Chromium calls out at every start.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
    # Every frame in one renderer, so that the performance log sees every frame's requests.
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
HARMLESS_SCHEMES = {"data", "blob", "about"}
#: Chromium's own pages and their resources, never fetched from a network.
BROWSER_SCHEMES = {"chrome", "chrome-untrusted", "devtools"}
WAIT_SECONDS = 45.0

#: Airflow's left navigation: its buttons carry their title as aria-label.
AIRFLOW_NAV = "//*[@aria-label='Home']"
MERCHANT = "shop-web"
STATUS = "scheduled"


# -- the browser -----------------------------------------------------------------------------


class Browser:
    """A Selenium Chrome session with the bookkeeping the tests need."""

    def __init__(self, driver, downloads: Path, server: UiServer) -> None:
        self.driver = driver
        self.downloads = downloads
        self.server = server
        self.requested: list[str] = []
        self.internal: list[str] = []
        self.console: list[str] = []
        self.shots: list[Path] = []

    # -- what the pages asked for --------------------------------------------------------

    def drain_logs(self) -> None:
        """Move Chrome's performance log (every request of every page) into ``requested``."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                url, document = params["request"]["url"], params.get("documentURL", "")
                if _browser_internal(url) and _browser_internal(document):
                    # Chromium's own pages (a new tab's page): not one of the pages tested.
                    self.internal.append(url)
                else:
                    self.requested.append(url)
            elif message.get("method") == "Network.webSocketCreated":
                self.requested.append(params["url"])
        for entry in self.driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                self.console.append(entry.get("message", "")[:300])

    def off_loopback(self) -> list[str]:
        self.drain_logs()
        return sorted({url for url in self.requested if not _is_local(url)})

    # -- screenshots ---------------------------------------------------------------------

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        print(f"screenshot: {path}")
        return path

    # -- waiting -------------------------------------------------------------------------

    def wait(self, condition: Callable, what: str, seconds: float = WAIT_SECONDS):
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
            TimeoutException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        # A page that navigates under the condition makes its elements stale: try again.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        try:
            return WebDriverWait(
                self.driver, seconds, poll_frequency=0.2, ignored_exceptions=ignored
            ).until(condition)
        except TimeoutException:
            shot = self.shot("timeout")
            raise AssertionError(
                f"waited {seconds:.0f} s for {what}; page {self.driver.current_url!r}, "
                f"screenshot {shot}"
            ) from None

    def find(self, by: str, value: str, what: str | None = None):
        return self.wait(
            lambda d: _displayed(d.find_elements(by, value)), what or f"{by} {value!r}"
        )

    def download(self, click: Callable[[], None], what: str) -> Path:
        """Click, then wait for one new complete file in the download folder."""
        before = set(self.downloads.iterdir())
        click()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            new = [
                p
                for p in set(self.downloads.iterdir()) - before
                if not p.name.endswith((".crdownload", ".tmp")) and p.stat().st_size > 0
            ]
            if new:
                return max(new, key=lambda p: p.stat().st_mtime)
            time.sleep(0.2)
        shot = self.shot("no-download")
        raise AssertionError(f"no {what} was downloaded in {WAIT_SECONDS:.0f} s; screenshot {shot}")

    # -- Airflow's navigation ------------------------------------------------------------

    def open_from_airflow_nav(self, name: str) -> None:
        """From Airflow's home page, the nav entry ``name`` (under "Plugins" when grouped).

        Airflow 3.3 shows a ``destination: nav`` external view with a ``url_route`` in an iframe
        at ``/plugin/<url_route>``; without one, as a link opening a new tab. Either way this
        leaves the driver in the UI's own page (the iframe, or the new tab).
        """
        from selenium.webdriver.common.by import By

        self._back_to_airflow()
        self.driver.get(self.server.url("/"))
        self.find(By.XPATH, AIRFLOW_NAV, "Airflow's navigation")
        entry = (
            f"//*[@aria-label={_xpath_str(name)} or "
            f"(self::a and normalize-space(.)={_xpath_str(name)}) or "
            f"(@role='menuitem' and normalize-space(.)={_xpath_str(name)})]"
        )
        plugins = "//*[@aria-label='Plugins']"
        # The plugins' entries come with a later API answer than the rest of the navigation:
        # wait for the entry itself or for the "Plugins" menu that would group it.
        shown = self.wait(
            lambda d: _displayed(d.find_elements(By.XPATH, f"{entry} | {plugins}")),
            f"the navigation entry {name!r} or the Plugins menu",
        )
        if shown.get_attribute("aria-label") == "Plugins" and name != "Plugins":
            shown.click()
        link = self.find(By.XPATH, entry, f"the navigation entry {name!r}")
        handles = set(self.driver.window_handles)
        link.click()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            new = set(self.driver.window_handles) - handles
            if new:
                self.driver.switch_to.window(new.pop())
                return
            if "/plugin/" in urlsplit(self.driver.current_url).path:
                frame = self.find(By.CSS_SELECTOR, "iframe", "the plugin's iframe")
                self.driver.switch_to.frame(frame)
                return
            if urlsplit(self.driver.current_url).path.startswith(UI_PREFIX + "/"):
                return
            time.sleep(0.2)
        raise AssertionError(f"{name!r} opened nothing; page {self.driver.current_url!r}")

    def _back_to_airflow(self) -> None:
        """One tab again, out of any iframe."""
        main = self.driver.window_handles[0]
        for handle in self.driver.window_handles[1:]:
            self.driver.switch_to.window(handle)
            self.driver.close()
        self.driver.switch_to.window(main)
        self.driver.switch_to.default_content()

    def follow(self, element) -> None:
        """Click a link and wait for what it opens: a new tab (continue there) or a new page
        in this one (the old document goes stale)."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        handles = set(self.driver.window_handles)
        old_document = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            new = set(self.driver.window_handles) - handles
            if new:
                self.driver.switch_to.window(new.pop())
                return
            try:
                old_document.is_enabled()
            except StaleElementReferenceException:
                return
            time.sleep(0.1)
        raise AssertionError(f"the link opened nothing; page {self.driver.current_url!r}")

    def page_path(self) -> str:
        return urlsplit(self.driver.execute_script("return document.location.href")).path


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in HARMLESS_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


def _browser_internal(url: str) -> bool:
    return urlsplit(url).scheme in BROWSER_SCHEMES


def _displayed(elements: list) -> object:
    shown = [e for e in elements if e.is_displayed()]
    return shown[0] if shown else False


def _xpath_str(text: str) -> str:
    assert "'" not in text
    return f"'{text}'"


def _chromium_or_fail() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "with scripts/ensure_chromium.sh (scripts/test.sh runs it)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def browser(ui_server: UiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium, fresh profile, downloads into a temporary folder."""
    _chromium_or_fail()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for old in ARTIFACTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    root = tmp_path_factory.mktemp("chromium")
    downloads = root / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={root / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(root / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True},
        )
        yield Browser(driver, downloads, ui_server)
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def logged_in(browser: Browser) -> Browser:
    """Logged in as the viewer on Airflow's own login page, the way a person does."""
    from selenium.webdriver.common.by import By

    server = browser.server
    browser.driver.get(server.url("/"))
    browser.wait(lambda d: "/auth/login" in d.current_url, "Airflow's redirect to its login page")
    user = browser.find(By.NAME, "username", "the login form")
    browser.shot("airflow-login")
    user.send_keys(VIEWER)
    browser.find(By.NAME, "password").send_keys(server.passwords[VIEWER])
    browser.find(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.wait(
        lambda d: "/auth/login" not in d.current_url and d.get_cookie("_token"),
        "the login to finish (the _token cookie)",
    )
    browser.find(By.XPATH, AIRFLOW_NAV, "Airflow's home page and its navigation")
    browser.shot("airflow-home")
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
