"""SFTP pickup end to end against a real OpenSSH sshd: merchants upload with the real ``sftp``
client, the pipeline loads each file once, moves it on the server with its reports, and faults
of the server never half-load a file."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from review_ingest.errors import PermanentError
from review_ingest.pipeline import sftp_inbox
from review_ingest.sources import sftp
from review_ingest.store import warehouse
from review_ingest.tasks import sftp_ingest
from tests.fixtures.airflow import run_dag
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import sample_for_yesterday
from tests.kit.sshd import SftpMerchant, SftpServer
from tests.kit.warehouse import query

pytestmark = pytest.mark.sftp
OLD = time.time() - 3600


@pytest.fixture
def shop(sftp_server: SftpServer) -> SftpMerchant:
    return sftp_server.add_merchant("p_acme")


@pytest.fixture
def other(sftp_server: SftpServer) -> SftpMerchant:
    return sftp_server.add_merchant("p_other")


@pytest.fixture
def setup(tmp_path, monkeypatch, sftp_server, shop, other, warehouse_url):
    """Two SFTP merchants in the merchants file, each with its own connection."""
    lines = ["merchants:"]
    for merchant, template in ((shop, "website"), (other, "store")):
        conn_id = f"{merchant.merchant_id}_sftp"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", sftp_server.airflow_conn_json(merchant)
        )
        lines += [
            f"  {merchant.merchant_id}:",
            f"    template: {template}",
            "    sftp:",
            f"      conn_id: {conn_id}",
            f"      root: {merchant.root}",
        ]
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("REVIEW_INGEST_MERCHANTS", str(merchants))
    monkeypatch.setenv("REVIEW_INGEST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REVIEW_INGEST_MIN_FILE_AGE_SECONDS", "120")
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(warehouse_url))
    warehouse.migrate(warehouse.engine_for(warehouse_url))
    return tmp_path / "data"


@pytest.fixture
def running(sftp_server: SftpServer):
    try:
        yield sftp_server
    finally:
        sftp_server.start()


def ls(server: SftpServer, merchant: SftpMerchant, folder: str) -> list[str]:
    done = server.sftp_batch(merchant, f'ls -1a "{folder}"\n')
    assert done.returncode == 0, done.stderr
    names = [n.strip() for n in done.stdout.splitlines() if not n.startswith("sftp>")]
    return sorted(n.rsplit("/", 1)[-1] for n in names if n.rsplit("/", 1)[-1] not in (".", ".."))


def requests_of(warehouse_url: str, merchant_id: str) -> int:
    return query(
        warehouse_url, "SELECT count(*) FROM review_requests WHERE merchant_id = :m", m=merchant_id
    )[0][0]


def test_uploaded_file_is_loaded_once_moved_and_reported(sftp_server, shop, setup, warehouse_url):
    sample = sample_for_yesterday("website").encode()
    sftp_server.upload(shop, f"{shop.inbox}/orders.csv", sample, mtime=OLD)
    for name in ("next.csv.part", "next.tmp", ".next.csv", "next.csv.filepart"):
        sftp_server.upload(shop, f"{shop.inbox}/{name}", b"order_ref;", mtime=OLD)
    sftp_server.upload(shop, f"{shop.inbox}/young.csv", sample)

    result = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)

    assert [(f["file_name"], f["status"]) for f in result["files"]] == [("orders.csv", "loaded")]
    assert requests_of(warehouse_url, shop.merchant_id) == 5
    assert query(warehouse_url, "SELECT source, file_name FROM imports") == [("sftp", "orders.csv")]
    assert ls(sftp_server, shop, shop.inbox) == sorted(
        [".next.csv", "next.csv.filepart", "next.csv.part", "next.tmp", "processed", "young.csv"]
    )
    processed = f"{shop.inbox}/processed"
    assert ls(sftp_server, shop, processed) == [
        "orders.csv",
        "orders.csv.errors.csv",
        "orders.csv.report.json",
    ]
    assert sftp_server.fetch(shop, f"{processed}/orders.csv") == sample
    report = json.loads(sftp_server.fetch(shop, f"{processed}/orders.csv.report.json"))
    assert (report["status"], report["source"], report["requests"]["brand"]) == (
        "loaded",
        "sftp",
        5,
    )
    errors = sftp_server.fetch(shop, f"{processed}/orders.csv.errors.csv").decode()
    assert errors == "line;column;code;message\n"
    assert (setup / "processed" / shop.merchant_id / "orders.csv").read_bytes() == sample

    again = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    assert again["files"] == []
    assert requests_of(warehouse_url, shop.merchant_id) == 5


def test_rejected_files_end_in_orders_rejected_with_their_report(
    sftp_server, shop, setup, warehouse_url
):
    sample = sample_for_yesterday("website")
    sftp_server.upload(shop, f"{shop.inbox}/a.csv", sample.encode(), mtime=OLD - 10)
    sftp_server.upload(shop, f"{shop.inbox}/b.csv", (sample + "\n").encode(), mtime=OLD)
    sftp_server.upload(shop, f"{shop.inbox}/c.csv", sample.replace(";", ",").encode(), mtime=OLD)

    result = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)

    by_name = {f["file_name"]: f for f in result["files"]}
    assert by_name["a.csv"]["status"] == "loaded"
    assert by_name["b.csv"]["rejection"] == "existing_proofs"
    assert by_name["c.csv"]["rejection"] == "wrong_separator"
    rejected = f"{shop.inbox}/rejected"
    assert ls(sftp_server, shop, rejected) == sorted(
        f"{n}{s}" for n in ("b.csv", "c.csv") for s in ("", ".errors.csv", ".report.json")
    )
    report = json.loads(sftp_server.fetch(shop, f"{rejected}/b.csv.report.json"))
    assert report["rejection"]["code"] == "existing_proofs"
    assert len(report["existing_proofs"]) == 5
    assert (setup / "rejected" / shop.merchant_id / "c.csv").is_file()


def test_each_merchant_file_lands_under_its_own_merchant(
    sftp_server, shop, other, setup, warehouse_url
):
    sftp_server.upload(
        shop, f"{shop.inbox}/orders.csv", sample_for_yesterday("website").encode(), mtime=OLD
    )
    sftp_server.upload(
        other, f"{other.inbox}/orders.csv", sample_for_yesterday("store").encode(), mtime=OLD
    )

    for merchant in (shop, other):
        sftp_ingest.collect_merchants([merchant.merchant_id], warehouse_url)

    assert requests_of(warehouse_url, shop.merchant_id) == 5
    assert requests_of(warehouse_url, other.merchant_id) == 4
    assert "orders.csv" in ls(sftp_server, other, f"{other.inbox}/processed")
    denied = sftp_server.sftp_batch(other, f'ls "{shop.inbox}"\n')
    assert denied.returncode != 0


def test_server_stopping_after_listing_loads_nothing_then_the_next_run_loads_once(
    running, shop, setup, warehouse_url, monkeypatch
):
    running.upload(
        shop, f"{shop.inbox}/orders.csv", sample_for_yesterday("website").encode(), mtime=OLD
    )
    real_list = sftp.list_ready

    def list_then_stop(*args, **kwargs):
        listed = real_list(*args, **kwargs)
        running.stop()
        return listed

    monkeypatch.setattr(sftp, "list_ready", list_then_stop)
    with pytest.raises(sftp.TransportError, match="orders.csv"):
        sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    assert query(warehouse_url, "SELECT count(*) FROM imports")[0][0] == 0

    monkeypatch.setattr(sftp, "list_ready", real_list)
    running.start()
    sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    assert requests_of(warehouse_url, shop.merchant_id) == 5


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_server_stopping_during_download_loads_nothing(running, shop, setup, warehouse_url):
    header, *rows = sample_for_yesterday("website").splitlines()
    many = [rows[0].replace("WEB-100231", f"BIG-{i}") for i in range(60_000)]
    data = ("\n".join([header, *many]) + "\n").encode()
    running.upload(shop, f"{shop.inbox}/big.csv", data, mtime=OLD)
    staging = sftp_inbox.staging_dir(shop.merchant_id)
    staging.mkdir(parents=True)
    done = threading.Event()

    def stop_when_bytes_arrive() -> None:
        while not done.is_set():
            if any(p.stat().st_size > 0 for p in staging.iterdir() if p.exists()):
                running.stop()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=stop_when_bytes_arrive)
    watcher.start()
    try:
        with pytest.raises(sftp.TransportError):
            sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    finally:
        done.set()
        watcher.join()
    assert query(warehouse_url, "SELECT count(*) FROM imports")[0][0] == 0
    assert list(staging.iterdir()) == []

    running.start()
    sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    assert requests_of(warehouse_url, shop.merchant_id) == 60_000


def test_move_failing_after_the_commit_is_finished_by_the_next_run(
    running, shop, setup, warehouse_url, monkeypatch
):
    running.upload(
        shop, f"{shop.inbox}/orders.csv", sample_for_yesterday("website").encode(), mtime=OLD
    )
    real_publish = sftp.publish

    def stop_then_publish(*args, **kwargs):
        running.stop()
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(sftp, "publish", stop_then_publish)
    with pytest.raises(sftp.TransportError):
        sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)
    first = query(warehouse_url, "SELECT import_id FROM imports WHERE status = 'loaded'")
    assert len(first) == 1 and requests_of(warehouse_url, shop.merchant_id) == 5

    monkeypatch.setattr(sftp, "publish", real_publish)
    running.start()
    result = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)

    # The next run finishes that import (issue 8.7): counted loaded, nothing recorded again.
    assert [(f["status"], f["import_id"]) for f in result["files"]] == [("loaded", first[0][0])]
    assert query(warehouse_url, "SELECT count(*) FROM imports")[0][0] == 1
    assert requests_of(warehouse_url, shop.merchant_id) == 5
    report = json.loads(running.fetch(shop, f"{shop.inbox}/processed/orders.csv.report.json"))
    assert (report["import_id"], report["status"]) == (first[0][0], "loaded")


@pytest.mark.airflow
def test_orders_sftp_ingest_dag_end_to_end(
    airflow_db, sftp_server, shop, other, setup, warehouse_url, monkeypatch
):
    """A real DAG run with the real retry settings. Both merchants share one collect_merchants
    task (issue 9); the second merchant's server refuses its key: the first merchant's files
    still come through, then the task fails at once (a refused key is a configuration error,
    not retried), naming the second merchant, and no session is left open on the server. The
    first merchant's three files come through one SSH connection: listing, downloads, reports
    and moves (issue 9: no per-file login)."""
    sample = sample_for_yesterday("website")
    for number in (1, 2, 3):
        data = sample.replace("WEB-", f"WEB{number}-").encode()
        sftp_server.upload(shop, f"{shop.inbox}/orders_{number}.csv", data, mtime=OLD)
    sftp_server.upload(
        other, f"{other.inbox}/orders.csv", sample_for_yesterday("store").encode(), mtime=OLD
    )
    wrong = json.loads(sftp_server.airflow_conn_json(other))
    wrong["extra"]["key_file"] = str(shop.key_path)
    monkeypatch.setenv("AIRFLOW_CONN_P_OTHER_SFTP", json.dumps(wrong))
    login = f"Accepted publickey for {shop.username} "
    logins_before = sftp_server.log_count(login)

    run = run_dag("orders_sftp_ingest")

    assert run.state == "failed"
    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    tries = {key: (ti.state, ti.try_number) for key, ti in tis.items()}
    assert tries[("summarize", -1)] == ("failed", 1), "the run's summary names the failed task"
    assert [v for (t, _), v in tries.items() if t == "collect_merchants"] == [("failed", 1)]
    assert tis[("collect_merchants", 0)].rendered_map_index == "p_acme, p_other"
    assert sftp_server.open_client_connections() == 0
    assert sftp_server.log_count(login, at_least=logins_before + 1) == logins_before + 1
    assert requests_of(warehouse_url, shop.merchant_id) == 15
    assert len(ls(sftp_server, shop, f"{shop.inbox}/processed")) == 9  # 3 files, 2 reports each
    assert requests_of(warehouse_url, other.merchant_id) == 0
    assert "orders.csv" in ls(sftp_server, other, other.inbox)
    # The index is built once, after every task, the failed one's too.
    assert tries[("build_data_docs_index", -1)] == ("success", 1)
    reports = [json.loads(p.read_text()) for p in (setup / "reports").glob("*/*/report.json")]
    index = (setup / "data_docs" / "index.html").read_text(encoding="utf-8")
    pages = {r["validation"]["data_docs"] for r in reports}
    assert pages and all(page in index for page in pages)


def test_small_files_of_an_inbox_share_one_validation_each_with_its_own_errors(
    sftp_server, shop, setup, warehouse_url
):
    """Issue 9: a merchant's files go through one Great Expectations run, not one each."""
    sample = sample_for_yesterday("website")
    first_email = sample.splitlines()[1].split(";")[1]
    files = {f"{prefix}.csv": sample.replace("WEB-", f"{prefix}-") for prefix in ("A", "B", "C")}
    files["B.csv"] = files["B.csv"].replace(first_email, "not-an-address", 1)
    for name, text in files.items():
        sftp_server.upload(shop, f"{shop.inbox}/{name}", text.encode(), mtime=OLD)

    result = sftp_ingest.collect_merchants([shop.merchant_id], warehouse_url)

    assert sorted((f["file_name"], f["status"]) for f in result["files"]) == [
        ("A.csv", "loaded"),
        ("B.csv", "loaded"),
        ("C.csv", "loaded"),
    ]
    reports = {
        p.parent.name: json.loads(p.read_text())
        for p in (setup / "reports" / shop.merchant_id).glob("*/report.json")
    }
    by_name = {r["file_name"]: r for r in reports.values()}
    assert [(e["line"], e["code"]) for e in by_name["B.csv"]["errors"]] == [(2, "invalid_email")]
    assert by_name["A.csv"]["errors"] == by_name["C.csv"]["errors"] == []
    [page] = {r["validation"]["data_docs"] for r in reports.values()}
    html = (setup / "data_docs" / page).read_text(encoding="utf-8")
    assert all(name in html and r["import_id"] in html for name, r in by_name.items())
    assert requests_of(warehouse_url, shop.merchant_id) == 14
    assert ls(sftp_server, shop, f"{shop.inbox}/processed") == sorted(
        f"{name}{suffix}" for name in files for suffix in ("", ".errors.csv", ".report.json")
    )


