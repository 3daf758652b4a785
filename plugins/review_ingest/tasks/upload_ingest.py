"""The tasks of ``orders_upload_ingest``: the upload folders' files, in batches, through the
pipeline.

Tasks exchange small JSON values only (paths as strings, per-file summaries); rows go through
files and the warehouse.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from review_ingest import settings
from review_ingest.core.merchants import Merchant, read_merchants
from review_ingest.errors import ConfigError
from review_ingest.pipeline.claimed import give_up, move_upload, process_claim
from review_ingest.pipeline.failures import BatchFailed, attempt, each_file
from review_ingest.sources import claims, folders
from review_ingest.tasks.partition import split

log = logging.getLogger(__name__)

#: Few enough batches to stay far under Airflow's limit of 1024 mapped tasks.
MAX_BATCHES = 64


def check_configuration() -> dict[str, Any]:
    """Fail, naming merchant and key, when the merchants file holds a mistake."""
    read = read_merchants(settings.merchants_file())
    if read.problems:
        raise ConfigError("; ".join(read.problems.values()))
    return {"merchants": sorted(read.merchants)}


def plan_upload_batches(max_batches: int = MAX_BATCHES) -> list[list[dict[str, str]]]:
    """The ready upload files, then the files of claims left by failed or killed runs (see
    ``claims``), split into batches for mapped tasks. Items name the file's upload path: the
    task claims it there, or takes over the claim that holds it.

    Files whose merchants share a template, a time zone and an oldest order day come together
    (in their order otherwise, so each merchant's oldest first): a batch's small files then go
    through one validation rather than one per template. A batch holds up to
    ``REVIEW_INGEST_BATCH_BYTES`` of files (``split``), so small files share a task's own cost.
    """
    data_dir = settings.data_dir()
    pending = folders.ready_uploads(data_dir, settings.min_file_age_seconds())
    left = claims.claimable(data_dir, origin="upload")
    sized = [({"merchant_id": p.merchant_id, "path": str(p.path)}, p.size) for p in pending]
    sized += [
        (
            {
                "merchant_id": c.merchant_id,
                "path": str(folders.upload_path(data_dir, c.merchant_id, c.name)),
            },
            _size(c.path),
        )
        for c in left
    ]
    log.info(
        "%d file(s) ready in %s, %d left in claims by earlier runs",
        len(pending),
        data_dir / "uploads",
        len(left),
    )
    merchants = read_merchants(settings.merchants_file()).merchants
    sized.sort(key=lambda pair: _validated_with(merchants.get(pair[0]["merchant_id"])))
    return split(
        [item for item, _ in sized],
        [size for _, size in sized],
        settings.batch_size(),
        settings.batch_bytes(),
        max_batches,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _validated_with(merchant: Merchant | None) -> tuple[str, str, int]:
    return merchant.validated_with if merchant else ("", "", 0)


def ingest_uploads(batch: list[dict[str, str]], warehouse_url: str) -> list[dict[str, Any]]:
    """Process a batch of upload files; one file's failure never stops the others.

    Every file is claimed first, so that the small ones are validated together (one Great
    Expectations run for many files, ``Ingest.validate_together``); then each is imported.
    """
    from review_ingest.pipeline.ingest import ClaimedFile, Ingest

    read = read_merchants(settings.merchants_file())
    ingest = Ingest(settings.data_dir(), read.merchants, warehouse_url)

    def take(item: dict[str, str]) -> claims.Claim | None:
        merchant_id, name = item["merchant_id"], Path(item["path"]).name
        if merchant_id in read.problems:
            log.warning(
                "merchant %s: configuration error, file %s left in place", merchant_id, name
            )
            return None
        claim = claims.claim_upload(ingest.data_dir, merchant_id, name)
        if claim is None:
            log.info("merchant %s file %s: already taken by another run", merchant_id, name)
        return claim

    taken = [(item, attempt(take, item)) for item in batch]
    left = [c for _, c in taken if isinstance(c, claims.Claim)]  # claimed, not processed yet

    def one(pair: tuple[dict[str, str], claims.Claim | Exception | None]) -> dict[str, Any] | None:
        claim = pair[1]
        if isinstance(claim, Exception):
            raise claim
        if claim is None:
            return None
        left.remove(claim)
        return process_claim(ingest, claim, move_upload)

    try:
        ingest.validate_together([ClaimedFile(c.path, c.merchant_id, c.import_id) for c in left])
        return each_file(
            taken, lambda p: f"merchant {p[0]['merchant_id']} file {Path(p[0]['path']).name!r}", one
        )
    except BaseException:
        # Stopped on the way (the task terminated): the files not reached go back to their
        # folders now, rather than wait in claims for this process to be seen gone.
        for claim in left:
            give_up(ingest, claim)
        raise
    finally:
        ingest.finish(index=False)  # the pages; the DAG run rebuilds the index once


def summarize_uploads(
    batches: list[list[dict[str, str]]], results: list[list[dict[str, Any]] | None]
) -> dict[str, int]:
    """One line per file, then the run's totals; fails naming the files whose batch failed,
    so that the run shows failed while every other file was still processed."""
    flat = [item for batch in results or [] if batch for item in batch]
    totals = {"files": len(flat), "loaded": 0, "rejected": 0, "already_imported": 0}
    for item in flat:
        totals[item["status"]] = totals.get(item["status"], 0) + 1
        log.info(
            "%s/%s: %s%s, %s rows (%s valid, %s errors, %s duplicates), report %s",
            item["merchant_id"],
            item["file_name"],
            item["status"],
            f" ({item['rejection']})" if item["rejection"] else "",
            item["total_rows"],
            item["valid_rows"],
            item["error_rows"],
            item["duplicate_rows"],
            item["report"],
        )
    log.info("run totals: %s", totals)
    reported = {(item["merchant_id"], item["file_name"]) for item in flat}
    missing = [
        f"{f['merchant_id']}/{Path(f['path']).name}"
        for batch in batches or []
        for f in batch
        if (f["merchant_id"], Path(f["path"]).name) not in reported
    ]
    if len([b for b in results or [] if b is not None]) < len(batches or []):
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise BatchFailed(
            f"some ingest_batch tasks failed (see their logs); files of those batches not "
            f"reported by a successful try: {shown or 'none'}"
        )
    return totals
