"""``airflow dags test`` as an operator runs it, in a process of its own with a private
``AIRFLOW_HOME``: the merchant's report and the data team's digest go through the connection
``smtp_default`` (``AIRFLOW_CONN_SMTP_DEFAULT``) to a real SMTP server on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.kit.airflow_env import airflow_conn_json, airflow_settings, migrate_metadata, without_own
from tests.kit.factories import drop, sample_for_yesterday, write_merchants
from tests.kit.paths import AIRFLOW, REPO
from tests.kit.processes import log_tail, run_group
from tests.kit.smtp import SmtpServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.airflow

STAFF = "ops@shop-web.example.com"
TEAM = "data-team@example.com"


def test_airflow_dags_test_sends_the_runs_mails_through_smtp_default(
    tmp_path: Path, smtp_server: SmtpServer
):
    data = tmp_path / "data"
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    merchants = write_merchants(
        tmp_path / "merchants.yaml", {"shop-web": {"template": "website", "notify": f"[{STAFF}]"}}
    )
    drop(data / "uploads" / "shop-web", "orders.csv", sample_for_yesterday("website"))
    drop(data / "uploads" / "shop-web", "comma.csv", "order_ref,email,lastname\n")
    env = {
        **without_own(os.environ),
        **airflow_settings(tmp_path / "airflow"),
        "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_server.airflow_conn_json(),
        "REVIEW_INGEST_DATA_DIR": str(data),
        "REVIEW_INGEST_MERCHANTS": str(merchants),
        "REVIEW_INGEST_ALERT_EMAILS": TEAM,
    }
    log = tmp_path / "dags-test.log"
    migrate_metadata(env, tmp_path / "migrate.log")

    code = run_group([str(AIRFLOW), "dags", "test", "orders_upload_ingest"], log, 600, env, REPO)

    assert code == 0, log_tail(log)
    received = smtp_server.wait_for(3)
    assert sorted(m.recipients for m in received) == [(TEAM,), (STAFF,), (STAFF,)]
    assert all(m.envelope_from == "review-ingest@example.test" for m in received)
    (digest,) = [m for m in received if m.recipients == (TEAM,)]
    assert "shop-web / comma.csv: wrong_separator" in digest.body
    assert query(warehouse_url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
