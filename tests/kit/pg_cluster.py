"""A throw-away PostgreSQL cluster of a test's own, which the test may stop and start.

The shared server on 127.0.0.1:5432 serves every other test (and other developers' runs): a test
that stops PostgreSQL in the middle of a run starts its own cluster with ``initdb`` and
``pg_ctl`` as the ``postgres`` user (initdb refuses root), on a free port, with its socket in
its own folder, and removes it afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.kit.processes import HOST, free_port

DATABASE = "warehouse"


@dataclass
class Cluster:
    """A cluster in ``root`` (its data folder, log and socket), listening on ``port``."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{DATABASE}"

    @property
    def libpq(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{DATABASE}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={HOST} "
            f"-c unix_socket_directories={self.root} -c fsync=off"
        )
        _as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: as a crash would, no checkpoint)."""
        _as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return _postgres_run("pg_ctl", "-D", str(self.data), "status").returncode == 0


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A running cluster with an empty database ``warehouse``; stopped and removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="review-ingest-pg-"))
    shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(root, free_port())
    try:
        _as_postgres(
            "initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        cluster.start()
        with psycopg.connect(cluster.libpq.replace(DATABASE, "postgres"), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {DATABASE}")
        yield cluster
    finally:
        if cluster.data.exists() and cluster.running():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/lib/postgresql/15/bin/{name}"


def _postgres_run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A PostgreSQL program run as the ``postgres`` user."""
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", _binary(name), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _as_postgres(name: str, *args: str) -> None:
    done = _postgres_run(name, *args)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
