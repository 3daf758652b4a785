"""Upload batches as Celery workers run them: planned by template, or in arrival order.

The process imports ``review_ingest.tasks.preload`` as a worker does, then runs each
``ingest_batch`` of one ``orders_upload_ingest`` run in a process forked from it, one after the
other, as a worker forks its tasks: ``--files`` small files (the samples, as the distributed run
drops them: ``tests.kit.factories.drop_files``) over 10 merchants of the four templates, in
batches of 10, into a new PostgreSQL database. Once with the batches ``list_new_files`` plans
(files grouped by what they validate with), once with the same files split in arrival order
(before ``4fc21c7``), alternating for ``--rounds``. Prints the validations' count (templates per
batch) and the batches' total time.

``--without-freeze`` compares instead the planned batches forked from a worker whose loaded
objects are frozen (``gc.freeze()``, as ``review_ingest.tasks.preload`` leaves it) with the same
batches forked after ``gc.unfreeze()`` (before ``preload`` froze them), alternating.

    .venv/bin/python -m benchmarks.bench_batches              # 2 rounds, ~2 min
    .venv/bin/python -m benchmarks.bench_batches --without-freeze --rounds 3

Run from the repository root.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.kit import postgres
from tests.kit.factories import drop_files, merchant_ids, write_merchants

BATCH_SIZE = 10
UNFROZEN = "by template, not frozen"


def new_data(tmp: Path, files: int) -> dict[str, str]:
    """A data folder in ``tmp`` with ``files`` ready uploads; the merchants' templates."""
    os.environ.update(
        REVIEW_INGEST_DATA_DIR=str(tmp / "data"),
        REVIEW_INGEST_MERCHANTS=str(tmp / "merchants.yaml"),
        REVIEW_INGEST_MIN_FILE_AGE_SECONDS="0",
        REVIEW_INGEST_BATCH_SIZE=str(BATCH_SIZE),
    )
    merchants = merchant_ids(10)
    write_merchants(tmp / "merchants.yaml", merchants)
    drop_files(tmp / "data", merchants, files)
    return merchants


def plan(kind: str) -> list[list[dict[str, str]]]:
    from review_ingest import settings
    from review_ingest.sources import folders
    from review_ingest.tasks import partition, upload_ingest

    if kind != "arrival order":
        return upload_ingest.plan_upload_batches()
    pending = folders.ready_uploads(settings.data_dir(), 0)
    items = [{"merchant_id": p.merchant_id, "path": str(p.path)} for p in pending]
    sizes = [p.size for p in pending]
    return partition.split(
        items, sizes, BATCH_SIZE, settings.batch_bytes(), upload_ingest.MAX_BATCHES
    )


def one_run(kind: str, files: int) -> dict[str, Any]:
    from review_ingest.store import warehouse
    from review_ingest.tasks import upload_ingest

    with (
        tempfile.TemporaryDirectory(prefix="bench_batches_") as tmp,
        postgres.new_database(postgres.server_url(), prefix="bench_batches") as url,
    ):
        merchants = new_data(Path(tmp), files)
        batches = plan(kind)
        warehouse.migrate(warehouse.engine_for(url))
        if kind == UNFROZEN:
            gc.unfreeze()
        started = time.perf_counter()
        for batch in batches:
            pid = os.fork()
            if pid == 0:  # as a worker runs a task
                upload_ingest.ingest_uploads(batch, url)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise SystemExit(f"a batch failed ({kind})")
        seconds = time.perf_counter() - started
        gc.freeze()
    templates = [len({merchants[item["merchant_id"]] for item in batch}) for batch in batches]
    return {"batches": len(batches), "validations": sum(templates), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--without-freeze", action="store_true", help="compare with gc unfrozen")
    args = parser.parse_args(argv)
    import review_ingest.tasks.preload  # noqa: F401  (as a worker does at start-up)

    other = UNFROZEN if args.without_freeze else "arrival order"
    found: dict[str, list[dict[str, Any]]] = {other: [], "by template": []}
    for _ in range(args.rounds):
        for kind, runs_ in found.items():
            runs_.append(one_run(kind, args.files))
            print(f"{kind}: {runs_[-1]}", flush=True)
    medians = {k: statistics.median(r["seconds"] for r in v) for k, v in found.items()}
    paired = statistics.median(
        a["seconds"] / b["seconds"] for a, b in zip(found[other], found["by template"], strict=True)
    )
    ratio = medians[other] / medians["by template"]
    print(
        f"\n{args.files} files in batches of {BATCH_SIZE}: {other} {medians[other]:.2f} s, "
        f"by template {medians['by template']:.2f} s: {ratio:.2f}x (paired {paired:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
