"""The real pipeline in a child process, so that a test can kill it for real (SIGKILL).

Children come from a fork server that imported Great Expectations, pandas, Airflow's SFTP hook
and the package once: each child starts in a fraction of a second instead of paying about 7 s
of imports. A child gets the test's ``REVIEW_INGEST_*`` and ``AIRFLOW_CONN_*`` variables (the
fork server's own are dropped: they are those of whichever test started it), runs one function
of the package (``runs.ingest_uploads``, ``sftp_pickup.collect_merchants``...) and writes what it
returned, or the error it raised, to a JSON file. Its log goes beside that file.

Kill points. Where the moment to kill cannot be seen from outside reliably (the few
microseconds between a commit and the report writing), ``kill_at`` names a test hook installed
in the child only: a wrapper of the real function that SIGKILLs the child's own process at that
point (before or after calling it), which is a real kill of the process doing the work. The
points, in the life of a file:

- ``after_download``: ``sftp.download`` returned (the copy is in staging, not yet claimed);
- ``during_validation``: Great Expectations ran the suite, the row errors are being read
  (``validation._row_errors``);
- ``after_commit``: ``warehouse.save`` committed the file's transaction, no report written;
- ``before_move``: the reports are written, ``folders.move_after`` not started (uploads);
- ``before_publish``: the reports are written, ``sftp.publish`` not started (SFTP);
- ``during_publish``: both reports are on the server, the rename of the file is not done
  (``sftp._move``);
- ``after_publish``: the file was renamed on the server, the local copy not moved.

And in the life of a delivery event file (``pipeline.events``):

- ``events_mid_load``: two chunks of events loaded (``store.events.load_events``) in the file's
  open transaction;
- ``events_after_commit``: the file's events and report committed (``events.load_file``
  returned), no report written;
- ``events_before_move``: the report written, the move not started (``folders.move_into``).

The kill in the middle of a COPY needs no hook: the test blocks the COPY on a lock and kills the
child from outside (test_faults.py).
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kit.paths import REPO

PRELOAD = [
    "great_expectations",
    "pandas",
    "paramiko",
    "airflow.providers.sftp.hooks.sftp",
    "review_ingest.quality.validation",
    "review_ingest.pipeline.ingest",
    "review_ingest.tasks.upload_ingest",
    "review_ingest.tasks.sftp_ingest",
]
ENV_PREFIXES = ("REVIEW_INGEST_", "AIRFLOW_CONN_")
WAIT_SECONDS = 120.0

_context: Any = None


def context() -> Any:
    """The fork server's multiprocessing context (started by the first child)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


@dataclass
class Child:
    process: Any
    out: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def wait(self, timeout: float = WAIT_SECONDS) -> int:
        """Its exit code (``-SIGKILL`` when killed); fails the test when it runs on."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(10)
            raise AssertionError(f"child still running after {timeout} s; log:\n{self.log()}")
        return self.process.exitcode

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    def result(self) -> dict[str, Any]:
        """``{"result": ...}`` or ``{"error": "Class: message"}``; {} when it wrote nothing."""
        if not self.out.exists():
            return {}
        return json.loads(self.out.read_text())

    def log(self) -> str:
        path = self.out.with_suffix(".log")
        return path.read_text(errors="replace")[-6000:] if path.exists() else "(no log)"


def start(
    target: str,
    *args: Any,
    out: Path,
    kill_at: str | None = None,
    env: dict[str, str] | None = None,
    barrier: Any = None,
) -> Child:
    """Run ``module:function`` with ``args`` in a child; ``barrier`` (from ``context()``) lets
    several children start their work at the same moment."""
    if kill_at is not None and kill_at not in KILL_POINTS:
        raise ValueError(f"unknown kill point {kill_at!r}")
    child_env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    child_env.update(env or {})
    process = context().Process(
        target=_main, args=(child_env, target, args, kill_at, str(out), barrier), daemon=True
    )
    # The fork server (started by the first child) imports the package of this tree, not the
    # one the virtual environment's editable install names.
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "plugins"), str(REPO)])
    try:
        process.start()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return Child(process, out)


# -- in the child -----------------------------------------------------------------------------


def _main(
    env: dict[str, str],
    target: str,
    args: tuple[Any, ...],
    kill_at: str | None,
    out: str,
    barrier: Any,
) -> None:
    log_file = open(Path(out).with_suffix(".log"), "a")  # noqa: SIM115 - for the whole child
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
    for key in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
        del os.environ[key]
    os.environ.update(env)
    if kill_at:
        KILL_POINTS[kill_at]()
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    if barrier is not None:
        barrier.wait(WAIT_SECONDS)
    try:
        outcome: dict[str, Any] = {"result": function(*args)}
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        logging.exception("child failed")
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out).write_text(json.dumps(outcome, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if "result" in outcome else 1)


def _die() -> None:
    logging.getLogger(__name__).info("test hook: SIGKILL of pid %d", os.getpid())
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_before(module: Any, name: str) -> None:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _die()

    setattr(module, name, wrapper)


def _kill_after(module: Any, name: str) -> None:
    real = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        _die()

    setattr(module, name, wrapper)


def _kill_after_calls(module: Any, name: str, calls: int) -> None:
    real = getattr(module, name)
    done = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        result = real(*args, **kwargs)
        done += 1
        if done == calls:
            _die()
        return result

    setattr(module, name, wrapper)


def _module(name: str) -> Any:
    return importlib.import_module(f"review_ingest.{name}")


KILL_POINTS: dict[str, Callable[[], None]] = {
    "after_download": lambda: _kill_after(_module("sources.sftp"), "download"),
    "during_validation": lambda: _kill_before(_module("quality.validation"), "_row_errors"),
    "after_commit": lambda: _kill_after(_module("store.warehouse"), "save"),
    "before_move": lambda: _kill_before(_module("sources.folders"), "move_after"),
    "before_publish": lambda: _kill_before(_module("sources.sftp"), "publish"),
    "during_publish": lambda: _kill_before(_module("sources.sftp"), "_move"),
    "after_publish": lambda: _kill_after(_module("sources.sftp"), "publish"),
    "events_mid_load": lambda: _kill_after_calls(_module("store.events"), "load_events", 2),
    "events_after_commit": lambda: _kill_after(_module("pipeline.events"), "load_file"),
    "events_before_move": lambda: _kill_before(_module("sources.folders"), "move_into"),
}
