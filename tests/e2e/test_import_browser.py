"""Importing from the browser (contract section 12), as a person does it, in a real browser.

Against the README's UI command for real (``scripts/ui.sh``: Airflow's API server, scheduler with
the LocalExecutor, DAG processor and triggerer, on a temporary AIRFLOW_HOME and data folder, the
demo data loaded at its first start), with Debian's headless Chromium driven by Selenium:

1. log in on Airflow's login form, open "Import orders" from Airflow's navigation (shown in
   Airflow's iframe, or a new tab: both are followed), choose the demo merchant and a file
   written to disk (the demo merchant's sample with new order references, a duplicate row and
   two bad rows) through the ``<input type=file>``, "Check file";
2. read the totals, the requests it would create and the errors (line, column, code): they
   match the file;
3. "Import data": the page follows the upload (it reloads itself every 5 s) while the scheduler
   runs ``orders_upload_import``, up to 5 minutes, Airflow's own timing untouched; the run is in
   Airflow (its link to the grid) and the page links to the import, loaded;
4. open the import, tick the confirmation, "Cancel import" (a box, not a ``confirm()`` dialog:
   Airflow's iframe is sandboxed without ``allow-modals``): the cancellation is listed with its
   counts, and the requests page filtered on the merchant and ``cancelled`` lists exactly the
   requests not yet due;
5. from "Review imports", the import's link to its run opens Airflow's page of that run (in
   Airflow's iframe through Airflow's router: the iframe may not navigate the window itself).

The browser reaches loopback only (``--host-resolver-rules``), and every request the pages made
is read back from Chrome's performance log. Each step leaves a screenshot
``test-artifacts/ui/import-*.png``. The tests run in this order and share one journey; the module
takes one to a few minutes (the demo load, then a run the scheduler picks up).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.kit.api_server import ARTIFACTS_DIR, UI_PREFIX
from tests.kit.browser import ChromeSession, chrome, remove_shots, require_chromium
from tests.kit.browser import is_local as _is_local
from tests.kit.factories import sample_for_yesterday, yesterday
from tests.kit.ui_command import USER, UiCommand, running, start_ui

pytestmark = pytest.mark.ui

WINDOW_HEIGHT = 1200
#: A person watching the upload's page until the scheduler has run the import.
RUN_SECONDS = 300.0
SHOT_PREFIX = "import-"

MERCHANT = "demo-website"
TEMPLATE = "website"
IMPORT_DAG = "orders_upload_import"
#: Appended to the sample's order references: orders the demo never imported.
REF_SUFFIX = "-BRW"
#: A delay from which a request of yesterday's sample is surely not due today.
NOT_DUE_DELAY = 7
CANCEL_REASON = "wrong_file"


# -- the file a person chooses ----------------------------------------------------------------


@dataclass(frozen=True)
class OrderFile:
    """The file on disk and what the check must show of it."""

    path: Path
    #: Order references of the valid rows, and those whose request is due at once.
    valid_refs: frozenset[str]
    due_refs: frozenset[str]
    totals: dict[str, str]
    requests: dict[str, str]
    #: (line, column, code) of each row error, as the page lists them.
    errors: list[tuple[str, str, str]]


def order_file(folder: Path) -> OrderFile:
    """The demo merchant's sample dated yesterday, with new order references and delays either
    0/empty (due at once) or a week at least; then a duplicate row, a row with a bad e-mail and
    a row with a date that is no date."""
    header, *rows = list(csv.reader(io.StringIO(sample_for_yesterday(TEMPLATE)), delimiter=";"))
    names = [name.rstrip("*") for name in header]
    ref_at, delay_at = names.index("order_ref"), names.index("delay")
    due = set()
    for row in rows:
        row[ref_at] += REF_SUFFIX
        if row[delay_at] in ("", "0"):
            due.add(row[ref_at])
        else:
            row[delay_at] = str(max(int(row[delay_at]), NOT_DUE_DELAY))
    day = f"{yesterday():%d-%m-%Y}"
    bad_email = {"order_ref": "WEB-901" + REF_SUFFIX, "email": "not-an-email", "order_date": day}
    bad_date = {"order_ref": "WEB-902" + REF_SUFFIX, "email": "p.roux@example.fr"}
    bad_date["order_date"] = "32-13-2026"
    common = {"lastname": "Petit", "firstname": "Anne", "delay": "7", "language": "fr"}
    bad = [[(common | values)[name] for name in names] for values in (bad_email, bad_date)]
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows([header, *rows, rows[1], *bad])
    path = folder / "orders-from-the-browser.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    # Line 1 is the header: the rows are lines 2.., then the duplicate of line 3, then the bad.
    first_bad = len(rows) + 3
    valid = frozenset(row[ref_at] for row in rows)
    return OrderFile(
        path=path,
        valid_refs=valid,
        due_refs=frozenset(due),
        totals={
            "Rows": str(len(rows) + 3),
            "Valid": str(len(rows)),
            "With errors": "2",
            "Duplicates": "1",
            "Order references already imported": "0",
            "Opted-out rows (valid, no request)": "0",
        },
        requests={"Brand": str(len(valid)), "Product": "0", "Due at once": str(len(due))},
        errors=[
            (str(first_bad), "email", "invalid_email"),
            (str(first_bad + 1), "order_date", "invalid_date"),
        ],
    )


# -- the browser ------------------------------------------------------------------------------


class Browser(ChromeSession):
    """The Chrome session on the UI command's Airflow ``ui``."""

    def __init__(self, driver: WebDriver, ui: UiCommand) -> None:
        super().__init__(driver, ui.base_url, shot_name=SHOT_PREFIX + "{n}-{name}.png")
        self.ui = ui


