"""The reports published beside a merchant's file on SFTP (contract section 6), against a real
OpenSSH sshd: each file gets its own report, and no published copy names a page of our server."""

from __future__ import annotations

import json
import time

import pytest

from review_ingest.sources import sftp
from review_ingest.store import warehouse
from review_ingest.tasks import sftp_ingest
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import sample_for_yesterday
from tests.kit.sshd import SftpMerchant, SftpServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.sftp
OLD = time.time() - 3600


@pytest.fixture
def shop(sftp_server: SftpServer) -> SftpMerchant:
    return sftp_server.add_merchant("r_reports")


@pytest.fixture
def setup(tmp_path, monkeypatch, sftp_server, shop, warehouse_url):
    """One SFTP merchant in the merchants file, with its connection."""
    conn_id = f"{shop.merchant_id}_sftp"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sftp_server.airflow_conn_json(shop))
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text(
        "merchants:\n"
        f"  {shop.merchant_id}:\n"
        "    template: website\n"
        "    sftp:\n"
        f"      conn_id: {conn_id}\n"
        f"      root: {shop.root}\n"
    )
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    warehouse.migrate(warehouse.engine_for(warehouse_url))
    return tmp_path / "data"


def published(server: SftpServer, shop: SftpMerchant, name: str) -> dict:
    return json.loads(server.fetch(shop, f"{shop.inbox}/processed/{name}.report.json"))


def test_bytes_already_imported_under_a_new_name_get_their_own_report(
    sftp_server, shop, setup, warehouse_url
):
    """Issue 8.2: the report beside tuesday.csv was monday.csv's, with status loaded."""
    sample = sample_for_yesterday("website").encode()
    sftp_server.upload(shop, f"{shop.inbox}/monday.csv", sample, mtime=OLD)
    first = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)["files"][0]
    sftp_server.upload(shop, f"{shop.inbox}/tuesday.csv", sample, mtime=OLD)

    second = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)["files"][0]

    assert (first["status"], second["status"]) == ("loaded", "already_imported")
    report = published(sftp_server, shop, "tuesday.csv")
    assert (report["import_id"], report["file_name"], report["status"]) == (
        second["import_id"],
        "tuesday.csv",
        "already_imported",
    )
    assert report["earlier_import_id"] == first["import_id"]
    assert report["requests"] == {"brand": 0, "product": 0, "due_now": 0}
    errors = sftp_server.fetch(shop, f"{shop.inbox}/processed/tuesday.csv.errors.csv")
    assert errors == b"line;column;code;message\n"
    assert published(sftp_server, shop, "monday.csv")["status"] == "loaded"
    assert query(warehouse_url, "SELECT count(*) FROM review_requests")[0][0] == 5


def test_published_reports_hold_no_data_docs_key(sftp_server, shop, setup, warehouse_url):
    sample = sample_for_yesterday("website")
    sftp_server.upload(shop, f"{shop.inbox}/good.csv", sample.encode(), mtime=OLD - 10)
    sftp_server.upload(shop, f"{shop.inbox}/again.csv", (sample + "\n").encode(), mtime=OLD)

    sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)

    good = published(sftp_server, shop, "good.csv")
    rejected = json.loads(sftp_server.fetch(shop, f"{shop.inbox}/rejected/again.csv.report.json"))
    for report in (good, rejected):
        assert report["validation"] == {"suite": "website"}
    local = setup / "reports" / shop.merchant_id / good["import_id"] / "report.json"
    page = json.loads(local.read_text())["validation"]["data_docs"]
    assert page.startswith("validations/") and (setup / "data_docs" / page).is_file()


def test_a_rerun_finishing_an_interrupted_move_publishes_the_original_report(
    sftp_server, shop, setup, warehouse_url, monkeypatch
):
    """Same name, same bytes: the server dropped between the commit and the move."""
    sftp_server.upload(
        shop, f"{shop.inbox}/orders.csv", sample_for_yesterday("website").encode(), mtime=OLD
    )
    real_publish = sftp.publish

    def stop_then_publish(*args, **kwargs):
        sftp_server.stop()
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(sftp, "publish", stop_then_publish)
    try:
        with pytest.raises(sftp.TransportError):
            sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    finally:
        sftp_server.start()
    monkeypatch.setattr(sftp, "publish", real_publish)
    [(loaded_id,)] = query(warehouse_url, "SELECT import_id FROM imports")

    again = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)["files"][0]

    assert (again["status"], again["import_id"]) == ("loaded", loaded_id)  # finished (8.7)
    report = published(sftp_server, shop, "orders.csv")
    assert (report["import_id"], report["status"], report["file_name"]) == (
        loaded_id,
        "loaded",
        "orders.csv",
    )
    assert report["validation"] == {"suite": "website"}
