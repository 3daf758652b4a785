"""The ingest DAGs, parsed in this process, declare the Airflow Asset ``review_requests`` on
their loading tasks. The counts their runs attach: tests/integration/test_assets.py."""

from __future__ import annotations

import pytest

from review_ingest.tasks import assets
from tests.fixtures.airflow import load_dag


@pytest.mark.parametrize("dag_id", ["orders_upload_ingest", "orders_sftp_ingest"])
def test_loading_tasks_declare_the_review_requests_asset(dag_id):
    dag = load_dag(dag_id)
    loading = "ingest_batch" if dag_id == "orders_upload_ingest" else "collect_merchants"
    outlets = {(t.task_id, o.name) for t in dag.tasks for o in t.outlets}
    assert outlets == {(loading, assets.REVIEW_REQUESTS_ASSET)}
