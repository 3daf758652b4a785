"""A real distributed run on this machine: the topology of docker-compose.yaml without Docker.

    .venv/bin/python scripts/distributed_run.py [--files 120] [--merchants 10] [--kill-worker]

Starts, from this repository's virtualenv and each in its own process group, an Airflow API
server, a scheduler, a DAG processor and two Celery workers (``worker1``, ``worker2``), on a
private AIRFLOW_HOME, two fresh PostgreSQL databases (Airflow's metadata and the warehouse) and a
free Redis database (the Celery broker). It drops ``--files`` order files over ``--merchants``
merchants, triggers ``orders_upload_ingest`` and waits for the run. With ``--kill-worker``, once
``ingest_batch`` tasks run on worker1, every process of worker1 (the Celery worker, its pool,
the task supervisors and the task processes, which Airflow puts in process groups of their own) is
killed with SIGKILL, as when a machine dies: the scheduler notices the missing heartbeats and the
tasks are retried on worker2.

Checks: the run succeeded; every file is loaded exactly once (one ``loaded`` import per file,
the expected number of review requests, no request twice); every file is in ``processed/``; which
worker ran which ``ingest_batch`` task (both, without ``--kill-worker``); that every task found
Great Expectations loaded by its worker (the workers run ``review_ingest_celery.CELERY_CONFIG``,
as deployed; ``--without-preload`` runs Airflow's own, and each task imports it). The last line
printed is a JSON summary. Everything started is stopped, the databases dropped and the Redis
database flushed, whatever happens. Exit 0 when every check passes, 1 when one fails, 2 when
PostgreSQL or Redis is missing. Logs and files stay in the temporary folder (printed) when a check
fails or with ``--keep``.

Each worker reports itself as ``worker1@<host>`` / ``worker2@<host>`` in task_instance.hostname
(a ``[core] hostname_callable`` written into the temporary folder), as two machines would.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DAG_ID = "orders_upload_ingest"
TASK_ID = "ingest_batch"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
TEMPLATES = ("website", "store", "website_products", "store_products")
WORKERS = ("worker1", "worker2")
#: Every process this script starts carries this variable (its value: the run's tag), so that
#: the final sweep finds them all, even those that left their parent's process group.
MARKER = "REVIEW_INGEST_DISTRIBUTED_RUN"
#: Which simulated machine a process belongs to (inherited by the worker's tasks).
WORKER_MARKER = "REVIEW_INGEST_DISTRIBUTED_WORKER"
REDIS_CLAIM_KEY = "review-ingest:distributed_run:claim"

HOSTNAME_MODULE = '''"""Written by scripts/distributed_run.py: a worker's name, as a machine's."""
import os
import socket


def hostname():
    return os.environ["{marker}"] + "@" + socket.gethostname()
'''


class Unavailable(Exception):
    """A server this run needs does not answer."""


class RunFailed(Exception):
    """The run could not go on (a component died, a wait timed out)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- servers this run needs ------------------------------------------------------------------


def pg_dsn(dbname: str = "postgres") -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=5"


