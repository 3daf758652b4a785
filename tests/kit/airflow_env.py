"""The environment of the Airflow commands and servers the kit starts: this repository's DAGs
and plugins, a private ``AIRFLOW_HOME``, a warehouse connection."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.kit.paths import AIRFLOW, REPO, VENV_BIN
from tests.kit.processes import log_tail, run_group

#: Variables that belong to one Airflow or one pipeline configuration, never to be inherited.
OWN_PREFIXES = ("AIRFLOW", "REVIEW_INGEST_", "PYTHONPATH")


def without_own(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without any Airflow, pipeline or PYTHONPATH setting: a server gets only its own."""
    return {key: value for key, value in env.items() if not key.startswith(OWN_PREFIXES)}


def airflow_settings(home: Path) -> dict[str, str]:
    """What every Airflow of the kit shares: a private home, this repository's DAGs and plugins,
    no examples, the virtualenv first on PATH."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def airflow_conn_json(sqlalchemy_url: str) -> str:
    """The ``AIRFLOW_CONN_REVIEW_WAREHOUSE`` value for a warehouse (SQLite or PostgreSQL)."""
    url = make_url(sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": url.database})
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port or 5432,
            "login": url.username,
            "password": url.password or "",
            "schema": url.database,
        }
    )


def migrate_metadata(env: dict[str, str], log_path: Path, timeout: float = 300.0) -> None:
    """``airflow db migrate`` of the metadata database ``env`` names, its output in
    ``log_path``; raises with the log's end when it fails."""
    code = run_group([str(AIRFLOW), "db", "migrate"], log_path, timeout, env=env, cwd=REPO)
    if code != 0:
        raise RuntimeError(f"airflow db migrate failed ({code}):\n{log_tail(log_path, 30)}")


def fresh_review_app() -> None:
    """Airflow's next app builds the review UI anew: the plugin keeps the UI it built for the
    process, with the warehouse of the module that first used it."""
    from airflow import plugins_manager

    from review_ingest.web.lazy import BuiltOnFirstUse

    for entry in plugins_manager.get_fastapi_plugins()[0]:
        if isinstance(entry["app"], BuiltOnFirstUse):
            entry["app"].forget()
