"""The review UI (contract section 10) on a real ``airflow api-server``: plugin, auth, routes.

The server comes from ``tests/fixtures/api_server.py``: this repo's plugins, a test auth manager
whose user ``outsider`` may read no DAG, and real imports made by the pipeline. Every answer is
checked for its data, never for its status alone: an unknown path answers 200 too (Airflow's
single-page app).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import urlsplit

import pytest

from tests.kit.api_server import ADMIN, NO_BACKFILL, OUTSIDER, UI_PREFIX, VIEWER, UiServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.ui

PLUGIN_FILE = "review_ingest_ui.py"


#: Every UI route with an import id placeholder; ``{id}`` is a real import of the fixture.
API_ROUTES = [
    "/api/imports",
    "/api/imports/{id}",
    "/api/imports/{id}/errors.csv",
    "/api/requests",
    "/api/requests.csv",
]
PAGE_ROUTES = ["/imports", "/imports/{id}", "/requests", "/data-docs/index.html"]


#: In the HTML of Airflow's single-page app, which answers 200 for any unknown path.
SPA_MARK = 'id="root"'


def _route(server: UiServer, route: str) -> str:
    return UI_PREFIX + route.format(id=server.by_label("row-errors").import_id)


def _ours(server: UiServer, admin_plugins: list[dict]) -> dict:
    found = [p for p in admin_plugins if p["source"].endswith(PLUGIN_FILE) or _mounts_ui(p)]
    assert len(found) == 1, f"plugins listed: {[p['name'] for p in admin_plugins]}"
    return found[0]


def _mounts_ui(plugin: dict) -> bool:
    return any(app.get("url_prefix") == UI_PREFIX for app in plugin.get("fastapi_apps", []))


# -- the server and the plugin ---------------------------------------------------------------


def test_health_and_tokens(ui_server: UiServer) -> None:
    health = ui_server.get("/api/v2/monitor/health").json()
    assert health["metadatabase"]["status"] == "healthy"
    for user in (VIEWER, OUTSIDER, ADMIN):
        assert ui_server.token(user).count(".") == 2  # a JWT


def test_plugin_lists_both_views_and_the_fastapi_app(ui_server: UiServer) -> None:
    response = ui_server.get("/api/v2/plugins", user=ADMIN, params={"limit": 100})
    assert response.status_code == 200, response.text
    plugin = _ours(ui_server, response.json()["plugins"])

    apps = plugin["fastapi_apps"]
    assert [app["url_prefix"] for app in apps] == [UI_PREFIX], apps
    views = {view["name"]: view for view in plugin["external_views"]}
    assert set(views) == {"Review imports", "Review requests", "Import orders"}, views
    assert views["Review imports"]["href"].rstrip("/").endswith("review-ingest/imports")
    assert views["Review requests"]["href"].rstrip("/").endswith("review-ingest/requests")
    assert views["Import orders"]["href"].rstrip("/").endswith("review-ingest/import")
    for view in views.values():
        assert view.get("destination", "nav") == "nav", view
        assert not view["href"].startswith(("http://", "https://")), view

    errors = ui_server.get("/api/v2/importErrors", user=ADMIN).json()
    assert not [e for e in errors.get("import_errors", []) if "review_ingest" in e["filename"]]
    log = ui_server.log_path.read_text(errors="replace")
    assert "Failed to import plugin" not in log, ui_server.log_tail()


# -- access: 401 without a user, 403 for a user who may not read the ingest DAGs -------------


@pytest.mark.parametrize("route", API_ROUTES)
def test_api_answers_401_without_a_token(ui_server: UiServer, route: str) -> None:
    response = ui_server.get(_route(ui_server, route))
    assert response.status_code == 401, (route, response.status_code, response.text[:300])


@pytest.mark.parametrize("route", PAGE_ROUTES)
def test_pages_answer_401_or_send_to_airflows_login(ui_server: UiServer, route: str) -> None:
    response = ui_server.get(_route(ui_server, route))
    if response.status_code == 401:
        return
    assert response.status_code in (302, 303, 307), (route, response.status_code)
    target = urlsplit(response.headers["location"])
    assert target.netloc in ("", f"127.0.0.1:{ui_server.port}"), response.headers["location"]
    assert target.path.startswith("/auth/login"), response.headers["location"]


@pytest.mark.parametrize("route", API_ROUTES + PAGE_ROUTES)
def test_a_forged_token_is_refused_as_airflow_refuses_it(ui_server: UiServer, route: str) -> None:
    """A token Airflow did not sign: the same answer as Airflow's own API (it says 403 "Invalid
    JWT token"), or for a page a redirect to the login."""
    forged = {"Authorization": "Bearer not.a.token"}
    core = ui_server.get("/api/v2/dags", headers=forged)
    assert core.status_code in (401, 403)
    response = ui_server.get(_route(ui_server, route), headers=forged)
    to_login = urlsplit(response.headers.get("location", "")).path.startswith("/auth/login")
    assert response.status_code == core.status_code or (route in PAGE_ROUTES and to_login), (
        route,
        response.status_code,
        response.text[:200],
    )


