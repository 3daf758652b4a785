"""Faults at every step of a file's life (issue 8): the pipeline is killed for real, SIGKILL of
the process doing the work, and the next run must leave every file loaded exactly once (one
``loaded`` imports row, its requests once), its reports and its files on the SFTP server
consistent, and nothing lost or stuck in staging or in a claim. Then PostgreSQL stopped in the
middle of a run, the SFTP server stopped during a download, a full data folder, and a killed
test run's sshd.

The work runs in a child process (tests/kit/pipeline_child.py). The kill in the middle of a
COPY comes from outside: the test blocks the COPY on a lock it holds, sees it waiting in
``pg_stat_activity``, and kills the child. The other points last microseconds between two calls:
there the child kills itself through a test hook wrapping the real function (the list is in
pipeline_child's docstring). Nothing sleeps to hit a window: every wait polls a condition with a
bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from review_ingest.pipeline import failures
from review_ingest.sources import claims, sftp
from review_ingest.sources.claims import process_alive, process_start
from review_ingest.tasks import sftp_ingest, upload_ingest
from tests.fixtures.ingest_checks import (
    assert_loaded_once,
    claim_entries,
    configure,
    imports_of,
    leftovers,
    orders_file,
)
from tests.kit import pipeline_child, sshd
from tests.kit.airflow_env import airflow_conn_json
from tests.kit.factories import drop
from tests.kit.pg_cluster import throwaway_cluster
from tests.kit.processes import wait_for
from tests.kit.sshd import SftpMerchant, SftpServer

pytestmark = pytest.mark.faults

ORDERS = 40
#: The order the holder's lock blocks: the COPY has written the rows sorted before it.
BLOCKED_ORDER = "A-00020"
OLD = time.time() - 3600
MERCHANTS = {"acme": "website", "beta": "website"}

INGEST_UPLOADS = "review_ingest.tasks.upload_ingest:ingest_uploads"


def kill_child(tmp_path: Path, kill_at: str, target: str, *args) -> None:
    child = pipeline_child.start(target, *args, out=tmp_path / "killed.json", kill_at=kill_at)
    assert child.wait() == -signal.SIGKILL, f"{child.result()}\n{child.log()}"


def drop_two(data: Path) -> dict[str, tuple[str, bytes]]:
    """One file for each of two merchants: the killed run was on the first one."""
    files = {"acme": ("a.csv", orders_file("A", ORDERS)), "beta": ("b.csv", orders_file("B", 5))}
    for age, (merchant_id, (name, content)) in enumerate(files.items()):
        drop(data / "uploads" / merchant_id, name, content, age_seconds=900 - age)
    return files


def next_run_loads_each_once(url: str, data: Path, files: dict[str, tuple[str, bytes]]) -> None:
    batches = upload_ingest.plan_upload_batches()
    results = [r for batch in batches for r in upload_ingest.ingest_uploads(batch, url)]
    assert sorted((r["file_name"], r["status"]) for r in results) == sorted(
        (name, "loaded") for name, _ in files.values()
    ), "each file counted once, as loaded"
    for merchant_id, (name, content) in files.items():
        requests = ORDERS if merchant_id == "acme" else 5
        assert_loaded_once(url, data, merchant_id, name, content, requests)


# -- uploads: killed at each step ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("kill_at", ["during_validation", "after_commit", "before_move"])
def test_upload_run_killed_at_a_step_then_the_next_run_loads_every_file_once(
    tmp_path, monkeypatch, pg_url, kill_at
):
    data = configure(monkeypatch, tmp_path, pg_url, MERCHANTS)
    files = drop_two(data)
    (batch,) = upload_ingest.plan_upload_batches()

    kill_child(tmp_path, kill_at, INGEST_UPLOADS, batch, pg_url)

    committed = [s for _, _, s in imports_of(pg_url, "acme")]
    assert committed == ([] if kill_at == "during_validation" else ["loaded"])
    # A run claims its whole batch before validating its small files together.
    held = sorted(c.name for c in claims.all_claims(data))
    assert held == ["a.csv", "b.csv"], "held by the dead run"
    next_run_loads_each_once(pg_url, data, files)


@contextmanager
def lock_on_order(url: str, merchant_id: str, order_ref: str) -> Iterator[psycopg.Connection]:
    """An open transaction holding a request for ``order_ref``: a COPY of the same proof waits
    for it (on the unique index) after writing the rows sorted before it."""
    holder = psycopg.connect(url.replace("+psycopg", ""))
    try:
        holder.execute(
            "INSERT INTO imports (import_id, merchant_id, source, file_name, sha256, size_bytes,"
            " template, status, rejection_code, received_at, processed_at) VALUES ('holder', %s,"
            " 'upload', 'holder.csv', repeat('0', 64), 1, 'website', 'rejected',"
            " 'existing_proofs', now(), now())",
            (merchant_id,),
        )
        holder.execute(
            "INSERT INTO review_requests (import_id, merchant_id, request_type, order_ref, email,"
            " firstname, lastname, order_date, scheduled_at, status, created_at) VALUES"
            " ('holder', %s, 'brand', %s, 'holder@example.com', 'H', 'H', current_date, now(),"
            " 'scheduled', now())",
            (merchant_id, order_ref),
        )
        yield holder
    finally:
        with contextlib.suppress(psycopg.Error):  # the server may have been stopped under it
            holder.rollback()
        holder.close()


def blocked_copy(url: str) -> int | None:
    """The backend of a COPY waiting for a lock in this database, if any."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'COPY%%' AND wait_event_type = 'Lock'"
        ).fetchone()
    return row[0] if row else None


