"""The task of ``orders_backfill``: one named file of a merchant, from its upload folder or its
SFTP inbox, with source ``backfill``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from review_ingest import settings
from review_ingest.core.merchants import Merchant, read_merchants
from review_ingest.core.report import file_summary, skipped_summary
from review_ingest.errors import UsageError
from review_ingest.pipeline.claimed import move_upload, process_claim
from review_ingest.pipeline.failures import BatchFailed
from review_ingest.pipeline.sftp_inbox import collect_one, recover, sftp_merchant, staging_dir
from review_ingest.sources import claims, folders, sftp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillRequest:
    """The Params of ``orders_backfill``, checked before anything is touched."""

    merchant_id: str
    file: str
    source: str = "upload"
    dry_run: bool = True
    send_now: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any], merchants: dict[str, Merchant]) -> BackfillRequest:
        merchant_id = str(params.get("merchant_id") or "").strip()
        if merchant_id not in merchants:
            raise UsageError(f"orders_backfill: unknown merchant_id {merchant_id!r}")
        file = folders.safe_name(str(params.get("file") or "").strip())
        source = str(params.get("source") or "upload")
        if source not in ("upload", "sftp"):
            raise UsageError(f"orders_backfill: source must be upload or sftp, not {source!r}")
        if source == "sftp" and merchants[merchant_id].sftp is None:
            raise UsageError(f"orders_backfill: merchant {merchant_id!r} has no sftp block")
        return cls(
            merchant_id, file, source, bool(params.get("dry_run")), bool(params.get("send_now"))
        )


def import_backfill_file(params: dict[str, Any], warehouse_url: str) -> dict[str, Any]:
    """The task: the Params checked, then the file imported from its upload folder or its
    SFTP inbox."""
    merchants = read_merchants(settings.merchants_file()).merchants
    request = BackfillRequest.from_params(params, merchants)
    if request.source == "sftp":
        return backfill_sftp(request, warehouse_url)
    return backfill_upload(request, warehouse_url)


def backfill_upload(request: BackfillRequest, warehouse_url: str) -> dict[str, Any]:
    """Import one named file of a merchant's upload folder, with source ``backfill``.

    The file is claimed like any upload: when a run of ``orders_upload_ingest`` holds it, the
    backfill skips it without failing (that run loads it); when a failed or killed run left it
    in a claim, the backfill takes it over. A dry run claims nothing and moves nothing.
    """
    from review_ingest.pipeline.ingest import Ingest

    data_dir = settings.data_dir()
    path = folders.upload_path(data_dir, request.merchant_id, request.file)
    merchants = read_merchants(settings.merchants_file()).merchants
    ingest = Ingest(data_dir, merchants, warehouse_url)
    if request.dry_run:
        if not path.is_file():
            raise _no_such_file(request, path)
        outcome = ingest.import_file(
            path, request.merchant_id, "backfill", dry_run=True, send_now=request.send_now
        )
        ingest.finish()
        return file_summary(outcome, data_dir, None)
    claim = claims.claim_upload(
        data_dir, request.merchant_id, request.file, source="backfill", send_now=request.send_now
    )
    if claim is None:
        other = claims.held(data_dir, request.merchant_id, request.file)
        if other is None:
            raise _no_such_file(request, path)
        log.info(
            "merchant %s file %s: another run holds it (claim %s, import %s): skipped_summary",
            request.merchant_id,
            request.file,
            other.claim_id,
            other.import_id,
        )
        return skipped_summary(request.merchant_id, request.file, other.import_id, data_dir)
    try:
        return process_claim(ingest, claim, move_upload)
    finally:
        ingest.finish()


def _no_such_file(request: BackfillRequest, path: Path) -> UsageError:
    return UsageError(
        f"orders_backfill: merchant {request.merchant_id!r} has no file {request.file!r} "
        f"in {path.parent}"
    )


def backfill_sftp(request: BackfillRequest, warehouse_url: str) -> dict[str, Any]:
    """``orders_backfill`` with source ``sftp``: the named file of the merchant's inbox.

    A claim of that file left by a failed or killed run is finished first (``recover``).
    """
    from review_ingest.pipeline.ingest import Ingest

    merchants = read_merchants(settings.merchants_file()).merchants
    merchant = sftp_merchant(merchants, request.merchant_id)
    inbox = merchant.sftp.inbox  # type: ignore[union-attr]
    ingest = Ingest(settings.data_dir(), merchants, warehouse_url)
    try:
        with sftp.connect(merchant.sftp.conn_id) as client:  # type: ignore[union-attr]
            listed = {f.name: f for f in sftp.list_ready(client, inbox, time.time(), 0)}
            if not request.dry_run:
                busy = {request.file}
                left = claims.claimable(ingest.data_dir, request.merchant_id, origin="sftp")
                for old in (c for c in left if c.name == request.file):
                    result = recover(client, ingest, merchant, old, listed, busy)
                    if result is not None:
                        return result
            if request.file not in listed:
                raise UsageError(
                    f"orders_backfill: merchant {request.merchant_id!r} has no file "
                    f"{request.file!r} in its SFTP inbox {inbox}"
                )
            if not request.dry_run:
                result = collect_one(
                    client, ingest, merchant, listed[request.file], "backfill", request.send_now
                )
                if result is None:
                    raise BatchFailed(
                        f"merchant {request.merchant_id}: another run took {request.file!r}"
                    )
                return result
            local = sftp.download(client, inbox, request.file, staging_dir(request.merchant_id))
            outcome = ingest.import_file(
                local, request.merchant_id, "backfill", dry_run=True, send_now=request.send_now
            )
            local.unlink()
            return file_summary(outcome, ingest.data_dir, None)
    finally:
        ingest.finish()
