"""Validation results and Data Docs pages past ``REVIEW_INGEST_DOCS_RETENTION_DAYS``: deleted by
a real ``dag.test()`` run of ``review_data_retention`` and by ``review-ingest purge``, and, in
Airflow's in-process API app with the review UI, an import whose page was deleted says so instead
of linking to it. The pages are made by the real pipeline, then aged (``age``: their run time, in
their path, moved back as many days)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json, fresh_review_app
from tests.kit.factories import write_merchants
from tests.kit.paths import REPO
from tests.kit.postgres import new_database
from tests.unit.test_data_docs import run_batch, with_bad_row
from tests.unit.test_docs_retention import age

pytestmark = pytest.mark.postgres
NOTE = "Data Docs page deleted after 90 days (retention)"
CLI = REPO / ".venv" / "bin" / "review-ingest"


@dataclass
class Made:
    """Two imports by the pipeline, with their pages: ``old`` aged past retention."""

    data_dir: Path
    old: dict[str, Any]
    young: dict[str, Any]

    def report_html(self, made: dict[str, Any]) -> str:
        folder = self.data_dir / "reports" / made["merchant_id"] / made["import_id"]
        return (folder / "report.html").read_text(encoding="utf-8")

    def index(self) -> str:
        return (self.data_dir / "data_docs" / "index.html").read_text(encoding="utf-8")


def make_imports(data_dir: Path) -> Made:
    """Two files imported, their pages and index built; the first one aged 100 days."""
    old, young = (run_batch(data_dir, {f"{name}.csv": "shop-web"})[0] for name in ("old", "young"))
    old["validation"]["data_docs"] = age(data_dir, old["validation"]["data_docs"], 100)
    made = Made(data_dir, old, young)
    assert old["validation"]["data_docs"] in made.report_html(old)
    return made


def page(made: dict[str, Any]) -> str:
    return made["validation"]["data_docs"]


@pytest.fixture
def env(tmp_path, monkeypatch, pg_url) -> dict[str, str]:
    merchants = write_merchants(tmp_path / "merchants.yaml", {"shop-web": "website"})
    values = {
        "REVIEW_INGEST_DATA_DIR": str(tmp_path / "data"),
        "REVIEW_INGEST_MERCHANTS": str(merchants),
        "REVIEW_INGEST_WAREHOUSE_URL": pg_url,
        "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(pg_url),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REVIEW_INGEST_DOCS_RETENTION_DAYS", raising=False)
    return values


@pytest.mark.airflow
def test_the_retention_dag_deletes_old_results_and_pages_and_counts_them(airflow_db, env):
    made = make_imports(Path(env["REVIEW_INGEST_DATA_DIR"]))
    docs, results = made.data_dir / "data_docs", made.data_dir / "gx"
    old_result = results / page(made.old).removeprefix("validations/").replace(".html", ".json")

    run = run_dag("review_data_retention")

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["purge_data_docs"] == "success", states
    ti = next(ti for ti in run.get_task_instances() if ti.task_id == "purge_data_docs")
    assert ti.xcom_pull(task_ids="purge_data_docs") == {
        "validation_results_deleted": 1,
        "data_docs_pages_deleted": 1,
        "reports_updated": 1,
    }
    if states["summarize"] == "success":  # its audit entry is another part's
        totals = ti.xcom_pull(task_ids="summarize")
        assert (totals["validation_results_deleted"], totals["data_docs_pages_deleted"]) == (1, 1)
    assert not (docs / page(made.old)).exists() and not old_result.exists()
    assert (docs / page(made.young)).is_file()
    assert page(made.old) not in made.index() and page(made.young) in made.index()
    assert NOTE in made.report_html(made.old) and page(made.old) not in made.report_html(made.old)
    assert page(made.young) in made.report_html(made.young)


def test_the_purge_command_deletes_old_docs_and_its_dry_run_nothing(env):
    made = make_imports(Path(env["REVIEW_INGEST_DATA_DIR"]))
    docs = made.data_dir / "data_docs"

    def purge(*options: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(CLI), "purge", "--json", *options],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=240,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        result = json.loads(done.stdout)
        assert "data_docs" not in result["failures"], result
        return result

    dry = purge("--dry-run")
    assert (dry["validation_results_deleted"], dry["data_docs_pages_deleted"]) == (1, 1)
    assert (docs / page(made.old)).is_file() and page(made.old) in made.index()

    done = purge()
    assert (done["docs_retention_days"], done["data_docs_pages_deleted"]) == (90, 1)
    assert not (docs / page(made.old)).exists()
    assert page(made.old) not in made.index() and page(made.young) in made.index()


# --- the review UI ---------------------------------------------------------------------------

READER = "reader"


@dataclass
class Ui:
    client: Any
    token: str
    made: Made

    def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = self.client.get(f"/review-ingest{path}", headers=headers)
        assert answer.status_code != 500, answer.text
        return answer


@pytest.fixture(scope="module")
def ui(
    pg_server_url: str, airflow_db: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ui]:
    """The in-process app over two imports made by the pipeline, the old one's page deleted by
    the real purge."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    from review_ingest.core.merchants import load_merchants
    from review_ingest.pipeline.ingest import Ingest
    from review_ingest.privacy import retention

    root = tmp_path_factory.mktemp("docs-retention-web")
    merchants = write_merchants(root / "merchants.yaml", {"shop-web": "website"})
    with (
        new_database(pg_server_url, "review_docs_retention") as warehouse_url,
        pytest.MonkeyPatch.context() as env,
    ):
        data_dir = root / "data"
        (root / "passwords.json").write_text(json.dumps({READER: "secret-of-reader"}))
        for name, value in {
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{READER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "docs-retention-test-jwt-secret-" + "x" * 40,
            "AIRFLOW__API__SECRET_KEY": "docs-retention-test-secret-key",
            "REVIEW_INGEST_DATA_DIR": str(data_dir),
            "REVIEW_INGEST_MERCHANTS": str(merchants),
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
        }.items():
            env.setenv(name, value)
        env.delenv("REVIEW_INGEST_DOCS_RETENTION_DAYS", raising=False)
        made = make_imports_in(data_dir, Ingest(data_dir, load_merchants(merchants), warehouse_url))
        retention.purge_data_docs(data_dir, dt.datetime.now(dt.UTC), 90)
        purge_cached_app()
        fresh_review_app()
        with TestClient(create_app()) as client:
            answer = client.post(
                "/auth/token", json={"username": READER, "password": "secret-of-reader"}
            )
            assert answer.status_code == 201, answer.text
            yield Ui(client, answer.json()["access_token"], made)
        purge_cached_app()
        fresh_review_app()


def make_imports_in(data_dir: Path, ingest: Any) -> Made:
    """``make_imports`` into the UI's warehouse: the imports must be rows of it."""
    reports = []
    for name in ("old", "young"):
        path = data_dir.parent / "in" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(with_bad_row("website", f"BAD-{name}"), encoding="utf-8")
        outcome = ingest.import_file(path, "shop-web", "upload")
        ingest.finish()
        folder = data_dir / "reports" / "shop-web" / outcome.record.import_id
        reports.append(json.loads((folder / "report.json").read_text(encoding="utf-8")))
    ingest.engine.dispose()
    old, young = reports
    old["validation"]["data_docs"] = age(data_dir, page(old), 100)
    return Made(data_dir, old, young)


def test_the_import_page_says_its_data_docs_page_was_deleted(ui: Ui) -> None:
    old = ui.get(f"/imports/{quote(ui.made.old['import_id'])}")
    young = ui.get(f"/imports/{quote(ui.made.young['import_id'])}")

    assert old.status_code == young.status_code == 200
    assert NOTE in old.text and 'id="data-docs-gone"' in old.text
    assert 'id="data-docs-link"' not in old.text
    assert NOTE not in young.text and 'id="data-docs-link"' in young.text


def test_a_link_to_a_deleted_page_answers_gone_and_says_why(ui: Ui) -> None:
    gone = ui.get(f"/data-docs/{page(ui.made.old)}")
    kept = ui.get(f"/data-docs/{page(ui.made.young)}")
    unknown = ui.get("/data-docs/validations/website/none/20991231T000000.000000Z/x.html")

    assert (gone.status_code, kept.status_code, unknown.status_code) == (410, 200, 404)
    assert NOTE in gone.text
    report = ui.get(f"/api/imports/{quote(ui.made.old['import_id'])}").json()
    assert report["validation"]["data_docs"] == page(ui.made.old), "the report as written"
