"""Tracking in the review UI (contract section 13) inside Airflow's own API app, built
in-process with SimpleAuthManager, on a SQLite and a PostgreSQL warehouse: every status as a
filter of the API, the CSV export and the page (422 for an unknown one), the step times and
bounce reasons of the items and the CSV, the funnel of the API, the requests page and an
import's page, equal to a count of the rows. No address or name in any answer."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text, update

from review_ingest.core.events import Event
from review_ingest.core.outcomes import ImportRecord, Outcome, ReviewRequest
from review_ingest.store import warehouse
from review_ingest.store.cancellations import cancel
from review_ingest.store.events import load_events
from review_ingest.store.models import ReviewRequestRow
from review_ingest.web.views import REQUEST_STATUSES
from tests.kit.airflow_env import airflow_conn_json, fresh_review_app
from tests.kit.factories import write_merchants
from tests.kit.postgres import new_database

PREFIX = "/review-ingest"
READER = "reader"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
NOW = dt.datetime.now(dt.UTC)
#: Stored as if an older loader had not masked it: the UI masks it on the way out.
RAW_REASON = "550 5.1.1 <kim.secret@example.net>: user unknown"
MASKED_REASON = "550 5.1.1 <k***@example.net>: user unknown"
#: Every customer's address, first and last name holds it: none may appear in an answer.
PERSONAL = "secret"
STEP_TIMES = ("sent_at", "delivered_at", "opened_at", "clicked_at", "reviewed_at", "bounced_at")


def hours(n: float) -> dt.datetime:
    return NOW + dt.timedelta(hours=n)


#: (import, order_ref, e-mail's local part, scheduled_at, the mailer's events), for "acme".
REQUESTS = [
    ("imp-t1", "T-1", "ann.secret", hours(-72), ["sent", "delivered", "opened", "reviewed"]),
    ("imp-t1", "T-2", "bob.secret", hours(-72), ["sent", "delivered", "opened", "clicked"]),
    ("imp-t1", "T-3", "cat.secret", hours(-70), ["sent", "delivered", "opened"]),
    ("imp-t1", "T-4", "dan.secret", hours(-50), ["sent", "delivered"]),
    ("imp-t1", "T-5", "eve.secret", hours(-49), ["sent"]),
    ("imp-t1", "T-6", "kim.secret", hours(-48), ["sent", "bounced"]),
    ("imp-t1", "T-7", "lea.secret", hours(-47), ["failed"]),
    ("imp-t1", "T-8", "max.secret", hours(-1), []),  # due, not yet sent
    ("imp-t2", "U-1", "ned.secret", hours(3), []),  # scheduled
    ("imp-t2", "U-2", "ola.secret", hours(60), []),  # cancelled below
    ("imp-t2", "U-3", "pat.secret", hours(61), []),  # withdrawn below
]


@dataclass
class Ui:
    client: Any
    token: str
    engine: Engine
    answers: list[str]

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = self.client.get(PREFIX + path, params=params, headers=headers)
        assert answer.status_code != 500, answer.text
        assert PERSONAL not in answer.text.lower(), f"{path}: personal data in the answer"
        return answer

    def statuses(self) -> dict[str, str]:
        """Each request's status as the UI must show it, read from the table."""
        r = ReviewRequestRow
        query = select(r.order_ref, r.status, r.scheduled_at)
        with self.engine.connect() as connection:
            found = connection.execute(query).all()
        return {
            ref: ("due" if at <= dt.datetime.now(dt.UTC) else "scheduled")
            if status == "scheduled"
            else status
            for ref, status, at in found
        }


