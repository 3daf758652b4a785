"""Cancelling from the review UI (contract section 12) inside Airflow's own API app, built
in-process with SimpleAuthManager: ``POST /review-ingest/api/imports/{id}/cancel``, the import
page's list of cancellations and its form (CSRF token and Origin), and the status ``cancelled``
in the API, the CSV export and the requests page. The warehouse is a real PostgreSQL database,
the imports are made by the pipeline."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from review_ingest.core.merchants import load_merchants
from review_ingest.pipeline.ingest import Ingest
from tests.kit.airflow_env import airflow_conn_json, fresh_review_app
from tests.kit.factories import write_merchants, yesterday
from tests.kit.postgres import new_database
from tests.kit.warehouse import query

pytestmark = pytest.mark.postgres

PREFIX = "/review-ingest"
RUNNER = "runner"  # role USER: may create DAG runs
READER = "reader"  # role VIEWER: reads only
USERS = {RUNNER: "user", READER: "viewer"}
HEADER = "order_ref;email;lastname;firstname;order_date;delay;language\n"
PERSONAL = ("jane.secret", "secretname", "secretfirst")
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
ORIGIN = "http://testserver"


@dataclass
class Ui:
    client: Any
    tokens: dict[str, str]
    ingest: Ingest
    folder: Path
    warehouse_url: str

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    def get(self, path: str, user: str | None = RUNNER, **params: Any) -> httpx.Response:
        answer = self.client.get(PREFIX + path, headers=self.headers(user), params=params)
        return checked(answer)

    def cancel(self, import_id: str, body: Any, user: str | None = RUNNER) -> httpx.Response:
        url = f"{PREFIX}/api/imports/{import_id}/cancel"
        return checked(self.client.post(url, json=body, headers=self.headers(user)))

    def new_import(self, rows: list[tuple[str, int]]) -> str:
        """A file of ``rows`` (order_ref, delay in days) imported by the pipeline."""
        day = f"{yesterday():%Y-%m-%d}"
        lines = [
            f"{ref};jane.secret@example.org;Secretname;Secretfirst;{day};{delay};fr"
            for ref, delay in rows
        ]
        path = self.folder / f"orders-{secrets.token_hex(4)}.csv"
        path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
        outcome = self.ingest.import_file(path, "acme", "upload")
        assert outcome.record.status == "loaded"
        return outcome.record.import_id

    def statuses(self, import_id: str) -> list[tuple[str, str]]:
        return query(
            self.warehouse_url,
            "SELECT order_ref, status FROM review_requests WHERE import_id = :i ORDER BY order_ref",
            i=import_id,
        )

    def recorded(self, import_id: str) -> list[tuple]:
        return query(
            self.warehouse_url,
            "SELECT cancelled_by, reason, order_refs, cancelled, already_due, not_found "
            "FROM cancellations WHERE import_id = :i ORDER BY cancellation_id",
            i=import_id,
        )


def checked(answer: httpx.Response) -> httpx.Response:
    assert answer.status_code != 500, answer.text
    for value in PERSONAL:
        assert value not in answer.text.lower()
    return answer


@pytest.fixture(scope="module")
def ui(
    pg_server_url: str, airflow_db: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ui]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("cancel-web")
    merchants = write_merchants(root / "merchants.yaml", {"acme": "website"})
    with (
        new_database(pg_server_url, "review_cancel_test") as warehouse_url,
        pytest.MonkeyPatch.context() as env,
    ):
        passwords = {user: f"password-of-{user}" for user in USERS}
        (root / "passwords.json").write_text(json.dumps(passwords), encoding="utf-8")
        for name, value in {
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{user}:{role}" for user, role in USERS.items()
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "cancel-web-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__API__SECRET_KEY": "cancel-web-test-secret-key",
            "REVIEW_INGEST_DATA_DIR": str(root / "data"),
            "REVIEW_INGEST_MERCHANTS": str(merchants),
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
        }.items():
            env.setenv(name, value)
        ingest = Ingest(root / "data", load_merchants(merchants), warehouse_url, data_docs=False)
        (root / "in").mkdir()
        purge_cached_app()
        fresh_review_app()
        with TestClient(create_app()) as client:
            tokens = {}
            for user, password in passwords.items():
                answer = client.post("/auth/token", json={"username": user, "password": password})
                assert answer.status_code == 201, answer.text
                tokens[user] = answer.json()["access_token"]
            yield Ui(client, tokens, ingest, root / "in", warehouse_url)
        ingest.engine.dispose()
        purge_cached_app()
        fresh_review_app()


# --- the API -------------------------------------------------------------------------------


def test_the_api_cancels_orders_then_the_rest_and_answers_the_counts(ui: Ui) -> None:
    import_id = ui.new_import([("C-1", 30), ("C-2", 30), ("C-3", 0)])

    answer = ui.cancel(import_id, {"reason": "refunded", "order_refs": ["C-1", "NOPE"]})

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "import_id": import_id,
        "merchant_id": "acme",
        "reason": "refunded",
        "order_refs": ["C-1", "NOPE"],
        "dry_run": False,
        "cancelled": 1,
        "already_due": 0,
        "already_cancelled": 0,
        "not_found": 1,
    }
    dry = ui.cancel(import_id, {"reason": "wrong_file", "dry_run": True}).json()
    assert (dry["dry_run"], dry["cancelled"], dry["already_due"]) == (True, 1, 1)
    whole = ui.cancel(import_id, {"reason": "wrong_file"}).json()
    assert (whole["cancelled"], whole["already_due"], whole["already_cancelled"]) == (1, 1, 1)
    assert ui.statuses(import_id) == [
        ("C-1", "cancelled"),
        ("C-2", "cancelled"),
        ("C-3", "scheduled"),
    ]
    assert ui.recorded(import_id) == [
        (RUNNER, "refunded", '["C-1", "NOPE"]', 1, 0, 1),
        (RUNNER, "wrong_file", None, 1, 1, 0),
    ]

    listed = ui.get("/api/requests", status="cancelled", merchant_id="acme").json()["items"]
    mine = sorted((i["order_ref"], i["status"]) for i in listed if i["import_id"] == import_id)
    assert mine == [("C-1", "cancelled"), ("C-2", "cancelled")]
    due = ui.get("/api/requests", order_ref="C-3").json()["items"]
    assert [i["status"] for i in due] == ["due"]
    assert not [
        i for i in ui.get("/api/requests", status="due").json()["items"] if i["status"] != "due"
    ]
    csv_text = ui.get("/api/requests.csv", status="cancelled", order_ref="C-2").text
    assert ";cancelled;" in csv_text.splitlines()[1]


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        ({"reason": "wrong_file", "order_refs": ["C-1"]}, 422, "reason"),
        ({"reason": "  "}, 422, "reason"),
        ({"order_refs": ["C-1"]}, 422, "reason"),
        ({"reason": "refunded", "order_refs": []}, 422, "order_refs"),
        ({"reason": "refunded", "order_refs": "C-1"}, 422, "order_refs"),
        ({"reason": "refunded", "order_refs": ["C-1", "x" * 65]}, 422, "order_refs"),
        ({"reason": "wrong_file", "everything": True}, 422, "everything"),
        ("wrong_file", 422, "body"),
    ],
)
def test_a_bad_body_answers_422_naming_the_field_and_changes_nothing(
    ui: Ui, body: Any, status: int, where: str
) -> None:
    ref = f"B-{secrets.token_hex(4)}"  # a new file each time, not the same bytes again
    import_id = ui.new_import([(ref, 30)])

    answer = ui.cancel(import_id, body)

    assert answer.status_code == status, answer.text
    assert any(where in item["msg"] or where in item["loc"] for item in answer.json()["detail"])
    assert ui.statuses(import_id) == [(ref, "scheduled")]
    assert ui.recorded(import_id) == []


def test_unknown_imports_readers_and_strangers_are_refused(ui: Ui) -> None:
    import_id = ui.new_import([("U-1", 30)])
    body = {"reason": "wrong_file"}

    assert ui.cancel("19990101T000000Z-00000000", body).status_code == 404
    assert ui.cancel("not%20an%20id", body).status_code == 404
    assert ui.cancel(import_id, body, user=READER).status_code == 403
    assert ui.cancel(import_id, body, user=None).status_code == 401
    assert ui.statuses(import_id) == [("U-1", "scheduled")]


def test_the_api_with_the_session_cookie_needs_the_pages_token(ui: Ui) -> None:
    import_id = ui.new_import([("K-1", 30)])
    url = f"{PREFIX}/api/imports/{import_id}/cancel"
    ui.client.cookies.set("_token", ui.tokens[RUNNER])
    try:
        refused = ui.client.post(url, json={"reason": "wrong_file"}, headers={"Origin": ORIGIN})
        assert refused.status_code == 403
        token = form_fields(ui.client.get(f"{PREFIX}/imports/{import_id}").text)["csrf_token"]
        done = ui.client.post(
            url, json={"reason": "wrong_file"}, headers={"Origin": ORIGIN, "X-CSRF-Token": token}
        )
        assert done.status_code == 200, done.text
    finally:
        ui.client.cookies.clear()


# --- the pages -----------------------------------------------------------------------------


class Form(HTMLParser):
    """The fields of the page's cancel form: hidden inputs' values, the select's options."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.inside = False
        self.fields: dict[str, str] = {}
        self.options: list[str] = []
        self.onsubmit = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == "cancel-import":
            self.inside, self.action = True, a["action"]
            self.onsubmit = a.get("onsubmit", "")
        elif self.inside and tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a["value"]
        elif self.inside and tag == "option":
            self.options.append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def form_fields(page: str) -> dict[str, str]:
    return Form(page).fields


