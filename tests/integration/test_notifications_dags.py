"""Notifications in real DAG runs (``dag.test()``), sent through the Airflow connection
``smtp_default`` to a real SMTP server on loopback: the merchants' reports and the data team's
digest after an upload run, a failed run's digest, the stuck-file alert and the outbox flush of
``review_notifications``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import drop, sample_for_yesterday, write_merchants
from tests.kit.smtp import SmtpServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.airflow

CUSTOMER = "jane.secret@example.org"
STAFF = "ops@shop-web.example.com"
TEAM = "data-team@example.com"


@pytest.fixture
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, smtp_server: SmtpServer
) -> Path:
    data = tmp_path / "data"
    merchants = write_merchants(
        tmp_path / "merchants.yaml",
        {
            "shop-web": {"template": "website", "notify": f"[{STAFF}]"},
            "shop-quiet": "website",
        },
    )
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(data))
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_server.airflow_conn_json())
    monkeypatch.setenv("REVIEW_INGEST_ALERT_EMAILS", TEAM)
    return data


def _with_a_bad_row(sample: str) -> str:
    """The sample with one more row whose order_date holds a customer's address."""
    header, first, *rest = sample.splitlines()
    bad = first.split(";")
    bad[0], bad[4] = "WEB-999999", CUSTOMER
    return "\n".join([header, first, *rest, ";".join(bad)]) + "\n"


def test_an_upload_run_mails_each_merchant_its_report_and_the_team_one_digest(
    airflow_db, data_dir, warehouse_url, smtp_server
):
    uploads = data_dir / "uploads"
    drop(uploads / "shop-web", "orders.csv", _with_a_bad_row(sample_for_yesterday("website")))
    drop(uploads / "shop-web", "comma.csv", "order_ref,email,lastname,firstname,order_date\n")
    drop(uploads / "shop-quiet", "orders.csv", sample_for_yesterday("website"))

    run = run_dag("orders_upload_ingest")

    assert run.state == "success", "a rejected file is a normal outcome"
    received = smtp_server.wait_for(3)
    reports = sorted((m for m in received if m.recipients == (STAFF,)), key=lambda m: m.subject)
    assert [m.subject.split(": ")[1].split(" ")[:2] for m in reports] == [
        ["comma.csv", "rejected"],
        ["orders.csv", "loaded"],
    ], "one report per file of the merchant with a notify list; none for shop-quiet"
    loaded = reports[1]
    assert "Review requests created: 5" in loaded.body
    lines = loaded.attachments["errors.csv"].splitlines()
    assert lines[0] == "line;column;code;message"
    assert len(lines) == 2 and lines[1].startswith("7;order_date;invalid_date;")
    (digest,) = [m for m in received if m.recipients == (TEAM,)]
    assert "comma.csv: wrong_separator" in digest.body
    assert "orders_upload_ingest" in digest.subject
    assert len(received) == 3, [m.subject for m in received]
    for message in received:
        assert CUSTOMER not in message.raw.decode("utf-8", "replace")
    assert query(warehouse_url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]


def test_a_run_with_no_rejection_and_no_failure_sends_no_digest(
    airflow_db, data_dir, warehouse_url, smtp_server
):
    drop(data_dir / "uploads" / "shop-quiet", "orders.csv", sample_for_yesterday("website"))

    assert run_dag("orders_upload_ingest").state == "success"

    assert smtp_server.received == []
    assert query(warehouse_url, "SELECT count(*) FROM outbox") == [(0,)]


def test_a_failed_run_stays_failed_and_its_digest_names_the_failed_tasks(
    airflow_db, data_dir, warehouse_url, smtp_server, monkeypatch
):
    """A usage error fails the backfill at once; the teardown still mails the digest and
    leaves the run failed."""
    run = run_dag("orders_backfill", {"merchant_id": "nobody", "file": "x.csv", "dry_run": False})

    assert run.state == "failed"
    (digest,) = smtp_server.wait_for(1)
    assert digest.recipients == (TEAM,)
    assert "import_backfill_file: failed" in digest.body


def test_review_notifications_tells_a_stuck_upload_once_and_sends_what_waits(
    airflow_db, data_dir, warehouse_url, smtp_server, monkeypatch
):
    monkeypatch.setenv("REVIEW_INGEST_STUCK_MINUTES", "60")
    drop(data_dir / "uploads" / "shop-web", "forgotten.csv", "x", age_seconds=2 * 3600)
    drop(data_dir / "uploads" / "shop-web", "fresh.csv", "x", age_seconds=600)

    assert run_dag("review_notifications").state == "success"
    assert run_dag("review_notifications").state == "success"

    (alert,) = smtp_server.wait_for(1)
    assert alert.recipients == (TEAM,)
    assert "forgotten.csv" in alert.subject and "upload folder" in alert.subject
    assert "fresh.csv" not in alert.text
    rows = query(warehouse_url, "SELECT kind, attempts, sent_at IS NOT NULL FROM outbox")
    assert rows == [("stuck_file", 1, True)], "one alert across two checks"
    touched = data_dir / "uploads" / "shop-web" / "forgotten.csv"
    stamp = time.time() - 3 * 3600
    os.utime(touched, (stamp, stamp))

    assert run_dag("review_notifications").state == "success"

    assert len(smtp_server.wait_for(2)) == 2, "modified again: told again"
    assert json.loads(query(warehouse_url, "SELECT recipients FROM outbox")[0][0]) == [TEAM]
