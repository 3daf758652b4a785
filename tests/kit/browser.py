"""Debian's headless Chromium driven by Selenium, as the browser tests of tests/e2e/ use it.

``chrome`` starts chromedriver with the flags below and Chrome's performance log: the browser
reaches loopback only (``--host-resolver-rules``), every frame runs in one renderer so that the
log sees the iframes' requests too, and ``ChromeSession.off_loopback`` reads every request the
pages made back from it. ``ChromeSession`` also holds what the tests share: waits that fail with
a screenshot in ``test-artifacts/ui/``, Airflow's login form and navigation, links followed,
downloads. Used by tests/e2e/test_ui_browser.py and tests/e2e/test_import_browser.py; their
fixtures call it (this module never imports pytest: it raises AssertionError or RuntimeError).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.kit.api_server import ARTIFACTS_DIR, UI_PREFIX

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
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
    # Every frame in one renderer, so that the performance log sees every frame's requests.
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
WINDOW_WIDTH = 1440
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NETWORK_SCHEMES = {"http", "https", "ws", "wss"}
#: Schemes that fetch nothing from a network: inline data.
HARMLESS_SCHEMES = {"data", "blob", "about"}
#: Chromium's own pages and their resources, never fetched from a network.
BROWSER_SCHEMES = {"chrome", "chrome-untrusted", "devtools"}
#: A page, an element, a redirect: what a person waits for without thinking about it.
WAIT_SECONDS = 45.0
#: Airflow's left navigation: its buttons carry their title as aria-label.
AIRFLOW_NAV = "//*[@aria-label='Home']"
PLUGINS_MENU = "//*[@aria-label='Plugins']"


def require_chromium() -> None:
    """Raise RuntimeError naming Chromium or chromedriver when either is not installed."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "with scripts/ensure_chromium.sh (scripts/test.sh runs it)"
        )


def remove_shots(pattern: str) -> None:
    """Delete the screenshots of earlier runs matching ``pattern`` in ``ARTIFACTS_DIR``."""
    for old in ARTIFACTS_DIR.glob(pattern):
        old.unlink()


def _download_prefs(downloads: Path) -> dict[str, object]:
    """Chrome's preferences that save every download into ``downloads`` without asking."""
    return {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "download.directory_upgrade": True,
        "safebrowsing.enabled": False,
    }