def test_the_import_page_cancels_with_its_form_and_lists_each_cancellation(ui: Ui) -> None:
    import_id = ui.new_import([("P-1", 30), ("P-2", 0)])
    page_url = f"{PREFIX}/imports/{import_id}"
    ui.client.cookies.set("_token", ui.tokens[RUNNER])
    try:
        page = checked(ui.client.get(page_url))
        form = Form(page.text)
        assert form.action == f"{import_id}/cancel"
        # Confirmed by a required box: Airflow's iframe (no allow-modals) blocks confirm().
        assert not form.onsubmit
        assert 'name="confirm" type="checkbox" value="yes" required' in page.text
        assert form.options == [
            "wrong_file", "refunded", "order_cancelled", "test_order", "duplicate_order"
        ]  # fmt: skip
        target = urljoin(str(page.url), form.action)
        fields = {**form.fields, "reason": "wrong_file", "order_refs": ""}

        for headers, data in [
            ({"Origin": "https://evil.example"}, fields),
            ({"Origin": ORIGIN}, {**fields, "csrf_token": "1.forged"}),
            ({"Origin": ORIGIN}, {k: v for k, v in fields.items() if k != "csrf_token"}),
            ({}, fields),
        ]:
            refused = ui.client.post(target, data=data, headers=headers, follow_redirects=False)
            assert refused.status_code == 403, headers
        assert ui.statuses(import_id) == [("P-1", "scheduled"), ("P-2", "scheduled")]

        refused = checked(
            ui.client.post(
                target,
                data={**fields, "order_refs": "P-1"},
                headers={"Origin": ORIGIN},
                follow_redirects=False,
            )
        )
        assert refused.status_code == 422
        assert "not allowed for single orders" in refused.text
        assert ui.statuses(import_id) == [("P-1", "scheduled"), ("P-2", "scheduled")]

        done = ui.client.post(
            target, data=fields, headers={"Origin": ORIGIN}, follow_redirects=False
        )
        assert done.status_code == 303, done.text
        back = checked(ui.client.get(urljoin(target, done.headers["location"])))
    finally:
        ui.client.cookies.clear()

    assert str(back.url).endswith(page_url)
    assert ui.statuses(import_id) == [("P-1", "cancelled"), ("P-2", "scheduled")]
    assert 'id="cancellations"' in back.text
    row = back.text.split('id="cancellations"', 1)[1].split("</table>", 1)[0]
    assert all(word in row for word in (RUNNER, "wrong_file", '<td class="num">1</td>'))


