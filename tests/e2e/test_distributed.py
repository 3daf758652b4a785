"""A real distributed run: API server, scheduler, DAG processor and two Celery workers on this
machine (scripts/distributed_run.py), on PostgreSQL and Redis; then the same with worker1 killed
in the middle of its batches. Each test takes a few minutes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parents[2]


def run_script(*args: str, timeout: float) -> tuple[int, dict[str, Any], str]:
    """Run the script; its exit code, its JSON summary (last line) and its whole output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.distributed_run", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM: the script stops what it started and drops its databases before exiting.
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"distributed_run.py took more than {timeout} s:\n{out[-6000:]}", pytrace=False)
    if proc.returncode == 2:
        pytest.fail(f"distributed_run.py lacks a server:\n{out[-3000:]}", pytrace=False)
    lines = out.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        summary = {}
    return proc.returncode, summary, out


def test_files_spread_over_two_workers_load_exactly_once():
    code, summary, out = run_script("--files", "100", "--merchants", "10", timeout=1500)

    assert code == 0 and summary.get("ok"), out[-8000:]
    assert summary["run_state"] == "success"
    assert summary["files"] == 100 and summary["merchants"] == 10
    assert summary["loaded_imports"] == 100
    assert summary["review_requests"] == summary["expected_review_requests"] > 0
    assert summary["other_imports"] == {}
    assert summary["mapped_tasks"] >= 10
    workers = summary["tasks_per_worker"]
    assert workers["worker1"].get("success", 0) >= 1, workers
    assert workers["worker2"].get("success", 0) >= 1, workers
    assert sum(w.get("success", 0) for w in workers.values()) == summary["mapped_tasks"]
    # Each worker loaded Great Expectations when it started: no task imported it again.
    assert summary["great_expectations"] == {"preloaded": summary["mapped_tasks"]}


def test_tasks_of_a_killed_worker_finish_on_the_other_exactly_once():
    # Files of 4,000 rows and more (over 256 KiB) are validated one by one: a batch then lasts
    # long enough to be caught half done (small files validated together load in a blink).
    code, summary, out = run_script(
        "--files", "40", "--merchants", "10", "--copies", "1000", "--kill-worker", timeout=2100
    )

    assert code == 0 and summary.get("ok"), out[-8000:]
    assert summary["run_state"] == "success"
    killed = summary["killed"]
    assert killed["worker"] == "worker1" and killed["tasks"]
    # worker1 died in the middle of a batch: some of its files were loaded, not all.
    assert any(0 < t["files_loaded_before"] < t["files"] for t in killed["tasks"]), killed
    assert {t["map_index"] for t in killed["tasks"]} <= set(summary["retried_tasks"])
    workers = summary["tasks_per_worker"]
    assert workers["worker1"].get("failed", 0) == len(killed["tasks"]), workers
    assert workers["worker2"].get("success", 0) >= len(killed["tasks"]), workers
    # Every file loaded once, the half-done batches included; and nothing else recorded: a
    # file whose load committed just before the kill, but which was not moved yet, is still in
    # the killed run's claim, which the retry takes over and finishes (no already_imported row).
    assert summary["loaded_imports"] == 40
    assert summary["review_requests"] == summary["expected_review_requests"] > 0
    assert summary["other_imports"] == {}
