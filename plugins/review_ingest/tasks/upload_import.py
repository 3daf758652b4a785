"""The task of ``orders_upload_import``: one upload from the browser, queued by "Import data"
(``backoffice.uploads``), through the same pipeline as any upload, once.

The staged bytes are claimed (a rename: of two runs, or a retry and a run of
``orders_upload_ingest`` taking over a failed try's claim, one gets them) with the import id
"Import data" chose, checked to be the bytes the check saw, imported with source ``upload`` and
moved to ``processed/`` or ``rejected/`` like any upload; a failure before the commit gives
them back to the staging folder for the next try.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from review_ingest import settings
from review_ingest.backoffice import uploads
from review_ingest.core.merchants import read_merchants
from review_ingest.core.outcomes import Outcome
from review_ingest.core.report import file_summary, skipped_summary
from review_ingest.errors import PermanentError, UsageError, describe
from review_ingest.pipeline.claimed import move_upload, process_claim

if TYPE_CHECKING:
    from review_ingest.pipeline.ingest import Ingest

log = logging.getLogger(__name__)


def import_upload(upload_id: str, warehouse_url: str, *, last_try: bool = True) -> dict[str, Any]:
    """Import the queued upload ``upload_id``; its summary. A failure is recorded on the
    upload (its state turns ``failed`` when ``last_try`` or no retry can cure it), then
    raised."""
    from review_ingest.pipeline.ingest import Ingest

    data_dir = settings.data_dir()
    upload = uploads.find(data_dir, upload_id)
    ingest = Ingest(data_dir, read_merchants(settings.merchants_file()).merchants, warehouse_url)
    try:
        uploads.clear_failure(upload)
        return _import(ingest, upload)
    except Exception as exc:
        final = last_try or isinstance(exc, PermanentError)
        uploads.record_failure(upload, describe(exc), final=final)
        raise
    finally:
        ingest.finish()
        ingest.close()


def _import(ingest: Ingest, upload: uploads.Upload) -> dict[str, Any]:
    """The claimed bytes imported; else what became of them: another run holds them (skipped),
    or the warehouse has their import (done before)."""
    from review_ingest.store import warehouse

    claim = uploads.claim_staged(upload)
    if claim is not None:
        result = process_claim(ingest, claim, move_upload, give_back_to=upload.folder)
        assert result is not None  # import_new: always a summary
        return result
    queued = upload.queued
    assert queued is not None  # claim_staged raised otherwise
    other = uploads.holder(upload)
    if other is not None:
        log.info(
            "upload %s: another run holds its import %s (claim %s): skipped",
            upload.upload_id,
            queued.import_id,
            other.claim_id,
        )
        return skipped_summary(
            upload.merchant_id, upload.file_name, queued.import_id, ingest.data_dir
        )
    record = warehouse.import_record(ingest.engine, queued.import_id)
    if record is not None:
        log.info("upload %s: imported already (import %s)", upload.upload_id, record.import_id)
        return file_summary(Outcome(record=record, suite=record.template), ingest.data_dir, None)
    raise UsageError(
        f"upload {upload.upload_id} of merchant {upload.merchant_id}: its file "
        f"{upload.file_name!r} is no longer staged and was never imported (deleted after its "
        "expiry?)"
    )
