"""The DAG of "Import data" (``orders_upload_import``), the retention DAG's staging purge and the
third navigation entry, as Airflow parses them; no run."""

from __future__ import annotations

import pytest

from tests.kit.paths import REPO

DAG_ID = "orders_upload_import"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_the_upload_import_dag_runs_at_once_when_triggered(bag) -> None:
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert dag.fileloc == str(REPO / "dags" / f"{DAG_ID}.py")
    assert dag.schedule is None
    # A run of a paused DAG waits in the queue: "Import data" must start at once.
    assert dag.is_paused_upon_creation is False
    assert dag.max_active_runs >= 8
    assert set(dag.params.keys()) == {"upload_id"}
    assert dag.tags and "review-ingest" in dag.tags
    assert dag.doc_md and DAG_ID in dag.doc_md


def test_the_upload_import_task_retries_transient_faults_only(bag) -> None:
    from airflow.sdk import RetryAction

    from review_ingest.backoffice.uploads import ChangedSinceCheck, UnknownUpload
    from review_ingest.errors import UsageError

    (task,) = [t for t in bag.dags[DAG_ID].tasks if not t.is_teardown]
    assert task.task_id == "import_upload"
    assert task.retries >= 2
    assert [o.name for o in task.outlets] == ["review_requests"]
    for permanent in (UsageError("x"), UnknownUpload("x"), ChangedSinceCheck("x")):
        assert task.retry_policy.evaluate(permanent, 1, 3).action == RetryAction.FAIL
    assert task.retry_policy.evaluate(OSError("x"), 1, 3).action == RetryAction.DEFAULT


def test_the_retention_dag_purges_the_staging_folder_before_its_summary(bag) -> None:
    dag = bag.dags["review_data_retention"]
    purge = dag.get_task("purge_staging")
    assert purge.retries >= 2
    assert "summarize" in purge.downstream_task_ids
    assert dag.doc_md and "staging" in dag.doc_md


def test_the_plugin_adds_import_orders_to_airflows_navigation() -> None:
    from review_ingest_ui import ReviewIngestUiPlugin

    views = {view["name"]: view for view in ReviewIngestUiPlugin.external_views}
    assert list(views) == ["Review imports", "Review requests", "Import orders"]
    view = views["Import orders"]
    assert view["href"] == "review-ingest/import" and view["destination"] == "nav"
    icon = view["icon"].removeprefix("review-ingest/static/")
    assert (REPO / "plugins" / "review_ingest" / "web" / "static" / icon).is_file()
