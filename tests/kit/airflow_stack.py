"""The whole Airflow stack of docker-compose.yaml without Docker, on this machine.

From this repository's virtualenv, each in a process group of its own and tied to this process:
an Airflow API server, a scheduler, a DAG processor and two Celery workers (``worker1``,
``worker2``), on a private AIRFLOW_HOME, two new PostgreSQL databases (Airflow's metadata and
the warehouse) and a free Redis database (the Celery broker). Each worker reports itself as
``worker1@<host>`` / ``worker2@<host>`` in task_instance.hostname (a ``[core]
hostname_callable`` written into the stack's folder), as two machines would.

Every process started carries ``MARKER`` (its value: the stack's tag) in its environment, so
that ``close`` finds them all, even those that left their parent's process group (Airflow puts
each task in a group of its own), then drops the databases and flushes the Redis database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.kit import postgres
from tests.kit.airflow_env import airflow_conn_json, airflow_settings, migrate_metadata, without_own
from tests.kit.paths import AIRFLOW, REPO, VENV_BIN
from tests.kit.processes import (
    HOST,
    free_port,
    kill_pids,
    kill_tree,
    log_tail,
    marked_processes,
    run_group,
    signal_group,
    start_group,
    stop_groups,
    wait_for,
)

T = TypeVar("T")

DAG_ID = "orders_upload_ingest"
TASK_ID = "ingest_batch"
REDIS_HOST, REDIS_PORT = HOST, 6379
WORKERS = ("worker1", "worker2")
#: Every process the stack starts carries this variable (its value: the stack's tag).
MARKER = "REVIEW_INGEST_DISTRIBUTED_RUN"
#: Which simulated machine a process belongs to (inherited by the worker's tasks).
WORKER_MARKER = "REVIEW_INGEST_DISTRIBUTED_WORKER"
REDIS_CLAIM_KEY = "review-ingest:distributed_run:claim"
#: The workers' Celery settings as deployed (they preload the pipeline's libraries).
CELERY_CONFIG = "review_ingest_celery.CELERY_CONFIG"
#: Bounds of the waits for the services, and of the one-shot commands.
READY_SECONDS = 240.0
COMMAND_SECONDS = 300.0
#: SIGTERM to every service, then SIGKILL to what is left, each with its grace period.
STOP_STEPS = ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0))

HOSTNAME_MODULE = '''"""Written by tests/kit/airflow_stack.py: a worker's name, as a machine's."""
import os
import socket


def hostname():
    return os.environ["{marker}"] + "@" + socket.gethostname()
'''


class Unavailable(Exception):
    """A server the stack needs does not answer."""


class RunFailed(Exception):
    """The stack could not go on (a component died, a wait timed out)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the servers the stack needs -------------------------------------------------------------


def _redis(db: int = 0) -> Any:
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)


def redis_problem() -> str | None:
    """Why Redis does not answer; None when it does."""
    import redis

    try:
        _redis().ping()
    except redis.RedisError as exc:
        return (
            f"Redis at {REDIS_HOST}:{REDIS_PORT}: {exc}\n"
            f"  start it with: redis-server --daemonize yes --bind {REDIS_HOST} --port {REDIS_PORT}"
            "\n  (install it with: apt-get install -y redis-server)"
        )
    return None


def check_servers(pg_server: str) -> None:
    """Raise ``Unavailable`` naming each server that does not answer and how to start it."""
    missing = []
    problem = postgres.unreachable(pg_server)
    if problem is not None:
        missing.append(
            f"PostgreSQL at {pg_server} (trust auth): {problem}"
            "\n  start it with: bash scripts/ensure_postgres.sh"
        )
    problem = redis_problem()
    if problem is not None:
        missing.append(problem)
    if missing:
        raise Unavailable("this run needs:\n" + "\n".join(missing))


def claim_redis_db(tag: str) -> int:
    """An empty Redis database, marked as ours so that a concurrent stack takes another."""
    import redis

    try:
        count = int(_redis().config_get("databases").get("databases", 16))
    except redis.RedisError:
        count = 16
    for number in range(count - 1, 0, -1):
        db = _redis(number)
        if db.dbsize() == 0 and db.set(REDIS_CLAIM_KEY, tag, nx=True):
            return number
    raise Unavailable(f"no empty Redis database among 1..{count - 1} at {REDIS_HOST}:{REDIS_PORT}")


def flush_redis_db(number: int, tag: str) -> None:
    """Empty the Redis database ``number`` unless another stack claimed it since."""
    db = _redis(number)
    owner = db.get(REDIS_CLAIM_KEY)
    if owner is None or owner.decode() == tag:
        db.flushdb()


# -- the services ------------------------------------------------------------------------------


