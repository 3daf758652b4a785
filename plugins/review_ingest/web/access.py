"""Who may use the review UI, decided by Airflow's own auth manager (contract section 10).

Airflow is imported inside the functions, when the app is made: the package stays importable
without it. This module has no ``from __future__ import annotations`` on purpose: FastAPI reads
the dependency's annotations at run time, and ``GetUserDep`` is a local name, so they must be
real objects rather than strings.
"""

from collections.abc import Callable

from fastapi import Request

from review_ingest.web import csrf

#: Reading the review UI takes read access to each of these DAGs.
INGEST_DAG_IDS = ("orders_upload_ingest", "orders_sftp_ingest", "orders_backfill")
#: Changing data (an upload, its import, a cancellation) takes the right to run these DAGs.
RUN_DAG_IDS = ("orders_upload_ingest", "orders_backfill")


def ingest_dag_reader() -> Callable[..., None]:
    """A FastAPI dependency: 401 without an Airflow user (``GetUserDep``: a bearer token or
    the UI's ``_token`` cookie), 403 unless the auth manager's ``is_authorized_dag`` lets the
    user GET every ingest DAG (Airflow's ``requires_access_dag``, one check per DAG)."""
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    checks = [requires_access_dag("GET", param_dag_id=dag_id) for dag_id in INGEST_DAG_IDS]

    def may_read_ingest_dags(request: Request, user: GetUserDep) -> None:
        for check in checks:
            check(request, user)
        request.state.review_user = user.get_name()  # for the pages' CSRF token

    return may_read_ingest_dags


def ingest_dag_runner() -> Callable[..., None]:
    """A FastAPI dependency for the routes that change data: 401 without an Airflow user, 403
    unless the user may create DAG runs of each of ``RUN_DAG_IDS`` (Airflow's
    ``requires_access_dag("POST", DagAccessEntity.RUN)``), and 403 for a request authenticated
    by the UI's cookie that does not come from this server (``csrf.check_request``: its
    ``Origin``; a form's token is checked by the route with ``csrf.require_token``)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    checks = [
        requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=dag_id)
        for dag_id in RUN_DAG_IDS
    ]

    def may_run_ingest_dags(request: Request, user: GetUserDep) -> None:
        for check in checks:
            check(request, user)
        csrf.check_request(request, user.get_name(), secret_key(), own_origins(request))

    return may_run_ingest_dags


def own_origins(request: Request) -> list[str]:
    """This server's origins: the one the request was sent to, and Airflow's ``[api] base_url``
    (the address behind a proxy)."""
    from airflow.configuration import conf

    return [str(request.base_url), conf.get("api", "base_url", fallback="") or ""]


def login_url(next_url: str) -> str:
    """The auth manager's login page, bringing the user back to ``next_url`` afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def secret_key() -> str:
    """Airflow's ``[api] secret_key`` (the same on every API server of a deployment)."""
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return get_signing_key("api", "secret_key")
