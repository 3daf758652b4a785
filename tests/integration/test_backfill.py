"""orders_backfill with dag.test(): one named file, dry runs, send_now, and the SFTP source."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from review_ingest.errors import UsageError
from review_ingest.store import warehouse
from review_ingest.tasks import backfill
from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import drop, sample_for_yesterday, write_merchants
from tests.kit.warehouse import query
from tests.unit.test_backfill import conf

pytestmark = pytest.mark.airflow


@pytest.fixture
def data_dir(tmp_path, monkeypatch, warehouse_url):
    data = tmp_path / "data"
    merchants = write_merchants(tmp_path / "merchants.yaml", {"acme": "website_products"})
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    warehouse.migrate(warehouse.engine_for(warehouse_url))
    return data


def test_dry_run_reports_and_touches_nothing(data_dir, airflow_db, warehouse_url):
    uploads = data_dir / "uploads" / "acme"
    drop(uploads, "q3.csv", sample_for_yesterday("website_products"))
    drop(uploads, "other.csv", sample_for_yesterday("website_products"))

    run = run_dag("orders_backfill", conf(dry_run=True))

    assert run.state == "success"
    assert query(warehouse_url, "SELECT count(*) FROM imports")[0][0] == 0
    assert sorted(p.name for p in uploads.iterdir()) == ["other.csv", "q3.csv"]
    (report,) = [json.loads(p.read_text()) for p in data_dir.glob("reports/acme/*/report.json")]
    assert (report["status"], report["source"], report["requests"]["product"]) == (
        "accepted",
        "backfill",
        5,
    )


def test_send_now_loads_every_request_due_now_with_source_backfill(
    data_dir, airflow_db, warehouse_url
):
    uploads = data_dir / "uploads" / "acme"
    drop(uploads, "q3.csv", sample_for_yesterday("website_products"))
    drop(uploads, "other.csv", sample_for_yesterday("website_products"))
    started = time.time()

    assert run_dag("orders_backfill", conf(send_now=True)).state == "success"

    assert query(warehouse_url, "SELECT source, status FROM imports") == [("backfill", "loaded")]
    due = query(warehouse_url, "SELECT scheduled_at FROM review_requests")
    assert len(due) == 9
    for (scheduled,) in due:
        if isinstance(scheduled, str):  # SQLite keeps ISO-8601 text
            scheduled = dt.datetime.fromisoformat(scheduled)
        if scheduled.tzinfo is None:
            scheduled = scheduled.replace(tzinfo=dt.UTC)
        assert abs(scheduled.timestamp() - started) < 600, "every delay counts as 0"
    assert sorted(p.name for p in uploads.iterdir()) == ["other.csv"]
    assert (data_dir / "processed" / "acme" / "q3.csv").is_file()


def test_a_missing_file_fails_naming_it(data_dir, warehouse_url):
    request = backfill.BackfillRequest("acme", "missing.csv", dry_run=False)
    with pytest.raises(UsageError, match="'missing.csv'"):
        backfill.backfill_upload(request, warehouse_url)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"merchant_id": "nobody"}, "unknown merchant_id 'nobody'"),
        ({"file": "missing.csv"}, "has no file 'missing.csv'"),
    ],
    ids=["unknown-merchant", "missing-file"],
)
def test_bad_params_fail_the_run_at_once_without_retries(
    data_dir, airflow_db, warehouse_url, capfd, params, words
):
    """With the DAG's real retry settings (2 retries, 5 minutes apart): a usage error is not
    a transient fault, so the task fails on its first try, naming what is wrong."""
    drop(data_dir / "uploads" / "acme", "q3.csv", sample_for_yesterday("website_products"))

    run = run_dag("orders_backfill", conf(**params))

    assert run.state == "failed"
    (ti,) = [t for t in run.get_task_instances() if t.task_id != "notify_data_team"]
    assert (ti.task_id, ti.state, ti.try_number, ti.max_tries) == (
        "import_backfill_file",
        "failed",
        1,
        2,
    ), "failed on its first try although 2 retries were allowed"
    assert words in capfd.readouterr().out
    assert query(warehouse_url, "SELECT count(*) FROM imports")[0][0] == 0
    assert (data_dir / "uploads" / "acme" / "q3.csv").is_file()


@pytest.fixture
def merchant(sftp_server, tmp_path, monkeypatch, data_dir):
    """Merchant ``acme`` with an SFTP inbox on the test server."""
    merchant = sftp_server.add_merchant("p_back")
    monkeypatch.setenv("AIRFLOW_CONN_P_BACK_SFTP", sftp_server.airflow_conn_json(merchant))
    write_merchants(
        tmp_path / "merchants.yaml",
        {"acme": "website_products"},
        extra=f"    sftp:\n      conn_id: p_back_sftp\n      root: {merchant.root}\n",
    )
    return merchant


@pytest.mark.sftp
def test_sftp_backfill_takes_the_named_file_of_the_inbox(
    sftp_server, merchant, airflow_db, warehouse_url
):
    old = time.time() - 3600
    sample = sample_for_yesterday("website_products").encode()
    sftp_server.upload(merchant, f"{merchant.inbox}/q3.csv", sample, mtime=old)
    sftp_server.upload(merchant, f"{merchant.inbox}/daily.csv", sample, mtime=old)

    run = run_dag("orders_backfill", conf(source="sftp"))

    assert run.state == "success"
    assert query(warehouse_url, "SELECT source, file_name FROM imports") == [("backfill", "q3.csv")]
    processed = sftp_server.fetch(merchant, f"{merchant.inbox}/processed/q3.csv.report.json")
    assert json.loads(processed)["source"] == "backfill"
    assert sftp_server.fetch(merchant, f"{merchant.inbox}/daily.csv") == sample


@pytest.mark.sftp
def test_sftp_backfill_of_a_missing_file_fails_at_once_naming_it(
    sftp_server, merchant, airflow_db, warehouse_url, capfd
):
    """Contract section 8, SFTP source: the file is not in the inbox, so the run fails on its
    first try (with the DAG's real 2 retries allowed), naming the file, and touches nothing."""
    sample = sample_for_yesterday("website_products").encode()
    sftp_server.upload(merchant, f"{merchant.inbox}/daily.csv", sample, mtime=time.time() - 3600)

    run = run_dag("orders_backfill", conf(source="sftp", file="q3.csv"))

    assert run.state == "failed"
    (ti,) = [t for t in run.get_task_instances() if t.task_id != "notify_data_team"]
    assert (ti.state, ti.try_number, ti.max_tries) == ("failed", 1, 2)
    assert "'q3.csv'" in capfd.readouterr().out
    assert query(warehouse_url, "SELECT count(*) FROM imports")[0][0] == 0
    assert sftp_server.fetch(merchant, f"{merchant.inbox}/daily.csv") == sample
    assert sftp_server.open_client_connections() == 0