def same_template(setup_dir, shop: SftpMerchant, other: SftpMerchant) -> None:
    """Both merchants with template ``website`` (their connections are the fixture's)."""
    lines = ["merchants:"]
    for merchant in (shop, other):
        lines += [
            f"  {merchant.merchant_id}:",
            "    template: website",
            "    sftp:",
            f"      conn_id: {merchant.merchant_id}_sftp",
            f"      root: {merchant.root}",
        ]
    (setup_dir.parent / "merchants.yaml").write_text("\n".join(lines) + "\n")


def test_merchants_of_one_task_share_a_validation_each_file_its_own_merchant_and_errors(
    sftp_server, shop, other, setup, warehouse_url
):
    """Issue 9: the small files of a task's merchants go through one Great Expectations run;
    each merchant's files load under it, get their own errors and land on its own server."""
    same_template(setup, shop, other)
    sample = sample_for_yesterday("website")
    first_email = sample.splitlines()[1].split(";")[1]
    sftp_server.upload(shop, f"{shop.inbox}/a.csv", sample.encode(), mtime=OLD)
    bad = sample.replace("WEB-", "OTHER-").replace(first_email, "not-an-address", 1)
    sftp_server.upload(other, f"{other.inbox}/b.csv", bad.encode(), mtime=OLD)

    result = sftp_ingest.collect_merchants([shop.merchant_id, other.merchant_id], warehouse_url)

    assert result["merchants"] == [shop.merchant_id, other.merchant_id]
    assert sorted((f["merchant_id"], f["file_name"], f["status"]) for f in result["files"]) == [
        (shop.merchant_id, "a.csv", "loaded"),
        (other.merchant_id, "b.csv", "loaded"),
    ]
    assert requests_of(warehouse_url, shop.merchant_id) == 5
    assert requests_of(warehouse_url, other.merchant_id) == 4
    shown = json.loads(sftp_server.fetch(other, f"{other.inbox}/processed/b.csv.report.json"))
    assert [(e["line"], e["code"]) for e in shown["errors"]] == [(2, "invalid_email")]
    assert "a.csv" in ls(sftp_server, shop, f"{shop.inbox}/processed")
    reports = [json.loads(p.read_text()) for p in (setup / "reports").glob("*/*/report.json")]
    assert len(reports) == 2
    assert len({r["validation"]["data_docs"] for r in reports}) == 1