@contextlib.contextmanager
def chrome(
    root: Path,
    *,
    window_height: int,
    downloads: Path | None = None,
    extra_flags: Sequence[str] = (),
) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile under ``root``, its requests logged; quit after."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    window = f"--window-size={WINDOW_WIDTH},{window_height}"
    for flag in [*CHROMIUM_FLAGS, window, *extra_flags, f"--user-data-dir={root / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    if downloads is not None:
        options.add_experimental_option("prefs", _download_prefs(downloads))
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(root / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        if downloads is not None:
            driver.execute_cdp_cmd(
                "Browser.setDownloadBehavior",
                {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True},
            )
        yield driver
    finally:
        driver.quit()


def is_local(url: str) -> bool:
    """Whether ``url`` stays on 127.0.0.1/localhost or fetches nothing (data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in HARMLESS_SCHEMES:
        return True
    return parts.scheme in NETWORK_SCHEMES and parts.hostname in LOCAL_HOSTS


def browser_internal(url: str) -> bool:
    """Whether ``url`` is one of Chromium's own pages or resources."""
    return urlsplit(url).scheme in BROWSER_SCHEMES


def displayed(elements: list[WebElement]) -> WebElement | bool:
    """The first displayed element of ``elements``, False when none is."""
    shown = [element for element in elements if element.is_displayed()]
    return shown[0] if shown else False


def stale(element: WebElement) -> bool:
    """Whether ``element``'s document is gone (the page navigated away)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    return False


def switched_to_new_tab(driver: WebDriver, handles: set[str]) -> bool:
    """Switch to a tab that is not one of ``handles``, if one was opened; whether it was."""
    new = set(driver.window_handles) - handles
    if new:
        driver.switch_to.window(new.pop())
    return bool(new)


def xpath_str(text: str) -> str:
    """``text`` as an XPath string literal (text without an apostrophe)."""
    if "'" in text:
        raise RuntimeError(f"an apostrophe in an XPath literal: {text!r}")
    return f"'{text}'"


class ChromeSession:
    """A Selenium Chrome session on an Airflow at ``base_url``, with the tests' bookkeeping."""

    def __init__(
        self,
        driver: WebDriver,
        base_url: str,
        *,
        shot_name: str = "{n:02d}-{name}.png",
        downloads: Path | None = None,
    ) -> None:
        self.driver = driver
        self.base_url = base_url
        #: A screenshot's file name in ``ARTIFACTS_DIR``: ``n`` counts them, ``name`` the step.
        self.shot_name = shot_name
        self.downloads = downloads
        self.requested: list[str] = []
        self.internal: list[str] = []
        self.console: list[str] = []
        self.shots: list[Path] = []

    def url(self, path: str) -> str:
        """The address of ``path`` on the Airflow."""
        return self.base_url + path

    # -- what the pages asked for --------------------------------------------------------

    def drain_logs(self) -> None:
        """Move Chrome's performance log (every request of every page) into ``requested``."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                url, document = params["request"]["url"], params.get("documentURL", "")
                if browser_internal(url) and browser_internal(document):
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
        """The URLs requested so far that left 127.0.0.1/localhost, sorted."""
        self.drain_logs()
        return sorted({url for url in self.requested if not is_local(url)})

    # -- screenshots and where the driver is ---------------------------------------------

    def shot(self, name: str) -> Path:
        """A screenshot of the whole window in ``ARTIFACTS_DIR``, named by ``shot_name``."""
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS_DIR / self.shot_name.format(n=len(self.shots) + 1, name=name)
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        print(f"screenshot: {path}")
        return path

    def page_url(self) -> str:
        """The address of the document the driver is in (the iframe's, inside one)."""
        return self.driver.execute_script("return document.location.href")

    def page_path(self) -> str:
        """The path of the document the driver is in."""
        return urlsplit(self.page_url()).path

    def _where(self) -> str:
        """The page's address for a failure message, the window's when the page has none."""
        try:
            return self.page_url()
        except WebDriverException:
            return self.driver.current_url

    # -- waiting -------------------------------------------------------------------------

    def wait(
        self,
        condition: Callable[[WebDriver], Any],
        what: str,
        seconds: float = WAIT_SECONDS,
        every: float = 0.2,
    ) -> Any:
        """``condition``'s first true value, or AssertionError naming ``what`` with a screenshot."""
        # A page that navigates under the condition makes its elements stale: try again.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        try:
            return WebDriverWait(
                self.driver, seconds, poll_frequency=every, ignored_exceptions=ignored
            ).until(condition)
        except TimeoutException:
            shot = self.shot("timeout")
            raise AssertionError(
                f"waited {seconds:.0f} s for {what}; page {self._where()!r}, screenshot {shot}"
            ) from None

    def find(self, by: str, value: str, what: str | None = None) -> WebElement:
        """The first displayed element matching, waited for."""
        return self.wait(lambda d: displayed(d.find_elements(by, value)), what or f"{by} {value!r}")

    def download(self, click: Callable[[], None], what: str) -> Path:
        """Click, then wait for one new complete file in the download folder."""
        if self.downloads is None:
            raise RuntimeError("this session was started without a download folder")
        folder = self.downloads
        before = set(folder.iterdir())
        click()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            new = [
                p
                for p in set(folder.iterdir()) - before
                if not p.name.endswith((".crdownload", ".tmp")) and p.stat().st_size > 0
            ]
            if new:
                return max(new, key=lambda p: p.stat().st_mtime)
            time.sleep(0.2)
        shot = self.shot("no-download")
        raise AssertionError(f"no {what} was downloaded in {WAIT_SECONDS:.0f} s; screenshot {shot}")

    # -- Airflow's login and navigation --------------------------------------------------

    def log_in(self, user: str, password: str, *, shots: bool = False) -> None:
        """Airflow's own login form filled in as a person does, up to its home page."""
        self.driver.get(self.url("/"))
        self.wait(lambda d: "/auth/login" in d.current_url, "Airflow's redirect to its login page")
        username = self.find(By.NAME, "username", "the login form")
        if shots:
            self.shot("airflow-login")
        username.send_keys(user)
        self.find(By.NAME, "password").send_keys(password)
        self.find(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait(
            lambda d: "/auth/login" not in d.current_url and d.get_cookie("_token"),
            "the login to finish (the _token cookie)",
        )
        self.find(By.XPATH, AIRFLOW_NAV, "Airflow's home page and its navigation")
        if shots:
            self.shot("airflow-home")

    def open_from_airflow_nav(self, name: str) -> None:
        """From Airflow's home page, the nav entry ``name``: left in the UI's own page."""
        # Airflow 3.3 shows a ``destination: nav`` external view with a ``url_route`` in an
        # iframe at ``/plugin/<url_route>``; without one, as a link opening a new tab. Either way
        # the driver is left in the UI's own page (the iframe, or the new tab).
        self._back_to_airflow()
        self.driver.get(self.url("/"))
        self.find(By.XPATH, AIRFLOW_NAV, "Airflow's navigation")
        literal = xpath_str(name)
        entry = (
            f"//*[@aria-label={literal} or (self::a and normalize-space(.)={literal}) or "
            f"(@role='menuitem' and normalize-space(.)={literal})]"
        )
        # The plugins' entries come with a later API answer than the rest of the navigation:
        # wait for the entry itself or for the "Plugins" menu that would group it.
        shown = self.wait(
            lambda d: displayed(d.find_elements(By.XPATH, f"{entry} | {PLUGINS_MENU}")),
            f"the navigation entry {name!r} or the Plugins menu",
        )
        if shown.get_attribute("aria-label") == "Plugins" and name != "Plugins":
            shown.click()
        link = self.find(By.XPATH, entry, f"the navigation entry {name!r}")
        handles = set(self.driver.window_handles)
        link.click()

        def opened(driver: WebDriver) -> bool:
            if switched_to_new_tab(driver, handles):
                return True
            if "/plugin/" in urlsplit(driver.current_url).path:
                frame = displayed(driver.find_elements(By.CSS_SELECTOR, "iframe"))
                if frame:
                    driver.switch_to.frame(frame)
                return bool(frame)
            return urlsplit(driver.current_url).path.startswith(UI_PREFIX + "/")

        self.wait(opened, f"{name!r} to open")

    def _back_to_airflow(self) -> None:
        """One tab again, out of any iframe."""
        main = self.driver.window_handles[0]
        for handle in self.driver.window_handles[1:]:
            self.driver.switch_to.window(handle)
            self.driver.close()
        self.driver.switch_to.window(main)
        self.driver.switch_to.default_content()

    def follow(self, element: WebElement, what: str = "the page the link opens") -> None:
        """Click a link or a button and wait for what it opens: a new tab, or the next page."""
        handles = set(self.driver.window_handles)
        old_document = self.driver.find_element(By.TAG_NAME, "html")
        element.click()

        self.wait(lambda d: switched_to_new_tab(d, handles) or stale(old_document), what)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete", what)

    #: A form's button: the same wait for the next document.
    submit = follow