@pytest.mark.parametrize("route", API_ROUTES + PAGE_ROUTES)
def test_a_user_who_may_not_read_the_ingest_dags_gets_403(ui_server: UiServer, route: str) -> None:
    response = ui_server.get(_route(ui_server, route), user=OUTSIDER)
    assert response.status_code == 403, (route, response.status_code, response.text[:300])
    # The same user reads Airflow's own pages: the refusal is the DAG-level check, not the token.
    assert ui_server.get("/api/v2/version", user=OUTSIDER).status_code == 200


@pytest.mark.parametrize("route", API_ROUTES + PAGE_ROUTES)
def test_one_ingest_dag_refused_is_403_too(ui_server: UiServer, route: str) -> None:
    """The UI needs all three ingest DAGs: refused only orders_backfill, still 403."""
    response = ui_server.get(_route(ui_server, route), user=NO_BACKFILL)
    assert response.status_code == 403, (route, response.status_code, response.text[:300])
    # Airflow's own DAG route checks access before it looks the DAG up (none is parsed here:
    # 404 when allowed): the user may read the upload DAG, not the backfill one.
    upload = ui_server.get("/api/v2/dags/orders_upload_ingest", user=NO_BACKFILL)
    backfill = ui_server.get("/api/v2/dags/orders_backfill", user=NO_BACKFILL)
    assert (upload.status_code, backfill.status_code) == (404, 403)


def test_the_cookie_of_airflows_ui_is_accepted(ui_server: UiServer) -> None:
    cookies = {"_token": ui_server.token(VIEWER)}
    response = ui_server.get(UI_PREFIX + "/api/imports", cookies=cookies)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["total"] == len(ui_server.imports)


# -- the data, on each warehouse backend -----------------------------------------------------


def test_imports_list_is_the_warehouse_newest_first(ui_server_each: UiServer) -> None:
    server = ui_server_each
    response = server.get(UI_PREFIX + "/api/imports", user=VIEWER)
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert body["total"] == len(server.imports)
    made = list(server.imports.values())
    assert [item["import_id"] for item in body["items"]] == [m.import_id for m in reversed(made)]
    by_id = {item["import_id"]: item for item in body["items"]}
    for m in made:
        item = by_id[m.import_id]
        assert (item["merchant_id"], item["file_name"], item["status"]) == (
            m.merchant_id,
            m.file_name,
            m.status,
        )
        assert item["rejection_code"] == m.rejection_code
        assert item["valid_rows"] == m.report["valid_rows"]
        assert item["error_rows"] == m.report["error_rows"]


def test_imports_filters_and_paging(ui_server_each: UiServer) -> None:
    server = ui_server_each

    def ids(**params: object) -> list[str]:
        response = server.get(UI_PREFIX + "/api/imports", user=VIEWER, params=params)
        assert response.status_code == 200, (params, response.text[:300])
        return [item["import_id"] for item in response.json()["items"]]

    rejected = {m.import_id for m in server.imports.values() if m.status == "rejected"}
    assert set(ids(status="rejected")) == rejected and len(rejected) == 2
    shop_web = {m.import_id for m in server.imports.values() if m.merchant_id == "shop-web"}
    assert set(ids(merchant_id="shop-web")) == shop_web
    assert ids(source="sftp") == []
    assert len(ids(source="upload")) == len(server.imports)
    today = dt.datetime.now(dt.UTC).date()
    assert len(ids(since=str(today - dt.timedelta(days=1)))) == len(server.imports)
    assert ids(until=str(today - dt.timedelta(days=2))) == []
    everything = ids(limit=500)
    assert ids(limit=2) == everything[:2]
    assert ids(limit=2, offset=2) == everything[2:4]


