"""The README's UI command for real: ``scripts/ui.sh`` runs the whole of Airflow on this machine.

``scripts/ui.sh --port <free port>`` runs in a process group of its own, as a terminal starts
it, on a temporary ``AIRFLOW_HOME`` and data folder (never the developer's ``.airflow/`` and
``data/``), so its first start loads the demo data (scripts/demo.sh). Then: Airflow's health is
all green, the DAGs are listed, a run of ``orders_backfill`` triggered as the Params form of
Airflow's UI triggers it imports a file dropped in the demo merchant's upload folder, and Ctrl-C
(SIGINT to its process group) stops every process it started. Last, a second start on the same
folders has its scheduler killed: ui.sh stops the rest and fails naming it. The tests run in this
order; with Airflow's own timeouts the module takes one to a few minutes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.kit.factories import drop, sample_for_yesterday
from tests.kit.processes import group_alive, poll
from tests.kit.ui_command import (
    UiCommand,
    describe,
    home_processes,
    running,
    session_processes,
    sessions_of,
    start_ui,
)

#: A run of orders_backfill, from the trigger to its end state.
RUN_SECONDS = 300.0
#: ui.sh's stop: SIGINT, SIGTERM and SIGKILL to every process of its services' sessions, 20 + 10
#: + 5 s at most.
STOP_SECONDS = 90.0
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
DEMO_MERCHANTS = {"demo-website", "demo-store", "demo-products", "demo-store-products"}
#: Unpaused by ui.sh (orders_upload_import too, when it exists), and left paused.
UNPAUSED = {
    "orders_backfill",
    "orders_upload_ingest",
    "review_request_events",
    "review_notifications",
}
PAUSED = {"orders_sftp_ingest", "review_data_retention"}
MERCHANT = "demo-website"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folders of the module's ui.sh starts (AIRFLOW_HOME, data, outputs)."""
    return tmp_path_factory.mktemp("ui-command")


@pytest.fixture(scope="module")
def ui(root: Path) -> Iterator[UiCommand]:
    """The module's first ``scripts/ui.sh``, running."""
    with running(start_ui(root)) as command:
        yield command


def test_the_first_start_loads_the_demo_data(ui: UiCommand) -> None:
    """An empty warehouse: ui.sh runs scripts/demo.sh into the data folder it was given: the
    orders, then an event file for some of their requests."""
    assert "the warehouse is empty: loading the demo data" in ui.output()
    with contextlib.closing(sqlite3.connect(ui.data_dir / "warehouse.db")) as db:
        rows = db.execute("SELECT merchant_id, source, status FROM imports").fetchall()
        files = db.execute("SELECT file_name, status FROM event_files").fetchall()
        lives = db.execute(
            "SELECT status, count(*) FROM review_requests WHERE request_id IN "
            "(SELECT request_id FROM delivery_events) GROUP BY status"
        ).fetchall()
    assert {(m, "upload", "loaded") for m in DEMO_MERCHANTS} <= set(rows)
    # Then the mailer's events of some of those requests, through review_request_events.
    assert [status for _, status in files] == ["processed"], files
    # Two delivered, one reviewed, one bounced, one delivered then unsubscribed.
    assert dict(lives) == {"delivered": 3, "reviewed": 1, "not_delivered": 1}
    assert (ui.data_dir / "events" / "reports" / f"{files[0][0]}.json").is_file()
    assert (ui.data_dir / "events" / "processed" / files[0][0]).is_file()


def test_airflow_health_is_all_green(ui: UiCommand) -> None:
    """Every component of /api/v2/monitor/health is healthy, each from a process of its own."""
    response = httpx.get(f"{ui.base_url}/api/v2/monitor/health", timeout=30)
    assert response.status_code == 200
    health = response.json()
    assert {name: health[name]["status"] for name in COMPONENTS} == dict.fromkeys(
        COMPONENTS, "healthy"
    ), health
    below = {child.pid for child in psutil.Process(ui.proc.pid).children(recursive=True)}
    ui.sessions |= sessions_of(below | {ui.proc.pid})
    # The API server retitles itself "airflow api_server -- ...".
    commands = describe(below).replace("_", "-")
    for service in SERVICES:
        assert f"airflow {service}" in commands, f"no airflow {service}:\n{commands}"


def test_the_dags_are_listed_and_the_hand_run_ones_unpaused(ui: UiCommand) -> None:
    """/api/v2/dags lists every DAG, none fails to import; ui.sh unpaused the right ones."""
    response = ui.call("GET", "/api/v2/dags", params={"limit": 100})
    assert response.status_code == 200, response.text
    paused = {dag["dag_id"]: dag["is_paused"] for dag in response.json()["dags"]}
    unpaused = UNPAUSED | ({"orders_upload_import"} & paused.keys())
    expected = {**dict.fromkeys(PAUSED, True), **dict.fromkeys(unpaused, False)}
    assert {dag_id: paused.get(dag_id) for dag_id in expected} == expected
    errors = ui.call("GET", "/api/v2/importErrors").json()
    assert errors["total_entries"] == 0, errors
    imports = ui.call("GET", "/review-ingest/api/imports")
    assert imports.status_code == 200 and imports.json()["total"] >= len(DEMO_MERCHANTS)