@dataclass
class Service:
    """A long-running Airflow command of the stack, with its log."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False

    def start(self) -> None:
        self.proc = start_group(self.cmd, self.log_path, self.env, REPO)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise ``RunFailed`` when it died without being killed on purpose."""
        if self.proc is not None and not self.killed and not self.alive():
            raise RunFailed(
                f"{self.name} exited ({self.proc.returncode}); its log ends with:\n"
                + log_tail(self.log_path)
            )


@dataclass(frozen=True)
class StackOptions:
    """How the stack is set up; ``None``: the deployment's setting."""

    concurrency: int = 2
    batch_size: int = 10
    pool_slots: int = 4
    #: ``[scheduler] task_instance_heartbeat_timeout``, seconds.
    heartbeat_timeout: int | None = None
    #: ``REVIEW_INGEST_RETRY_DELAY_SECONDS``.
    retry_delay: float | None = None
    #: Airflow's own Celery settings: each task imports the pipeline's libraries itself.
    without_preload: bool = False


class Stack:
    """The stack's folder, databases, Redis database and services; ``open`` sets them up and
    ``close`` releases them whatever happened."""

    def __init__(self, options: StackOptions, pg_server: str | None = None) -> None:
        self.options = options
        self.pg_server = pg_server or postgres.server_url()
        self.tag = uuid.uuid4().hex[:10]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"review-ingest-distributed-{self.tag}-"))
        self.home = self.tmp / "airflow"
        self.data_dir = self.tmp / "data"
        self.logs = self.tmp / "logs"
        self.merchants_file = self.tmp / "merchants.yaml"
        self.meta_db = f"review_ingest_dist_{self.tag}_airflow"
        self.warehouse_db = f"review_ingest_dist_{self.tag}_warehouse"
        self.databases: list[str] = []
        self.redis_db: int | None = None
        self.services: list[Service] = []
        self.api_port = free_port()
        self.admin_password = secrets.token_urlsafe(16)
        self.env: dict[str, str] = {}

    @property
    def meta_url(self) -> str:
        return postgres.database_url(self.pg_server, self.meta_db)

    @property
    def warehouse_url(self) -> str:
        return postgres.database_url(self.pg_server, self.warehouse_db)

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    # -- set-up and release ---------------------------------------------------------------------

    def open(self) -> None:
        """The folders, the hostname hook, the admin's password, the Redis database and the two
        databases; then the environment of every command."""
        log(f"temporary folder {self.tmp}")
        for folder in (self.home, self.data_dir, self.logs, self.tmp / "hooks"):
            folder.mkdir()
        (self.tmp / "hooks" / "distributed_run_hostname.py").write_text(
            HOSTNAME_MODULE.replace("{marker}", WORKER_MARKER), encoding="utf-8"
        )
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({"admin": self.admin_password}))
        passwords.chmod(0o600)
        self.redis_db = claim_redis_db(self.tag)
        for name in (self.meta_db, self.warehouse_db):
            postgres.create_database(self.pg_server, name)
            self.databases.append(name)
        log(f"databases {self.meta_db}, {self.warehouse_db}; Redis database {self.redis_db}")
        self.env = self.environment()

    def close(self) -> list[str]:
        """Stop every process, drop the databases, flush the Redis database; what failed."""
        log("stopping everything")
        self.stop_services()
        problems = []
        for name in self.databases:
            try:
                postgres.drop_database(self.pg_server, name)
            except Exception as exc:  # noqa: BLE001 - release the rest all the same
                problems.append(f"could not drop database {name}: {exc}")
        if self.redis_db is not None:
            try:
                flush_redis_db(self.redis_db, self.tag)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"could not flush Redis database {self.redis_db}: {exc}")
        return problems

    def remove_folder(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the environment --------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The environment of every command: the deployment's settings unless told otherwise."""
        env = without_own(os.environ)
        env.update(airflow_settings(self.home))
        env.update(self._airflow_settings())
        env.update(self._pipeline_settings())
        return env

    def _airflow_settings(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        concurrency = self.options.concurrency
        settings = {
            MARKER: self.tag,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            # Airflow 3 uses psycopg 3 for PostgreSQL when it is installed, with SQLAlchemy 2.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.meta_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.meta_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            # As many task instances at once as the workers have slots.
            "AIRFLOW__CORE__PARALLELISM": str(len(WORKERS) * concurrency),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # One admin, whose generated password the REST calls use.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            # Only the runs triggered here: no scheduled run takes the files first.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        # A task whose worker died is failed after Airflow's heartbeat timeout (300 s).
        if self.options.heartbeat_timeout is not None:
            timeout = str(self.options.heartbeat_timeout)
            settings["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = timeout
        # As deployed: each worker loads the pipeline's libraries once (tasks.preload).
        if not self.options.without_preload:
            settings["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = (
                "review_ingest_celery.CELERY_CONFIG"
            )
        return settings

    def _pipeline_settings(self) -> dict[str, str]:
        settings = {
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(self.warehouse_url),
            "REVIEW_INGEST_DATA_DIR": str(self.data_dir),
            "REVIEW_INGEST_MERCHANTS": str(self.merchants_file),
            "REVIEW_INGEST_MIN_FILE_AGE_SECONDS": "0",
            "REVIEW_INGEST_WAREHOUSE_POOL": "warehouse",
            "REVIEW_INGEST_BATCH_SIZE": str(self.options.batch_size),
        }
        # A failed task is retried after the DAGs' delay (300 s) unless told otherwise.
        if self.options.retry_delay is not None:
            settings["REVIEW_INGEST_RETRY_DELAY_SECONDS"] = str(self.options.retry_delay)
        return settings

    def worker_env(self, worker: str) -> dict[str, str]:
        """A worker's environment: its name, as a machine's, and a log server port of its own."""
        return {
            **self.env,
            WORKER_MARKER: worker,
            "PYTHONPATH": str(self.tmp / "hooks"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "distributed_run_hostname.hostname",
            # Two workers on one machine: each serves its task logs on a port of its own.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }

    # -- the steps ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Airflow's metadata database and the warehouse, migrated side by side."""
        started = time.monotonic()
        warehouse_env = {**self.env, "REVIEW_INGEST_WAREHOUSE_URL": self.warehouse_url}
        warehouse = start_group(
            [str(VENV_BIN / "review-ingest"), "migrate"],
            self.logs / "warehouse-migrate.log",
            warehouse_env,
            REPO,
        )
        try:
            migrate_metadata(self.env, self.logs / "db-migrate.log", COMMAND_SECONDS)
        except RuntimeError as exc:
            raise RunFailed(str(exc)) from exc
        finally:
            code = warehouse.wait(timeout=COMMAND_SECONDS)
        if code != 0:
            raise RunFailed("review-ingest migrate failed: see logs/warehouse-migrate.log")
        log(f"metadata and warehouse migrated in {time.monotonic() - started:.0f} s")

    def start_services(self) -> None:
        """The API server, the scheduler, the DAG processor and the workers."""
        airflow = str(AIRFLOW)
        api = [airflow, "api-server", "--host", HOST, "--port", str(self.api_port)]
        specs = [
            ("api-server", [*api, "--workers", "1"], self.env),
            ("scheduler", [airflow, "scheduler"], self.env),
            ("dag-processor", [airflow, "dag-processor"], self.env),
        ]
        concurrency = ["--concurrency", str(self.options.concurrency)]
        for worker in WORKERS:
            cmd = [airflow, "celery", "worker", "--celery-hostname", f"{worker}@%h", *concurrency]
            specs.append((worker, cmd, self.worker_env(worker)))
        for name, cmd, env in specs:
            service = Service(name, cmd, env, self.logs / f"{name}.log")
            service.start()
            self.services.append(service)
        log("started " + ", ".join(f"{s.name} (pid {s.proc.pid})" for s in self.services))

    def set_pool(self) -> None:
        """The ``warehouse`` pool the DAGs' warehouse tasks share."""
        slots = str(self.options.pool_slots)
        cmd = [str(AIRFLOW), "pools", "set", "warehouse", slots, "bounds warehouse connections"]
        if run_group(cmd, self.logs / "pool.log", COMMAND_SECONDS, self.env, REPO) != 0:
            raise RunFailed("airflow pools set failed: see logs/pool.log")

    def wait_ready(self) -> None:
        """Until the API server and the scheduler are healthy, both workers ready and the DAG
        serialized."""
        started = time.monotonic()
        self.wait_until("the API server and the scheduler", self.api_healthy, every=2)
        for worker in WORKERS:
            self.wait_until(worker, lambda w=worker: self.worker_ready(w))
        self.wait_until(f"the DAG {DAG_ID} in the metadata database", self.dag_known, every=2)
        log(f"API server, scheduler, DAG processor and both workers ready in "
            f"{time.monotonic() - started:.0f} s")  # fmt: skip

    def trigger(self, run_id: str) -> None:
        """Unpause the DAG when paused, and trigger one run, through the REST API."""
        login = {"username": "admin", "password": self.admin_password}
        token = self.api("POST", "/auth/token", login)["access_token"]
        if self.api("GET", f"/api/v2/dags/{DAG_ID}", token=token)["is_paused"]:
            self.api("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token)
            log(f"unpaused {DAG_ID}")
        run = {"dag_run_id": run_id, "logical_date": None}
        self.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", run, token)
        log(f"triggered {DAG_ID} run {run_id}")

    # -- services ---------------------------------------------------------------------------------

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def check_alive(self) -> None:
        for service in self.services:
            service.check()

    def kill_machine(self, worker: str) -> list[int]:
        """SIGKILL every process of a worker, as when its machine dies: its tree, its group and
        its task processes (Airflow gives each task a process group of its own)."""
        service = self.service(worker)
        assert service.proc is not None
        pids = kill_tree(service.proc.pid)
        signal_group(service.proc, signal.SIGKILL)
        tasks = marked_processes(WORKER_MARKER, worker)
        kill_pids(tasks)
        service.killed = True
        service.proc.wait(timeout=30)
        return sorted(pids | tasks)

    def stop_services(self) -> None:
        """SIGTERM to every process group (workers first), SIGKILL to what is left, then to
        every process that carries this stack's marker."""
        procs = [s.proc for s in reversed(self.services) if s.proc is not None]
        stop_groups(procs, STOP_STEPS)
        leftovers = marked_processes(MARKER, self.tag)
        if leftovers:
            log(f"killing {len(leftovers)} leftover process(es): {sorted(leftovers)}")
            kill_pids(leftovers)

    def wait_until(
        self, what: str, ready: Callable[[], T], timeout: float = READY_SECONDS, every: float = 1
    ) -> T:
        """Poll ``ready`` (its errors count as not yet) until it returns something true, as
        long as every service lives."""

        def check() -> T | None:
            self.check_alive()
            with contextlib.suppress(Exception):
                return ready()
            return None

        return wait_for(what, check, timeout, every, error=RunFailed)

    # -- what the services say ------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict | None = None, token: str = "") -> Any:
        """A call to the API server's REST API."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.request(
            method, self.api_url + path, json=body, headers=headers, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def api_healthy(self) -> bool:
        health = self.api("GET", "/api/v2/monitor/health")
        return (
            health["metadatabase"]["status"] == "healthy"
            and health["scheduler"]["status"] == "healthy"
        )

    def worker_ready(self, worker: str) -> bool:
        return " ready." in self.service(worker).log_path.read_text(errors="replace")

    def dag_known(self) -> bool:
        return bool(
            self.meta_query(
                "SELECT d.is_paused FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id"
                " WHERE d.dag_id = %s",
                (DAG_ID,),
            )
        )

    def meta_query(self, query: str, params: tuple = ()) -> list[tuple]:
        return self._query(self.meta_url, query, params)

    def warehouse_query(self, query: str, params: tuple = ()) -> list[tuple]:
        return self._query(self.warehouse_url, query, params)

    @staticmethod
    def _query(url: str, query: str, params: tuple) -> list[tuple]:
        import psycopg

        with psycopg.connect(postgres.libpq(url), connect_timeout=5) as conn:
            return list(conn.execute(query, params).fetchall())

    def run_state(self, run_id: str) -> tuple[str, dt.datetime | None, dt.datetime | None]:
        """The DAG run's state, when it was queued and when it ended."""
        rows = self.meta_query(
            "SELECT state, queued_at, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        )
        return rows[0] if rows else ("missing", None, None)

    def ingest_tries(self, run_id: str) -> list[dict[str, Any]]:
        """Every try of every ingest_batch task of the run: the current ones and the history."""
        query = (
            "SELECT map_index, try_number, state, hostname, start_date, end_date"
            " FROM {table} WHERE dag_id = %s AND run_id = %s AND task_id = %s"
        )
        keys = ("map_index", "try_number", "state", "hostname", "start_date", "end_date")
        rows = []
        for table, current in (("task_instance", True), ("task_instance_history", False)):
            for row in self.meta_query(query.format(table=table), (DAG_ID, run_id, TASK_ID)):
                found = dict(zip(keys, row, strict=True))
                rows.append({**found, "hostname": found["hostname"] or "", "current": current})
        return rows

    def batches(self, run_id: str) -> list[list[dict[str, str]]]:
        """The batches list_new_files planned (its XCom): the files of each ingest_batch task."""
        rows = self.meta_query(
            "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s"
            " AND key = 'return_value'",
            (DAG_ID, run_id, "list_new_files"),
        )
        value = rows[0][0] if rows else []
        return json.loads(value) if isinstance(value, str) else value

    def loaded_files(self) -> set[tuple[str, str]]:
        """``(merchant_id, file_name)`` of every loaded import."""
        rows = self.warehouse_query(
            "SELECT merchant_id, file_name FROM imports WHERE status = 'loaded'"
        )
        return {(merchant, name) for merchant, name in rows}

    def task_log(self, run_id: str, map_index: int, try_number: int) -> str:
        """The log of one try of an ingest_batch task ("" when there is none)."""
        path = (
            self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={TASK_ID}"
            / f"map_index={map_index}" / f"attempt={try_number}.log"
        )  # fmt: skip
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
