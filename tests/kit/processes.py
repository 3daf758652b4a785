"""Process supervision for the servers the tests start: ports, process groups, polling.

A server is started in a process group (and session) of its own, so that it is stopped as a
whole and apart from the terminal's signals, and, unless told otherwise, dies with the process
that started it (``PR_SET_PDEATHSIG``) when that one is killed before it can clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import psutil

HOST = "127.0.0.1"
#: ``prctl`` option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1
#: How a server is stopped by default: SIGINT, then SIGTERM, then SIGKILL, each with its grace.
STOP_STEPS: tuple[tuple[signal.Signals, float], ...] = (
    (signal.SIGINT, 20.0),
    (signal.SIGTERM, 10.0),
    (signal.SIGKILL, 10.0),
)

T = TypeVar("T")


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now, chosen by the kernel."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when its parent dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_group(
    cmd: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    orphan_ok: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a process group of its own, its output appended to ``log_path``.

    ``orphan_ok``: the process outlives this one when it is killed (sshd: what a killed test
    run leaves is cleaned up by the next one)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, apart from the terminal's signals
            preexec_fn=None if orphan_ok else die_with_parent,
        )


def run_group(
    cmd: Sequence[str],
    log_path: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Run a one-shot command in a process group of its own, output appended to ``log_path``;
    its exit code. Past ``timeout`` its group is killed and ``TimeoutExpired`` raised."""
    proc = start_group(cmd, log_path, env, cwd)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_groups([proc], [(signal.SIGKILL, 10.0)])
        raise


def log_tail(path: Path, lines: int = 40, missing: str = "") -> str:
    """The last ``lines`` lines of a log file (``missing`` when there is none)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return missing
    return "\n".join(text[-lines:])


def group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether any process of ``proc``'s group is left (its leader's pid is the group id)."""
    proc.poll()  # reap the leader, so that it does not count as a zombie member
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def any_alive(procs: Iterable[subprocess.Popen[bytes]]) -> bool:
    """Whether any process of these groups is left."""
    return any(group_alive(proc) for proc in procs)


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """``sig`` to every process of ``proc``'s group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_groups(
    procs: Sequence[subprocess.Popen[bytes]],
    steps: Iterable[tuple[signal.Signals, float]] = STOP_STEPS,
) -> signal.Signals | None:
    """Each signal of ``steps`` to every group still alive, then up to its grace period for
    them to go; the last signal that was needed (None: all were gone already)."""
    last = None
    for sig, grace in steps:
        alive = [proc for proc in procs if group_alive(proc)]
        if not alive:
            break
        last = sig
        for proc in alive:
            signal_group(proc, sig)
        poll(functools.partial(any_alive, alive), lambda left: not left, timeout=grace, every=0.1)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    return last


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, whatever its group or session."""
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    """``sig`` to each of ``pids`` that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(pid: int) -> set[int]:
    """SIGKILL ``pid`` and every process below it, as a crash would; the pids killed.

    It is frozen first (SIGSTOP), so that it forks nothing new while its tree is read: a
    server whose children start sessions of their own (sshd) escapes a group kill."""
    kill_pids([pid], signal.SIGSTOP)
    tree = descendants(pid)
    kill_pids(tree)
    kill_pids([pid])
    return tree | {pid}


def marked_processes(variable: str, value: str) -> set[int]:
    """The processes (this one aside) whose environment holds ``variable=value``."""
    found = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get(variable) == value:
                found.add(proc.pid)
    return found


def poll(
    probe: Callable[[], T],
    until: Callable[[T], bool] = bool,
    *,
    timeout: float,
    every: float = 0.05,
) -> T:
    """``probe()`` until ``until`` holds for what it returned, or ``timeout`` passed; the last
    value, for the caller to judge."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)


def wait_for(
    what: str,
    check: Callable[[], T],
    timeout: float = 120.0,
    every: float = 0.05,
    error: type[Exception] = AssertionError,
) -> T:
    """Poll ``check`` until it returns something true; raise ``error`` naming ``what`` after
    ``timeout``."""
    value = poll(check, timeout=timeout, every=every)
    if not value:
        raise error(f"timed out after {timeout:.0f} s waiting for {what}")
    return value