def backend_gone(url: str, pid: int) -> bool:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        found = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return found.fetchone()[0] == 0


@pytest.mark.postgres
def test_upload_run_killed_in_the_middle_of_its_copy(tmp_path, monkeypatch, pg_url):
    data = configure(monkeypatch, tmp_path, pg_url, MERCHANTS)
    files = drop_two(data)
    (batch,) = upload_ingest.plan_upload_batches()

    with lock_on_order(pg_url, "acme", BLOCKED_ORDER):
        child = pipeline_child.start(INGEST_UPLOADS, batch, pg_url, out=tmp_path / "copy.json")
        backend = wait_for("the child's COPY to wait on the lock", lambda: blocked_copy(pg_url))
        child.kill()
        assert child.wait() == -signal.SIGKILL
    wait_for("the killed client's backend to end", lambda: backend_gone(pg_url, backend))

    assert imports_of(pg_url, "acme") == [], "nothing of the half-done COPY is left"
    next_run_loads_each_once(pg_url, data, files)


# -- PostgreSQL stopped in the middle of a run --------------------------------------------------


@pytest.mark.postgres
def test_postgres_stopped_in_the_middle_of_a_run(tmp_path, monkeypatch):
    """On a throw-away cluster of this test's own: the shared server serves other tests."""
    with throwaway_cluster() as pg:
        data = configure(monkeypatch, tmp_path, pg.url, MERCHANTS)
        files = drop_two(data)
        (batch,) = upload_ingest.plan_upload_batches()

        with lock_on_order(pg.url, "acme", BLOCKED_ORDER):
            child = pipeline_child.start(INGEST_UPLOADS, batch, pg.url, out=tmp_path / "down.json")
            wait_for("the child's COPY to wait on the lock", lambda: blocked_copy(pg.url))
            pg.stop("immediate")
            assert child.wait() == 1, child.log()
        error = child.result()["error"]

        assert error.startswith("BatchFailed: 2 file(s) failed")
        assert "merchant acme file 'a.csv'" in error and "merchant beta file 'b.csv'" in error
        assert "holder@example.com" not in error
        for merchant_id, (name, _) in files.items():
            assert not (data / "processed" / merchant_id / name).exists()
            waiting = [c.name for c in claims.claimable(data, merchant_id)]
            back = (data / "uploads" / merchant_id / name).is_file()
            assert waiting == [name] or (back and waiting == []), "the file stays, claimable"

        pg.start()
        next_run_loads_each_once(pg.url, data, files)


# -- a full data folder -------------------------------------------------------------------------


