"""Retention on each SFTP merchant's server and the DAG ``review_data_retention`` (contract
sections 8 and 11), against the real sshd fixture and a real ``dag.test()`` run."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from review_ingest.core.merchants import Merchant, SftpSource
from review_ingest.privacy import retention
from review_ingest.store import warehouse
from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.sshd import SftpMerchant, SftpServer
from tests.kit.warehouse import load_brand_requests, query

pytestmark = pytest.mark.sftp
REPO = Path(__file__).resolve().parents[2]
CLI = REPO / ".venv" / "bin" / "review-ingest"
OLD = time.time() - 40 * 86400
RECENT = time.time() - 20 * 86400
#: Left on the server by the pipeline: an order file and its two reports, per outcome folder.
JANE = "jane@example.org"
PUBLISHED = ("orders.csv", "orders.csv.report.json", "orders.csv.errors.csv")


def publish_copies(server: SftpServer, merchant: SftpMerchant) -> None:
    """Old and recent copies in ``orders/processed/`` and ``orders/rejected/``."""
    for folder in ("processed", "rejected"):
        server.sftp_batch(merchant, f"mkdir {merchant.inbox}/{folder}\n")
        for name in PUBLISHED:
            server.upload(merchant, f"{merchant.inbox}/{folder}/{name}", b"x", mtime=OLD)
        server.upload(merchant, f"{merchant.inbox}/{folder}/recent.csv", b"x", mtime=RECENT)
    server.upload(merchant, f"{merchant.inbox}/waiting.csv", b"x", mtime=OLD)  # the inbox


def remote_names(server: SftpServer, merchant: SftpMerchant) -> set[str]:
    root = merchant.local(merchant.inbox)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


AFTER_PURGE = {
    "waiting.csv",
    *(f"{folder}/{name}" for folder in ("processed", "rejected") for name in PUBLISHED[1:]),
    "processed/recent.csv",
    "rejected/recent.csv",
}


def merchants_file(path: Path, merchants: dict[str, str]) -> Path:
    """``merchants``: merchant_id -> conn_id; each an SFTP merchant of template website."""
    lines = ["merchants:"]
    for merchant_id, conn_id in merchants.items():
        lines += [
            f"  {merchant_id}:",
            "    template: website",
            "    sftp:",
            f"      conn_id: {conn_id}",
            f"      root: /{merchant_id}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def shops(sftp_server: SftpServer, monkeypatch, tmp_path) -> dict[str, SftpMerchant]:
    """Two SFTP merchants; ``r_refused`` connects with a key its server refuses."""
    good = sftp_server.add_merchant("r_good")
    refused = sftp_server.add_merchant("r_refused")
    stranger = sftp_server.add_merchant("r_stranger")
    monkeypatch.setenv("AIRFLOW_CONN_R_GOOD_SFTP", sftp_server.airflow_conn_json(good))
    wrong = json.loads(sftp_server.airflow_conn_json(refused))
    wrong["extra"]["key_file"] = str(stranger.key_path)
    monkeypatch.setenv("AIRFLOW_CONN_R_REFUSED_SFTP", json.dumps(wrong))
    path = merchants_file(
        tmp_path / "merchants.yaml", {"r_good": "r_good_sftp", "r_refused": "r_refused_sftp"}
    )
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(path))
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REVIEW_INGEST_RETENTION_DAYS", "30")
    for merchant in (good, refused):
        publish_copies(sftp_server, merchant)
    return {"good": good, "refused": refused}


def test_purge_sftp_deletes_old_order_copies_and_keeps_their_reports(sftp_server, shops):
    good = shops["good"]
    merchant = Merchant("r_good", "website", sftp=SftpSource("r_good_sftp", "/r_good"))
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)

    assert retention.purge_sftp(merchant, before, dry_run=True) == 2
    assert len(remote_names(sftp_server, good)) == 9

    assert retention.purge_sftp(merchant, before) == 2
    assert remote_names(sftp_server, good) == AFTER_PURGE
    assert sftp_server.fetch(good, f"{good.inbox}/processed/orders.csv.report.json") == b"x"
    assert retention.purge_sftp(merchant, before) == 0
    assert sftp_server.open_client_connections() == 0


def test_purge_command_names_the_merchant_it_could_not_reach_and_purges_the_others(
    sftp_server, shops, warehouse_url
):
    env = dict(os.environ, REVIEW_INGEST_WAREHOUSE_URL=warehouse_url)
    done = subprocess.run(
        [str(CLI), "purge", "--json"], capture_output=True, text=True, env=env, timeout=240
    )
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["sftp_files_deleted"] == {"r_good": 2}
    assert list(result["failures"]) == ["sftp/r_refused"]
    assert "r_refused" in done.stderr and "refused" in done.stderr
    assert remote_names(sftp_server, shops["good"]) == AFTER_PURGE
    assert len(remote_names(sftp_server, shops["refused"])) == 9


@pytest.mark.airflow
def test_the_retention_dag_purges_everything_and_names_the_merchant_that_failed(
    airflow_db, sftp_server, shops, warehouse_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    engine = warehouse.engine_for(warehouse_url)
    warehouse.migrate(engine)
    now = dt.datetime.now(dt.UTC)
    load_brand_requests(engine, "r_good", ["OLD-1"], now - dt.timedelta(days=31), JANE)
    load_brand_requests(engine, "r_good", ["NEW-1"], now - dt.timedelta(days=29), JANE)
    data = tmp_path / "data"
    for name, mtime in (("old.csv", OLD), ("recent.csv", RECENT)):
        path = data / "processed" / "r_good" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("order_ref\n")
        os.utime(path, (mtime, mtime))

    run = run_dag("review_data_retention")

    states = {
        (ti.task_id, ti.map_index): (ti.state, ti.try_number) for ti in run.get_task_instances()
    }
    assert run.state == "failed"
    assert states[("purge_requests", -1)][0] == "success"
    assert states[("purge_files", -1)][0] == "success"
    # Both merchants share one task: the good one is purged, then the task fails at once (a
    # refused key is a configuration error: no retry), noting the refused merchant.
    assert [s for (task, _), s in states.items() if task == "purge_sftp"] == [("failed", 1)]
    assert states[("summarize", -1)][0] == "failed"
    assert query(warehouse_url, "SELECT order_ref, email FROM review_requests ORDER BY 1") == [
        ("NEW-1", JANE),
        ("OLD-1", None),
    ]
    assert sorted(p.name for p in (data / "processed" / "r_good").iterdir()) == ["recent.csv"]
    assert remote_names(sftp_server, shops["good"]) == AFTER_PURGE
    assert len(remote_names(sftp_server, shops["refused"])) == 9