def test_an_unreachable_server_stops_only_its_merchant_and_is_named_after_the_others(
    sftp_server, shop, other, setup, warehouse_url, monkeypatch
):
    """A server that does not answer (a closed port on loopback), tried with the real attempts
    and pauses: the task's other merchant is collected, then the connection's error is raised,
    noted with its merchant, and retried by Airflow (not a configuration error)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    gone = json.loads(sftp_server.airflow_conn_json(other))
    gone["port"] = closed_port
    monkeypatch.setenv("AIRFLOW_CONN_P_OTHER_SFTP", json.dumps(gone))
    sftp_server.upload(
        shop, f"{shop.inbox}/orders.csv", sample_for_yesterday("website").encode(), mtime=OLD
    )

    with pytest.raises(sftp.TransportError, match="cannot connect") as raised:
        sftp_ingest.collect_merchants([other.merchant_id, shop.merchant_id], warehouse_url)

    assert not isinstance(raised.value, PermanentError)
    assert raised.value.__notes__ == [
        f"merchant {other.merchant_id}: its part of the task failed; the others were done"
    ]
    assert requests_of(warehouse_url, shop.merchant_id) == 5
    assert "orders.csv" in ls(sftp_server, shop, f"{shop.inbox}/processed")
    assert sftp_server.open_client_connections() == 0


def test_merchants_with_the_same_connection_share_one_login(
    sftp_server, shop, setup, warehouse_url
):
    """Two merchants whose folders the same login reaches (as with the deployment's single
    ``merchant_sftp`` connection): one SSH login for both, each its own files and reports."""
    second = f"{shop.root}/second"
    made = sftp_server.sftp_batch(shop, f'mkdir "{second}"\nmkdir "{second}/orders"\n')
    assert made.returncode == 0, made.stderr
    lines = ["merchants:"]
    for merchant_id, root in (("p_first", shop.root), ("p_second", second)):
        lines += [
            f"  {merchant_id}:",
            "    template: website",
            "    sftp:",
            f"      conn_id: {shop.merchant_id}_sftp",
            f"      root: {root}",
        ]
    (setup.parent / "merchants.yaml").write_text("\n".join(lines) + "\n")
    sample = sample_for_yesterday("website")
    sftp_server.upload(shop, f"{shop.inbox}/a.csv", sample.encode(), mtime=OLD)
    other_orders = sample.replace("WEB-", "SECOND-").encode()
    sftp_server.upload(shop, f"{second}/orders/b.csv", other_orders, mtime=OLD)
    login = f"Accepted publickey for {shop.username} "
    before = sftp_server.log_count(login)

    result = sftp_ingest.collect_merchants(["p_first", "p_second"], warehouse_url)

    assert sorted((f["merchant_id"], f["file_name"]) for f in result["files"]) == [
        ("p_first", "a.csv"),
        ("p_second", "b.csv"),
    ]
    assert sftp_server.log_count(login, at_least=before + 1) == before + 1
    assert requests_of(warehouse_url, "p_first") == requests_of(warehouse_url, "p_second") == 5
    assert "b.csv.report.json" in ls(sftp_server, shop, f"{second}/orders/processed")
    assert sftp_server.open_client_connections() == 0
