"""A file left in an SFTP inbox, against a real OpenSSH sshd: the SFTP run that could not take
it tells the data team once (by file and modification time), however many runs find it."""

from __future__ import annotations

import os
import time

import pytest

from review_ingest.notify import sending
from review_ingest.store import warehouse
from review_ingest.tasks import sftp_ingest
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import sample_for_yesterday, write_merchants
from tests.kit.sshd import SftpMerchant, SftpServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.sftp
TEAM = "data-team@example.com"


@pytest.fixture
def shop(sftp_server: SftpServer, tmp_path, monkeypatch, warehouse_url) -> SftpMerchant:
    merchant = sftp_server.add_merchant("n_acme")
    conn_id = "n_acme_sftp"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sftp_server.airflow_conn_json(merchant))
    merchants = write_merchants(
        tmp_path / "merchants.yaml",
        {"n_acme": {"template": "website", "sftp": {"conn_id": conn_id, "root": merchant.root}}},
    )
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    monkeypatch.setenv("REVIEW_INGEST_ALERT_EMAILS", TEAM)
    monkeypatch.setenv("REVIEW_INGEST_STUCK_MINUTES", "60")
    warehouse.migrate(warehouse.engine_for(warehouse_url))
    return merchant


def test_a_file_an_sftp_run_leaves_in_the_inbox_is_told_once(
    sftp_server, shop, warehouse_url, smtp_server
):
    sample = sample_for_yesterday("website").encode()
    two_hours_ago = time.time() - 7200
    sftp_server.upload(shop, f"{shop.inbox}/locked.csv", sample, mtime=two_hours_ago)
    sftp_server.upload(shop, f"{shop.inbox}/new.csv", sample, mtime=time.time() - 600)
    os.chmod(shop.local(f"{shop.inbox}/locked.csv"), 0)  # the merchant's user cannot read it
    # Its download fails, and with it the merchant's part of the run: both files stay.

    for _ in range(2):
        with pytest.raises(Exception, match="locked.csv"):
            sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    sending.flush(warehouse.engine_for(warehouse_url), smtp_server.settings)

    (alert,) = smtp_server.received
    assert alert.recipients == (TEAM,)
    assert "n_acme: locked.csv waits in its SFTP inbox" in alert.subject
    assert f"Folder: {shop.inbox}" in alert.body
    assert "new.csv" not in alert.text, "10 minutes old: not waiting too long"
    assert query(warehouse_url, "SELECT kind FROM outbox") == [("stuck_file",)]