def test_the_page_form_with_a_bearer_token_needs_no_csrf_token(ui: Ui) -> None:
    import_id = ui.new_import([("T-1", 30), ("T-2", 30)])
    answer = ui.client.post(
        f"{PREFIX}/imports/{import_id}/cancel",
        data={"reason": "test_order", "order_refs": "T-1\r\n  \r\nT-9"},
        headers=ui.headers(RUNNER),
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert ui.statuses(import_id) == [("T-1", "cancelled"), ("T-2", "scheduled")]
    assert ui.recorded(import_id) == [(RUNNER, "test_order", '["T-1", "T-9"]', 1, 0, 1)]


def test_the_requests_page_shows_and_filters_cancelled(ui: Ui) -> None:
    import_id = ui.new_import([("R-1", 30)])
    ui.cancel(import_id, {"reason": "wrong_file"})

    page = ui.get("/requests", status="cancelled", order_ref="R-1")

    assert page.status_code == 200
    assert '<option value="cancelled" selected>cancelled</option>' in page.text
    assert '<span class="status cancelled">cancelled</span>' in page.text
    assert f'href="imports/{import_id}"' in page.text


def test_a_rejected_import_has_no_cancel_form(ui: Ui) -> None:
    import_id = ui.new_import([("J-1", 30)])
    path = ui.folder / "rejected.csv"
    path.write_text(HEADER + f"J-1;a@example.org;N;F;{yesterday():%Y-%m-%d};1;fr\n", "utf-8")
    rejected = ui.ingest.import_file(path, "acme", "upload").record
    assert rejected.status == "rejected"

    assert 'id="cancel-import"' in ui.get(f"/imports/{import_id}").text
    assert 'id="cancel-import"' not in ui.get(f"/imports/{rejected.import_id}").text
