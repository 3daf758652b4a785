"""Child process of bench_ingest.py: the in-process work of ``review-ingest import`` (target 2).

Imports the libraries the command uses and migrates the new warehouse (untimed), then times
what the command does with them: ``Ingest.import_file`` and ``Ingest.finish`` (its Data Docs),
and prints one JSON line. With
``--imports-only`` it stops after the imports: bench_ingest times that as the bare import of the
project's libraries.

    .venv/bin/python benchmarks/import_in_process.py FILE MERCHANT     # env as for the command
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
import time
from pathlib import Path

#: What ``review-ingest import`` loads (GX, pandas, SQLAlchemy, Alembic and psycopg with them).
PROJECT_MODULES = (
    "review_ingest.cli",
    "review_ingest.pipeline.ingest",
    "review_ingest.quality.validation",
    "review_ingest.store.warehouse",
    "review_ingest.core.report",
    "review_ingest.quality.data_docs",
    "great_expectations",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("merchant", nargs="?")
    parser.add_argument("--imports-only", action="store_true")
    args = parser.parse_args(argv)
    from review_ingest.quality import gx_compat

    gx_compat.load()  # as the command's Validation does
    for name in PROJECT_MODULES:
        importlib.import_module(name)
    if args.imports_only:
        return 0
    # As in the command, where the Validation that imports Great Expectations freezes it.
    gc.freeze()

    from review_ingest import settings
    from review_ingest.core.merchants import read_merchants
    from review_ingest.pipeline.ingest import Ingest
    from review_ingest.store import warehouse

    merchants = read_merchants(settings.merchants_file()).merchants
    # Untimed, as CREATE DATABASE is for the floor: a real warehouse exists before its files.
    warehouse.migrate(warehouse.engine_for(settings.warehouse_url()))
    start = time.perf_counter()
    ingest = Ingest(settings.data_dir(), merchants, settings.warehouse_url())
    outcome = ingest.import_file(args.file, args.merchant, "upload")
    ingest.finish()
    seconds = time.perf_counter() - start
    record = outcome.record
    print(
        json.dumps(
            {
                "seconds": seconds,
                "status": record.status,
                "valid_rows": record.valid_rows,
                "error_rows": record.error_rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
