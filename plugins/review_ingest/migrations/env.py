"""Alembic environment of the warehouse, configured from Python (no alembic.ini).

``review_ingest.warehouse.migrate`` passes an open connection in
``config.attributes["connection"]`` (it holds the migration lock on it); without one, the
``sqlalchemy.url`` option is used.
"""

from __future__ import annotations

from alembic import context
from review_ingest.models import Base
from review_ingest.warehouse import VERSION_TABLE, engine_for
from sqlalchemy import Connection


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # SQLite alters tables by copying them: future migrations need batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    with engine_for(context.config.get_main_option("sqlalchemy.url")).connect() as connection:
        run(connection)


if context.is_offline_mode():
    raise RuntimeError("the warehouse migrations run online only")
main()