def table_facts(table: WebElement) -> dict[str, str]:
    """A two-column table (``<th>`` then ``<td>``) as a mapping."""
    facts = {}
    for row in table.find_elements(By.TAG_NAME, "tr"):
        facts[row.find_element(By.TAG_NAME, "th").text] = row.find_element(By.TAG_NAME, "td").text
    return facts


def table_rows(table: WebElement) -> list[list[str]]:
    """The cells' text of each row that has ``<td>`` cells (headers aside)."""
    rows = []
    for row in table.find_elements(By.TAG_NAME, "tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells:
            rows.append([cell.text for cell in cells])
    return rows


def filter_requests(b: Browser, **fields: str) -> None:
    """The requests page's filter form: each field set (a select by its value), "Apply"."""
    form = b.find(By.ID, "filters", "the requests filter form")
    for name, value in fields.items():
        element = form.find_element(By.NAME, name)
        if element.tag_name.lower() == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    b.submit(b.find(By.ID, "apply"), "the filtered requests")


def upload_state(driver: WebDriver) -> str:
    """The upload page's state (``data-state``: checked, queued, importing, done, failed)."""
    return driver.find_element(By.ID, "upload").get_attribute("data-state") or ""


def queued_facts(driver: WebDriver) -> tuple[str, str, str]:
    """The upload page's upload id, state and link to its DAG run, read from one document."""
    section = driver.find_element(By.ID, "upload")
    run_href = driver.find_element(By.ID, "run-link").get_attribute("href") or ""
    return section.get_attribute("data-upload-id") or "", upload_state(driver), run_href


def last_segment(href: str) -> str:
    """The last segment of a link's path, unquoted (an upload's run id, an import id)."""
    return unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Journey:
    """What the steps learn and pass on: the upload, its run, its import."""

    upload_id: str = ""
    run_id: str = ""
    import_id: str = ""
    steps: list[str] = field(default_factory=list)

    def require(self, step: str) -> None:
        """Fail at once, naming the earlier step, when that one did not finish."""
        if step not in self.steps:
            pytest.fail(f"the step {step!r} did not finish: see its failure", pytrace=False)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiCommand]:
    """The module's ``scripts/ui.sh``: the whole local Airflow, the demo data loaded."""
    with running(start_ui(tmp_path_factory.mktemp("import-browser"))) as command:
        command.note_sessions()
        yield command
        command.note_sessions()  # the tasks' processes too, for the stop