def check_servers() -> None:
    import psycopg
    import redis

    missing = []
    try:
        with psycopg.connect(pg_dsn()):
            pass
    except psycopg.Error as exc:
        missing.append(
            f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}, trust auth): {exc}".strip()
            + "\n  start it with: bash scripts/ensure_postgres.sh"
        )
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5).ping()
    except redis.RedisError as exc:
        missing.append(
            f"Redis at {REDIS_HOST}:{REDIS_PORT}: {exc}\n"
            f"  start it with: redis-server --daemonize yes --bind {REDIS_HOST} --port {REDIS_PORT}"
            "\n  (install it with: apt-get install -y redis-server)"
        )
    if missing:
        raise Unavailable("this run needs:\n" + "\n".join(missing))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_dsn(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_dsn(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def claim_redis_db(tag: str) -> int:
    """An empty Redis database, marked as ours so that a concurrent run takes another."""
    import redis

    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
    try:
        count = int(admin.config_get("databases").get("databases", 16))
    except redis.RedisError:
        count = 16
    for number in range(count - 1, 0, -1):
        db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
        if db.dbsize() == 0 and db.set(REDIS_CLAIM_KEY, tag, nx=True):
            return number
    raise Unavailable(f"no empty Redis database among 1..{count - 1} at {REDIS_HOST}:{REDIS_PORT}")


def flush_redis_db(number: int, tag: str) -> None:
    import redis

    db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
    owner = db.get(REDIS_CLAIM_KEY)
    if owner is None or owner.decode() == tag:
        db.flushdb()


def meta_query(meta_db: str, query: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(pg_dsn(meta_db)) as conn:
        return list(conn.execute(query, params).fetchall())


# --- processes --------------------------------------------------------------------------------


def _child_setup() -> None:
    """In the child, before exec: die with this script (SIGTERM) even if it is killed."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    killed: bool = False
    tree: set[int] = field(default_factory=set)

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group (and session)
                preexec_fn=_child_setup,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def marked_processes(variable: str, value: str) -> set[int]:
    """Processes whose environment holds ``variable=value``: only ours carry it."""
    import psutil

    found = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get(variable) == value:
                found.add(proc.pid)
    return found


def still_ours(pids: set[int], tag: str) -> set[int]:
    """The pids that are still processes of this run (a pid may have been reused since)."""
    import psutil

    alive = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).environ().get(MARKER) == tag:
                alive.add(pid)
    return alive


def signal_pids(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def signal_group(service: Service, sig: int) -> None:
    if service.proc is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.proc.pid, sig)  # the group id is the leader's pid (new session)


def kill_machine(service: Service, worker: str) -> list[int]:
    """SIGKILL every process of a worker, as when its machine dies: the group, its descendants
    and the task processes (Airflow gives each task a process group of its own)."""
    assert service.proc is not None
    pids = {service.proc.pid} | descendants(service.proc.pid)
    pids |= marked_processes(WORKER_MARKER, worker)
    signal_group(service, signal.SIGKILL)
    signal_pids(pids, signal.SIGKILL)
    service.killed = True
    service.proc.wait(timeout=30)
    return sorted(pids)


def stop_all(services: list[Service], tag: str, grace: float = 20.0) -> None:
    """SIGTERM to every process group (workers first), then SIGKILL what is left."""
    for service in services:
        if service.proc is not None:
            service.tree = {service.proc.pid} | descendants(service.proc.pid)
    for service in reversed(services):
        if service.alive():
            signal_group(service, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(s.alive() for s in services) and time.monotonic() < deadline:
        time.sleep(0.2)
    for service in services:
        if service.proc is None:
            continue
        if service.alive():
            signal_group(service, signal.SIGKILL)
        signal_pids(still_ours(service.tree | descendants(service.proc.pid), tag), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.proc.wait(timeout=10)
    leftovers = marked_processes(MARKER, tag)
    if leftovers:
        log(f"killing {len(leftovers)} leftover process(es): {sorted(leftovers)}")
        signal_pids(leftovers, signal.SIGKILL)


def run_cli(name: str, cmd: list[str], env: dict[str, str], logs: Path, timeout: float) -> None:
    """A one-shot command; its output goes to ``logs/<name>.log``."""
    path = logs / f"{name}.log"
    with open(path, "ab") as out:
        done = subprocess.run(
            cmd,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
    if done.returncode != 0:
        tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
        raise RunFailed(f"{' '.join(cmd[:3])} failed ({done.returncode}):\n{tail}")


# --- the files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    merchant_id: str
    name: str
    content: bytes
    requests: int


def expected_requests(text: str) -> int:
    """Review requests of a sample-based file: one per order, plus one per ordered product."""
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    header = [name.rstrip("*") for name in rows[0]]
    refs = [row[header.index("order_ref")] for row in rows[1:] if row]
    products = len(refs) if "id_product" in header else 0
    return len(set(refs)) + products


def merchant_ids(count: int) -> dict[str, str]:
    return {f"dist-{i + 1:03d}": TEMPLATES[i % len(TEMPLATES)] for i in range(count)}


def write_merchants(path: Path, merchants: dict[str, str]) -> None:
    lines = ["merchants:"]
    for merchant_id, template in merchants.items():
        lines += [f"  {merchant_id}:", f"    template: {template}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def drop_files(
    data_dir: Path, merchants: dict[str, str], count: int, copies: int = 1
) -> list[Dropped]:
    """``count`` dated sample files, round-robin over the merchants, each with order references
    of its own (``-F0001``...), so that none is rejected as existing_proofs; with ``copies``, the
    sample's rows that many times, each copy with references of its own (``-F0001-2``...)."""
    sys.path.insert(0, str(REPO / "plugins"))
    from review_ingest.sources.samples import dated_copy

    yesterday = dt.datetime.now(ZoneInfo("Europe/Paris")).date() - dt.timedelta(days=1)
    samples = {template: dated_copy(template, yesterday) for template in TEMPLATES}
    ids = list(merchants)
    dropped = []
    for number in range(count):
        merchant_id = ids[number % len(ids)]
        header, *rows = samples[merchants[merchant_id]].splitlines(keepends=True)
        text = header + "".join(
            re.sub(r"^([A-Z]+-\d+)", rf"\1-F{number:04d}{f'-{copy}' if copy else ''}", row)
            for copy in range(copies)
            for row in rows
        )
        folder = data_dir / "uploads" / merchant_id
        folder.mkdir(parents=True, exist_ok=True)
        name = f"orders-{number:04d}.csv"
        partial = folder / f".{name}.tmp"
        partial.write_text(text, encoding="utf-8")
        partial.rename(folder / name)
        dropped.append(Dropped(merchant_id, name, text.encode("utf-8"), expected_requests(text)))
    return dropped


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    tmp: Path = field(init=False)
    meta_db: str = field(init=False)
    warehouse_db: str = field(init=False)
    redis_db: int | None = None
    databases: list[str] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"review-ingest-distributed-{self.tag}-"))
        self.meta_db = f"review_ingest_dist_{self.tag}_airflow"
        self.warehouse_db = f"review_ingest_dist_{self.tag}_warehouse"
        self.run_id = f"distributed__{self.tag}"
        self.passwords_file = self.tmp / "airflow" / "passwords.json"

    # environment

    def environment(self, api_port: int) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "REVIEW_INGEST_", "PYTHONPATH"))
        }
        meta_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.meta_db}"
        warehouse = {
            "conn_type": "postgres",
            "host": PG_HOST,
            "port": PG_PORT,
            "login": PG_USER,
            "password": "",
            "schema": self.warehouse_db,
        }
        slots = len(WORKERS) * self.args.concurrency
        from cryptography.fernet import Fernet

        env.update(
            {
                MARKER: self.tag,
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.tmp / "airflow"),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                # Airflow 3.3 uses psycopg 3 for PostgreSQL when it is installed, with SQLAlchemy 2.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{meta_url}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.args.concurrency),
                # As many task instances at once as the workers have slots: 2 cores here.
                "AIRFLOW__CORE__PARALLELISM": str(slots),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                    f"http://127.0.0.1:{api_port}/execution/"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
                # One admin, whose generated password the REST calls below use.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                # Only the run this script triggers: no scheduled run takes the files first.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_REVIEW_WAREHOUSE": json.dumps(warehouse),
                "REVIEW_INGEST_DATA_DIR": str(self.tmp / "data"),
                "REVIEW_INGEST_MERCHANTS": str(self.tmp / "merchants.yaml"),
                "REVIEW_INGEST_MIN_FILE_AGE_SECONDS": "0",
                "REVIEW_INGEST_WAREHOUSE_POOL": "warehouse",
                "REVIEW_INGEST_BATCH_SIZE": str(self.args.batch_size),
            }
        )
        # The deployment's settings unless told otherwise: a task whose worker died is failed
        # after Airflow's heartbeat timeout (300 s), then retried after the DAGs' delay (300 s).
        if self.args.heartbeat_timeout is not None:
            env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = str(
                self.args.heartbeat_timeout
            )
        if self.args.retry_delay is not None:
            env["REVIEW_INGEST_RETRY_DELAY_SECONDS"] = str(self.args.retry_delay)
        # As deployed: each worker loads the pipeline's libraries once (tasks.preload).
        if not self.args.without_preload:
            env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = "review_ingest_celery.CELERY_CONFIG"
        return env

    def worker_env(self, env: dict[str, str], worker: str) -> dict[str, str]:
        return {
            **env,
            WORKER_MARKER: worker,
            "PYTHONPATH": str(self.tmp / "hooks"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "distributed_run_hostname.hostname",
            # Two workers on one machine: each serves its task logs on a port of its own.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }

    # steps

    def setup(self) -> dict[str, str]:
        log(f"temporary folder {self.tmp}")
        for folder in ("airflow", "data", "logs", "hooks"):
            (self.tmp / folder).mkdir()
        (self.tmp / "hooks" / "distributed_run_hostname.py").write_text(
            HOSTNAME_MODULE.replace("{marker}", WORKER_MARKER), encoding="utf-8"
        )
        self.admin_password = secrets.token_urlsafe(16)
        self.passwords_file.write_text(json.dumps({"admin": self.admin_password}))
        self.passwords_file.chmod(0o600)
        self.redis_db = claim_redis_db(self.tag)
        for name in (self.meta_db, self.warehouse_db):
            create_database(name)
            self.databases.append(name)
        log(f"databases {self.meta_db}, {self.warehouse_db}; Redis database {self.redis_db}")
        self.api_port = free_port()
        return self.environment(self.api_port)

    def migrate(self, env: dict[str, str]) -> None:
        logs = self.tmp / "logs"
        started = time.monotonic()
        warehouse_env = {
            **env,
            "REVIEW_INGEST_WAREHOUSE_URL": (
                f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.warehouse_db}"
            ),
        }
        with open(logs / "warehouse-migrate.log", "ab") as out:
            warehouse = subprocess.Popen(
                [str(VENV_BIN / "review-ingest"), "migrate"],
                env=warehouse_env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        try:
            run_cli("db-migrate", [str(VENV_BIN / "airflow"), "db", "migrate"], env, logs, 300)
        finally:
            code = warehouse.wait(timeout=300)
        if code != 0:
            raise RunFailed("review-ingest migrate failed: see logs/warehouse-migrate.log")
        log(f"metadata and warehouse migrated in {time.monotonic() - started:.0f} s")

    def start_services(self, env: dict[str, str]) -> None:
        airflow = str(VENV_BIN / "airflow")
        logs = self.tmp / "logs"
        specs = [
            ("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port",
                            str(self.api_port), "--workers", "1"], env),
            ("scheduler", [airflow, "scheduler"], env),
            ("dag-processor", [airflow, "dag-processor"], env),
        ]  # fmt: skip
        for worker in WORKERS:
            specs.append(
                (
                    worker,
                    [airflow, "celery", "worker", "--celery-hostname", f"{worker}@%h",
                     "--concurrency", str(self.args.concurrency)],
                    self.worker_env(env, worker),
                )
            )  # fmt: skip
        for name, cmd, service_env in specs:
            service = Service(name, cmd, service_env, logs / f"{name}.log")
            service.start()
            self.services.append(service)
        log("started " + ", ".join(f"{s.name} (pid {s.proc.pid})" for s in self.services))

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def check_alive(self) -> None:
        for service in self.services:
            if not service.killed and not service.alive():
                raise RunFailed(
                    f"{service.name} exited ({service.proc.returncode}); its log ends with:\n"
                    + service.log_tail()
                )

    def wait_until(self, what: str, ready, timeout: float, every: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with contextlib.suppress(Exception):
                value = ready()
                if value:
                    return value
            if time.monotonic() > deadline:
                raise RunFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def api_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        with urllib.request.urlopen(url, timeout=5) as response:
            health = json.load(response)
        return (
            health["metadatabase"]["status"] == "healthy"
            and health["scheduler"]["status"] == "healthy"
        )

    def worker_ready(self, worker: str) -> bool:
        return " ready." in self.service(worker).log_path.read_text(errors="replace")

    def dag_known(self) -> bool:
        rows = meta_query(
            self.meta_db,
            "SELECT d.is_paused FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id"
            " WHERE d.dag_id = %s",
            (DAG_ID,),
        )
        return bool(rows)

    def wait_ready(self) -> None:
        started = time.monotonic()
        self.wait_until("the API server and the scheduler", self.api_healthy, 240, every=2)
        for worker in WORKERS:
            self.wait_until(f"{worker}", lambda w=worker: self.worker_ready(w), 240)
        self.wait_until(f"the DAG {DAG_ID} in the metadata database", self.dag_known, 240, 2)
        log(f"API server, scheduler, DAG processor and both workers ready in "
            f"{time.monotonic() - started:.0f} s")  # fmt: skip

    def api(self, method: str, path: str, body: dict | None = None, token: str = "") -> Any:
        """A call to the API server's REST API (loopback only)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def trigger(self) -> None:
        """Unpause the DAG when paused, and trigger one run, through the REST API."""
        token = self.api(
            "POST", "/auth/token", {"username": "admin", "password": self.admin_password}
        )["access_token"]
        dag = self.api("GET", f"/api/v2/dags/{DAG_ID}", token=token)
        if dag["is_paused"]:
            self.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token)
            log(f"unpaused {DAG_ID}")
        self.api(
            "POST",
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            {"dag_run_id": self.run_id, "logical_date": None},
            token,
        )
        log(f"triggered {DAG_ID} run {self.run_id}")

    def ingest_tries(self) -> list[dict[str, Any]]:
        """Every try of every ingest_batch task of the run: the current ones and the history."""
        query = (
            "SELECT map_index, try_number, state, hostname, start_date, end_date"
            " FROM {table} WHERE dag_id = %s AND run_id = %s AND task_id = %s"
        )
        rows = []
        for table, current in (("task_instance", True), ("task_instance_history", False)):
            for row in meta_query(
                self.meta_db, query.format(table=table), (DAG_ID, self.run_id, TASK_ID)
            ):
                rows.append(
                    {
                        "map_index": row[0],
                        "try_number": row[1],
                        "state": row[2],
                        "hostname": row[3] or "",
                        "start_date": row[4],
                        "end_date": row[5],
                        "current": current,
                    }
                )
        return rows

    def run_state(self) -> tuple[str, dt.datetime | None, dt.datetime | None]:
        rows = meta_query(
            self.meta_db,
            "SELECT state, queued_at, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, self.run_id),
        )
        return rows[0] if rows else ("missing", None, None)

    def wait_for_run(self) -> str:
        deadline = time.monotonic() + self.args.timeout
        last_report = 0.0
        killed = False
        while True:
            state, _, _ = self.run_state()
            if state in ("success", "failed"):
                return state
            self.check_alive()
            tries = self.ingest_tries()
            if self.args.kill_worker and not killed:
                killed = self.maybe_kill_worker1(tries)
            if time.monotonic() - last_report > 15:
                counts: dict[str, int] = {}
                for t in tries:
                    if t["current"]:
                        counts[t["state"] or "none"] = counts.get(t["state"] or "none", 0) + 1
                log(f"run {state}; ingest_batch tasks: {counts}")
                last_report = time.monotonic()
            if time.monotonic() > deadline:
                raise RunFailed(f"the run did not finish in {self.args.timeout} s")
            time.sleep(1)

    def batches(self) -> list[list[dict[str, str]]]:
        """The batches list_new_files planned (its XCom): the files of each ingest_batch task."""
        rows = meta_query(
            self.meta_db,
            "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
            " AND key = 'return_value'",
            (DAG_ID, self.run_id, "list_new_files"),
        )
        value = rows[0][0] if rows else []
        return json.loads(value) if isinstance(value, str) else value

    def loaded_files(self) -> set[tuple[str, str]]:
        import psycopg

        with psycopg.connect(pg_dsn(self.warehouse_db)) as conn:
            rows = conn.execute(
                "SELECT merchant_id, file_name FROM imports WHERE status = 'loaded'"
            ).fetchall()
        return {(merchant, name) for merchant, name in rows}

    def maybe_kill_worker1(self, tries: list[dict[str, Any]]) -> bool:
        """Kill worker1 once one of its ingest_batch tasks is half done: some of its files
        loaded (``--kill-after-files``), not all."""
        on_worker1 = [
            t
            for t in tries
            if t["current"] and t["state"] == "running" and t["hostname"].startswith("worker1@")
        ]
        if not on_worker1:
            return False
        batches, loaded = self.batches(), self.loaded_files()
        done = {}
        for t in on_worker1:
            files = {(f["merchant_id"], Path(f["path"]).name) for f in batches[t["map_index"]]}
            done[t["map_index"]] = (len(files & loaded), len(files))
        if not any(self.args.kill_after_files <= n < total for n, total in done.values()):
            return False
        pids = kill_machine(self.service("worker1"), "worker1")
        victims = [
            {
                "map_index": t["map_index"],
                "try_number": t["try_number"],
                "files_loaded_before": done[t["map_index"]][0],
                "files": done[t["map_index"]][1],
            }
            for t in on_worker1
        ]
        self.summary["killed"] = {"worker": "worker1", "tasks": victims, "pids": len(pids)}
        self.killed_at = dt.datetime.now(dt.UTC)
        log(f"SIGKILL to worker1's {len(pids)} process(es) while it ran ingest_batch {victims}")
        return True

    # checks

    def check(self, dropped: list[Dropped], state: str) -> None:
        sys.path.insert(0, str(REPO / "plugins"))
        import psycopg

        if state != "success":
            self.problems.append(f"the run ended {state}")
        with psycopg.connect(pg_dsn(self.warehouse_db)) as conn:
            imports = conn.execute(
                "SELECT merchant_id, file_name, status, count(*) FROM imports"
                " GROUP BY merchant_id, file_name, status"
            ).fetchall()
            requests = conn.execute("SELECT count(*) FROM review_requests").fetchone()[0]
            twice = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM review_requests"
                " GROUP BY merchant_id, order_ref, request_type, id_product"
                " HAVING count(*) > 1) AS t"
            ).fetchone()[0]
        loaded = {(m, f): n for m, f, status, n in imports if status == "loaded"}
        other = {(m, f, s): n for m, f, s, n in imports if s != "loaded"}
        expected = sum(d.requests for d in dropped)
        not_once = [
            f"{d.merchant_id}/{d.name}"
            for d in dropped
            if loaded.get((d.merchant_id, d.name), 0) != 1
        ]
        if not_once:
            self.problems.append(f"{len(not_once)} file(s) not loaded exactly once: {not_once[:5]}")
        if len(loaded) != len(dropped) or sum(loaded.values()) != len(dropped):
            self.problems.append(f"{sum(loaded.values())} loaded imports for {len(dropped)} files")
        if requests != expected:
            self.problems.append(f"{requests} review requests, expected {expected}")
        if twice:
            self.problems.append(f"{twice} review request(s) present more than once")
        if any(s == "rejected" for _, _, s in other):
            self.problems.append(f"rejected imports: {sorted(other)[:5]}")

        data = self.tmp / "data"
        left = [p for p in (data / "uploads").rglob("*") if p.is_file()]
        rejected = [p for p in (data / "rejected").rglob("*") if p.is_file()]
        copies: dict[tuple[str, bytes], int] = {}
        for path in (data / "processed").rglob("*"):
            if path.is_file():
                merchant = path.relative_to(data / "processed").parts[0]
                key = (merchant, path.read_bytes())
                copies[key] = copies.get(key, 0) + 1
        missing = [d for d in dropped if copies.get((d.merchant_id, d.content), 0) == 0]
        extra_copies = sum(n - 1 for n in copies.values() if n > 1)
        if left or rejected or missing:
            self.problems.append(
                f"files: {len(left)} left in uploads/, {len(rejected)} in rejected/, "
                f"{len(missing)} missing from processed/"
            )

        tries = self.ingest_tries()
        per_worker: dict[str, dict[str, int]] = {}
        for t in tries:
            worker = t["hostname"].split("@")[0] or "(none)"
            states = per_worker.setdefault(worker, {})
            states[t["state"] or "none"] = states.get(t["state"] or "none", 0) + 1
        current = [t for t in tries if t["current"]]
        if not current or any(t["state"] != "success" for t in current):
            self.problems.append("not every ingest_batch task succeeded")
        if not self.args.kill_worker:
            for worker in WORKERS:
                if not per_worker.get(worker, {}).get("success"):
                    self.problems.append(f"{worker} ran no ingest_batch task")
        else:
            self.check_retried(tries)

        loads = self.gx_loads(current)
        if not self.args.without_preload and set(loads) != {"preloaded"}:
            self.problems.append(
                f"not every ingest_batch task found Great Expectations loaded by its worker: "
                f"{loads}"
            )
        seconds = [
            (t["end_date"] - t["start_date"]).total_seconds()
            for t in current
            if t["state"] == "success" and t["start_date"] and t["end_date"]
        ]

        _, queued_at, end_date = self.run_state()
        self.summary.update(
            {
                "run_state": state,
                "great_expectations": loads,
                "task_seconds": {
                    "median": round(statistics.median(seconds), 2) if seconds else None,
                    "total": round(sum(seconds), 1),
                },
                "wall_seconds": round((end_date - queued_at).total_seconds(), 1)
                if queued_at and end_date
                else None,
                "mapped_tasks": len(current),
                "tasks_per_worker": per_worker,
                "retried_tasks": sorted(t["map_index"] for t in current if t["try_number"] > 1),
                "loaded_imports": sum(loaded.values()),
                "other_imports": {f"{m}/{f}:{s}": n for (m, f, s), n in other.items()},
                "review_requests": requests,
                "expected_review_requests": expected,
                "extra_copies_in_processed": extra_copies,
            }
        )

    def gx_loads(self, tries: list[dict[str, Any]]) -> dict[str, int]:
        """How the process of each of these ingest_batch tries got Great Expectations, by its
        log: ``preloaded`` (already loaded, by its worker), ``imported`` or ``unknown``."""
        folder = (
            self.tmp / "airflow" / "logs" / f"dag_id={DAG_ID}" / f"run_id={self.run_id}"
            / f"task_id={TASK_ID}"
        )  # fmt: skip
        counts: dict[str, int] = {}
        for t in tries:
            path = folder / f"map_index={t['map_index']}" / f"attempt={t['try_number']}.log"
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
            if "Great Expectations: already loaded" in text:
                kind = "preloaded"
            elif "Great Expectations: imported in" in text:
                kind = "imported"
            else:
                kind = "unknown"
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def check_retried(self, tries: list[dict[str, Any]]) -> None:
        killed = self.summary.get("killed")
        if not killed:
            self.problems.append("worker1 was never killed: no ingest_batch task ran on it")
            return
        final = {t["map_index"]: t for t in tries if t["current"]}
        retried_ends = [t["end_date"] for t in tries if t["current"] and t["try_number"] > 1]
        if retried_ends and all(retried_ends):
            killed["recovered_seconds"] = round(
                (max(retried_ends) - self.killed_at).total_seconds(), 1
            )
        for victim in killed["tasks"]:
            last = final.get(victim["map_index"])
            if (
                last is None
                or last["state"] != "success"
                or last["try_number"] <= victim["try_number"]
                or not last["hostname"].startswith("worker2@")
            ):
                self.problems.append(
                    f"ingest_batch[{victim['map_index']}] killed on worker1 was not retried "
                    f"successfully on worker2: {last}"
                )

    # all of it

    def main(self) -> int:
        args = self.args
        started = time.monotonic()
        keep = args.keep
        unavailable = False
        try:
            env = self.setup()
            merchants = merchant_ids(args.merchants)
            write_merchants(self.tmp / "merchants.yaml", merchants)
            self.migrate(env)
            self.start_services(env)
            with open(self.tmp / "logs" / "pool.log", "ab") as pool_log:
                pool = subprocess.Popen(
                    [str(VENV_BIN / "airflow"), "pools", "set", "warehouse", str(args.pool_slots),
                     "bounds warehouse connections"],
                    env=env, cwd=REPO, stdout=pool_log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_child_setup,
                )  # fmt: skip
            dropped = drop_files(self.tmp / "data", merchants, args.files, args.copies)
            log(f"dropped {len(dropped)} files over {len(merchants)} merchants")
            if pool.wait(timeout=180) != 0:
                raise RunFailed("airflow pools set failed: see logs/pool.log")
            self.wait_ready()
            self.summary["startup_seconds"] = round(time.monotonic() - started, 1)
            self.trigger()
            state = self.wait_for_run()
            log(f"run {self.run_id} ended {state}")
            self.check(dropped, state)
        except (RunFailed, Unavailable) as exc:
            self.problems.append(str(exc))
            unavailable = isinstance(exc, Unavailable)
        except KeyboardInterrupt:
            self.problems.append("interrupted")
        finally:
            # Clean up even when interrupted again: the caller kills us if it cannot wait.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            log("stopping everything")
            stop_all(self.services, self.tag)
            for name in self.databases:
                try:
                    drop_database(name)
                except Exception as exc:  # noqa: BLE001 - clean up the rest all the same
                    self.problems.append(f"could not drop database {name}: {exc}")
            if self.redis_db is not None:
                try:
                    flush_redis_db(self.redis_db, self.tag)
                except Exception as exc:  # noqa: BLE001
                    self.problems.append(f"could not flush Redis database {self.redis_db}: {exc}")
            if self.problems:
                keep = True
            if keep:
                log(f"logs and files kept in {self.tmp}")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        self.summary.update(
            {
                "ok": not self.problems,
                "files": args.files,
                "merchants": args.merchants,
                "batch_size": args.batch_size,
                "kill_worker": args.kill_worker,
                "total_seconds": round(time.monotonic() - started, 1),
                "problems": self.problems,
                "temp_dir": str(self.tmp) if keep else None,
            }
        )
        for problem in self.problems:
            log(f"PROBLEM: {problem}")
        print(json.dumps(self.summary, sort_keys=True, default=str), flush=True)
        if unavailable:
            return 2
        return 0 if not self.problems else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=120, help="order files to drop")
    parser.add_argument("--merchants", type=int, default=10, help="merchants they spread over")
    parser.add_argument(
        "--kill-worker",
        action="store_true",
        help="SIGKILL worker1 while it runs ingest_batch tasks; they must finish on worker2",
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="the sample's rows this many times in each file: with a few hundred, files are "
        "validated one by one and a batch lasts long enough to be killed half done",
    )
    parser.add_argument("--batch-size", type=int, default=10, help="REVIEW_INGEST_BATCH_SIZE")
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    parser.add_argument("--pool-slots", type=int, default=4, help="slots of the warehouse pool")
    parser.add_argument(
        "--heartbeat-timeout",
        type=int,
        help="[scheduler] task_instance_heartbeat_timeout, seconds (default: Airflow's, 300, as "
        "deployed; shorter only to try the script by hand)",
    )
    parser.add_argument(
        "--kill-after-files",
        type=int,
        default=3,
        help="files a worker1 ingest_batch task has loaded when worker1 is killed",
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        help="seconds between two tries of a task (REVIEW_INGEST_RETRY_DELAY_SECONDS; default: "
        "the DAGs', 300, as deployed)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="seconds the run may take (a killed worker's tasks come back after about 10 min)",
    )
    parser.add_argument(
        "--without-preload",
        action="store_true",
        help="Airflow's own Celery configuration: each task imports Great Expectations itself "
        "(to measure what review_ingest_celery.CELERY_CONFIG saves)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.files < 1 or args.merchants < 1:
        parser.error("--files and --merchants must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_servers()
    except Unavailable as exc:
        print(f"distributed_run: {exc}", file=sys.stderr)
        return 2

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    return Run(args).main()


if __name__ == "__main__":
    sys.exit(main())