@contextmanager
def full_tmpfs(folder: Path) -> Iterator[Path]:
    """A 1 MB tmpfs on ``folder``, filled up by a file ``filler`` (removed to make room)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    try:
        yield folder / ".filler"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(filler: Path) -> None:
    with filler.open("wb", buffering=0) as out, pytest.raises(OSError, match="No space left"):
        while True:
            out.write(b"\0" * 4096)


@pytest.mark.postgres
def test_a_full_reports_folder_after_the_commit(tmp_path, monkeypatch, pg_url):
    """The commit is done when the reports cannot be written: the task fails naming the file,
    which stays claimable; with room again, the next run finishes that import."""
    data = configure(monkeypatch, tmp_path, pg_url)
    content = orders_file("F", ORDERS)
    drop(data / "uploads" / "acme", "orders.csv", content)
    with full_tmpfs(data / "reports") as filler:
        fill(filler)
        with pytest.raises(failures.BatchFailed) as failed:
            upload_ingest.ingest_uploads(upload_ingest.plan_upload_batches()[0], pg_url)
        assert "merchant acme file 'orders.csv'" in str(failed.value)
        assert "No space left on device" in str(failed.value)
        [(committed, _, status)] = imports_of(pg_url, "acme")
        assert status == "loaded"
        assert [c.name for c in claims.claimable(data, "acme")] == ["orders.csv"]

        filler.unlink()
        [result] = upload_ingest.ingest_uploads(upload_ingest.plan_upload_batches()[0], pg_url)
        assert (result["status"], result["import_id"]) == ("loaded", committed)
        assert_loaded_once(pg_url, data, "acme", "orders.csv", content, ORDERS)


@pytest.mark.postgres
def test_a_full_data_folder_before_anything(tmp_path, monkeypatch, pg_url):
    """No room even for the claim: the file stays in its upload folder, nothing is recorded."""
    data = tmp_path / "data"
    content = orders_file("G", 5)
    with full_tmpfs(data) as filler:
        configure(monkeypatch, tmp_path, pg_url)
        drop(data / "uploads" / "acme", "orders.csv", content)
        fill(filler)
        with pytest.raises(failures.BatchFailed) as failed:
            upload_ingest.ingest_uploads(upload_ingest.plan_upload_batches()[0], pg_url)
        assert "merchant acme file 'orders.csv'" in str(failed.value)
        assert "No space left on device" in str(failed.value)
        assert imports_of(pg_url, "acme") == []
        assert (data / "uploads" / "acme" / "orders.csv").read_bytes() == content
        assert claim_entries(data) == []

        # Room again, as an operator grows the volume (the Data Docs alone need a few MB).
        subprocess.run(["mount", "-o", "remount,size=64m", str(data)], check=True)
        upload_ingest.ingest_uploads(upload_ingest.plan_upload_batches()[0], pg_url)
        assert_loaded_once(pg_url, data, "acme", "orders.csv", content, 5)
        filler.unlink()


# -- SFTP: killed at each step ------------------------------------------------------------------


@pytest.fixture
def shop(sftp_server: SftpServer) -> SftpMerchant:
    return sftp_server.add_merchant("f_faults")


@pytest.fixture
def sftp_data(tmp_path, monkeypatch, sftp_server, shop, pg_url):
    conn_id = f"{shop.merchant_id}_sftp"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", sftp_server.airflow_conn_json(shop))
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(pg_url))
    extra = f"    sftp:\n      conn_id: {conn_id}\n      root: {shop.root}\n"
    return configure(monkeypatch, tmp_path, pg_url, {shop.merchant_id: "website"}, extra)


@pytest.fixture
def running(sftp_server: SftpServer) -> Iterator[SftpServer]:
    try:
        yield sftp_server
    finally:
        sftp_server.start()


def remote(shop: SftpMerchant, folder: str) -> list[str]:
    return sorted(p.name for p in shop.local(folder).iterdir())


def assert_published_once(
    server: SftpServer, shop: SftpMerchant, name: str, import_id: str, requests: int
) -> None:
    """On the server: the inbox emptied, the file once in processed/ with its own reports."""
    assert remote(shop, shop.inbox) == ["processed"]
    processed = f"{shop.inbox}/processed"
    assert remote(shop, processed) == [name, f"{name}.errors.csv", f"{name}.report.json"]
    report = json.loads(server.fetch(shop, f"{processed}/{name}.report.json"))
    assert (report["import_id"], report["status"], report["requests"]["brand"]) == (
        import_id,
        "loaded",
        requests,
    )
    assert "data_docs" not in report["validation"]


SFTP_KILL_POINTS = [
    "after_download",
    "during_validation",
    "after_commit",
    "before_publish",
    "during_publish",
    "after_publish",
]


@pytest.mark.sftp
@pytest.mark.postgres
@pytest.mark.parametrize("kill_at", SFTP_KILL_POINTS)
def test_sftp_run_killed_at_a_step_then_the_next_run_loads_once_and_publishes_once(
    tmp_path, sftp_server, shop, sftp_data, pg_url, kill_at
):
    content = orders_file("S", ORDERS)
    sftp_server.upload(shop, f"{shop.inbox}/orders.csv", content, mtime=OLD)

    kill_child(
        tmp_path,
        kill_at,
        "review_ingest.tasks.sftp_ingest:collect_merchants",
        [shop.merchant_id],
        pg_url,
    )
    published = kill_at == "after_publish"
    assert ("orders.csv" in remote(shop, shop.inbox)) != published

    [result] = sftp_ingest.collect_merchants([shop.merchant_id], pg_url)["files"]

    import_id = assert_loaded_once(
        pg_url, sftp_data, shop.merchant_id, "orders.csv", content, ORDERS
    )
    assert (result["status"], result["import_id"]) == ("loaded", import_id)
    assert result["remote_path"] == f"{shop.inbox}/processed/orders.csv"
    assert_published_once(sftp_server, shop, "orders.csv", import_id, ORDERS)


@pytest.mark.sftp
@pytest.mark.postgres
@pytest.mark.parametrize("kill_at", ["during_validation", "after_commit", "during_publish"])
def test_sftp_task_of_two_merchants_killed_on_the_first_then_the_next_run_loads_each_once(
    tmp_path, monkeypatch, sftp_server, shop, pg_url, kill_at
):
    """Issue 9: a collect_merchants task holds several merchants' files at once (downloaded,
    claimed, validated together). Killed on the first merchant's file, it leaves the first
    file's import done or not and the second file claimed but not imported; the next run
    finishes or redoes each, loads each once and publishes each once on its own server."""
    second = sftp_server.add_merchant("f_second")
    for merchant in (shop, second):
        conn_id = f"{merchant.merchant_id}_sftp"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", sftp_server.airflow_conn_json(merchant)
        )
    monkeypatch.setenv("AIRFLOW_CONN_REVIEW_WAREHOUSE", airflow_conn_json(pg_url))
    blocks = (
        f"    sftp:\n      conn_id: {shop.merchant_id}_sftp\n      root: {shop.root}\n"
        f"  {second.merchant_id}:\n    template: website\n"
        f"    sftp:\n      conn_id: {second.merchant_id}_sftp\n      root: {second.root}\n"
    )
    data = configure(monkeypatch, tmp_path, pg_url, {shop.merchant_id: "website"}, blocks)
    files = {shop: orders_file("S", ORDERS), second: orders_file("T", 5)}
    for merchant, content in files.items():
        sftp_server.upload(merchant, f"{merchant.inbox}/orders.csv", content, mtime=OLD)
    ids = [shop.merchant_id, second.merchant_id]

    kill_child(tmp_path, kill_at, "review_ingest.tasks.sftp_ingest:collect_merchants", ids, pg_url)
    assert "orders.csv" in remote(second, second.inbox), "the second file was not reached"

    result = sftp_ingest.collect_merchants(ids, pg_url)

    assert sorted((f["merchant_id"], f["status"]) for f in result["files"]) == [
        (shop.merchant_id, "loaded"),
        (second.merchant_id, "loaded"),
    ]
    for merchant, content in files.items():
        requests = ORDERS if merchant is shop else 5
        import_id = assert_loaded_once(
            pg_url, data, merchant.merchant_id, "orders.csv", content, requests
        )
        assert_published_once(sftp_server, merchant, "orders.csv", import_id, requests)


@pytest.mark.sftp
@pytest.mark.postgres
def test_sftp_server_stopped_during_a_download(running, shop, sftp_data, pg_url, monkeypatch):
    """The server dies once the first bytes arrived: nothing is claimed or loaded, the file
    stays on the server, the next run loads it once."""
    content = orders_file("D", 2000)
    running.upload(shop, f"{shop.inbox}/orders.csv", content, mtime=OLD)
    real_fetch = sftp._fetch

    class StopAtFirstBytes:
        def __init__(self, out):
            self.out, self.stopped = out, False

        def write(self, chunk):
            if not self.stopped:
                self.stopped = True
                running.stop()
            return self.out.write(chunk)

    def fetch(client, inbox, name, path, out):
        return real_fetch(client, inbox, name, path, StopAtFirstBytes(out))

    monkeypatch.setattr(sftp, "_fetch", fetch)
    with pytest.raises(sftp.TransportError, match="orders.csv"):
        sftp_ingest.collect_merchants([shop.merchant_id], pg_url)
    assert imports_of(pg_url, shop.merchant_id) == []
    assert leftovers(sftp_data) == []
    assert remote(shop, shop.inbox) == ["orders.csv"]

    monkeypatch.setattr(sftp, "_fetch", real_fetch)
    running.start()
    [result] = sftp_ingest.collect_merchants([shop.merchant_id], pg_url)["files"]
    assert_loaded_once(pg_url, sftp_data, shop.merchant_id, "orders.csv", content, 2000)
    assert_published_once(running, shop, "orders.csv", result["import_id"], 2000)


# -- a killed test run's sshd (issue 8.8) -------------------------------------------------------

SERVER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from tests.kit import sshd as f

    server = f.new_server() if sys.argv[1] == "owned" else f.SftpServer(f.new_workdir())
    server.add_merchant(sys.argv[2])
    server.start()
    print(json.dumps({"workdir": str(server.workdir), "sshd": server._proc.pid}), flush=True)
    sys.stdin.read()  # until the test ends it
    server.close()
    """
)
SESSION_TEST = "def test_a_session(sftp_server):\n    assert sftp_server.port\n"


