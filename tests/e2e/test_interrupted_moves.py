"""Issue 8.7: a run killed between its warehouse commit and the move of its file.

The run that takes the file over must finish that import (reports, move; for SFTP the reports
published beside the moved file) and record nothing new: one ``imports`` row, counted as
``loaded`` in the run's summary. The same bytes sent again, under a new name or under the same
name after the first was moved, are new files: each gets its own ``already_imported`` row (on
SFTP here, beside the killed SFTP run whose server it shares; for upload folders in
tests/integration/test_interrupted_moves.py).

The kill is a real SIGKILL of the child process running the pipeline. The moment between the
commit and the move lasts microseconds, too short to hit from outside: the child kills itself
there through a test hook (``tests/kit/pipeline_child.py``: ``after_commit`` kills it when
``warehouse.save`` returns, ``before_move`` when ``folders.move_after`` is called).
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from review_ingest.tasks import sftp_ingest, upload_ingest
from tests.fixtures.ingest_checks import assert_loaded_once, configure, imports_of, orders_file
from tests.kit import pipeline_child
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import drop
from tests.kit.sshd import SftpMerchant, SftpServer

ORDERS = 30
OLD = time.time() - 3600

INGEST_UPLOADS = "review_ingest.tasks.upload_ingest:ingest_uploads"


def kill_during(tmp_path, kill_at: str, target: str, *args) -> None:
    child = pipeline_child.start(target, *args, out=tmp_path / "killed.json", kill_at=kill_at)
    assert child.wait() == -signal.SIGKILL, f"{child.result()}\n{child.log()}"


@pytest.mark.parametrize("kill_at", ["after_commit", "before_move"])
def test_an_upload_run_killed_between_commit_and_move_is_finished_by_the_next_run(
    tmp_path, monkeypatch, warehouse_url, kill_at
):
    data = configure(monkeypatch, tmp_path, warehouse_url)
    content = orders_file("K", ORDERS)
    drop(data / "uploads" / "acme", "orders.csv", content)
    (batch,) = upload_ingest.plan_upload_batches()

    kill_during(tmp_path, kill_at, INGEST_UPLOADS, batch, warehouse_url)

    [(committed, _, status)] = imports_of(warehouse_url, "acme")
    assert status == "loaded"
    assert not (data / "processed" / "acme" / "orders.csv").exists()
    reports = data / "reports" / "acme" / committed
    assert reports.is_dir() == (kill_at == "before_move")

    (again,) = upload_ingest.plan_upload_batches()
    (result,) = upload_ingest.ingest_uploads(again, warehouse_url)

    assert (result["file_name"], result["status"], result["import_id"]) == (
        "orders.csv",
        "loaded",
        committed,
    )
    assert (result["valid_rows"], result["brand_requests"]) == (ORDERS, ORDERS)
    assert upload_ingest.summarize_uploads([again], [[result]])["loaded"] == 1
    assert assert_loaded_once(warehouse_url, data, "acme", "orders.csv", content, ORDERS) == (
        committed
    )


# -- SFTP ---------------------------------------------------------------------------------------


@pytest.fixture
def shop(sftp_server: SftpServer) -> SftpMerchant:
    return sftp_server.add_merchant("i_moves")


@pytest.fixture
def sftp_data(tmp_path, monkeypatch, sftp_server, shop, warehouse_url):
    conn_id = f"{shop.merchant_id}_sftp"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sftp_server.airflow_conn_json(shop))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    extra = f"    sftp:\n      conn_id: {conn_id}\n      root: {shop.root}\n"
    return configure(monkeypatch, tmp_path, warehouse_url, {shop.merchant_id: "website"}, extra)


def published(server: SftpServer, shop: SftpMerchant, name: str) -> dict:
    return json.loads(server.fetch(shop, f"{shop.inbox}/processed/{name}.report.json"))


def remote_names(server: SftpServer, shop: SftpMerchant, folder: str) -> list[str]:
    return sorted(p.name for p in shop.local(folder).iterdir())


@pytest.mark.sftp
def test_an_sftp_run_killed_after_its_commit_is_finished_by_the_next_run(
    tmp_path, sftp_server, shop, sftp_data, warehouse_url
):
    content = orders_file("P", ORDERS)
    sftp_server.upload(shop, f"{shop.inbox}/orders.csv", content, mtime=OLD)

    kill_during(
        tmp_path,
        "after_commit",
        "review_ingest.tasks.sftp_ingest:collect_merchants",
        [shop.merchant_id],
        warehouse_url,
    )
    [(committed, _, _)] = imports_of(warehouse_url, shop.merchant_id)
    assert "orders.csv" in remote_names(sftp_server, shop, shop.inbox)

    result = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)

    [done] = result["files"]
    assert (done["status"], done["import_id"]) == ("loaded", committed)
    assert done["remote_path"] == f"{shop.inbox}/processed/orders.csv"
    assert_loaded_once(warehouse_url, sftp_data, shop.merchant_id, "orders.csv", content, ORDERS)
    report = published(sftp_server, shop, "orders.csv")
    assert (report["import_id"], report["status"], report["requests"]["brand"]) == (
        committed,
        "loaded",
        ORDERS,
    )
    assert remote_names(sftp_server, shop, shop.inbox) == ["processed"]


@pytest.mark.sftp
def test_the_same_name_sent_again_on_sftp_gets_its_own_already_imported_report(
    sftp_server, shop, sftp_data, warehouse_url
):
    content = orders_file("N", 3)
    sftp_server.upload(shop, f"{shop.inbox}/orders.csv", content, mtime=OLD)
    [first] = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)["files"]
    sftp_server.upload(shop, f"{shop.inbox}/orders.csv", content, mtime=OLD)

    [second] = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)["files"]

    assert (first["status"], second["status"]) == ("loaded", "already_imported")
    assert second["remote_path"] == f"{shop.inbox}/processed/orders.2.csv"
    report = published(sftp_server, shop, "orders.2.csv")
    assert (report["import_id"], report["status"], report["earlier_import_id"]) == (
        second["import_id"],
        "already_imported",
        first["import_id"],
    )
    assert published(sftp_server, shop, "orders.csv")["import_id"] == first["import_id"]
    assert [s for _, _, s in imports_of(warehouse_url, shop.merchant_id)] == [
        "loaded",
        "already_imported",
    ]
