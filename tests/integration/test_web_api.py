"""The review UI's routes (contract section 10) inside Airflow's own API app, built in-process.

``airflow.api_fastapi.app.create_app()`` mounts this repo's plugin as the API server does, with
the test auth manager of ``tests/fixtures/auth_manager.py`` (SimpleAuthManager that refuses
``outsider`` every DAG and ``no-backfill`` the DAG ``orders_backfill``); tokens come from
Airflow's ``POST /auth/token``. The warehouse (PostgreSQL) and the data folder hold real imports
made by the pipeline from the sample files (``tests/fixtures/api_server.build_data``).

Every answer any test gets is scanned for the e-mails and names of the files loaded: none may
appear, in clear or escaped.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urljoin, urlsplit

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import delete

from review_ingest.core.merchants import load_merchants
from review_ingest.core.outcomes import Outcome
from review_ingest.pipeline.ingest import Ingest
from review_ingest.store import warehouse
from review_ingest.store.models import ImportRow
from review_ingest.web import queries
from tests.fixtures.auth_manager import NO_BACKFILL, OUTSIDER
from tests.kit.airflow_env import airflow_conn_json, fresh_review_app
from tests.kit.api_server import AUTH_MANAGER, MERCHANTS, ImportMade, build_data, sample_files
from tests.kit.factories import sample_for_yesterday
from tests.kit.postgres import new_database
from tests.kit.warehouse import query, settled_now

pytestmark = pytest.mark.postgres

PREFIX = "/review-ingest"
READER = "reader"
USERS = {READER: "viewer", OUTSIDER: "viewer", NO_BACKFILL: "viewer"}
PERSONAL_COLUMNS = ("email", "firstname", "lastname")
API_ROUTES = [
    "/api/imports",
    "/api/imports/{id}",
    "/api/imports/{id}/errors.csv",
    "/api/requests",
    "/api/requests.csv",
    "/api/requests/funnel",
]
PAGE_ROUTES = ["/", "/overview", "/imports", "/imports/{id}", "/requests", "/data-docs/"]


# --- the app and its data ------------------------------------------------------------------


@dataclass
class Ui:
    """Airflow's app with the plugin, a token per user, and what the pipeline made."""

    client: Any
    tokens: dict[str, str]
    data_dir: Path
    warehouse_url: str
    made: dict[str, ImportMade]
    personal: list[str]
    answers: list[str] = field(default_factory=list)

    def get(self, path: str, user: str | None = READER, **params: Any) -> httpx.Response:
        """``GET /review-ingest<path>`` as ``user`` (None: no credentials)."""
        return self.get_url(PREFIX + path, user, params=params)

    def get_url(self, url: str, user: str | None = READER, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        response = self.client.get(url, headers=headers, follow_redirects=False, **kwargs)
        assert response.status_code != 500, response.text
        assert_no_personal_data(response.text, self.personal, url)
        self.answers.append(url)
        return response

    def follow(self, page: httpx.Response, href: str, user: str | None = READER) -> httpx.Response:
        """The target of a (relative) link of ``page``."""
        return self.get_url(urljoin(str(page.url), href), user)

    def import_id(self, label: str) -> str:
        return self.made[label].import_id

    def db(self, sql: str, **params: Any) -> list[tuple]:
        return query(self.warehouse_url, sql, **params)


def personal_values(contents: list[str]) -> list[str]:
    """Every e-mail, first and last name of these order files."""
    values = set()
    for content in contents:
        rows = list(csv.reader(io.StringIO(content), delimiter=";"))
        header = [name.strip().rstrip("*").lower() for name in rows[0]]
        for row in rows[1:]:
            for name, value in zip(header, row, strict=False):
                if name in PERSONAL_COLUMNS and value.strip():
                    values.add(value.strip())
    return sorted(values)


def assert_no_personal_data(body: str, personal: list[str], where: str) -> None:
    lowered = body.lower()
    for value in personal:
        forms = {value, html.escape(value), quote(value), quote_plus(value)}
        forms.add(json.dumps(value)[1:-1])
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        for form in forms:
            found = form.lower() in lowered if "@" in value else form in body
            assert not found, f"{where}: a personal value of the sample files is in the answer"


def extra_imports(
    data_dir: Path, merchants_file: Path, warehouse_url: str
) -> dict[str, ImportMade]:
    """Sources other than upload: the web sample's bytes again over SFTP (already imported),
    and a backfill of new orders."""
    ingest = Ingest(data_dir, load_merchants(merchants_file), warehouse_url, data_docs=False)
    folder = data_dir.parent / "incoming" / "extra"
    folder.mkdir(parents=True)
    web = next(content for label, _, _, content in sample_files() if label == "web")
    backfill = re.sub(r"(?m)^WEB-(\d+)", r"BKF-\1", sample_for_yesterday("website"))
    made = {}
    for label, source, content in (("again", "sftp", web), ("backfill", "backfill", backfill)):
        path = folder / f"orders-{label}.csv"
        path.write_text(content, encoding="utf-8")
        outcome = ingest.import_file(path, "shop-web", source)
        report_dir = data_dir / "reports" / "shop-web" / outcome.record.import_id
        report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
        made[label] = ImportMade(label, "shop-web", path.name, report)
    ingest.engine.dispose()
    assert made["again"].status == "already_imported"
    assert made["backfill"].status == "loaded"
    return made


@pytest.fixture(scope="module")
def ui(
    pg_server_url: str, airflow_db: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ui]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("web-api")
    with (
        new_database(pg_server_url, "review_ui_test") as warehouse_url,
        pytest.MonkeyPatch.context() as env,
    ):
        data_dir, merchants_file, made = build_data(root, warehouse_url)
        made |= extra_imports(data_dir, merchants_file, warehouse_url)
        passwords = {user: f"password-of-{user}" for user in USERS}
        (root / "passwords.json").write_text(json.dumps(passwords), encoding="utf-8")
        for name, value in {
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{user}:{role}" for user, role in USERS.items()
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "web-api-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__API__SECRET_KEY": "web-api-test-secret-key",
            "REVIEW_INGEST_DATA_DIR": str(data_dir),
            "REVIEW_INGEST_MERCHANTS": str(merchants_file),
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
        }.items():
            env.setenv(name, value)
        purge_cached_app()  # a fresh auth manager of the class configured above
        fresh_review_app()  # and a UI on this module's warehouse
        with TestClient(create_app()) as client:
            tokens = {}
            for user, password in passwords.items():
                answer = client.post("/auth/token", json={"username": user, "password": password})
                assert answer.status_code == 201, answer.text
                tokens[user] = answer.json()["access_token"]
            contents = [content for *_, content in sample_files()]
            yield Ui(client, tokens, data_dir, warehouse_url, made, personal_values(contents))
        purge_cached_app()
        fresh_review_app()


def route(ui: Ui, template: str) -> str:
    return template.format(id=ui.import_id("row-errors"))


# --- HTML ----------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        def matches(t: str, a: dict[str, str]) -> bool:
            if tag is not None and t != tag:
                return False
            for key, value in attrs.items():
                key = key.rstrip("_")
                if key == "class" and value in a.get("class", "").split():
                    continue
                if a.get(key) != value:
                    return False
            return True

        return [a for t, a in self.tags if matches(t, a)]

    def one(self, tag: str | None = None, **attrs: str) -> dict[str, str]:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"{tag} {attrs}: {len(found)} found"
        return found[0]


def assert_relative_links_only(text: str) -> None:
    """No link or asset names a host or starts at the server's root."""
    for url in re.findall(r'\b(?:href|src|action)="([^"]*)"', text):
        assert not re.match(r"^(?:[a-z][a-z0-9+.-]*:|/)", url, re.IGNORECASE), url


# --- access --------------------------------------------------------------------------------


def test_without_a_user_the_api_answers_401_and_pages_go_to_the_login(ui: Ui) -> None:
    for path in API_ROUTES:
        answer = ui.get(route(ui, path), user=None)
        assert answer.status_code == 401, path
        assert answer.json() == {"detail": "Not authenticated"}
    for path in PAGE_ROUTES[1:]:
        answer = ui.get(route(ui, path), user=None, merchant_id="shop-web")
        assert answer.status_code == 303, path
        location = urlsplit(answer.headers["location"])
        assert location.path == "/auth/login", path
        back = parse_qs(location.query)["next"][0]
        assert back == PREFIX + route(ui, path) + "?merchant_id=shop-web"
    assert ui.get("/", user=None).status_code == 303


def test_a_bad_token_is_refused(ui: Ui) -> None:
    answer = ui.client.get(PREFIX + "/api/imports", headers={"Authorization": "Bearer not.a.token"})
    assert answer.status_code in (401, 403)


def test_the_ui_session_cookie_is_enough(ui: Ui) -> None:
    ui.client.cookies.set("_token", ui.tokens[READER])
    try:
        for path in ("/api/imports", "/imports"):
            answer = ui.client.get(PREFIX + path)
            assert answer.status_code == 200, path
    finally:
        ui.client.cookies.clear()


@pytest.mark.parametrize("user", [OUTSIDER, NO_BACKFILL])
def test_users_who_may_not_read_every_ingest_dag_get_403(ui: Ui, user: str) -> None:
    for path in API_ROUTES + PAGE_ROUTES:
        answer = ui.get(route(ui, path), user=user)
        assert answer.status_code == 403, path
        assert answer.json() == {"detail": "Forbidden"}


def test_static_files_are_public_and_served_by_the_app(ui: Ui) -> None:
    answer = ui.get("/static/review.css", user=None)
    assert answer.status_code == 200
    assert "svg.chart" in answer.text
    assert ui.get("/static/../app.py", user=None).status_code == 404


def test_the_plugin_is_registered_with_both_navigation_entries(ui: Ui) -> None:
    plugins = ui.get_url("/api/v2/plugins").json()["plugins"]
    ours = [p for p in plugins if p["name"] == "review_ingest_ui"]
    assert len(ours) == 1, [p["name"] for p in plugins]
    assert [(a["url_prefix"], a["name"]) for a in ours[0]["fastapi_apps"]] == [
        (PREFIX, "Review ingest")
    ]
    views = [(v["name"], v["href"], v["destination"]) for v in ours[0]["external_views"]]
    assert views == [
        ("Review imports", "review-ingest/imports", "nav"),
        ("Review requests", "review-ingest/requests", "nav"),
        ("Import orders", "review-ingest/import", "nav"),
    ]


def test_openapi_schema_of_the_sub_app(ui: Ui) -> None:
    schema = ui.get("/openapi.json", user=None).json()

    assert schema["servers"] == [{"url": PREFIX}]
    assert set(schema["paths"]) == {
        "/api/imports",
        "/api/imports/{import_id}",
        "/api/imports/{import_id}/errors.csv",
        "/api/imports/{import_id}/cancel",
        "/api/requests",
        "/api/requests.csv",
        "/api/requests/funnel",
        "/api/uploads",
        "/api/uploads/{upload_id}",
        "/api/uploads/{upload_id}/import",
    }
    requests = schema["paths"]["/api/requests"]["get"]
    names = {p["name"] for p in requests["parameters"]}
    assert {"merchant_id", "status", "request_type", "order_ref", "email", "scheduled_from",
            "scheduled_to", "limit", "offset"} <= names  # fmt: skip
    item = schema["components"]["schemas"]["RequestItem"]["properties"]
    assert "email_masked" in item and not {"email", "firstname", "lastname"} & set(item)
    listing = schema["components"]["schemas"]["RequestList"]["properties"]
    assert "at least" in listing["total"]["description"]


# --- imports API ---------------------------------------------------------------------------


def test_imports_newest_first_with_every_imports_column(ui: Ui) -> None:
    answer = ui.get("/api/imports").json()

    expected = [
        r[0]
        for r in ui.db("SELECT import_id FROM imports ORDER BY processed_at DESC, import_id DESC")
    ]
    assert [item["import_id"] for item in answer["items"]] == expected
    assert (answer["total"], answer["total_is_lower_bound"], answer["has_more"]) == (
        len(expected), False, False,
    )  # fmt: skip
    columns = {r[0] for r in ui.db(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'imports'"
    )}  # fmt: skip
    # ``profile`` is what later files are compared with, not something to show.
    assert set(answer["items"][0]) == columns - {"profile"}
    row_errors = next(i for i in answer["items"] if i["import_id"] == ui.import_id("row-errors"))
    report = ui.made["row-errors"].report
    for key in ("merchant_id", "source", "file_name", "sha256", "size_bytes", "template",
                "status", "total_rows", "valid_rows", "error_rows", "duplicate_rows"):  # fmt: skip
        assert row_errors[key] == report[key], key
    assert row_errors["brand_requests"] == report["requests"]["brand"]
    assert row_errors["processed_at"].endswith("Z")


def test_imports_filters(ui: Ui) -> None:
    def ids(**params: Any) -> set[str]:
        answer = ui.get("/api/imports", **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == len(body["items"])
        return {item["import_id"] for item in body["items"]}

    def made(*labels: str) -> set[str]:
        return {ui.import_id(label) for label in labels}

    everything = set(ui.made)
    assert ids() == made(*everything)
    assert ids(merchant_id="shop-store") == made("store")
    assert ids(merchant_id="shop-web") == made(
        "web", "unknown-column", "existing-proofs", "again", "backfill"
    )
    assert ids(status="rejected") == made("unknown-column", "existing-proofs")
    assert ids(status="already_imported") == made("again")
    assert ids(source="sftp") == made("again")
    assert ids(source="backfill", merchant_id="shop-web") == made("backfill")
    assert ids(merchant_id="shop-web", status="loaded", source="upload") == made("web")
    assert ids(merchant_id="nobody") == set()
    days = {r[0] for r in ui.db("SELECT processed_at FROM imports")}
    first = min(days).astimezone(dt.UTC).date()
    last = max(days).astimezone(dt.UTC).date()
    assert ids(since=first.isoformat(), until=last.isoformat()) == made(*everything)
    assert ids(until=(first - dt.timedelta(days=1)).isoformat()) == set()
    assert ids(since=(last + dt.timedelta(days=1)).isoformat()) == set()
    # An HTML form sends its empty fields: empty means no filter.
    assert ids(merchant_id="", status="", source="", since="", until="") == made(*everything)


def test_imports_paging(ui: Ui) -> None:
    total = len(ui.made)
    seen: list[str] = []
    offset = 0
    while True:
        body = ui.get("/api/imports", limit=3, offset=offset).json()
        assert body["total"] == total and not body["total_is_lower_bound"]
        seen += [item["import_id"] for item in body["items"]]
        assert body["has_more"] == (offset + 3 < total)
        if not body["has_more"]:
            break
        offset += 3
    assert seen == [item["import_id"] for item in ui.get("/api/imports").json()["items"]]
    assert ui.get("/api/imports", offset=total + 5).json() == {
        "total": total, "total_is_lower_bound": False, "has_more": False, "items": [],
    }  # fmt: skip


def test_an_imports_report_json_and_errors_csv(ui: Ui) -> None:
    for label in ("row-errors", "unknown-column", "existing-proofs", "again"):
        made = ui.made[label]
        report = ui.get(f"/api/imports/{made.import_id}")
        assert report.status_code == 200, label
        assert report.headers["content-type"] == "application/json"
        assert report.json() == made.report
        errors = ui.get(f"/api/imports/{made.import_id}/errors.csv")
        assert errors.status_code == 200, label
        assert errors.headers["content-type"].startswith("text/csv")
        folder = ui.data_dir / "reports" / made.merchant_id / made.import_id
        assert errors.content == (folder / "errors.csv").read_bytes()
        assert errors.text.startswith("line;column;code;message")
    codes = {e["code"] for e in ui.made["row-errors"].report["errors"]}
    assert {"invalid_email", "invalid_date"} <= codes


WEIRD_IDS = [
    "unknown",
    "20261201T000000Z-00000000",
    "%2e%2e",  # a bare ".." is resolved by the client before it is sent
    "..%2f..%2fwarehouse.db",
    "%00",
    "a%00b",
    "x" * 41,
    "x" * 5000,
    "%C3%A9t%C3%A9",
    "%ED%A0%80",
    "'%20OR%201=1%20--",
    "%3Cscript%3E",
]


@pytest.mark.parametrize("import_id", WEIRD_IDS)
def test_unknown_or_weird_import_ids_answer_404(ui: Ui, import_id: str) -> None:
    for path in ("/api/imports/{}", "/api/imports/{}/errors.csv", "/imports/{}"):
        answer = ui.get(path.format(import_id))
        assert answer.status_code == 404, (path, answer.text[:200])


# --- requests API --------------------------------------------------------------------------


def db_requests(ui: Ui, where: str = "TRUE", **params: Any) -> list[tuple]:
    return ui.db(
        "SELECT request_id, email, scheduled_at FROM review_requests WHERE "
        + where
        + " ORDER BY scheduled_at DESC, request_id DESC",
        **params,
    )


def scheduled_times(ui: Ui) -> list[dt.datetime]:
    return [at.astimezone(dt.UTC) for (at,) in ui.db("SELECT scheduled_at FROM review_requests")]


def test_requests_masked_with_status_and_utc_times(ui: Ui) -> None:
    before = settled_now(scheduled_times(ui))
    body = ui.get("/api/requests", limit=500).json()
    rows = db_requests(ui)

    assert [item["request_id"] for item in body["items"]] == [r[0] for r in rows]
    assert body["total"] == len(rows) and not body["has_more"]
    for item, (_, email, scheduled_at) in zip(body["items"], rows, strict=True):
        assert set(item) == {
            "request_id", "import_id", "merchant_id", "request_type", "order_ref", "id_product",
            "email_masked", "language", "scheduled_at", "status", "sent_at", "delivered_at",
            "opened_at", "clicked_at", "reviewed_at", "bounced_at", "bounce_reason", "rating",
        }  # fmt: skip
        local, domain = email.rsplit("@", 1)
        assert item["email_masked"] == f"{local[0]}***@{domain}"
        moment = dt.datetime.fromisoformat(item["scheduled_at"])
        assert item["scheduled_at"].endswith("Z") and moment == scheduled_at
        if scheduled_at <= before:
            assert item["status"] == "due"
        else:
            assert item["status"] == "scheduled"
    assert {item["status"] for item in body["items"]} == {"due", "scheduled"}
    assert {item["request_type"] for item in body["items"]} == {"brand", "product"}


def request_ids(ui: Ui, **params: Any) -> list[int]:
    answer = ui.get("/api/requests", limit=500, **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == len(body["items"]) and not body["total_is_lower_bound"]
    return [item["request_id"] for item in body["items"]]


def test_requests_filters(ui: Ui) -> None:
    def expect(where: str, **params: Any) -> list[int]:
        return [r[0] for r in db_requests(ui, where, **params)]

    now = settled_now(scheduled_times(ui))
    email = ui.db("SELECT email FROM review_requests WHERE merchant_id = 'shop-products'")[0][0]
    ref = ui.db("SELECT order_ref FROM review_requests WHERE request_type = 'product'")[0][0]
    day = ui.db("SELECT min(scheduled_at) FROM review_requests")[0][0].astimezone(dt.UTC).date()

    assert request_ids(ui, merchant_id="shop-store") == expect("merchant_id = 'shop-store'")
    assert request_ids(ui, request_type="product") == expect("request_type = 'product'")
    assert request_ids(ui, order_ref=ref) == expect("order_ref = :r", r=ref)
    assert len(request_ids(ui, order_ref=ref)) >= 2  # its brand and product requests
    assert request_ids(ui, email=f"  {email.upper()} ") == expect(
        "lower(email) = :e", e=email.lower()
    )
    assert request_ids(ui, email=email, merchant_id="shop-web") == []
    due = request_ids(ui, status="due")
    scheduled = request_ids(ui, status="scheduled")
    assert due and scheduled
    assert set(due) == set(expect("scheduled_at <= :now", now=now)) - set(scheduled)
    assert sorted(due + scheduled) == sorted(expect("TRUE"))
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    assert request_ids(ui, scheduled_from=day.isoformat(), scheduled_to=day.isoformat()) == (
        expect("scheduled_at >= :a AND scheduled_at < :b", a=start, b=start + dt.timedelta(days=1))
    )
    assert request_ids(ui, scheduled_to=(day - dt.timedelta(days=1)).isoformat()) == []
    assert request_ids(ui, merchant_id="", status="", request_type="", order_ref="", email="",
                       scheduled_from="", scheduled_to="") == expect("TRUE")  # fmt: skip


def test_requests_paging(ui: Ui) -> None:
    everything = request_ids(ui)
    first = ui.get("/api/requests", limit=4).json()
    second = ui.get("/api/requests", limit=4, offset=4).json()
    assert [i["request_id"] for i in first["items"] + second["items"]] == everything[:8]
    assert first["has_more"] and first["total"] == len(everything)
    assert len(ui.get("/api/requests").json()["items"]) == min(50, len(everything))


def test_requests_csv_every_matching_row_masked(ui: Ui) -> None:
    for params in ({}, {"merchant_id": "shop-products", "request_type": "product"}):
        answer = ui.get("/api/requests.csv", **params)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        lines = answer.text.splitlines()
        assert lines[0] == (
            "request_id;import_id;merchant_id;request_type;order_ref;id_product;email_masked;"
            "language;scheduled_at;status;sent_at;delivered_at;opened_at;clicked_at;reviewed_at;"
            "bounced_at;bounce_reason;rating"
        )
        rows = list(csv.DictReader(io.StringIO(answer.text), delimiter=";"))
        items = ui.get("/api/requests", limit=500, **params).json()["items"]
        assert len(rows) == len(items) > 0
        for row, item in zip(rows, items, strict=True):
            assert row == {k: "" if v is None else str(v) for k, v in item.items()}
            assert re.fullmatch(r".\*\*\*@.+", row["email_masked"])


# --- bad input -----------------------------------------------------------------------------

BAD_VALUES = [
    ("/api/imports", "status", "deleted"),
    ("/api/imports", "source", "carrier-pigeon"),
    ("/api/imports", "since", "2026-13-01"),
    ("/api/imports", "until", "yesterday"),
    ("/api/imports", "merchant_id", "Not A Merchant"),
    ("/api/imports", "limit", "0"),
    ("/api/imports", "limit", "501"),
    ("/api/imports", "limit", "ten"),
    ("/api/imports", "offset", "-1"),
    ("/api/imports", "offset", str(queries.MAX_OFFSET + 1)),
    ("/api/requests", "status", "bounced"),
    ("/api/requests", "request_type", "shop"),
    ("/api/requests", "scheduled_from", "31-02-2026"),
    ("/api/requests", "scheduled_to", "2026-02-30"),
    ("/api/requests", "order_ref", "x" * 65),
    ("/api/requests", "order_ref", "WEB\x00-1"),
    ("/api/requests", "email", "a" * 250 + "@example.com"),
    ("/api/requests", "email", "jane\n@example.com"),
    ("/api/requests", "email_token", "forged-token"),
    ("/api/requests", "email_token", "not base64!"),
    ("/api/requests", "offset", "-5"),
    ("/api/requests.csv", "status", "suppressed"),
    ("/api/requests.csv", "scheduled_to", "2026-1-1x"),
    ("/imports", "status", "deleted"),
    ("/imports", "offset", "-1"),
    ("/requests", "scheduled_from", "soon"),
    ("/requests", "limit", "1000"),
    ("/overview", "merchant_id", "../etc"),
]


@pytest.mark.parametrize(("path", "name", "value"), BAD_VALUES)
def test_bad_filter_values_answer_422_naming_the_parameter(
    ui: Ui, path: str, name: str, value: str
) -> None:
    answer = ui.get(path, **{name: value})

    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert [d["loc"] for d in detail] == [["query", name]]
    assert detail[0]["msg"].startswith(f"{name}: ")
    assert value not in answer.text  # never echoed: it may be an e-mail


@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE imports; --", "%", "_", "*", "\u202e", "é" * 64, "<script>", " ", "\ufeff"],
)
def test_weird_filter_values_never_answer_500(ui: Ui, value: str) -> None:
    for path in ("/api/requests", "/api/requests.csv", "/requests"):
        for name in ("order_ref", "email"):
            answer = ui.get(path, **{name: value})
            assert answer.status_code in (200, 422), (path, name, answer.text[:200])
    for path in ("/api/imports", "/imports", "/overview"):
        assert ui.get(path, merchant_id=value).status_code in (200, 422)
    long = ui.get("/api/requests", order_ref="x" * 20_000)  # httpx refuses 64 KiB
    assert long.status_code == 422, long.text[:300]
    # Not UTF-8 once decoded (a lone surrogate): no match, and no 500.
    for name in ("order_ref", "email", "merchant_id"):
        answer = ui.get_url(f"{PREFIX}/api/requests?{name}=%ED%A0%80")
        assert answer.status_code in (200, 422), answer.text


# --- pages ---------------------------------------------------------------------------------


def test_home_redirects_to_the_overview(ui: Ui) -> None:
    answer = ui.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "overview"


def test_imports_page(ui: Ui) -> None:
    page = ui.get("/imports", limit=3)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    tags = Tags(page.text)
    assert_relative_links_only(page.text)

    form = tags.one("form", id="filters")
    assert form["method"] == "get"
    assert {a["name"] for a in tags.find("input") + tags.find("select")} >= {
        "merchant_id", "status", "source", "since", "until",
    }  # fmt: skip
    tags.one("button", id="apply")
    tags.one("table", id="imports-table")
    links = tags.find("a", class_="import-link")
    newest = ui.get("/api/imports", limit=3).json()["items"]
    assert [a["href"] for a in links] == [f"imports/{i['import_id']}" for i in newest]
    assert not tags.find(id="prev-page")

    second = ui.follow(page, tags.one("a", id="next-page")["href"])
    second_tags = Tags(second.text)
    assert second.status_code == 200
    assert parse_qs(urlsplit(str(second.url)).query) == {"limit": ["3"], "offset": ["3"]}
    newer = ui.get("/api/imports", limit=3, offset=3).json()["items"]
    assert [a["href"] for a in second_tags.find("a", class_="import-link")] == [
        f"imports/{i['import_id']}" for i in newer
    ]
    back = ui.follow(second, second_tags.one("a", id="prev-page")["href"])
    assert Tags(back.text).find("a", class_="import-link") == links

    detail = ui.follow(page, links[0]["href"])
    assert detail.status_code == 200 and newest[0]["import_id"] in detail.text

    filtered = Tags(ui.get("/imports", status="rejected", merchant_id="shop-web").text)
    assert len(filtered.find("a", class_="import-link")) == 2
    assert filtered.one("option", value="rejected", selected="")
    assert filtered.one("input", name="merchant_id")["value"] == "shop-web"


def test_import_page_with_row_errors_links_reports_and_data_docs(ui: Ui) -> None:
    made = ui.made["row-errors"]
    page = ui.get(f"/imports/{made.import_id}")
    assert page.status_code == 200
    assert_relative_links_only(page.text)
    tags = Tags(page.text)

    report = ui.follow(page, tags.one("a", id="download-report")["href"])
    assert report.status_code == 200 and report.json() == made.report
    errors = ui.follow(page, tags.one("a", id="download-errors")["href"])
    assert errors.text.startswith("line;column;code;message")

    docs_path = made.report["validation"]["data_docs"]
    assert docs_path and not docs_path.startswith("/")
    docs_link = tags.one("a", id="data-docs-link")["href"]
    assert docs_link == "../data-docs/" + quote(docs_path)
    docs = ui.follow(page, docs_link)
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert docs.content == (ui.data_dir / "data_docs" / docs_path).read_bytes()

    grouped = tags.one("table", id="errors-by-code")
    assert grouped is not None
    for error in made.report["errors"]:
        assert f"<code>{error['code']}</code>" in page.text
        assert str(error["line"]) in page.text
    for key in ("total_rows", "valid_rows", "error_rows", "duplicate_rows"):
        assert str(made.report[key]) in page.text


def test_import_page_of_rejected_files(ui: Ui) -> None:
    proofs = ui.made["existing-proofs"]
    page = ui.get(f"/imports/{proofs.import_id}")
    assert page.status_code == 200
    assert "existing_proofs" in page.text
    assert str(escape(proofs.report["rejection"]["message"])) in page.text
    Tags(page.text).one("table", id="existing-proofs")
    for proof in proofs.report["existing_proofs"]:
        assert proof["order_ref"] in page.text

    unknown = ui.made["unknown-column"]
    page = ui.get(f"/imports/{unknown.import_id}")
    assert "unknown_columns" in page.text

    again = ui.made["again"]
    tags = Tags(ui.get(f"/imports/{again.import_id}").text)
    assert not tags.find(id="data-docs-link")  # no validation, no Data Docs page
    assert tags.one("a", href=ui.import_id("web"))


def test_requests_page_filters_chart_paging_and_export(ui: Ui) -> None:
    params = {"merchant_id": "shop-products", "request_type": "product", "limit": "2"}
    page = ui.get("/requests", **params)
    assert page.status_code == 200
    assert_relative_links_only(page.text)
    tags = Tags(page.text)

    assert tags.one("form", id="filters")["method"] == "get"
    assert {a["name"] for a in tags.find("input") + tags.find("select")} >= {
        "merchant_id", "status", "request_type", "order_ref", "email", "scheduled_from",
        "scheduled_to",
    }  # fmt: skip
    tags.one("button", id="apply")
    tags.one("table", id="requests-table")
    assert len(tags.find("svg", class_="chart")) == 2  # requests per day, and the funnel
    assert tags.one("svg", class_="funnel")
    items = ui.get("/api/requests", limit=500, merchant_id="shop-products",
                   request_type="product").json()["items"]  # fmt: skip
    assert len(items) > 2
    for item in items[:2]:
        assert item["email_masked"] in page.text and item["order_ref"] in page.text

    export = ui.follow(page, tags.one("a", id="export-csv")["href"])
    exported = list(csv.DictReader(io.StringIO(export.text), delimiter=";"))
    assert [int(r["request_id"]) for r in exported] == [i["request_id"] for i in items]

    shown = [int(row["data-request-id"]) for row in tags.find("tr") if "data-request-id" in row]
    assert shown == [i["request_id"] for i in items[:2]]
    second = Tags(ui.follow(page, tags.one("a", id="next-page")["href"]).text)
    shown = [int(row["data-request-id"]) for row in second.find("tr") if "data-request-id" in row]
    assert shown == [i["request_id"] for i in items[2:4]]
    assert second.one("a", id="prev-page")


def test_requests_page_searches_by_email_without_showing_it(ui: Ui) -> None:
    email = ui.db("SELECT email FROM review_requests WHERE request_type = 'product'")[0][0]
    expected = request_ids(ui, email=email)
    page = ui.get("/requests", email=email.upper(), limit=1)  # the scan: no e-mail in clear
    tags = Tags(page.text)

    assert tags.one("input", name="email").get("value", "") == ""
    token = tags.one("input", name="email_token")["value"]
    local, domain = email.rsplit("@", 1)
    assert f"{local[0]}***@{domain}" in page.text
    export = ui.follow(page, tags.one("a", id="export-csv")["href"])
    assert "email_token=" in tags.one("a", id="export-csv")["href"]
    assert [
        int(r["request_id"]) for r in csv.DictReader(io.StringIO(export.text), delimiter=";")
    ] == expected
    assert request_ids(ui, email_token=token) == expected
    if len(expected) > 1:
        second = ui.follow(page, tags.one("a", id="next-page")["href"])
        assert second.status_code == 200 and "email_token=" in str(second.url)


def test_requests_chart_counts_per_scheduled_day(ui: Ui) -> None:
    day = ui.db("SELECT min(scheduled_at) FROM review_requests")[0][0].astimezone(dt.UTC).date()
    page = ui.get("/requests", scheduled_from=day.isoformat(), scheduled_to=day.isoformat())
    count = len(request_ids(ui, scheduled_from=day.isoformat(), scheduled_to=day.isoformat()))
    assert f"<title>{day.isoformat()}: {count}</title>" in page.text


def test_overview_page(ui: Ui) -> None:
    page = ui.get("/overview")
    assert page.status_code == 200
    assert_relative_links_only(page.text)
    tags = Tags(page.text)
    assert len(tags.find("svg", class_="chart")) == 3
    tags.one("form", id="filters")
    tags.one("button", id="apply")
    for merchant in MERCHANTS:
        assert tags.one("a", href=f"?merchant_id={merchant}")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    files_today = len(ui.made)
    assert f"<title>{today}: {files_today}</title>" in page.text

    one = ui.get("/overview", merchant_id="shop-store").text
    assert f"<title>{today}: 1</title>" in one


def test_data_docs_are_served_from_their_folder_only(ui: Ui) -> None:
    index = ui.get("/data-docs/")
    assert index.status_code == 200
    assert index.content == (ui.data_dir / "data_docs" / "index.html").read_bytes()
    (ui.data_dir / "secret.txt").write_text("not for the web")
    for path in (
        "../secret.txt",
        "%2e%2e/secret.txt",
        "..%2fsecret.txt",
        "validations/..%2f..%2fsecret.txt",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "..%5csecret.txt",
        "index.html%00",
        "no-such-page.html",
        "x" * 5000,
    ):
        answer = ui.get(f"/data-docs/{path}")
        assert answer.status_code == 404, path
        assert "not for the web" not in answer.text


def test_no_personal_data_in_any_answer(ui: Ui) -> None:
    """Every route with every kind of filter, e-mail searches included; ``Ui.get`` scans each
    answer (those of the other tests too) for the sample files' e-mails and names."""
    emails = [v for v in ui.personal if "@" in v]
    for email in emails:
        for path in ("/api/requests", "/api/requests.csv", "/requests"):
            assert ui.get(path, email=email).status_code in (200, 422)
    for path in API_ROUTES + PAGE_ROUTES:
        ui.get(route(ui, path))
    for made in ui.made.values():
        for path in ("/api/imports/{}", "/api/imports/{}/errors.csv", "/imports/{}"):
            ui.get(path.format(made.import_id))
    assert len(ui.answers) > 50


def test_import_page_and_api_count_the_rows_of_customers_who_opted_out(ui: Ui) -> None:
    engine = warehouse.engine_for(ui.warehouse_url)
    record = warehouse.import_record(engine, ui.import_id("web"))
    opted = replace(
        record, import_id="optout-1", sha256="0" * 64, status="rejected", suppressed_rows=2
    )
    warehouse.save(engine, Outcome(record=opted))
    try:
        page = ui.get("/imports/optout-1")
        assert "2 of the valid rows are of customers who opted out (no request)" in page.text
        items = ui.get("/api/imports", merchant_id=record.merchant_id).json()["items"]
        counts = {item["import_id"]: item["suppressed_rows"] for item in items}
        assert (counts["optout-1"], counts[record.import_id]) == (2, 0)
    finally:
        with engine.begin() as connection:
            connection.execute(delete(ImportRow).where(ImportRow.import_id == "optout-1"))
