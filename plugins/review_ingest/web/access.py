"""Who may use the review UI, decided by Airflow's own auth manager (contract section 10).

Airflow is imported inside the functions, when the app is made: the package stays importable
without it. This module has no ``from __future__ import annotations`` on purpose: FastAPI reads
the dependency's annotations at run time, and ``GetUserDep`` is a local name, so they must be
real objects rather than strings.
"""

from collections.abc import Callable

from fastapi import Request

#: Reading the review UI takes read access to each of these DAGs.
INGEST_DAG_IDS = ("orders_upload_ingest", "orders_sftp_ingest", "orders_backfill")


def ingest_dag_reader() -> Callable[..., None]:
    """A FastAPI dependency: 401 without an Airflow user (``GetUserDep``: a bearer token or
    the UI's ``_token`` cookie), 403 unless the auth manager's ``is_authorized_dag`` lets the
    user GET every ingest DAG (Airflow's ``requires_access_dag``, one check per DAG)."""
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    checks = [requires_access_dag("GET", param_dag_id=dag_id) for dag_id in INGEST_DAG_IDS]

    def may_read_ingest_dags(request: Request, user: GetUserDep) -> None:
        for check in checks:
            check(request, user)

    return may_read_ingest_dags


def login_url(next_url: str) -> str:
    """The auth manager's login page, bringing the user back to ``next_url`` afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def secret_key() -> str:
    """Airflow's ``[api] secret_key`` (the same on every API server of a deployment)."""
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return get_signing_key("api", "secret_key")
