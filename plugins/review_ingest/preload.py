"""Load what the pipeline's tasks import, once per Celery worker, so that no task pays for it.

Airflow 3 runs each task in a process forked from its Celery worker: the modules the worker has
loaded are the task's at no cost. Without this, every ``ingest_batch`` and ``collect_merchant``
task imports Great Expectations, pandas, SQLAlchemy and the rest itself: about 4 s before its
first file, whatever its files (``benchmarks/bench_workers.py``). The worker imports this module
at start-up when its Celery configuration is ``review_ingest_celery.CELERY_CONFIG``.

Importing it only imports: no thread, connection or file is opened, so the forks inherit nothing
but modules.
"""

from __future__ import annotations

import importlib

from review_ingest.validation import quiet_gx_logs

#: Great Expectations and pandas first (most of the time), then what the tasks import with them.
MODULES = (
    "great_expectations",
    "pandas",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "paramiko",
    "review_ingest.runs",
    "review_ingest.pipeline",
    "review_ingest.validation",
    "review_ingest.warehouse",
    "review_ingest.data_docs",
    "review_ingest.report",
    "review_ingest.sftp_pickup",
    "review_ingest.retention",
)


def load() -> None:
    """Import ``MODULES`` (Great Expectations' import-time log lines kept quiet)."""
    quiet_gx_logs()
    for name in MODULES:
        importlib.import_module(name)


load()
