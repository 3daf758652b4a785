"""The notification tasks in the DAGs, parsed with Airflow's DagBag: every DAG that processes
files ends with the teardown ``notify_data_team``, after every other task and without a say in
the run's state; ``review_notifications`` checks waiting files then flushes every 5 minutes."""

from __future__ import annotations

import json

import pytest
import yaml

from review_ingest.notify.sending import settings_from_connection
from tests.kit.paths import REPO
from tests.unit.test_compose import COMPOSE_FILE, environment, example_values, interpolate

FILE_DAGS = (
    "orders_upload_ingest",
    "orders_sftp_ingest",
    "orders_backfill",
    "orders_upload_import",
    "review_data_retention",
    "review_request_events",
)


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.mark.parametrize("dag_id", FILE_DAGS)
def test_every_dag_that_processes_files_ends_with_the_data_teams_teardown(bag, dag_id):
    dag = bag.dags[dag_id]
    notify = dag.get_task("notify_data_team")
    upstream = notify.get_flat_relative_ids(upstream=True)

    assert notify.is_teardown and not notify.on_failure_fail_dagrun
    assert upstream == {t.task_id for t in dag.tasks} - {"notify_data_team"}
    assert notify.retries >= 2


def test_review_notifications_checks_then_flushes_every_five_minutes(bag):
    dag = bag.dags["review_notifications"]

    assert dag.schedule == "*/5 * * * *" and dag.catchup is False
    assert dag.max_active_runs == 1
    flush = dag.get_task("flush_outbox")
    assert flush.upstream_task_ids == {"check_stuck_files"}
    assert flush.trigger_rule == "all_done", "waiting messages go out whatever the check did"


def test_the_deployment_defines_smtp_default_as_the_smtp_provider_reads_it():
    """docker-compose.yaml's connection, once .env.example's values are put in: a server on
    port 587 with STARTTLS, and the sender the .env names."""
    common = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["x-airflow-common"]
    raw = interpolate(environment(common)["AIRFLOW_CONN_SMTP_DEFAULT"] or "", example_values())
    conn = json.loads(raw)

    smtp = settings_from_connection(
        conn["host"], conn["port"], conn["login"], conn["password"], conn["extra"]
    )
    assert (conn["conn_type"], smtp.port, smtp.use_ssl, smtp.starttls) == ("smtp", 587, False, True)
    assert smtp.mail_from == example_values()["SMTP_FROM"]