def trigger_as_the_form_does(ui: UiCommand, conf: dict[str, Any]) -> str:
    """``POST /api/v2/dags/orders_backfill/dagRuns`` with the body of Airflow 3.3's trigger form
    (its logical date field holds the current time; empty run id and note are left out); the
    run's id."""
    body = {
        "conf": conf,
        "logical_date": dt.datetime.now(dt.UTC).isoformat(),
        "data_interval_start": None,
        "data_interval_end": None,
        "partition_key": None,
    }
    response = ui.call("POST", "/api/v2/dags/orders_backfill/dagRuns", json=body)
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def test_the_backfill_form_starts_a_run_that_imports(ui: UiCommand) -> None:
    """A file in the demo merchant's upload folder, the form's Params with dry_run off: the
    scheduler runs it (LocalExecutor) and the warehouse holds the import, source backfill."""
    dag = ui.call("GET", "/api/v2/dags/orders_backfill").json()
    # The form would unpause it ("Unpause on trigger", checked): ui.sh must have done it already.
    assert dag["is_paused"] is False
    folder = ui.data_dir / "uploads" / MERCHANT
    # Modified in the future: orders_upload_ingest (unpaused) leaves a file alone until it is
    # 120 s old, so that the backfill, not a scheduled run, imports it whatever the machine's load.
    drop(folder, "backfill-q3.csv", sample_for_yesterday("website"), age_seconds=-3600)
    params = {"merchant_id": MERCHANT, "file": "backfill-q3.csv", "source": "upload"}
    run_id = trigger_as_the_form_does(ui, {**params, "dry_run": False, "send_now": False})

    def state() -> str:
        path = f"/api/v2/dags/orders_backfill/dagRuns/{run_id}"
        return ui.call("GET", path).json()["state"]

    final = poll(state, lambda s: s in ("success", "failed"), timeout=RUN_SECONDS, every=1.0)
    assert final == "success", f"run {run_id}: {final}\n{ui.service_log('scheduler')}"
    with contextlib.closing(sqlite3.connect(ui.data_dir / "warehouse.db")) as db:
        rows = db.execute(
            "SELECT source, status, total_rows, valid_rows, brand_requests FROM imports"
            " WHERE merchant_id = ? AND file_name = ?",
            (MERCHANT, "backfill-q3.csv"),
        ).fetchall()
    assert len(rows) == 1, rows
    source, status, total, valid, requests = rows[0]
    assert (source, status) == ("backfill", "loaded")
    assert total == valid > 0 and requests > 0
    assert not (folder / "backfill-q3.csv").exists()


def test_ctrl_c_stops_every_process(ui: UiCommand) -> None:
    """SIGINT to ui.sh's process group, as Ctrl-C: it exits 0 within the bound and leaves no
    process of its group, of its services' sessions (workers, tasks) or of its AIRFLOW_HOME."""
    below = {child.pid for child in psutil.Process(ui.proc.pid).children(recursive=True)}
    ui.sessions |= sessions_of(below | {ui.proc.pid})
    before = home_processes(ui.home) | session_processes(ui.sessions)
    # ui.sh, the four services, the executor's workers: each service in a session of its own.
    assert len(ui.sessions) > len(SERVICES) and len(before) > len(SERVICES), describe(before)
    started = time.monotonic()
    os.killpg(ui.proc.pid, signal.SIGINT)
    try:
        code = ui.proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ui.sh still runs {STOP_SECONDS:.0f} s after SIGINT:\n{ui.output()[-3000:]}")
    took = time.monotonic() - started
    assert code == 0, ui.output()[-3000:]
    assert "ui: stopped" in ui.output()
    assert not group_alive(ui.proc)
    left = poll(
        lambda: home_processes(ui.home) | session_processes(ui.sessions),
        lambda pids: not pids,
        timeout=2.0,
    )
    assert not left, f"left after {took:.0f} s:\n{describe(left)}"


def test_a_service_that_dies_stops_the_others(ui: UiCommand, root: Path) -> None:
    """A second start on the same folders (no demo load, same login), its scheduler killed:
    ui.sh stops the other services and exits non-zero naming the scheduler."""
    with running(start_ui(root, "ui-again.log")) as again:
        assert "loading the demo data" not in again.output()
        assert again.token()
        below = {child.pid for child in psutil.Process(again.proc.pid).children(recursive=True)}
        again.sessions |= sessions_of(below | {again.proc.pid})
        scheduler = next(
            pid for pid in below if "airflow scheduler" in " ".join(psutil.Process(pid).cmdline())
        )
        os.kill(scheduler, signal.SIGKILL)
        try:
            code = again.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ui.sh still runs after its scheduler died:\n{again.output()[-3000:]}")
        assert code != 0
        assert "ui: airflow scheduler exited" in again.output()
        left = poll(
            lambda: home_processes(again.home) | session_processes(again.sessions),
            lambda pids: not pids,
            timeout=2.0,
        )
        assert not left, describe(left)