@pytest.fixture(scope="module")
def browser(ui: UiCommand, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile, loopback only, its requests logged."""
    try:
        require_chromium()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    remove_shots(f"{SHOT_PREFIX}*.png")  # this run's screenshots only
    root = tmp_path_factory.mktemp("chromium")
    with chrome(root, window_height=WINDOW_HEIGHT) as driver:
        yield Browser(driver, ui)


@pytest.fixture(scope="module")
def logged_in(browser: Browser) -> Browser:
    """Logged in as ui.sh's user on Airflow's own login form, the way a person does."""
    browser.log_in(USER, browser.ui.password())
    return browser


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> OrderFile:
    return order_file(tmp_path_factory.mktemp("orders"))


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


# -- the journey ------------------------------------------------------------------------------


def test_check_file_shows_the_totals_and_the_errors(
    logged_in: Browser, orders: OrderFile, journey: Journey
) -> None:
    """From Airflow's navigation to "Import orders": the merchant, the file, "Check file"."""
    b = logged_in
    b.open_from_airflow_nav("Import orders")
    assert b.page_path() == f"{UI_PREFIX}/import", b.page_path()
    Select(b.find(By.ID, "merchant_id", "the merchant list")).select_by_value(MERCHANT)
    b.find(By.ID, "file", "the file input").send_keys(str(orders.path))
    b.shot("form")
    b.submit(b.find(By.ID, "check-file"), "the check's page")

    section = b.find(By.ID, "upload", "the check of the upload")
    journey.upload_id = section.get_attribute("data-upload-id")
    assert parse_qs(urlsplit(b.page_url()).query)["upload"] == [journey.upload_id]
    assert section.get_attribute("data-state") == "checked"
    state = b.find(By.ID, "upload-state")
    assert "accepted" in state.get_attribute("class").split(), state.text
    assert state.text.startswith("Checked: this file would load"), state.text
    assert orders.path.name in b.find(By.ID, "upload-file").text
    assert table_facts(b.find(By.ID, "check-totals")) == orders.totals
    assert table_facts(b.find(By.ID, "check-requests")) == orders.requests
    errors = table_rows(b.find(By.ID, "check-errors", "the errors table"))
    assert [tuple(row[:3]) for row in errors] == orders.errors, errors
    assert all(row[3] for row in errors), "every error has its message"
    assert b.find(By.ID, "import-data").text == "Import data"
    b.shot("checked")
    journey.steps.append("check")


def test_import_data_runs_until_loaded(ui: UiCommand, logged_in: Browser, journey: Journey) -> None:
    """After "Import data" the page follows the scheduler's run of orders_upload_import."""
    journey.require("check")
    b = logged_in
    b.submit(b.find(By.ID, "import-data"), "the upload's page after 'Import data'")
    # Read at once: the page reloads itself every 5 s (a reload in between: read again).
    upload_id, state, run_href = b.wait(queued_facts, "the upload's page and its run's link")
    assert upload_id == journey.upload_id
    assert state in ("queued", "importing", "done"), state
    run_path = urlsplit(run_href).path
    journey.run_id = last_segment(run_path)
    assert run_path.startswith(f"/dags/{IMPORT_DAG}/runs/"), run_path
    assert journey.run_id.startswith("upload__"), journey.run_id
    assert not b.driver.find_elements(By.ID, "import-data"), "one click, one import"
    b.shot("queued")

    # As a person: watch the page, which reloads itself every 5 s, until the import is over.
    final = b.wait(
        lambda d: (state := upload_state(d)) in ("done", "failed") and state,
        "the import to finish (the scheduler's run)",
        seconds=RUN_SECONDS,
        every=1.0,
    )
    b.shot("done")
    state = b.find(By.ID, "upload-state").text
    assert final == "done", f"{state}\n{ui.service_log('scheduler')}"
    assert state.startswith("Imported: loaded"), state
    journey.import_id = last_segment(b.find(By.ID, "import-link").get_attribute("href"))
    assert journey.import_id in state
    assert journey.run_id == f"upload__{journey.import_id}"

    # The run is Airflow's own, run by its scheduler: a manual run of ui.sh's user, succeeded.
    run = ui.call("GET", f"/api/v2/dags/{IMPORT_DAG}/dagRuns/{journey.run_id}")
    assert run.status_code == 200, run.text
    assert run.json()["state"] == "success", run.json()
    assert run.json()["run_type"] == "manual", run.json()
    tis = ui.call("GET", f"/api/v2/dags/{IMPORT_DAG}/dagRuns/{journey.run_id}/taskInstances")
    assert sorted((t["task_id"], t["state"]) for t in tis.json()["task_instances"]) == [
        ("import_upload", "success"),
        ("notify_data_team", "success"),
    ], tis.text
    journey.steps.append("import")


def test_cancel_the_import_from_its_page(
    logged_in: Browser, orders: OrderFile, journey: Journey
) -> None:
    """The import's page: loaded with the file's counts; "Cancel import", confirmed, is listed."""
    journey.require("import")
    b = logged_in
    b.submit(b.find(By.ID, "import-link"), "the import's page")
    assert b.page_path() == f"{UI_PREFIX}/imports/{journey.import_id}", b.page_path()
    body = b.find(By.TAG_NAME, "main").text
    assert "loaded" in b.find(By.CSS_SELECTOR, "p.status").get_attribute("class").split()
    assert orders.path.name in body
    totals = orders.totals
    assert (
        f"{totals['Rows']}: {totals['Valid']} valid, {totals['With errors']} with errors, "
        f"{totals['Duplicates']} duplicates"
    ) in body, body
    assert "imported from the browser by its DAG run" in body
    assert not b.driver.find_elements(By.ID, "cancellations"), "nothing cancelled yet"
    b.shot("import-page")

    form = b.find(By.ID, "cancel-import", "the cancel form")
    Select(form.find_element(By.NAME, "reason")).select_by_value(CANCEL_REASON)
    # The confirmation: a required box (Airflow's iframe allows no confirm() dialog). Unticked,
    # the browser keeps the form; ticked, it posts.
    confirm = b.find(By.ID, "cancel-confirm", "the confirmation box")
    assert "will never be sent" in form.text
    assert b.driver.execute_script("return !arguments[0].checkValidity()", form)
    confirm.click()
    assert confirm.is_selected()
    b.submit(b.find(By.ID, "cancel-submit"), "the import's page after the cancellation")

    table = b.find(By.ID, "cancellations", "the list of cancellations")
    assert b.page_path() == f"{UI_PREFIX}/imports/{journey.import_id}", b.page_path()
    [row] = table_rows(table)
    not_due = len(orders.valid_refs - orders.due_refs)
    # Who, reason, orders, cancelled, already due, already cancelled, not found.
    due = str(len(orders.due_refs))
    assert row[1:] == [USER, CANCEL_REASON, "whole import", str(not_due), due, "0", "0"], row
    b.shot("cancelled")
    journey.steps.append("cancel")


def test_the_requests_not_yet_due_show_cancelled(
    logged_in: Browser, orders: OrderFile, journey: Journey
) -> None:
    """The requests page filtered on the merchant and ``cancelled``: exactly the import's
    requests that were not yet due; those already due are left due."""
    journey.require("cancel")
    b = logged_in
    b.open_from_airflow_nav("Review requests")
    filter_requests(b, merchant_id=MERCHANT, status="cancelled")
    assert parse_qs(urlsplit(b.page_url()).query)["status"] == ["cancelled"]
    rows = table_rows(b.find(By.ID, "requests-table", "the requests table"))
    b.shot("requests-cancelled")
    # Scheduled, status, merchant, type, order, product, e-mail, language, import.
    shown = {(r[1], r[2], r[3], r[4], r[8]) for r in rows}
    expected = {
        ("cancelled", MERCHANT, "brand", ref, journey.import_id)
        for ref in orders.valid_refs - orders.due_refs
    }
    assert shown == expected and len(rows) == len(expected), rows

    for ref in sorted(orders.due_refs):
        filter_requests(b, merchant_id=MERCHANT, status="", order_ref=ref)
        [row] = table_rows(b.find(By.ID, "requests-table"))
        assert (row[1], row[4], row[8]) == ("due", ref, journey.import_id), row
    journey.steps.append("requests")


def test_the_import_links_its_run_in_airflows_grid(
    ui: UiCommand, logged_in: Browser, journey: Journey
) -> None:
    """From "Review imports", the import's page; its link opens Airflow's page of the run."""
    journey.require("import")
    b = logged_in
    b.open_from_airflow_nav("Review imports")
    table = b.find(By.ID, "imports-table", "the imports table")
    link = next(
        a
        for a in table.find_elements(By.CSS_SELECTOR, "a.import-link")
        if last_segment(a.get_attribute("href")) == journey.import_id
    )
    b.submit(link, "the import's page")
    run_link = b.find(By.ID, "run-link", "the import's link to its run")
    run_link.click()  # target=_top: Airflow's own page, out of the iframe
    b.driver.switch_to.default_content()
    run_path = f"/dags/{IMPORT_DAG}/runs/{journey.run_id}"
    b.wait(lambda d: urlsplit(d.current_url).path == run_path, f"Airflow's page {run_path}")
    b.wait(
        lambda d: journey.run_id in d.find_element(By.TAG_NAME, "body").text,
        "Airflow's page of the run to show it",
    )
    b.wait(
        lambda d: "success" in d.find_element(By.TAG_NAME, "body").text.lower(),
        "the run's state on Airflow's page",
    )
    b.shot("run-in-airflow")
    journey.steps.append("run")


def test_every_request_stayed_on_loopback(browser: Browser) -> None:
    """The whole session: no request of any page left 127.0.0.1/localhost."""
    off = browser.off_loopback()
    assert [u for u in browser.requested if _is_local(u)], "the performance log recorded nothing"
    assert off == [], f"requests off loopback: {off}"
    print(f"{len(browser.requested)} requests, all on loopback; screenshots in {ARTIFACTS_DIR}")
