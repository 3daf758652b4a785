"""The warehouse in Airflow: the connection ``review_warehouse`` as a SQLAlchemy URL."""

from __future__ import annotations

import logging
from urllib.parse import quote

from review_ingest import settings
from review_ingest.errors import ConfigError

WAREHOUSE_CONN_ID = "review_warehouse"
log = logging.getLogger(__name__)


def sqlalchemy_url(
    conn_type: str,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
) -> str:
    """An Airflow connection's parts as a SQLAlchemy URL (PostgreSQL through psycopg 3)."""
    if conn_type == "sqlite":
        return f"sqlite:///{host}"
    if conn_type not in ("postgres", "postgresql"):
        raise ConfigError(
            f"connection {WAREHOUSE_CONN_ID}: conn_type {conn_type!r} is not supported "
            "(use postgres or sqlite)"
        )
    auth = quote(login or "", safe="")
    if password:
        auth += ":" + quote(password, safe="")
    netloc = f"{auth}@" if auth else ""
    netloc += host or "localhost"
    if port:
        netloc += f":{port}"
    return f"postgresql+psycopg://{netloc}/{schema or 'postgres'}"


def warehouse_url_in_airflow() -> str:
    """The ``review_warehouse`` connection when Airflow defines it, else the embedded default."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(WAREHOUSE_CONN_ID)
    except AirflowNotFoundException:
        # The embedded default (demo, one machine); on a deployment this is a mistake to see.
        url = settings.warehouse_url()
        log.warning(
            "no Airflow connection %r: using the warehouse %s",
            WAREHOUSE_CONN_ID,
            url.split("@")[-1],
        )
        return url
    return sqlalchemy_url(
        conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema
    )
