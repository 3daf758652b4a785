"""End to end with ``dag.test()``: upload folders to warehouse rows, moved files, reports, Data
Docs; on SQLite and on a real PostgreSQL. A second run with the same files loads nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.airflow import run_dag
from tests.helpers import (
    SAMPLE_MERCHANTS,
    airflow_conn_json,
    drop,
    query,
    sample_for_yesterday,
    write_merchants,
)

pytestmark = pytest.mark.airflow

#: Brand and product requests of each sample file (include/templates/).
SAMPLE_REQUESTS = {
    "shop-web": (5, 0),
    "shop-store": (4, 0),
    "shop-products": (4, 5),
    "shop-store-products": (3, 4),
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str) -> Path:
    data = tmp_path / "data"
    merchants = write_merchants(tmp_path / "merchants.yaml", SAMPLE_MERCHANTS)
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "120")
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    return data


def _drop_samples(data: Path) -> None:
    for merchant_id, template in SAMPLE_MERCHANTS.items():
        drop(data / "uploads" / merchant_id, "orders.csv", sample_for_yesterday(template))


def test_upload_run_loads_rejects_moves_and_reports(airflow_db, data_dir, warehouse_url):
    _drop_samples(data_dir)
    uploads = data_dir / "uploads"
    drop(uploads / "shop-web", "comma.csv", "order_ref,email,lastname,firstname,order_date\n")
    drop(uploads / "nobody", "orders.csv", sample_for_yesterday("website"))
    drop(uploads / "shop-web", "still-uploading.csv.part", "order_ref;")
    drop(uploads / "shop-web", ".hidden.csv", "order_ref;")
    drop(uploads / "shop-web", "too-young.csv", sample_for_yesterday("website"), age_seconds=5)

    run = run_dag("orders_upload_ingest")

    assert run.state == "success"
    for merchant_id, (brand, product) in SAMPLE_REQUESTS.items():
        counts = dict(
            query(
                warehouse_url,
                "SELECT request_type, count(*) FROM review_requests WHERE merchant_id = :m "
                "GROUP BY request_type",
                m=merchant_id,
            )
        )
        assert counts.get("brand", 0) == brand and counts.get("product", 0) == product
        assert (data_dir / "processed" / merchant_id / "orders.csv").is_file()
    statuses = sorted(
        query(warehouse_url, "SELECT merchant_id, file_name, status, rejection_code FROM imports")
    )
    assert ("shop-web", "comma.csv", "rejected", "wrong_separator") in statuses
    assert ("nobody", "orders.csv", "rejected", "unknown_merchant") in statuses
    assert len(statuses) == 6
    assert (data_dir / "rejected" / "shop-web" / "comma.csv").is_file()
    assert (data_dir / "rejected" / "nobody" / "orders.csv").is_file()
    left = sorted(p.name for p in (uploads / "shop-web").iterdir())
    assert left == [".hidden.csv", "still-uploading.csv.part", "too-young.csv"]
    for report_dir in (data_dir / "reports").glob("*/*"):
        assert {p.name for p in report_dir.iterdir()} == {
            "report.json",
            "report.html",
            "errors.csv",
        }
    reports = [json.loads(p.read_text()) for p in (data_dir / "reports").glob("*/*/report.json")]
    assert len(reports) == 6
    loaded = [r for r in reports if r["status"] == "loaded"]
    assert all(Path(r["validation"]["data_docs"]).is_file() for r in loaded)
    assert (data_dir / "data_docs" / "index.html").is_file()
    pages = list((data_dir / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) >= 4


def test_second_run_with_the_same_files_loads_nothing_again(airflow_db, data_dir, warehouse_url):
    _drop_samples(data_dir)
    assert run_dag("orders_upload_ingest").state == "success"
    before = query(warehouse_url, "SELECT count(*) FROM review_requests")[0][0]
    _drop_samples(data_dir)

    assert run_dag("orders_upload_ingest").state == "success"

    assert query(warehouse_url, "SELECT count(*) FROM review_requests")[0][0] == before
    again = query(warehouse_url, "SELECT count(*) FROM imports WHERE status = 'already_imported'")
    assert again[0][0] == len(SAMPLE_MERCHANTS)
    for merchant_id in SAMPLE_MERCHANTS:
        moved = sorted((data_dir / "processed" / merchant_id).rglob("orders.csv"))
        assert len(moved) == 2, "the second file must not overwrite the first"


def test_a_file_that_cannot_be_processed_fails_the_run_but_not_the_other_files(
    airflow_db, data_dir, warehouse_url, monkeypatch
):
    """A fault that cannot be caused for real here (the file's processing itself crashing):
    the other batches load, the run fails, its summary names the file, the file stays."""
    from review_ingest.pipeline import Ingest

    _drop_samples(data_dir)
    real_import = Ingest.import_file

    def crash_on_store(self, path, merchant_id, *args, **kwargs):
        if merchant_id == "shop-store":
            raise OSError("disk read error")
        return real_import(self, path, merchant_id, *args, **kwargs)

    monkeypatch.setattr(Ingest, "import_file", crash_on_store)
    monkeypatch.setenv("REVIEW_INGEST_BATCH_SIZE", "1")
    monkeypatch.setenv("REVIEW_INGEST_RETRY_DELAY_SECONDS", "1")

    run = run_dag("orders_upload_ingest")

    assert run.state == "failed"
    states = [(ti.task_id, ti.state) for ti in run.get_task_instances()]
    assert sorted(s for t, s in states if t == "ingest_batch") == [
        "failed",
        "success",
        "success",
        "success",
    ]
    assert ("summarize", "failed") in states
    loaded = query(warehouse_url, "SELECT merchant_id FROM imports WHERE status = 'loaded'")
    assert sorted(m for (m,) in loaded) == sorted(set(SAMPLE_MERCHANTS) - {"shop-store"})
    assert (data_dir / "uploads" / "shop-store" / "orders.csv").is_file()


def test_a_merchant_configuration_error_fails_the_check_not_the_other_merchants(
    airflow_db, data_dir, warehouse_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("REVIEW_INGEST_RETRY_DELAY_SECONDS", "1")
    write_merchants(
        tmp_path / "merchants.yaml",
        SAMPLE_MERCHANTS,
        extra="  broken:\n    template: website\n    default_delay: 99\n",
    )
    _drop_samples(data_dir)
    drop(data_dir / "uploads" / "broken", "orders.csv", sample_for_yesterday("website"))

    run = run_dag("orders_upload_ingest")

    states = dict((ti.task_id, ti.state) for ti in run.get_task_instances() if ti.map_index < 1)
    assert run.state == "failed" and states["check_configuration"] == "failed"
    loaded = query(warehouse_url, "SELECT merchant_id FROM imports WHERE status = 'loaded'")
    assert sorted(m for (m,) in loaded) == sorted(SAMPLE_MERCHANTS)
    assert (data_dir / "uploads" / "broken" / "orders.csv").is_file(), "left for after the fix"