@pytest.mark.parametrize(
    "params",
    [{"status": "nonsense"}, {"since": "yesterday"}, {"offset": "-1"}, {"limit": "501"}],
)
def test_imports_bad_filters_are_422_naming_the_parameter(
    ui_server: UiServer, params: dict[str, str]
) -> None:
    response = ui_server.get(UI_PREFIX + "/api/imports", user=VIEWER, params=params)
    assert response.status_code == 422, (params, response.status_code, response.text[:300])
    assert next(iter(params)) in response.text


def test_import_detail_is_its_report_and_errors_csv_lists_every_error(
    ui_server_each: UiServer,
) -> None:
    server = ui_server_each
    for made in server.imports.values():
        response = server.get(f"{UI_PREFIX}/api/imports/{made.import_id}", user=VIEWER)
        assert response.status_code == 200, response.text[:300]
        assert response.json() == made.report

    made = server.by_label("row-errors")
    response = server.get(f"{UI_PREFIX}/api/imports/{made.import_id}/errors.csv", user=VIEWER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text), delimiter=";"))
    assert rows[0] == ["line", "column", "code", "message"]
    got = sorted((int(r[0]), r[1], r[2]) for r in rows[1:])
    stored = query(
        server.warehouse_url,
        "SELECT line, column_name, code FROM import_errors WHERE import_id = :i",
        i=made.import_id,
    )
    assert got == sorted(stored) and len(got) >= 3
    assert "@" not in response.text.replace("not-an-email", "")

    unknown = server.get(f"{UI_PREFIX}/api/imports/does-not-exist", user=VIEWER)
    assert unknown.status_code == 404


def test_requests_list_masks_emails_and_matches_the_warehouse(ui_server_each: UiServer) -> None:
    server = ui_server_each
    expected = server.request_statuses("shop-web")
    response = server.get(
        UI_PREFIX + "/api/requests", user=VIEWER, params={"merchant_id": "shop-web", "limit": 500}
    )
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    stored = query(
        server.warehouse_url,
        "SELECT order_ref, request_type FROM review_requests WHERE merchant_id = 'shop-web'",
    )
    assert body["total"] == len(stored) == 5
    assert sorted((i["order_ref"], i["request_type"]) for i in body["items"]) == sorted(stored)
    for item in body["items"]:
        local, _, domain = item["email_masked"].partition("@")
        assert len(local) == 4 and local.endswith("***") and domain, item["email_masked"]
        assert "email" not in item and "firstname" not in item and "lastname" not in item
        assert item["status"] in ("scheduled", "due")
    statuses = {i["order_ref"]: i["status"] for i in body["items"]}
    assert statuses == expected


def test_requests_csv_is_every_matching_row(ui_server_each: UiServer) -> None:
    server = ui_server_each
    params = {"merchant_id": "shop-products", "request_type": "product"}
    listed = server.get(UI_PREFIX + "/api/requests", user=VIEWER, params=params | {"limit": 1})
    total = listed.json()["total"]
    exported = server.get(UI_PREFIX + "/api/requests.csv", user=VIEWER, params=params)
    assert exported.status_code == 200, exported.text[:300]
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text), delimiter=";"))
    assert len(rows) == total == server.by_label("products").report["requests"]["product"]
    assert {r["merchant_id"] for r in rows} == {"shop-products"}
    assert {r["request_type"] for r in rows} == {"product"}
    assert all("***@" in r["email_masked"] for r in rows)


@pytest.mark.parametrize(
    "params",
    [{"status": "late"}, {"scheduled_from": "31-31-2026"}, {"request_type": "x"}],
)
def test_requests_bad_filters_are_422(ui_server: UiServer, params: dict[str, str]) -> None:
    for route in ("/api/requests", "/api/requests.csv"):
        response = ui_server.get(UI_PREFIX + route, user=VIEWER, params=params)
        assert response.status_code == 422, (route, params, response.status_code)
        assert next(iter(params)) in response.text


# -- the pages -------------------------------------------------------------------------------


def test_an_unknown_path_is_airflows_spa_which_the_page_tests_tell_apart(
    ui_server: UiServer,
) -> None:
    spa = ui_server.get("/no-such-page", user=VIEWER)
    assert spa.status_code == 200 and SPA_MARK in spa.text
    for route in PAGE_ROUTES:
        page = ui_server.get(_route(ui_server, route), user=VIEWER)
        assert page.status_code == 200 and SPA_MARK not in page.text, route


