"""Load what the pipeline's tasks import, once per Celery worker, so that no task pays for it.

Airflow 3 runs each task in a process forked from its Celery worker, so the modules the worker
loaded are the task's at no cost; without this, every ``ingest_batch`` and ``collect_merchants``
task imports Great Expectations, pandas, SQLAlchemy and the rest itself before its first file.
The worker imports this module at start-up when its Celery configuration is
``review_ingest_celery.CELERY_CONFIG``.

It also parses the merchants file, which every task reads to find its merchant: a task forked
while the file is unchanged finds it parsed (``merchants.read_merchants``); after a change, the
pool process that runs the next task parses it again before forking it (Celery's
``task_prerun``). No thread, connection or open file is left behind for the forks to inherit.

Last, ``gc.freeze()`` moves everything loaded so far out of the garbage collector's sight, as
preforking servers do: a task's full collections skip those objects, and so never write to the
pages the task shares with its worker.
"""

from __future__ import annotations

import gc
import importlib
import logging

from celery.signals import task_prerun

from review_ingest import settings
from review_ingest.core.merchants import read_merchants
from review_ingest.errors import ConfigError
from review_ingest.quality import gx_compat
from review_ingest.quality.validation import quiet_gx_logs

log = logging.getLogger(__name__)

#: Great Expectations and pandas first (most of the time), then what the tasks import with them.
MODULES = (
    "great_expectations",
    "pandas",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "paramiko",
    "review_ingest.pipeline.ingest",
    "review_ingest.quality.validation",
    "review_ingest.store.warehouse",
    "review_ingest.quality.data_docs",
    "review_ingest.core.report",
    "review_ingest.tasks.upload_ingest",
    "review_ingest.tasks.sftp_ingest",
    "review_ingest.tasks.backfill",
    "review_ingest.tasks.data_retention",
)


def load() -> None:
    """Import ``MODULES`` (Great Expectations' import-time log lines kept quiet), then parse
    the merchants file if it can be (a task that finds it wrong says so, naming the key)."""
    quiet_gx_logs()
    gx_compat.load()
    for name in MODULES:
        importlib.import_module(name)
    parse_merchants()


def parse_merchants(**_: object) -> None:
    """Parse the merchants file if it changed since this process last did (a hash otherwise).

    Run at start-up, then before each task in the pool process that forks it."""
    try:
        read_merchants(settings.merchants_file())
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        log.warning("merchants file not parsed in advance: %s", exc)


load()
gc.freeze()
task_prerun.connect(parse_merchants, weak=False)
