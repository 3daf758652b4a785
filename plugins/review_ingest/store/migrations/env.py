"""Alembic environment of the warehouse, configured from Python (there is no alembic.ini).

The caller passes an open connection in ``config.attributes["connection"]``:
``review_ingest.store.warehouse.migrate`` does, holding the migration lock on it. To write a new
revision, do the same with ``alembic.command.revision(config, autogenerate=True)``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from review_ingest.store.models import Base
from review_ingest.store.warehouse import VERSION_TABLE


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


connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError("the warehouse migrations run with a connection in config.attributes")
run(connection)
