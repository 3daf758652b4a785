"""The DAG of "Import data", ``orders_upload_import`` (contract section 12): a whole run with
``dag.test()`` imports the checked bytes of an upload once, through the pipeline, on SQLite and
on PostgreSQL; and real processes started at the same moment (two runs of the import, the
10-minute upload run, a backfill) import it once between them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from review_ingest.backoffice import uploads
from review_ingest.core.merchants import load_merchants
from review_ingest.sources import claims
from review_ingest.store import warehouse
from review_ingest.tasks import upload_ingest
from tests.fixtures.airflow import run_dag
from tests.kit import pipeline_child
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import drop, sample_for_yesterday, write_merchants
from tests.kit.warehouse import query

MERCHANT = "shop-web"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str) -> Path:
    data = tmp_path / "data"
    merchants = write_merchants(tmp_path / "merchants.yaml", {MERCHANT: "website"})
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "0")
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    return data


def queued_upload(data: Path, warehouse_url: str, content: bytes) -> uploads.Upload:
    """What the review UI leaves for a run: a checked upload, "Import data" clicked."""
    merchants = load_merchants(Path(data).parent / "merchants.yaml")
    upload_id = uploads.new_upload_id()
    received = uploads.incoming_path(data, upload_id)
    received.parent.mkdir(parents=True, exist_ok=True)
    received.write_bytes(content)
    upload = uploads.create(
        data,
        merchants,
        warehouse_url,
        upload_id=upload_id,
        merchant_id=MERCHANT,
        file_name="orders.csv",
        send_now=False,
        received=received,
    )
    assert upload.importable, upload.report
    uploads.queue(upload, user="admin")
    return upload


def imports_of(warehouse_url: str, sha256: str) -> list[tuple]:
    return query(
        warehouse_url,
        "SELECT import_id, source, status FROM imports WHERE sha256 = :s",
        s=sha256,
    )


def copies(data: Path, content: bytes) -> list[Path]:
    """Every file under the data folder holding exactly ``content``."""
    return [p for p in data.rglob("*") if p.is_file() and p.read_bytes() == content]


@pytest.mark.airflow
def test_a_run_imports_the_checked_bytes_once(airflow_db, data_dir, warehouse_url):
    content = sample_for_yesterday("website").encode()
    upload = queued_upload(data_dir, warehouse_url, content)
    import_id = upload.queued.import_id

    run = run_dag("orders_upload_import", {"upload_id": upload.upload_id})

    assert run.state == "success"
    assert imports_of(warehouse_url, upload.sha256) == [(import_id, "upload", "loaded")]
    brand = query(
        warehouse_url, "SELECT count(*) FROM review_requests WHERE import_id = :i", i=import_id
    )
    assert brand == [(5,)]
    assert copies(data_dir, content) == [data_dir / "processed" / MERCHANT / "orders.csv"]
    report_dir = data_dir / "reports" / MERCHANT / import_id
    assert {p.name for p in report_dir.iterdir()} == {"report.json", "report.html", "errors.csv"}
    report = json.loads((report_dir / "report.json").read_text())
    assert report["source"] == "upload" and report["sha256"] == upload.sha256
    docs = data_dir / "data_docs"
    assert (docs / report["validation"]["data_docs"]).is_file()
    assert report["validation"]["data_docs"] in (docs / "index.html").read_text()
    engine = warehouse.engine_for(warehouse_url)
    state = uploads.status(upload, engine)
    engine.dispose()
    assert (state.state, state.import_id, state.status) == ("done", import_id, "loaded")

    again = run_dag("orders_upload_import", {"upload_id": upload.upload_id})

    assert again.state == "success"
    assert imports_of(warehouse_url, upload.sha256) == [(import_id, "upload", "loaded")]


@pytest.mark.airflow
def test_a_run_for_an_unknown_upload_fails_at_once_without_retries(airflow_db, data_dir):
    run = run_dag("orders_upload_import", {"upload_id": "20261206T100000Z-0123456789ab"})
    assert run.state == "failed"
    (ti,) = [t for t in run.get_task_instances() if t.task_id != "notify_data_team"]
    assert ti.state == "failed" and ti.try_number == 1


@pytest.mark.parametrize("left", ["staged", "released claim"])
def test_runs_at_the_same_moment_import_an_upload_once(tmp_path, data_dir, warehouse_url, left):
    """Two runs of the import (a manual re-trigger, a retry), the 10-minute upload run and a
    backfill start together; the upload's bytes are staged, or held in a claim a failed try
    released (which the upload run and the backfill may take over too)."""
    content = sample_for_yesterday("website").encode()
    upload = queued_upload(data_dir, warehouse_url, content)
    import_id = upload.queued.import_id
    if left == "released claim":
        claim = uploads.claim_staged(upload)
        assert claim is not None
        claim.release()
    other = sample_for_yesterday("website").replace("WEB-", "OTHER-").encode()
    drop(data_dir / "uploads" / MERCHANT, "orders.csv", other)
    batches = upload_ingest.plan_upload_batches()
    backfill = {"merchant_id": MERCHANT, "file": "orders.csv", "source": "upload", "dry_run": False}
    targets = [
        ("review_ingest.tasks.upload_import:import_upload", (upload.upload_id, warehouse_url)),
        ("review_ingest.tasks.upload_import:import_upload", (upload.upload_id, warehouse_url)),
        ("review_ingest.tasks.upload_ingest:ingest_uploads", (batches[0], warehouse_url)),
        ("review_ingest.tasks.backfill:import_backfill_file", (backfill, warehouse_url)),
    ]
    barrier = pipeline_child.context().Barrier(len(targets))
    children = [
        pipeline_child.start(target, *args, out=tmp_path / f"child-{i}.json", barrier=barrier)
        for i, (target, args) in enumerate(targets)
    ]
    codes = [child.wait() for child in children]

    results = [child.result() for child in children]
    for code, result, child in zip(codes[:3], results[:3], children[:3], strict=True):
        assert code == 0, (result, child.log())
    if codes[3] != 0:  # the backfill found its file gone: another run had taken and moved it
        assert "has no file 'orders.csv'" in results[3]["error"], children[3].log()
    assert imports_of(warehouse_url, upload.sha256) == [(import_id, "upload", "loaded")]
    assert [row[2] for row in imports_of(warehouse_url, hashlib.sha256(other).hexdigest())] == [
        "loaded"
    ]
    requests = query(
        warehouse_url, "SELECT count(*) FROM review_requests WHERE import_id = :i", i=import_id
    )
    assert requests == [(5,)]
    assert len(copies(data_dir / "processed", content)) == 1
    assert copies(data_dir / "staging", content) == [] and claims.all_claims(data_dir) == []
    engine = warehouse.engine_for(warehouse_url)
    assert uploads.status(upload, engine).state == "done"
    engine.dispose()
