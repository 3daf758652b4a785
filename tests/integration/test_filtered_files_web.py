"""Signs of a filtered file (issue 27) in the review UI, inside Airflow's own API app built
in-process with SimpleAuthManager: the imports API items carry ``warnings``, the imports list
shows each file's codes and the import's page its warnings in words. The warehouse is a real
PostgreSQL database; the imports are made by the pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from review_ingest.core.merchants import Merchant
from review_ingest.pipeline.ingest import Ingest
from tests.kit.airflow_env import airflow_conn_json, fresh_review_app
from tests.kit.factories import write_merchants, yesterday
from tests.kit.postgres import new_database

pytestmark = pytest.mark.postgres

PREFIX = "/review-ingest"
READER = "reader"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
HEADER = "order_ref;email;lastname;firstname;order_date;language\n"


@dataclass
class Ui:
    client: Any
    token: str
    usual: list[str]
    flagged: str

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = self.client.get(PREFIX + path, headers=headers, params=params)
        assert answer.status_code == 200, answer.text
        assert "secret" not in answer.text.lower(), "no customer's address or name"
        return answer


def orders(folder: Path, first: int, english: int, french: int) -> Path:
    """Orders numbered from ``first``: ``english`` of them in English, then ``french``."""
    day = f"{yesterday():%Y-%m-%d}"
    languages = ["en"] * english + ["fr"] * french
    lines = [
        f"W-{first + n};secret{first + n}@example.org;Secretname;Secretfirst;{day};{language}"
        for n, language in enumerate(languages)
    ]
    path = folder / f"orders-{first}.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def imported(ingest: Ingest, path: Path) -> str:
    outcome = ingest.import_file(path, "acme", "upload")
    assert outcome.record.status == "loaded"
    return outcome.record.import_id


@pytest.fixture(scope="module")
def ui(
    pg_server_url: str, airflow_db: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ui]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("filtered-web")
    merchants = write_merchants(root / "merchants.yaml", {"acme": "website"})
    with (
        new_database(pg_server_url, "review_filtered_test") as warehouse_url,
        pytest.MonkeyPatch.context() as env,
    ):
        (root / "passwords.json").write_text(json.dumps({READER: "pw-reader"}), encoding="utf-8")
        for name, value in {
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{READER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "filtered-web-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__API__SECRET_KEY": "filtered-web-test-secret-key",
            "REVIEW_INGEST_DATA_DIR": str(root / "data"),
            "REVIEW_INGEST_MERCHANTS": str(merchants),
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
        }.items():
            env.setenv(name, value)
        folder = root / "in"
        folder.mkdir()
        ingest = Ingest(
            root / "data", {"acme": Merchant("acme", "website")}, warehouse_url, data_docs=False
        )
        usual = [imported(ingest, orders(folder, 1000 + 100 * n, 30, 70)) for n in range(4)]
        flagged = imported(ingest, orders(folder, 2000, 0, 40))
        ingest.close()
        purge_cached_app()
        fresh_review_app()
        with TestClient(create_app()) as client:
            answer = client.post("/auth/token", json={"username": READER, "password": "pw-reader"})
            assert answer.status_code == 201, answer.text
            yield Ui(client, answer.json()["access_token"], usual, flagged)
        purge_cached_app()
        fresh_review_app()


def test_the_imports_api_items_carry_their_warnings(ui: Ui) -> None:
    items = {i["import_id"]: i for i in ui.get("/api/imports", merchant_id="acme").json()["items"]}

    assert [w["code"] for w in items[ui.flagged]["warnings"]] == [
        "volume_drop",
        "missing_language",
    ]
    assert all(set(w) == {"code", "message"} for w in items[ui.flagged]["warnings"])
    assert [items[i]["warnings"] for i in ui.usual] == [[]] * 4
    assert "profile" not in items[ui.flagged], "the pipeline's own summary stays inside"
    report = ui.get(f"/api/imports/{ui.flagged}").json()
    assert report["warnings"] == items[ui.flagged]["warnings"]


def test_the_imports_list_shows_each_files_signs(ui: Ui) -> None:
    page = ui.get("/imports", merchant_id="acme").text

    assert "Signs of filtering" in page
    flagged_row = next(row for row in page.split("<tr>") if ui.flagged in row)
    assert "volume_drop" in flagged_row and "missing_language" in flagged_row
    usual_row = next(row for row in page.split("<tr>") if ui.usual[0] in row)
    assert "volume_drop" not in usual_row


def test_the_import_page_shows_its_warnings_in_words(ui: Ui) -> None:
    warnings = ui.get("/api/imports", merchant_id="acme").json()["items"][0]["warnings"]
    page = ui.get(f"/imports/{ui.flagged}").text

    assert 'id="warnings"' in page and "Signs of a filtered file" in page
    for warning in warnings:
        assert str(escape(warning["message"])) in page
    assert 'id="warnings"' not in ui.get(f"/imports/{ui.usual[0]}").text


def test_the_overview_lists_the_files_with_signs_of_filtering(ui: Ui) -> None:
    table = ui.get("/overview").text.split('id="warned-files"')[1].split("</table>")[0]

    rows = [row for row in table.split("<tr>") if "imports/" in row]
    assert len(rows) == 1, "only the flagged file is listed"
    assert f"imports/{ui.flagged}" in rows[0]
    assert "volume_drop" in rows[0] and "missing_language" in rows[0]
    quiet = ui.get("/overview", merchant_id="nobody").text.split('id="warned-files"')[1]
    assert "No sign of filtering in these 30 days." in quiet