def child_env() -> dict[str, str]:
    repo = pipeline_child.REPO
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "plugins"), str(repo)])}


def start_server_process(kind: str, merchant_id: str) -> tuple[subprocess.Popen, dict]:
    """A process holding an sshd as a test session does (``owned``: with an owner file;
    ``legacy``: as fixtures before it wrote one)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, kind, merchant_id],
        cwd=pipeline_child.REPO,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line, f"the server process failed (exit {process.wait()})"
    return process, json.loads(line)


def user_exists(name: str) -> bool:
    return subprocess.run(["id", name], capture_output=True, check=False).returncode == 0


@pytest.mark.sftp
def test_a_new_session_removes_what_a_killed_run_left_and_nothing_live(sftp_server, tmp_path):
    """Two killed runs (one whose fixture wrote its owner, one of an older fixture) left their
    sshd listening, their folder and their user; another run is alive, and so is this one."""
    killed = [start_server_process(kind, f"z_killed_{kind}") for kind in ("owned", "legacy")]
    alive, live = start_server_process("owned", "z_alive")
    try:
        for process, _ in killed:
            process.kill()  # the pytest process dies: its sshd is orphaned
            process.wait()
        stale = [info for _, info in killed]
        orphans = {info["sshd"]: process_start(info["sshd"]) for info in stale}
        assert all(process_alive(pid, start) for pid, start in orphans.items())

        session = tmp_path / "test_session.py"
        session.write_text(SESSION_TEST)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
             "tests.fixtures.sftp_server", "--rootdir", str(tmp_path), str(session)],
            cwd=pipeline_child.REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

        for info in stale:
            assert not Path(info["workdir"]).exists()
        assert not any(process_alive(pid, start) for pid, start in orphans.items())
        assert not user_exists("ri_z_killed_owned") and not user_exists("ri_z_killed_legacy")
        assert Path(live["workdir"]).is_dir() and process_alive(live["sshd"], None)
        assert user_exists("ri_z_alive")
        assert sftp_server._proc.poll() is None and sftp_server.workdir.is_dir()
    finally:
        for process, _ in [*killed, (alive, live)]:
            if process.poll() is None:
                process.communicate("", timeout=30)  # closes its server
    sshd.cleanup_stale()
    assert not user_exists("ri_z_alive"), "its run ended: its user is not used any more"
