"""DAG integrity, parsed in this process with Airflow's DagBag: every DAG imports, has tags,
retries and docs. That parsing stays light (a fresh interpreter): tests/integration/test_dags.py."""

from __future__ import annotations

import pytest

from tests.kit.paths import REPO

DAG_IDS = (
    "orders_upload_ingest",
    "orders_backfill",
    "orders_sftp_ingest",
    "review_data_retention",
    "orders_upload_import",
    "review_request_events",
    "review_notifications",
)


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_every_dag_imports_without_error(bag):
    assert bag.import_errors == {}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_is_defined_in_a_file_named_after_it(bag, dag_id):
    assert dag_id in bag.dags
    assert bag.dags[dag_id].fileloc == str(REPO / "dags" / f"{dag_id}.py")


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_has_tags_docs_and_retries(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.doc_md and dag_id in dag.doc_md
    for task in dag.tasks:
        if task.task_id == "summarize":  # it reports the others' failures: nothing to retry
            assert task.retries == 0
        else:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} has {task.retries} retries"


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_usage_and_configuration_errors_are_never_retried(bag, dag_id):
    """Contract section 8: only transient faults are retried."""
    from airflow.sdk import RetryAction

    from review_ingest.errors import ConfigError, UsageError
    from review_ingest.sources.sftp import AccessRefused, TransportError

    for task in bag.dags[dag_id].tasks:
        policy = task.retry_policy
        for permanent in (UsageError("x"), ConfigError("x"), AccessRefused("x")):
            assert policy.evaluate(permanent, 1, 3).action == RetryAction.FAIL, task.task_id
        for transient in (TransportError("x"), OSError("x"), ConnectionError("x")):
            assert policy.evaluate(transient, 1, 3).action == RetryAction.DEFAULT, task.task_id


def test_schedules_follow_the_contract(bag):
    assert bag.dags["orders_upload_ingest"].schedule == "*/10 * * * *"
    assert bag.dags["orders_sftp_ingest"].schedule == "0 2 * * *"
    assert str(bag.dags["orders_sftp_ingest"].timetable.timezone) == "UTC"
    assert bag.dags["orders_backfill"].schedule is None
    assert bag.dags["review_data_retention"].schedule == "0 3 * * *"
    assert str(bag.dags["review_data_retention"].timetable.timezone) == "UTC"
    assert bag.dags["review_request_events"].schedule == "*/15 * * * *"
    assert bag.dags["review_request_events"].catchup is False


def test_backfill_params_form(bag):
    params = bag.dags["orders_backfill"].params
    assert set(params.keys()) == {"merchant_id", "file", "source", "dry_run", "send_now"}
    assert params.get_param("source").schema["enum"] == ["upload", "sftp"]
    assert params["dry_run"] is True
    assert params["send_now"] is False
