"""The README's UI command, ``scripts/ui.sh``, started and stopped as a person runs it.

``start_ui`` runs ``scripts/ui.sh --port <free port>`` in a session and process group of its own,
as a terminal starts it (SIGINT at its default), on folders of a temporary root: an
``AIRFLOW_HOME`` and a data folder, never the developer's ``.airflow/`` and ``data/``, so that
its first start loads the demo data. ``running`` waits (bounded) for its "Airflow ready" line and,
at the end, stops whatever is left of it: its group (SIGINT, SIGTERM, SIGKILL), then every
process of its AIRFLOW_HOME or of the sessions noted in ``UiCommand.sessions`` (the services'
sessions hold the executor's workers and the tasks). Used by tests/e2e/test_ui_command.py and
tests/e2e/test_import_browser.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.kit.airflow_env import without_own
from tests.kit.paths import REPO
from tests.kit.processes import (
    HOST,
    die_with_parent,
    free_port,
    group_alive,
    kill_pids,
    log_tail,
    stop_groups,
)

#: Install check, the demo's load (about a minute) and ui.sh's own bound on Airflow's health.
START_SECONDS = 600.0
READY_LINE = re.compile(r"Airflow ready after (\d+) s")
#: ui.sh's user (REVIEW_UI_USER's default), an admin of SimpleAuthManager.
USER = "admin"


@dataclass
class UiCommand:
    """A running ``scripts/ui.sh`` and its folders."""

    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    data_dir: Path
    log_path: Path
    #: Sessions of ui.sh and of every process below it, gathered along the way.
    sessions: set[int] = field(default_factory=set)
    _token: str = ""

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def password(self, user: str = USER) -> str:
        """The password ui.sh generated for ``user`` (kept in its AIRFLOW_HOME)."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json").read_text())
        return passwords[user]

    def token(self) -> str:
        """A JWT from Airflow's ``POST /auth/token``, as the login page gets it (kept)."""
        if self._token:
            return self._token
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": USER, "password": self.password()},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        self._token = response.json()["access_token"]
        return self._token

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method path`` as the local user."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=60, **kwargs)

    def service_log(self, service: str, lines: int = 60) -> str:
        return log_tail(self.home / f"ui-{service}.log", lines, f"(no {service} log)")

    def note_sessions(self) -> None:
        """Add the sessions of ui.sh and of every process now below it to ``sessions``."""
        with contextlib.suppress(psutil.Error):
            below = {child.pid for child in psutil.Process(self.proc.pid).children(recursive=True)}
            self.sessions |= sessions_of(below | {self.proc.pid})


def restore_sigint() -> None:
    """In the child: SIGINT back to its default, as under a terminal (a shell started in the
    background inherits it ignored, and bash cannot trap a signal ignored on entry)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def start_ui(root: Path, log_name: str = "ui.log") -> UiCommand:
    """``scripts/ui.sh`` on folders of ``root``, in a session and process group of its own."""
    home, data_dir, log_path = root / "airflow-home", root / "data", root / log_name
    env = {k: v for k, v in without_own(os.environ).items() if not k.startswith("REVIEW_UI_")}
    env |= {"AIRFLOW_HOME": str(home), "REVIEW_INGEST_DATA_DIR": str(data_dir)}
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "ui.sh"), "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=restore_sigint,
        )
    return UiCommand(proc, port, home, data_dir, log_path)


def wait_ready(ui: UiCommand, timeout: float = START_SECONDS) -> None:
    """Until ui.sh prints that Airflow is ready; AssertionError with its output when it exits
    first or is not ready within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not READY_LINE.search(ui.output()):
        if ui.proc.poll() is not None:
            raise AssertionError(f"ui.sh exited with {ui.proc.returncode}:\n{ui.output()[-6000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"ui.sh not ready after {timeout:.0f} s:\n{ui.output()[-6000:]}")
        time.sleep(1)


def home_processes(home: Path) -> set[int]:
    """Live processes whose environment or command line holds this AIRFLOW_HOME (this one
    aside). A process that retitles itself (the API server, the executor's workers, the task
    supervisors) shows neither: ``session_processes`` finds those."""
    found = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("AIRFLOW_HOME") == str(home) or any(
                str(home) in part for part in proc.cmdline()
            ):
                found.add(proc.pid)
    return found


def session_processes(sessions: set[int]) -> set[int]:
    """Live processes of these sessions (Airflow's tasks leave their parent's process group,
    not its session)."""
    found = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.status() != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) in sessions:
                found.add(proc.pid)
    return found


def sessions_of(pids: set[int]) -> set[int]:
    """The sessions these processes belong to."""
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            found.add(os.getsid(pid))
    return found


def describe(pids: set[int]) -> str:
    """The command lines of ``pids``, for a failure message."""
    lines = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            lines.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:160]}")
    return "\n".join(lines)


@contextlib.contextmanager
def running(command: UiCommand) -> Iterator[UiCommand]:
    """``command`` once ready; whatever is left of it at the end is stopped."""
    try:
        wait_ready(command)
        yield command
    finally:
        if group_alive(command.proc):
            stop_groups([command.proc])
        kill_pids(home_processes(command.home) | session_processes(command.sessions))
