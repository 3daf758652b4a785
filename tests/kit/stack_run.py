"""A distributed run on the Airflow stack (``tests/kit/airflow_stack.py``) and its checks.

It drops order files over many merchants, triggers ``orders_upload_ingest`` and waits for the
run. With ``kill_worker``, once an ``ingest_batch`` task of worker1 has loaded some of its files
and not all, every process of worker1 is killed with SIGKILL, as when a machine dies: the
scheduler notices the missing heartbeats and the tasks are retried on worker2.

Checks: the run succeeded; every file is loaded exactly once (one ``loaded`` import per file,
the expected number of review requests, no request twice); every file is in ``processed/``; which
worker ran which ``ingest_batch`` task (both, without ``kill_worker``); that every task found
Great Expectations loaded by its worker (unless ``without_preload``). The last line printed is a
JSON summary. Whatever happens, the stack is released; its folder stays when a check fails or
with ``keep``.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kit import postgres
from tests.kit.airflow_stack import (
    WORKERS,
    RunFailed,
    Stack,
    StackOptions,
    Unavailable,
    check_servers,
    log,
)
from tests.kit.factories import Dropped, drop_files, merchant_ids, write_merchants
from tests.kit.processes import poll

#: Seconds between two progress lines while the run goes on.
REPORT_EVERY = 15.0
Try = dict[str, Any]


@dataclass(frozen=True)
class RunOptions:
    """What the run drops and does; ``stack``: how the stack is set up."""

    files: int = 120
    merchants: int = 10
    #: The sample's rows this many times in each file.
    copies: int = 1
    kill_worker: bool = False
    #: Files a worker1 ingest_batch task has loaded when worker1 is killed.
    kill_after_files: int = 3
    timeout: float = 1800.0
    keep: bool = False
    stack: StackOptions = field(default_factory=StackOptions)


# -- the checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imports:
    """What the warehouse holds after the run."""

    loaded: dict[tuple[str, str], int]
    other: dict[tuple[str, str, str], int]
    requests: int
    twice: int

    @classmethod
    def read(cls, stack: Stack) -> Imports:
        imports = stack.warehouse_query(
            "SELECT merchant_id, file_name, status, count(*) FROM imports"
            " GROUP BY merchant_id, file_name, status"
        )
        [(requests,)] = stack.warehouse_query("SELECT count(*) FROM review_requests")
        [(twice,)] = stack.warehouse_query(
            "SELECT count(*) FROM (SELECT 1 FROM review_requests"
            " GROUP BY merchant_id, order_ref, request_type, id_product"
            " HAVING count(*) > 1) AS t"
        )
        return cls(
            loaded={(m, f): n for m, f, s, n in imports if s == "loaded"},
            other={(m, f, s): n for m, f, s, n in imports if s != "loaded"},
            requests=requests,
            twice=twice,
        )

    def problems(self, dropped: list[Dropped]) -> list[str]:
        """Each file loaded exactly once, its requests once, nothing rejected."""
        found = []
        not_once = [
            f"{d.merchant_id}/{d.name}"
            for d in dropped
            if self.loaded.get((d.merchant_id, d.name), 0) != 1
        ]
        if not_once:
            found.append(f"{len(not_once)} file(s) not loaded exactly once: {not_once[:5]}")
        loaded = sum(self.loaded.values())
        if len(self.loaded) != len(dropped) or loaded != len(dropped):
            found.append(f"{loaded} loaded imports for {len(dropped)} files")
        expected = sum(d.requests for d in dropped)
        if self.requests != expected:
            found.append(f"{self.requests} review requests, expected {expected}")
        if self.twice:
            found.append(f"{self.twice} review request(s) present more than once")
        if any(s == "rejected" for _, _, s in self.other):
            found.append(f"rejected imports: {sorted(self.other)[:5]}")
        return found


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def processed_copies(data_dir: Path) -> dict[tuple[str, bytes], int]:
    """``(merchant, content) -> copies`` of the files in ``processed/``."""
    copies: dict[tuple[str, bytes], int] = {}
    for path in _files(data_dir / "processed"):
        key = (path.relative_to(data_dir / "processed").parts[0], path.read_bytes())
        copies[key] = copies.get(key, 0) + 1
    return copies


def file_problems(data_dir: Path, dropped: list[Dropped]) -> list[str]:
    """Every file in ``processed/``, none left in ``uploads/`` or put in ``rejected/``."""
    copies = processed_copies(data_dir)
    left = _files(data_dir / "uploads")
    rejected = _files(data_dir / "rejected")
    missing = [d for d in dropped if copies.get((d.merchant_id, d.content), 0) == 0]
    if not (left or rejected or missing):
        return []
    return [
        f"files: {len(left)} left in uploads/, {len(rejected)} in rejected/, "
        f"{len(missing)} missing from processed/"
    ]


def tasks_per_worker(tries: list[Try]) -> dict[str, dict[str, int]]:
    """``worker -> state -> tries`` of the ingest_batch tasks."""
    per_worker: dict[str, dict[str, int]] = {}
    for t in tries:
        states = per_worker.setdefault(t["hostname"].split("@")[0] or "(none)", {})
        states[t["state"] or "none"] = states.get(t["state"] or "none", 0) + 1
    return per_worker


def gx_load(task_log: str) -> str:
    """How a task's process got Great Expectations, by its log: ``preloaded`` (already loaded,
    by its worker), ``imported`` or ``unknown``."""
    if "Great Expectations: already loaded" in task_log:
        return "preloaded"
    if "Great Expectations: imported in" in task_log:
        return "imported"
    return "unknown"


def task_seconds(current: list[Try]) -> dict[str, float | None]:
    """The median and total duration of the tasks that succeeded."""
    seconds = [
        (t["end_date"] - t["start_date"]).total_seconds()
        for t in current
        if t["state"] == "success" and t["start_date"] and t["end_date"]
    ]
    return {
        "median": round(statistics.median(seconds), 2) if seconds else None,
        "total": round(sum(seconds), 1),
    }


def retry_problems(tries: list[Try], killed: dict[str, Any]) -> list[str]:
    """Each task killed on worker1 retried, and successful, on worker2."""
    final = {t["map_index"]: t for t in tries if t["current"]}
    found = []
    for victim in killed["tasks"]:
        last = final.get(victim["map_index"])
        if (
            last is None
            or last["state"] != "success"
            or last["try_number"] <= victim["try_number"]
            or not last["hostname"].startswith("worker2@")
        ):
            found.append(
                f"ingest_batch[{victim['map_index']}] killed on worker1 was not retried "
                f"successfully on worker2: {last}"
            )
    return found


# -- the run -----------------------------------------------------------------------------------


class DistributedRun:
    """One run on a stack of its own: the steps, the kill, the checks and the summary."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.stack = Stack(options.stack)
        self.run_id = f"distributed__{self.stack.tag}"
        self.summary: dict[str, Any] = {}
        self.problems: list[str] = []
        self.killed_at: dt.datetime | None = None
        self._reported = 0.0

    def main(self) -> int:
        """Every step, then the stack released and the summary printed; 0 when every check
        passed, 1 when one failed, 2 when a server was missing."""
        started = time.monotonic()
        unavailable = self._attempt(started)
        keep = self._release()
        self._print_summary(started, keep)
        if unavailable:
            return 2
        return 1 if self.problems else 0

    def _attempt(self, started: float) -> bool:
        """The steps, their failure noted as a problem; whether a server was missing."""
        try:
            self._steps(started)
        except (RunFailed, subprocess.TimeoutExpired) as exc:
            self.problems.append(str(exc))
        except Unavailable as exc:
            self.problems.append(str(exc))
            return True
        except KeyboardInterrupt:
            self.problems.append("interrupted")
        return False

    def _steps(self, started: float) -> None:
        stack, options = self.stack, self.options
        stack.open()
        merchants = merchant_ids(options.merchants)
        write_merchants(stack.merchants_file, merchants)
        stack.migrate()
        stack.start_services()
        dropped = drop_files(stack.data_dir, merchants, options.files, options.copies)
        log(f"dropped {len(dropped)} files over {len(merchants)} merchants")
        stack.set_pool()
        stack.wait_ready()
        self.summary["startup_seconds"] = round(time.monotonic() - started, 1)
        stack.trigger(self.run_id)
        state = self.wait_for_run()
        log(f"run {self.run_id} ended {state}")
        self.check(dropped, state)

    def _release(self) -> bool:
        """Release the stack, even when interrupted again (the caller kills this process if it
        cannot wait); whether its folder is kept."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.problems += self.stack.close()
        keep = self.options.keep or bool(self.problems)
        if keep:
            log(f"logs and files kept in {self.stack.tmp}")
        else:
            self.stack.remove_folder()
        return keep

    def _print_summary(self, started: float, keep: bool) -> None:
        options = self.options
        self.summary.update(
            {
                "ok": not self.problems,
                "files": options.files,
                "merchants": options.merchants,
                "batch_size": options.stack.batch_size,
                "kill_worker": options.kill_worker,
                "total_seconds": round(time.monotonic() - started, 1),
                "problems": self.problems,
                "temp_dir": str(self.stack.tmp) if keep else None,
            }
        )
        for problem in self.problems:
            log(f"PROBLEM: {problem}")
        print(json.dumps(self.summary, sort_keys=True, default=str), flush=True)

    # -- waiting, and killing worker1 -------------------------------------------------------------

    def wait_for_run(self) -> str:
        """The run's final state (``success`` or ``failed``)."""
        state = poll(self._watch, timeout=self.options.timeout, every=1.0)
        if state is None:
            raise RunFailed(f"the run did not finish in {self.options.timeout} s")
        return state

    def _watch(self) -> str | None:
        """One look at the run: its final state, else None after killing worker1 when it is
        time, and a progress line now and then."""
        state, _, _ = self.stack.run_state(self.run_id)
        if state in ("success", "failed"):
            return state
        self.stack.check_alive()
        tries = self.stack.ingest_tries(self.run_id)
        if self.options.kill_worker and "killed" not in self.summary:
            self.maybe_kill_worker1(tries)
        if time.monotonic() - self._reported > REPORT_EVERY:
            current = [t for t in tries if t["current"]]
            log(f"run {state}; ingest_batch tasks: {tasks_per_worker(current)}")
            self._reported = time.monotonic()
        return None

    def _progress_on_worker1(self, tries: list[Try]) -> dict[int, tuple[int, int]]:
        """``map_index -> (files loaded, files)`` of the ingest_batch tasks running on worker1."""
        running = [
            t["map_index"]
            for t in tries
            if t["current"] and t["state"] == "running" and t["hostname"].startswith("worker1@")
        ]
        if not running:
            return {}
        batches, loaded = self.stack.batches(self.run_id), self.stack.loaded_files()
        progress = {}
        for index in running:
            files = {(f["merchant_id"], Path(f["path"]).name) for f in batches[index]}
            progress[index] = (len(files & loaded), len(files))
        return progress

    def maybe_kill_worker1(self, tries: list[Try]) -> None:
        """Kill worker1 once one of its ingest_batch tasks is half done: some of its files
        loaded (``kill_after_files``), not all."""
        progress = self._progress_on_worker1(tries)
        threshold = self.options.kill_after_files
        if not any(threshold <= n < total for n, total in progress.values()):
            return
        pids = self.stack.kill_machine("worker1")
        self.killed_at = dt.datetime.now(dt.UTC)
        victims = [
            {
                "map_index": t["map_index"],
                "try_number": t["try_number"],
                "files_loaded_before": progress[t["map_index"]][0],
                "files": progress[t["map_index"]][1],
            }
            for t in tries
            if t["current"] and t["map_index"] in progress
        ]
        self.summary["killed"] = {"worker": "worker1", "tasks": victims, "pids": len(pids)}
        log(f"SIGKILL to worker1's {len(pids)} process(es) while it ran ingest_batch {victims}")

    # -- the checks -----------------------------------------------------------------------------

    def check(self, dropped: list[Dropped], state: str) -> None:
        """Every check of the module docstring, and the summary's figures."""
        if state != "success":
            self.problems.append(f"the run ended {state}")
        imports = Imports.read(self.stack)
        self.problems += imports.problems(dropped)
        self.problems += file_problems(self.stack.data_dir, dropped)
        tries = self.stack.ingest_tries(self.run_id)
        current = [t for t in tries if t["current"]]
        self.problems += self.task_problems(tries, current)
        loads = self.gx_loads(current)
        if not self.options.stack.without_preload and set(loads) != {"preloaded"}:
            self.problems.append(
                "not every ingest_batch task found Great Expectations loaded by its worker: "
                f"{loads}"
            )
        self.summary.update(self.figures(state, imports, dropped, tries, loads))

    def task_problems(self, tries: list[Try], current: list[Try]) -> list[str]:
        """Every task succeeded; both workers ran some, or worker1's were retried on worker2."""
        found = []
        if not current or any(t["state"] != "success" for t in current):
            found.append("not every ingest_batch task succeeded")
        if self.options.kill_worker:
            return found + self.check_retried(tries)
        per_worker = tasks_per_worker(tries)
        for worker in WORKERS:
            if not per_worker.get(worker, {}).get("success"):
                found.append(f"{worker} ran no ingest_batch task")
        return found

    def check_retried(self, tries: list[Try]) -> list[str]:
        """Worker1 was killed, and each of its tasks retried on worker2; how long that took."""
        killed = self.summary.get("killed")
        if not killed or self.killed_at is None:
            return ["worker1 was never killed: no ingest_batch task ran on it"]
        retried_ends = [t["end_date"] for t in tries if t["current"] and t["try_number"] > 1]
        if retried_ends and all(retried_ends):
            recovered = (max(retried_ends) - self.killed_at).total_seconds()
            killed["recovered_seconds"] = round(recovered, 1)
        return retry_problems(tries, killed)

    def gx_loads(self, current: list[Try]) -> dict[str, int]:
        """``preloaded|imported|unknown -> tasks``: how each task got Great Expectations."""
        counts: dict[str, int] = {}
        for t in current:
            kind = gx_load(self.stack.task_log(self.run_id, t["map_index"], t["try_number"]))
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def figures(
        self,
        state: str,
        imports: Imports,
        dropped: list[Dropped],
        tries: list[Try],
        loads: dict[str, int],
    ) -> dict[str, Any]:
        """The summary's figures of the run."""
        current = [t for t in tries if t["current"]]
        _, queued_at, end_date = self.stack.run_state(self.run_id)
        wall = (end_date - queued_at).total_seconds() if queued_at and end_date else None
        copies = processed_copies(self.stack.data_dir)
        return {
            "run_state": state,
            "great_expectations": loads,
            "task_seconds": task_seconds(current),
            "wall_seconds": round(wall, 1) if wall is not None else None,
            "mapped_tasks": len(current),
            "tasks_per_worker": tasks_per_worker(tries),
            "retried_tasks": sorted(t["map_index"] for t in current if t["try_number"] > 1),
            "loaded_imports": sum(imports.loaded.values()),
            "other_imports": {f"{m}/{f}:{s}": n for (m, f, s), n in imports.other.items()},
            "review_requests": imports.requests,
            "expected_review_requests": sum(d.requests for d in dropped),
            "extra_copies_in_processed": sum(n - 1 for n in copies.values() if n > 1),
        }


def run(options: RunOptions) -> int:
    """One distributed run, SIGTERM and SIGINT interrupting it (the stack is still released);
    2 at once when PostgreSQL or Redis is missing."""
    try:
        check_servers(postgres.server_url())
    except Unavailable as exc:
        print(f"distributed_run: {exc}", file=sys.stderr, flush=True)
        return 2

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    return DistributedRun(options).main()
