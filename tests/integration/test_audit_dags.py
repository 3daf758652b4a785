"""The audit trail's actor in real DAG runs (``dag.test()``): ``dag:<dag_id>`` for the imports of
``orders_upload_ingest`` and the purge of ``review_data_retention``. The actor does not depend on
the database: a SQLite warehouse only."""

from __future__ import annotations

from pathlib import Path

import pytest

from review_ingest.store import audit, warehouse
from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import drop, sample_for_yesterday, write_merchants

pytestmark = pytest.mark.airflow


def test_dag_runs_record_their_dag_as_the_actor(airflow_db, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    data = tmp_path / "data"
    merchants = write_merchants(tmp_path / "merchants.yaml", {"shop-web": "website"})
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("REVIEW_INGEST_RETENTION_DAYS", "30")
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(url))
    # dag.test() runs the tasks in this process, and Airflow exports the DAG's id into
    # os.environ: put back as it was after the test.
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "")
    drop(data / "uploads" / "shop-web", "orders.csv", sample_for_yesterday("website"))
    drop(data / "uploads" / "shop-web", "comma.csv", "order_ref,email\n")

    assert run_dag("orders_upload_ingest").state == "success"
    assert run_dag("review_data_retention").state == "success"

    engine = warehouse.engine_for(url)
    got = list(audit.export(engine))
    assert sorted((e["action"], e["actor"], e["details"]["status"]) for e in got[:2]) == [
        ("import", "dag:orders_upload_ingest", "loaded"),
        ("import", "dag:orders_upload_ingest", "rejected"),
    ]
    assert (got[2]["action"], got[2]["actor"], len(got)) == (
        "purge",
        "dag:review_data_retention",
        3,
    )
    assert got[2]["details"]["failed"] == [] and got[2]["details"]["requests_anonymised"] == 0
    assert audit.verify(engine) is None
    engine.dispose()
    assert Path(data / "processed" / "shop-web" / "orders.csv").is_file()
