"""Throw-away databases on a running PostgreSQL server, for tests, benchmarks and the
distributed run.

The server is the one at ``$REVIEW_INGEST_TEST_PG_URL``, else postgres@127.0.0.1:5432 (trust
auth: ``scripts/ensure_postgres.sh`` starts it).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: The SQLAlchemy driver of every database URL handed out (psycopg 3).
DRIVER = "postgresql+psycopg"


def server_url() -> str:
    """The URL of the server's maintenance database (``postgres``)."""
    return os.environ.get("REVIEW_INGEST_TEST_PG_URL") or DEFAULT_PG_URL


def libpq(url: str | URL) -> str:
    """``url`` as libpq reads it (it knows no ``+driver`` suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(server: str, name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the server of ``server``."""
    url = make_url(server).set(drivername=DRIVER, database=name)
    return url.render_as_string(hide_password=False)


def unreachable(url: str) -> str | None:
    """Why no server answers at ``url``; None when one does."""
    try:
        with psycopg.connect(libpq(url), connect_timeout=5):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip()


def create_database(server: str, name: str) -> str:
    """A new empty database ``name`` on the server of ``server``; its SQLAlchemy URL."""
    with psycopg.connect(libpq(server), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server, name)


def drop_database(server: str, name: str) -> None:
    """Drop database ``name`` (when it exists), its connections ended first."""
    with psycopg.connect(libpq(server), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def new_database(server: str, prefix: str = "review_ingest_test") -> Iterator[str]:
    """A new empty database on the server of ``server``, dropped afterwards, as a psycopg 3
    SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_database(server, name)
    try:
        yield url
    finally:
        drop_database(server, name)
