"""``review_request_events`` run for real with ``dag.test()`` (what ``airflow dags test`` runs),
on SQLite and on PostgreSQL: an event file in ``<data>/events/incoming/`` is loaded, reported
and moved; its summary goes to XCom."""

from __future__ import annotations

from pathlib import Path

import pytest

from review_ingest.store import warehouse
from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.event_files import drop_events, event, jsonl, read_report, seed_requests, statuses
from tests.kit.factories import write_merchants

pytestmark = pytest.mark.airflow


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv(
        "REVIEW_INGEST_MERCHANTS", str(write_merchants(tmp_path / "m.yaml", {"acme": "website"}))
    )
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    warehouse.migrate(warehouse.engine_for(warehouse_url))
    return data


def test_the_dag_loads_an_event_file(airflow_db, data_dir, warehouse_url):
    engine = warehouse.engine_for(warehouse_url)
    ids = seed_requests(engine, warehouse_url, "acme", ["A-1", "A-2"], "jane.secret@example.org")
    a1, a2 = ids["A-1"], ids["A-2"]
    content = jsonl(
        [
            event("e-1", a1, "sent"),
            event("e-2", a1, "delivered", 1),
            event("e-3", a2, "sent"),
            event("e-4", a2, "opened", 20),
            "not json",
        ]
    )
    drop_events(data_dir, "mailer-1.jsonl", content)

    dag_run = run_dag("review_request_events")

    assert dag_run.state == "success"
    assert statuses(warehouse_url, ids.values()) == {a1: "delivered", a2: "opened"}
    report = read_report(data_dir, "mailer-1.jsonl")
    assert (report["status"], report["loaded"], report["error_lines"]) == ("processed", 4, 1)
    assert (data_dir / "events" / "processed" / "mailer-1.jsonl").read_bytes() == content
    assert list((data_dir / "events" / "incoming").iterdir()) == []
    [ti] = [t for t in dag_run.get_task_instances() if t.task_id != "notify_data_team"]
    summary = ti.xcom_pull(task_ids="load_event_files")
    assert summary["files"] == 1 and summary["events_loaded"] == 4
    assert summary["reports"] == ["reports/mailer-1.jsonl.json"]
