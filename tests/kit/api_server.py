"""A real Airflow API server (``airflow api-server`` from .venv) with the review UI.

What the server gets, all of it in a temporary folder of its own:

- an ``AIRFLOW_HOME`` with a migrated SQLite metadata database (migrated once per session into a
  template file, then copied for each server), this repo's ``dags/`` and ``plugins/``,
  ``AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False``;
- the auth manager of ``tests/fixtures/auth_manager.py`` (SimpleAuthManager whose
  ``is_authorized_dag`` refuses ``outsider``), with users from ``[core] simple_auth_manager_users``
  and their generated passwords in the file named by ``simple_auth_manager_passwords_file``;
- a data folder (``REVIEW_INGEST_DATA_DIR``) and a warehouse holding real imports, made by running
  the real pipeline (``Ingest(...).import_file``) on the sample files dated for yesterday, on a
  file with row errors, on a file rejected at file level and on a file rejected for orders already
  loaded that also has a row error. The warehouse, a SQLite file kept outside the data folder (or
  a PostgreSQL database), reaches the server only as ``AIRFLOW_CONN_REVIEW_WAREHOUSE``.

The server runs in a process group of its own on a free loopback port; readiness is polled on
``/api/v2/monitor/health`` with a bound. ``stop`` sends SIGINT to the whole group, then SIGTERM
and SIGKILL after grace periods. ``UiServers`` starts one server per warehouse backend on first
use and, on ``close``, stops them and removes their folders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.kit.airflow_env import airflow_conn_json, airflow_settings, migrate_metadata, without_own
from tests.kit.factories import sample_for_yesterday, write_merchants
from tests.kit.paths import AIRFLOW, REPO
from tests.kit.postgres import new_database
from tests.kit.processes import (
    HOST,
    free_port,
    group_alive,
    log_tail,
    poll,
    start_group,
    stop_groups,
)
from tests.kit.warehouse import query, settled_now

#: A bound, not a sleep: the first start on a cold machine imports Airflow, FastAPI and the plugin.
READY_SECONDS = 180.0

#: tests/fixtures/auth_manager.py, named only: importing it here would import Airflow into every
#: pytest run at collection time (a test checks that the names match).
AUTH_MANAGER = "tests.fixtures.auth_manager.DagDenyingSimpleAuthManager"
OUTSIDER = "outsider"
#: Refused ``orders_backfill`` only, by the same auth manager: the UI needs all three DAGs.
NO_BACKFILL = "no-backfill"
VIEWER = "viewer"
ADMIN = "admin"
#: Screenshots of the UI tests (git-ignored); the session's summary names the folder.
ARTIFACTS_DIR = REPO / "test-artifacts" / "ui"
#: username -> SimpleAuthManager role.
USERS = {VIEWER: "viewer", OUTSIDER: "viewer", NO_BACKFILL: "viewer", ADMIN: "admin"}

#: The UI's ingest DAGs (contract section 10) and the plugin's names.
INGEST_DAGS = ("orders_upload_ingest", "orders_sftp_ingest", "orders_backfill")
UI_PREFIX = "/review-ingest"

#: merchant id -> template of the merchants file the server and the pipeline read.
MERCHANTS = {
    "shop-web": "website",
    "shop-store": "store",
    "shop-products": "website_products",
    "shop-store-products": "store_products",
    "shop-mixed": "website",
}
WEBSITE_HEADER = "order_ref;email;lastname;firstname;order_date;delay;language"


@dataclass(frozen=True)
class ImportMade:
    """One file the fixture ran through the pipeline, as its ``report.json`` tells it."""

    label: str
    merchant_id: str
    file_name: str
    report: dict[str, Any]

    @property
    def import_id(self) -> str:
        return self.report["import_id"]

    @property
    def status(self) -> str:
        return self.report["status"]

    @property
    def rejection_code(self) -> str | None:
        rejection = self.report.get("rejection")
        return rejection["code"] if rejection else None


@dataclass
class UiServer:
    """A running ``airflow api-server`` with the review UI and its data; see the module doc."""

    backend: str
    base_url: str
    port: int
    root: Path
    home: Path
    data_dir: Path
    merchants_file: Path
    warehouse_url: str
    passwords: dict[str, str]
    imports: dict[str, ImportMade]
    log_path: Path
    env: dict[str, str] = field(repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)

    # -- HTTP ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def token(self, username: str) -> str:
        """A JWT from Airflow's own ``POST /auth/token`` (cached per user)."""
        if username not in self._tokens:
            response = httpx.post(
                self.url("/auth/token"),
                json={"username": username, "password": self.passwords[username]},
                timeout=30,
            )
            assert response.status_code == 201, f"/auth/token for {username}: {response.text}"
            self._tokens[username] = response.json()["access_token"]
        return self._tokens[username]

    def get(self, path: str, user: str | None = None, **kwargs: Any) -> httpx.Response:
        """``GET path``; with ``user``, as that user (Bearer token). Redirects are not followed."""
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        kwargs.setdefault("timeout", 60)
        return httpx.get(self.url(path), headers=headers, follow_redirects=False, **kwargs)

    def by_label(self, label: str) -> ImportMade:
        return self.imports[label]

    def request_statuses(self, merchant_id: str) -> dict[str, str]:
        """``order_ref -> scheduled|due`` of a merchant's brand requests, read in the warehouse
        (``scheduled`` while ``scheduled_at`` is in the future: contract section 10).

        Call it BEFORE asking the UI: when one of these requests falls due within the next
        five minutes (at midnight in Paris, for the sample files), it first waits until
        that has happened (``settled_now``), so that no status changes while a test compares.
        """
        rows = query(
            self.warehouse_url,
            "SELECT order_ref, scheduled_at FROM review_requests"
            " WHERE merchant_id = :m AND request_type = 'brand'",
            m=merchant_id,
        )
        times = {ref: _aware(at) for ref, at in rows}
        now = settled_now(list(times.values()))
        return {ref: "scheduled" if at > now else "due" for ref, at in times.items()}

    # -- logs ------------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log, for failure messages."""
        return log_tail(self.log_path, lines, "(no api-server log)")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server in a process group of its own (tied to this process) and wait until
        it is healthy."""
        cmd = [str(AIRFLOW), "api-server", "--host", HOST, "--port", str(self.port)]
        self._proc = start_group([*cmd, "--workers", "1"], self.log_path, self.env, self.root)
        self._wait_ready()

    def _wait_ready(self) -> None:
        last = "no answer yet"

        def healthy() -> bool:
            nonlocal last
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"airflow api-server exited with {self._proc.returncode} before it was ready"
                    f"\n{self.log_tail()}"
                )
            try:
                status = httpx.get(self.url("/api/v2/monitor/health"), timeout=5).status_code
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                return False
            last = f"HTTP {status}"
            return status == 200

        if not poll(healthy, timeout=READY_SECONDS, every=0.25):
            raise RuntimeError(
                f"airflow api-server not healthy after {READY_SECONDS:.0f} s ({last})\n"
                + self.log_tail()
            )

    def stop(self) -> None:
        """SIGINT to the whole group, then SIGTERM, then SIGKILL, each after a grace period."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        started = time.monotonic()
        last = stop_groups([proc])
        if group_alive(proc):
            raise RuntimeError(f"api-server process group {proc.pid} survived SIGKILL")
        print(
            f"\nui fixture: api-server ({self.backend}) stopped after "
            f"{last.name if last else 'no signal'} in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )


def _aware(value: object) -> dt.datetime:
    """A ``scheduled_at`` as read: aware on PostgreSQL, ISO text in UTC on SQLite."""
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# -- the environment of the server -----------------------------------------------------------


def server_env(
    *,
    home: Path,
    port: int,
    data_dir: Path,
    merchants_file: Path,
    warehouse_url: str,
    passwords_file: Path,
    users: dict[str, str],
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The API server's environment: nothing Airflow- or ingest-related leaks from ``base``."""
    env = without_own(os.environ if base is None else base)
    env.update(airflow_settings(home))
    env.update(
        {
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{name}:{role}" for name, role in users.items()
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://{HOST}:{port}/",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            # As in the deployment: the access log redacts the e-mail filter's value.
            "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "email",
            # The auth manager lives in tests/: the server imports it from the repository root.
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")]),
            "REVIEW_INGEST_DATA_DIR": str(data_dir),
            "REVIEW_INGEST_MERCHANTS": str(merchants_file),
            "AIRFLOW_CONN_REVIEW_WAREHOUSE": airflow_conn_json(warehouse_url),
            "NO_COLOR": "1",
        }
    )
    return env


def write_passwords(path: Path, users: dict[str, str]) -> dict[str, str]:
    """A password for each user, in the JSON file SimpleAuthManager reads."""
    passwords = {name: secrets.token_urlsafe(12) for name in users}
    path.write_text(json.dumps(passwords) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return passwords


def new_home(
    home: Path, warehouse_url: str, data_dir: Path, merchants_file: Path
) -> tuple[dict[str, str], dict[str, str], int]:
    """A server's home folder with its users' passwords: the server's environment, the
    passwords and its port."""
    home.mkdir()
    passwords_file = home / "passwords.json"
    passwords = write_passwords(passwords_file, USERS)
    port = free_port()
    env = server_env(
        home=home,
        port=port,
        data_dir=data_dir,
        merchants_file=merchants_file,
        warehouse_url=warehouse_url,
        passwords_file=passwords_file,
        users=USERS,
    )
    return env, passwords, port


def new_server(
    root: Path,
    backend: str,
    warehouse_url: str,
    data_dir: Path,
    merchants_file: Path,
    made: dict[str, ImportMade],
    metadata_db: Path | None = None,
) -> UiServer:
    """A server (not started yet) over what :func:`build_data` made. Its home is
    ``root/airflow-home``, with a copy of ``metadata_db`` (a migrated metadata database), else a
    database migrated now."""
    home = root / "airflow-home"
    env, passwords, port = new_home(home, warehouse_url, data_dir, merchants_file)
    if metadata_db is None:
        migrate_metadata(env, home / "db-migrate.log")
    else:
        shutil.copy2(metadata_db, home / "airflow.db")
    return UiServer(
        backend=backend,
        base_url=f"http://{HOST}:{port}",
        port=port,
        root=root,
        home=home,
        data_dir=data_dir,
        merchants_file=merchants_file,
        warehouse_url=warehouse_url,
        passwords=passwords,
        imports=made,
        log_path=home / "api-server.log",
        env=env,
    )


# -- the data: real imports made by the real pipeline ------------------------------------------


def sample_files() -> list[tuple[str, str, str, str]]:
    """``(label, merchant_id, file_name, content)`` in the order they are imported."""
    web = sample_for_yesterday("website")
    lines = web.splitlines()
    good = lines[1:]
    # Loaded with row errors: two good rows, a bad e-mail, an impossible date, a bad delay.
    bad_email = re.sub(r";[^;]*@[^;]*;", ";not-an-email;", good[1], count=1)
    mixed = [
        WEBSITE_HEADER,
        good[0].replace("WEB-100231", "MIX-1"),
        bad_email.replace("WEB-100232", "MIX-2"),
        good[2].replace("WEB-100233", "MIX-3"),
        _replace_field(good[3].replace("WEB-100234", "MIX-4"), 4, "31-02-2026"),
        _replace_field(good[4].replace("WEB-100235", "MIX-5"), 5, "forty"),
    ]
    # Rejected at file level: a column the website template does not know.
    unknown_column = [lines[0] + ";coupon"] + [line + ";WELCOME10" for line in good]
    # Rejected for orders already loaded (shop-web's WEB-100232), with a row error of its own.
    repeat = [
        WEBSITE_HEADER,
        good[1],
        re.sub(r";[^;]*@[^;]*;", ";broken-address;", good[0].replace("WEB-100231", "REP-1")),
    ]
    products = sample_for_yesterday("website_products")
    return [
        ("web", "shop-web", "orders-web.csv", web),
        ("store", "shop-store", "orders-store.csv", sample_for_yesterday("store")),
        ("products", "shop-products", "orders-products.csv", products),
        (
            "store-products",
            "shop-store-products",
            "orders-store-products.csv",
            sample_for_yesterday("store_products"),
        ),
        ("row-errors", "shop-mixed", "orders-with-row-errors.csv", "\n".join(mixed) + "\n"),
        ("unknown-column", "shop-web", "orders-unknown-column.csv", _text(unknown_column)),
        ("existing-proofs", "shop-web", "orders-repeated.csv", "\n".join(repeat) + "\n"),
    ]


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _replace_field(line: str, index: int, value: str) -> str:
    fields = line.split(";")
    fields[index] = value
    return ";".join(fields)


def build_data(root: Path, warehouse_url: str) -> tuple[Path, Path, dict[str, ImportMade]]:
    """Run the real pipeline on the files of :func:`sample_files`; Data Docs built once."""
    from review_ingest.core.merchants import load_merchants
    from review_ingest.pipeline.ingest import Ingest

    data_dir = root / "data"
    incoming = root / "incoming"
    incoming.mkdir(parents=True)
    merchants_file = write_merchants(root / "merchants.yaml", MERCHANTS)
    ingest = Ingest(
        data_dir=data_dir,
        merchants=load_merchants(merchants_file),
        warehouse_url=warehouse_url,
    )
    made: dict[str, ImportMade] = {}
    try:
        for label, merchant_id, file_name, content in sample_files():
            folder = incoming / label
            folder.mkdir()
            path = folder / file_name
            path.write_text(content, encoding="utf-8")
            outcome = ingest.import_file(path, merchant_id, "upload")
            report_dir = data_dir / "reports" / merchant_id / outcome.record.import_id
            report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
            made[label] = ImportMade(label, merchant_id, file_name, report)
        ingest.finish()
    finally:
        if made:  # the engine exists once a file went through
            ingest.engine.dispose()
    _check_data(made)
    return data_dir, merchants_file, made


def _check_data(made: dict[str, ImportMade]) -> None:
    """The fixture's promises to the tests; a sample change that breaks one fails here, named."""
    expect = {
        "web": ("loaded", None),
        "store": ("loaded", None),
        "products": ("loaded", None),
        "store-products": ("loaded", None),
        "row-errors": ("loaded", None),
        "unknown-column": ("rejected", "unknown_columns"),
        "existing-proofs": ("rejected", "existing_proofs"),
    }
    got = {label: (m.status, m.rejection_code) for label, m in made.items()}
    assert got == expect, f"the UI fixture's imports came out as {got}"
    assert made["row-errors"].report["error_rows"] >= 3, made["row-errors"].report["errors"]
    assert made["existing-proofs"].report["errors"], "the repeated file keeps its row error"


class UiServers:
    """Starts one server per warehouse backend on first use, in folders under ``base``;
    ``close`` stops them all and removes their folders. ``pg_server_url`` gives the PostgreSQL
    server of the ``postgres`` backend (asked only when that backend is used)."""

    def __init__(self, base: Path, pg_server_url: Callable[[], str]) -> None:
        self._base = base
        self._pg_server_url = pg_server_url
        self._stack = contextlib.ExitStack()
        self._servers: dict[str, UiServer] = {}
        self._metadata_template: Path | None = None

    def __call__(self, backend: str) -> UiServer:
        if backend not in self._servers:
            self._servers[backend] = self._start(backend)
        return self._servers[backend]

    def _metadata_db(self) -> Path:
        """A migrated metadata database, made once and copied for each server."""
        if self._metadata_template is None:
            home = self._base / "metadata-template"
            unused = f"sqlite:///{home / 'unused.db'}"
            env, _, _ = new_home(home, unused, home / "data", home / "merchants.yaml")
            migrate_metadata(env, home / "db-migrate.log")
            self._metadata_template = home / "airflow.db"
        return self._metadata_template

    def _warehouse(self, backend: str, root: Path) -> str:
        """The backend's empty warehouse (a PostgreSQL database is dropped on ``close``)."""
        if backend == "sqlite":
            warehouse_dir = root / "warehouse"  # outside the data folder: only the connection
            warehouse_dir.mkdir()  # can lead the UI there
            return f"sqlite:///{warehouse_dir / 'warehouse.db'}"
        if backend == "postgres":
            return self._stack.enter_context(new_database(self._pg_server_url(), "review_ui_test"))
        raise ValueError(f"unknown warehouse backend {backend!r}")

    def _start(self, backend: str) -> UiServer:
        root = self._base / backend
        root.mkdir()
        # Removed last (an ExitStack unwinds in reverse): after the server has stopped.
        self._stack.callback(shutil.rmtree, root, ignore_errors=True)
        warehouse_url = self._warehouse(backend, root)
        data_dir, merchants_file, made = build_data(root, warehouse_url)
        server = new_server(
            root, backend, warehouse_url, data_dir, merchants_file, made, self._metadata_db()
        )
        self._stack.callback(server.stop)
        started = time.monotonic()
        server.start()
        print(
            f"\nui fixture: airflow api-server ({backend} warehouse) ready at {server.base_url}"
            f" in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
        return server

    def close(self) -> None:
        self._stack.close()