def test_imports_page_lists_the_files_with_links(ui_server: UiServer) -> None:
    response = ui_server.get(UI_PREFIX + "/imports", user=VIEWER)
    assert response.status_code == 200
    html = response.text
    assert 'id="imports-table"' in html and 'id="filters"' in html, html[:500]
    assert SPA_MARK not in html, "Airflow's single-page app, not the UI's page"
    for made in ui_server.imports.values():
        assert made.file_name in html
        assert f"imports/{made.import_id}" in html
    assert "import-link" in html


def test_import_page_links_its_reports(ui_server: UiServer) -> None:
    made = ui_server.by_label("existing-proofs")
    response = ui_server.get(f"{UI_PREFIX}/imports/{made.import_id}", user=VIEWER)
    assert response.status_code == 200
    html = response.text
    for hook in ("download-report", "download-errors", "data-docs-link"):
        assert f'id="{hook}"' in html, hook
    assert "existing_proofs" in html and made.file_name in html


def test_requests_page_filters_as_a_form(ui_server: UiServer) -> None:
    statuses = ui_server.request_statuses("shop-web")
    response = ui_server.get(
        UI_PREFIX + "/requests", user=VIEWER, params={"merchant_id": "shop-web", "status": "due"}
    )
    assert response.status_code == 200
    html = response.text
    assert 'id="requests-table"' in html and 'id="export-csv"' in html
    due = sorted(ref for ref, s in statuses.items() if s == "due")
    assert due and all(ref in html for ref in due)
    scheduled = [ref for ref, s in statuses.items() if s != "due"]
    assert not any(ref in html for ref in scheduled)
    assert "@example" in html and "***@" in html


def test_data_docs_are_served_from_the_data_folder(ui_server: UiServer) -> None:
    response = ui_server.get(UI_PREFIX + "/data-docs/index.html", user=VIEWER)
    assert response.status_code == 200
    assert response.text == (ui_server.data_dir / "data_docs" / "index.html").read_text(
        encoding="utf-8"
    )
    outside = ui_server.get(UI_PREFIX + "/data-docs/../warehouse.db", user=VIEWER)
    assert outside.status_code in (400, 404)
    missing = ui_server.get(UI_PREFIX + "/data-docs/nope.html", user=VIEWER)
    assert missing.status_code == 404


def test_openapi_schema_of_the_ui_app(ui_server: UiServer) -> None:
    response = ui_server.get(UI_PREFIX + "/openapi.json", user=VIEWER)
    assert response.status_code == 200, response.status_code
    schema = response.json()
    paths = schema["paths"]
    for route in (
        "/api/imports",
        "/api/imports/{import_id}",
        "/api/imports/{import_id}/errors.csv",
        "/api/requests",
        "/api/requests.csv",
    ):
        assert route in paths or UI_PREFIX + route in paths, sorted(paths)
    imports = paths.get("/api/imports") or paths[UI_PREFIX + "/api/imports"]
    names = {p["name"] for p in imports["get"]["parameters"]}
    assert {"merchant_id", "status", "source", "since", "until", "limit", "offset"} <= names
    requests_ = paths.get("/api/requests") or paths[UI_PREFIX + "/api/requests"]
    names = {p["name"] for p in requests_["get"]["parameters"]}
    assert {
        "merchant_id",
        "status",
        "request_type",
        "order_ref",
        "email",
        "scheduled_from",
        "scheduled_to",
    } <= names


def test_an_email_search_leaves_no_address_in_the_server_log(ui_server: UiServer) -> None:
    """Searching by exact e-mail puts the address in the URL: the API server's access log must
    not keep it in clear (``[core] sensitive_var_conn_names`` holds ``email``, as in the
    deployment)."""
    (email,) = query(
        ui_server.warehouse_url,
        "SELECT email FROM review_requests WHERE merchant_id = 'shop-web'"
        " ORDER BY order_ref LIMIT 1",
    )[0]
    before = ui_server.log_path.stat().st_size

    api = ui_server.get(UI_PREFIX + "/api/requests", user=VIEWER, params={"email": email})
    page = ui_server.get(UI_PREFIX + "/requests", user=VIEWER, params={"email": email})

    assert api.status_code == page.status_code == 200
    assert api.json()["total"] >= 1, "the search found the request"
    with ui_server.log_path.open("rb") as log:
        log.seek(before)
        written = log.read().decode("utf-8", "replace")
    assert "/review-ingest/api/requests" in written, "the access log saw the call"
    for form in (email, email.replace("@", "%40")):
        assert form not in written