def load(engine: Engine) -> None:
    """The requests, their events (one file), a cancellation and an opt-out."""
    for import_id in ("imp-t1", "imp-t2"):
        rows = [r for r in REQUESTS if r[0] == import_id]
        record = ImportRecord(
            import_id=import_id, merchant_id="acme", source="upload", file_name="f.csv",
            sha256=import_id.ljust(64, "0"), size_bytes=1, template="website", status="loaded",
            rejection_code=None, received_at=hours(-100), processed_at=hours(-100),
            total_rows=len(rows), valid_rows=len(rows), brand_requests=len(rows),
        )  # fmt: skip
        requests = [
            ReviewRequest(
                "acme",
                "brand",
                ref,
                None,
                f"{local}@example.net",
                "Secretfirst",
                "Secretname",
                "fr",
                None,
                at.date(),
                at,
            )  # fmt: skip
            for _, ref, local, at, _ in rows
        ]
        warehouse.save(engine, Outcome(record=record, requests=requests))
    r = ReviewRequestRow
    with engine.connect() as connection:
        ids = dict(connection.execute(select(r.order_ref, r.request_id)).tuples().all())
    events = [
        Event(f"ev-{ref}-{kind}", str(ids[ref]), kind, at + dt.timedelta(minutes=n),
              "mailbox full" if kind == "failed" else None, 4 if kind == "reviewed" else None)
        for _, ref, _, at, kinds in REQUESTS
        for n, kind in enumerate(kinds)
    ]  # fmt: skip
    with engine.begin() as connection:
        load_events(connection, "file-1", events, NOW)
        connection.execute(
            text("UPDATE review_requests SET bounce_reason = :r WHERE order_ref = 'T-6'"),
            {"r": RAW_REASON},
        )
    cancel(engine, "imp-t2", "refunded", ["U-2"], who="test", now=NOW)
    with engine.begin() as connection:
        connection.execute(update(r).where(r.order_ref == "U-3").values(status="withdrawn"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def ui(
    request: pytest.FixtureRequest, airflow_db: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ui]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("tracking-web")
    merchants = write_merchants(root / "merchants.yaml", {"acme": "website"})
    with warehouse_for(request, root) as warehouse_url, pytest.MonkeyPatch.context() as env:
        engine = warehouse.engine_for(warehouse_url)
        warehouse.migrate(engine)
        load(engine)
        (root / "passwords.json").write_text(json.dumps({READER: "pw"}), encoding="utf-8")
        for name, value in {
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{READER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "tracking-web-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__API__SECRET_KEY": "tracking-web-test-secret-key",
            "REVIEW_INGEST_DATA_DIR": str(root / "data"),
            "REVIEW_INGEST_MERCHANTS": str(merchants),
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
        }.items():
            env.setenv(name, value)
        purge_cached_app()
        fresh_review_app()
        with TestClient(create_app()) as client:
            answer = client.post("/auth/token", json={"username": READER, "password": "pw"})
            assert answer.status_code == 201, answer.text
            yield Ui(client, answer.json()["access_token"], engine, [])
        engine.dispose()
        purge_cached_app()
        fresh_review_app()


def warehouse_for(request: pytest.FixtureRequest, root: Path) -> Any:
    """A context giving the warehouse's URL: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return nullcontext(f"sqlite:///{root / 'warehouse.db'}")
    return new_database(request.getfixturevalue("pg_server_url"), "review_tracking_test")


def read_csv(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text), delimiter=";"))


def refs(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(item["order_ref"] for item in answer.json()["items"])


# --- filters -------------------------------------------------------------------------------


def test_every_status_filters_the_api_the_csv_and_the_page(ui: Ui) -> None:
    statuses = ui.statuses()
    assert set(statuses.values()) == set(REQUEST_STATUSES), "the data holds every status"
    for status in REQUEST_STATUSES:
        expected = sorted(ref for ref, shown in statuses.items() if shown == status)

        assert refs(ui.get("/api/requests", status=status)) == expected, status
        rows = read_csv(ui.get("/api/requests.csv", status=status))
        assert sorted(r["order_ref"] for r in rows) == expected, status
        assert {r["status"] for r in rows} == {status}
        page = ui.get("/requests", status=status).text
        assert sorted(re.findall(r"<td>([TU]-\d)</td>", page)) == expected, status
        assert f'<option value="{status}" selected>' in page


@pytest.mark.parametrize(
    "path", ["/api/requests", "/api/requests.csv", "/api/requests/funnel", "/requests"]
)
@pytest.mark.parametrize(("name", "value"), [("status", "bounced"), ("import_id", "a b")])
def test_an_unknown_status_or_a_bad_import_answers_422_naming_it(
    ui: Ui, path: str, name: str, value: str
) -> None:
    answer = ui.get(path, **{name: value})

    assert answer.status_code == 422, answer.text
    assert [d["loc"] for d in answer.json()["detail"]] == [["query", name]]
    assert answer.json()["detail"][0]["msg"].startswith(f"{name}: ")


def test_items_and_the_csv_carry_the_step_times_bounce_reason_and_rating(ui: Ui) -> None:
    items = {i["order_ref"]: i for i in ui.get("/api/requests", limit=500).json()["items"]}
    rows = {r["order_ref"]: r for r in read_csv(ui.get("/api/requests.csv"))}

    reviewed, bounced, failed = items["T-1"], items["T-6"], items["T-7"]
    assert (reviewed["status"], reviewed["rating"]) == ("reviewed", 4)
    assert all(reviewed[name] for name in ("sent_at", "delivered_at", "opened_at", "reviewed_at"))
    assert reviewed["clicked_at"] is None and reviewed["bounced_at"] is None
    assert reviewed["sent_at"].endswith("Z")
    assert dt.datetime.fromisoformat(reviewed["sent_at"]) == hours(-72)
    assert (bounced["status"], bounced["bounce_reason"]) == ("not_delivered", MASKED_REASON)
    assert bounced["bounced_at"] and not bounced["delivered_at"]
    assert (failed["status"], failed["bounce_reason"]) == ("not_delivered", "mailbox full")
    assert set(STEP_TIMES) | {"bounce_reason", "rating"} <= set(rows["T-1"])
    for ref, item in items.items():
        for name in (*STEP_TIMES, "bounce_reason", "rating"):
            assert rows[ref][name] == ("" if item[name] is None else str(item[name])), (ref, name)
    assert rows["T-6"]["bounce_reason"] == MASKED_REASON
    assert all(re.fullmatch(r".\*\*\*@example\.net", r["email_masked"]) for r in rows.values())


def test_the_import_filter_selects_its_requests(ui: Ui) -> None:
    assert refs(ui.get("/api/requests", import_id="imp-t2")) == ["U-1", "U-2", "U-3"]
    page = ui.get("/requests", import_id="imp-t2").text
    assert 'name="import_id" value="imp-t2"' in page and "Any import" in page


# --- the funnel ----------------------------------------------------------------------------


def expected_funnel(statuses: dict[str, str]) -> dict[str, int]:
    count = Counter(statuses.values())
    return {
        "scheduled_or_due": sum(count.values()) - count["cancelled"] - count["withdrawn"],
        "sent": sum(
            count[s]
            for s in ("sent", "delivered", "opened", "clicked", "reviewed", "not_delivered")
        ),  # fmt: skip
        "delivered": sum(count[s] for s in ("delivered", "opened", "clicked", "reviewed")),
        "opened": sum(count[s] for s in ("opened", "clicked", "reviewed")),
        "reviewed": count["reviewed"],
    }


@pytest.mark.parametrize(
    "params", [{}, {"import_id": "imp-t1"}, {"merchant_id": "acme", "request_type": "brand"}]
)
def test_the_funnel_api_counts_what_the_filter_selects(ui: Ui, params: dict[str, str]) -> None:
    statuses = ui.statuses()
    if params.get("import_id") == "imp-t1":
        statuses = {ref: s for ref, s in statuses.items() if ref.startswith("T-")}
    funnel = ui.get("/api/requests/funnel", **params).json()

    assert {s["step"]: s["requests"] for s in funnel["steps"]} == expected_funnel(statuses)
    assert funnel["by_status"] == {s: Counter(statuses.values())[s] for s in REQUEST_STATUSES}
    assert funnel["requests"] == len(statuses)
    assert funnel["not_delivered"] == 2
    steps = {s["step"]: s for s in funnel["steps"]}
    assert steps["sent"]["rate_of_previous"] == 7 / steps["scheduled_or_due"]["requests"]
    assert steps["reviewed"]["rate_of_sent"] == 1 / 7
    assert steps["reviewed"]["rate_of_previous"] == 1 / 3  # of the opened: T-1, T-2, T-3
    assert sorted((r["reason"], r["requests"]) for r in funnel["reasons"]) == [
        (MASKED_REASON, 1),
        ("mailbox full", 1),
    ]


def test_the_funnel_of_one_status_and_of_nothing(ui: Ui) -> None:
    due = ui.get("/api/requests/funnel", status="due").json()
    assert [s["requests"] for s in due["steps"]] == [1, 0, 0, 0, 0]
    assert (
        due["steps"][1]["rate_of_previous"] == 0.0 and due["steps"][2]["rate_of_previous"] is None
    )
    none = ui.get("/api/requests/funnel", merchant_id="nobody").json()
    assert none["requests"] == 0 and none["reasons"] == []
    assert all(s["rate_of_previous"] is None for s in none["steps"])


def funnel_rows(page: str) -> dict[str, str]:
    """The funnel table of a page: each step's count as written."""
    table = page.split('id="funnel-table"', 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r'data-step="(\w+)"><td>[^<]*</td><td class="num">([\d,]+)</td>', table))


def test_the_requests_page_shows_the_funnel_and_the_reasons(ui: Ui) -> None:
    page = ui.get("/requests").text
    expected = expected_funnel(ui.statuses())

    assert '<svg class="chart funnel"' in page
    assert funnel_rows(page) == {step: f"{n:,}" for step, n in expected.items()}
    rate = expected["sent"] / expected["scheduled_or_due"]
    assert f">{expected['sent']} · {rate:.1%} of scheduled or due<" in page
    reasons = page.split('id="bounce-reasons"', 1)[1].split("</table>", 1)[0]
    assert MASKED_REASON.replace("<", "&lt;").replace(">", "&gt;") in reasons
    assert "mailbox full" in reasons
    assert "Never sent: 1 cancelled, 1 withdrawn" in page


def test_an_import_page_shows_the_funnel_of_its_requests(ui: Ui) -> None:
    page = ui.get("/imports/imp-t2").text
    statuses = {ref: s for ref, s in ui.statuses().items() if ref.startswith("U-")}

    assert funnel_rows(page) == {k: f"{n:,}" for k, n in expected_funnel(statuses).items()}
    assert 'href="../requests?import_id=imp-t2"' in page
    assert funnel_rows(ui.get("/imports/imp-t1").text)["reviewed"] == "1"
