"""Load what the pipeline's tasks import, once per Celery worker, so that no task pays for it.

Airflow 3 runs each task in a process forked from its Celery worker: the modules the worker has
loaded are the task's at no cost. Without this, every ``ingest_batch`` and ``collect_merchants``
task imports Great Expectations, pandas, SQLAlchemy and the rest itself: about 4 s before its
first file, whatever its files (``benchmarks/bench_workers.py``). The worker imports this module
at start-up when its Celery configuration is ``review_ingest_celery.CELERY_CONFIG``.

It also parses the merchants file, which every task reads to find its merchant (about 1 s
at 10,000 merchants): a task forked while the file is unchanged gets it parsed
(``merchants.read_merchants``). When the file changes, the pool process that runs the next
task parses it again before forking it (Celery's ``task_prerun``), once for all the tasks it
runs after. No thread or connection is opened and no file is left open, so the forks inherit
nothing else.

Last, ``gc.freeze()`` moves everything loaded so far (about 300,000 objects) out of the
garbage collector's sight, as preforking servers do: a full collection in a task then skips
them instead of spending about 0.13 s on them and writing to the pages it shares with the
worker. Seen in a forked process that validated four batches in a row (one collection: 0.45
instead of 0.24 s); over the 12 batches of ``bench_batches.py --without-freeze``, 1.03x.
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
